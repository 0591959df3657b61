"""Vectorised text envs for stable-baselines3, with one reward-model call per step for all finished episodes.

``DummyVecEnv`` steps its envs one after another, so each finished episode would be scored alone.
:class:`TextVecEnv` first asks every sub-env whether its action ends its episode
(:meth:`~textenv.env.TextGenEnv.preview`), scores all the episodes that end in this step with one call of
the shared reward model, hands the scores back, and only then steps the envs through their wrappers (a
``Monitor`` still sees every step). Gymnasium's vector envs and ``SubprocVecEnv`` work too, scoring per env. The
agent's log-prob message of each step reaches the sub-envs through :meth:`TextVecEnv.send_logprobs` (in other vector
envs, through ``env_method``; see :mod:`textenv.kl`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from textenv.errors import ConfigError
from textenv.kl import LogProbMessage
from textenv.registration import make
from textenv_common.checks import check_int

__all__ = ["TextVecEnv", "make_vec_env"]


class TextVecEnv(DummyVecEnv):
    """A ``DummyVecEnv`` of text envs that scores the episodes ending in one step in one reward call.

    Sub-envs that share one reward object (as :func:`make_vec_env` arranges) are scored together; the others
    are scored in groups by reward object.
    """

    def __init__(self, env_fns: list[Callable[[], gym.Env[Any, Any]]]) -> None:
        super().__init__(env_fns)

    def send_logprobs(self, message: LogProbMessage) -> None:
        """Hand the agent's log-prob message of the coming step to every sub-env (see :mod:`textenv.kl`)."""
        for env in self.envs:
            env.unwrapped.record_policy_logprobs(message)  # type: ignore[attr-defined]

    def step_wait(self) -> VecEnvStepReturn:
        """Score the episodes that this step ends in one batch, then step every env."""
        groups: dict[int, list[tuple[Any, tuple[list[str], list[str], dict[str, list[Any]]]]]] = {}
        for env, action in zip(self.envs, self.actions, strict=True):
            base = env.unwrapped
            preview = getattr(base, "preview", None)
            if preview is None:
                continue
            inputs = preview(action)
            if inputs is not None:
                groups.setdefault(id(base.reward_fn), []).append((base, inputs))  # type: ignore[attr-defined]
        for members in groups.values():
            _score_together(members)
        return super().step_wait()


def _score_together(members: list[tuple[Any, tuple[list[str], list[str], dict[str, list[Any]]]]]) -> None:
    keys = {tuple(sorted(inputs[2])) for _, inputs in members}
    if len(keys) != 1:  # prompts from sources with different fields: score each alone (the env will)
        return
    prompts = [inputs[0][0] for _, inputs in members]
    completions = [inputs[1][0] for _, inputs in members]
    meta = {key: [inputs[2][key][0] for _, inputs in members] for key in keys.pop()}
    reward_fn = members[0][0].reward_fn
    scores = reward_fn(prompts, completions, **meta)
    parts = getattr(reward_fn, "last_parts", {})
    for i, ((base, _), score) in enumerate(zip(members, np.asarray(scores), strict=True)):
        base.provide_score(float(score), {k: float(v[i]) for k, v in parts.items()})


def make_vec_env(
    env_id: str, n_envs: int = 1, *, seed: int | None = None, monitor: bool = True, **kwargs: Any
) -> TextVecEnv:
    """``n_envs`` copies of a registered text env in a :class:`TextVecEnv`, sharing models, reward and β.

    Args:
        env_id: A registered id, e.g. ``"textenv/Toy-v0"``.
        n_envs: Number of sub-envs (rows of each batch).
        seed: Seed of the first sub-env; sub-env ``i`` gets ``seed + i``.
        monitor: Wrap each sub-env in stable-baselines3's ``Monitor`` (episode return and length in info).
        **kwargs: Overrides of the env's defaults, as for ``gym.make``.
    """
    check_int("n_envs", n_envs, 1, error=ConfigError)
    first = make(env_id, **kwargs)
    # One reward object (scored in batches, one running state) and one KL controller (β adapts to the KL of
    # every sub-env's episodes) for all sub-envs.
    reward_fn = first.unwrapped.reward_fn  # type: ignore[attr-defined]
    kl_controller = first.unwrapped.kl_controller  # type: ignore[attr-defined]

    # The others get the first one's reward object at construction, so a learned reward model is loaded once,
    # not once per sub-env.
    shared = {k: v for k, v in kwargs.items() if k != "reward_model"}
    shared.update(reward=reward_fn, reward_kwargs=None)

    def build(i: int) -> Callable[[], gym.Env[Any, Any]]:
        def thunk() -> gym.Env[Any, Any]:
            env = first if i == 0 else make(env_id, **shared)
            env.unwrapped.reward_fn = reward_fn  # type: ignore[attr-defined]
            env.unwrapped.kl_controller = kl_controller  # type: ignore[attr-defined]
            return Monitor(env) if monitor else env

        return thunk

    vec = TextVecEnv([build(i) for i in range(n_envs)])
    if seed is not None:
        vec.seed(seed)
    return vec
