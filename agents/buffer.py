"""``EpisodeRolloutBuffer``: SB3's dict rollout buffer, with minibatches made of whole episode segments.

SB3's buffer shuffles single transitions, so a policy must run one window per transition. This buffer shuffles
*segments* — the consecutive transitions of one env between two episode starts (an episode, or the part of one
that fell in this rollout) — and marks each transition's segment in the observation under
:data:`~agents.policy.SEGMENT_KEY`, so :class:`~agents.policy.LMPolicy` evaluates a segment in one forward
pass.
A minibatch holds whole segments and closes once it reaches ``batch_size`` transitions (so it may hold a few
more). Everything else, GAE included, is SB3's own.

Use: ``PPO(LMPolicy, env, rollout_buffer_class=EpisodeRolloutBuffer)`` (``agents.make_agent`` sets it).
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
from stable_baselines3.common.buffers import DictRolloutBuffer
from stable_baselines3.common.type_aliases import DictRolloutBufferSamples

from agents.policy import SEGMENT_KEY

__all__ = ["EpisodeRolloutBuffer", "segments"]


def segments(episode_starts: np.ndarray) -> list[tuple[int, int, int]]:
    """Split a rollout into segments ``(env, first_step, last_step)`` at episode starts.

    Args:
        episode_starts: SB3's ``episode_starts`` array of shape ``(n_steps, n_envs)``.
    """
    n_steps, n_envs = episode_starts.shape
    found = []
    for env in range(n_envs):
        start = 0
        for t in range(1, n_steps):
            if episode_starts[t, env]:
                found.append((env, start, t - 1))
                start = t
        found.append((env, start, n_steps - 1))
    return found


class EpisodeRolloutBuffer(DictRolloutBuffer):
    """A ``DictRolloutBuffer`` whose ``get`` yields minibatches of whole episode segments."""

    def get(  # type: ignore[override]
        self, batch_size: int | None = None
    ) -> Generator[DictRolloutBufferSamples, None, None]:
        """Yield minibatches of whole segments, in random order, of at least ``batch_size`` transitions."""
        if not self.full:
            raise RuntimeError("The rollout buffer is read before it is full.")
        parts = segments(self.episode_starts)
        if not self.generator_ready:
            for key, obs in self.observations.items():
                self.observations[key] = self.swap_and_flatten(obs)
            for name in ("actions", "values", "log_probs", "advantages", "returns"):
                self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])
            self.generator_ready = True
        limit = self.buffer_size * self.n_envs if batch_size is None else batch_size
        batch: list[np.ndarray] = []
        size = 0
        for i in np.random.permutation(len(parts)):
            env, first, last = parts[i]
            # swap_and_flatten orders transitions env-major: index = env * n_steps + step
            batch.append(np.arange(env * self.buffer_size + first, env * self.buffer_size + last + 1))
            size += last - first + 1
            if size >= limit:
                yield self._segment_samples(batch)
                batch, size = [], 0
        if batch:
            yield self._segment_samples(batch)

    def _segment_samples(self, batch: list[np.ndarray]) -> DictRolloutBufferSamples:
        indices = np.concatenate(batch)
        samples = self._get_samples(indices)
        segment_of = np.repeat(np.arange(len(batch)), [len(b) for b in batch])
        samples.observations[SEGMENT_KEY] = self.to_torch(segment_of)
        return samples
