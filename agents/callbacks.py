"""Callbacks and log outputs of a training run: RLHF metrics, samples, progress, atomic CSV."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter
from tqdm import tqdm

from textenv_common.atomic import write_text_atomic

__all__ = ["AtomicCSVOutput", "ConnectLogProbs", "ProgressCallback", "RLHFMetricsCallback", "SkipDiscardedValues"]


class AtomicCSVOutput(KVWriter):
    """SB3 log output that keeps every row and rewrites ``metrics.csv`` atomically at each dump.

    New keys may appear at any dump (SB3 records ``train/*`` only after the first update); the header grows
    and
    earlier rows get empty cells. Rows already in the file are kept, so a resumed run continues its curve.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []
        if self.path.exists():
            with self.path.open(newline="", encoding="utf-8") as fh:
                self.rows = [dict(row) for row in csv.DictReader(fh)]

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        """Add one row and rewrite the file."""
        row = {k: v for k, v in key_values.items() if isinstance(v, (int, float, np.integer, np.floating, str))}
        self.rows.append(row)
        keys: list[str] = []
        for r in self.rows:
            keys.extend(k for k in r if k not in keys)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=keys)
        writer.writeheader()
        writer.writerows(self.rows)
        write_text_atomic(self.path, buffer.getvalue(), overwrite=True)

    def close(self) -> None:
        """Nothing to close: every write is complete on disk."""


class ConnectLogProbs(BaseCallback):
    """Connect :class:`~agents.policy.LMPolicy` to the algorithm's env, so that its ``log π`` travel with the actions.

    The env's KL term needs the log-probability of each action the policy sampled; the policy sends it through
    the vector env with every rollout step (see :mod:`textenv.kl`), which reaches envs in this process,
    ``SubprocVecEnv`` workers and Ray actors alike. SB3 never hands the env to the policy, so this callback does,
    when training starts: add it to ``learn(callback=...)`` when driving SB3 directly (``agents.train``, and so
    every ``textenv`` command, adds it). Without it an ``LMPolicy`` refuses to roll out.
    """

    def _on_training_start(self) -> None:
        connect = getattr(self.model.policy, "connect", None)
        env = self.model.get_env()
        if connect is not None and env is not None:
            connect(env)

    def _on_step(self) -> bool:
        return True


class SkipDiscardedValues(BaseCallback):
    """Spare the forward pass of bootstrap values that SB3 multiplies by zero.

    At the end of each rollout SB3 computes the value of every env's newest observation and weighs it by
    ``1 - done``. Where an episode has just ended, that observation is the next episode's prompt, and its value
    would cost a forward pass over the whole prompt for nothing: with completions of fixed length and
    ``n_steps`` a multiple of it, every rollout ends that way. At the last step of each rollout this callback
    tells :class:`~agents.policy.LMPolicy` which rows those are (:meth:`~agents.policy.LMPolicy.discard_values`),
    and the policy returns 0 for them without computing them. Returns and advantages are unchanged.
    ``agents.train`` (and so the ``textenv`` commands) adds it; add it to ``learn(callback=...)`` when driving SB3
    directly.
    """

    def _on_step(self) -> bool:
        steps, last = self.locals.get("n_steps"), self.locals.get("n_rollout_steps")
        discard = getattr(self.model.policy, "discard_values", None)
        if discard is not None and steps is not None and last is not None and steps + 1 >= last:
            new_obs, dones = self.locals["new_obs"], self.locals["dones"]
            if isinstance(new_obs, dict) and "input_ids" in new_obs:
                discard(new_obs["input_ids"], np.asarray(dones, dtype=bool))
        return True


class RLHFMetricsCallback(BaseCallback):
    """Log the RLHF parts of the reward per rollout and keep sample completions.

    Records ``rollout/rm_score``, ``rollout/kl``, ``rollout/kl_coef``, ``rollout/return``,
    ``rollout/episodes``, ``time/total_tokens``, ``time/tokens_per_s`` and ``time/elapsed_s`` (means over the
    episodes that ended in the rollout), and every ``sample_every`` rollouts appends the rollout's latest
    completions to ``samples_path`` (one JSON object per line). ``before_rollout(n)`` is called before every
    rollout after the first, with the number of rollouts done: the moment to write a checkpoint.
    """

    def __init__(
        self,
        samples_path: Path | None = None,
        sample_every: int = 4,
        n_samples: int = 4,
        elapsed_offset: float = 0.0,
        before_rollout: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__()
        self.samples_path = samples_path
        self.sample_every = sample_every
        self.n_samples = n_samples
        self.elapsed_offset = elapsed_offset
        self.before_rollout = before_rollout
        self.rollouts = 0
        self.episodes: list[dict[str, Any]] = []
        self.history: list[dict[str, float]] = []
        self._start = 0.0
        self._start_tokens = 0

    def _on_training_start(self) -> None:
        self._start = time.perf_counter()
        self._start_tokens = self.num_timesteps

    def _on_rollout_start(self) -> None:
        # Between the update of the last rollout and the next rollout: the state a checkpoint must hold.
        if self.before_rollout is not None and self.rollouts > 0:
            self.before_rollout(self.rollouts)

    def _on_step(self) -> bool:
        for info, done in zip(self.locals["infos"], self.locals["dones"], strict=True):
            if done and "rm_score" in info:
                episode_return = info.get("episode", {}).get("r", np.nan)
                self.episodes.append(
                    {
                        "rm_score": float(info["rm_score"]),
                        "kl": float(info["kl_sum"]),
                        "kl_coef": float(info["kl_coef"]),
                        "return": float(episode_return),
                        "prompt": info["prompt"],
                        "completion": info["completion"],
                    }
                )
        return True

    def _on_rollout_end(self) -> None:
        self.rollouts += 1
        elapsed = time.perf_counter() - self._start
        row: dict[str, float] = {
            "time/total_tokens": float(self.num_timesteps),
            "time/elapsed_s": self.elapsed_offset + elapsed,
            "time/tokens_per_s": (self.num_timesteps - self._start_tokens) / max(elapsed, 1e-9),
            "rollout/episodes": float(len(self.episodes)),
        }
        if self.episodes:
            for key in ("rm_score", "kl", "kl_coef", "return"):
                row[f"rollout/{key}"] = float(np.mean([e[key] for e in self.episodes]))
        for key, value in row.items():
            self.logger.record(key, value)
        self.history.append(row)
        if self.samples_path is not None and self.episodes and self.rollouts % self.sample_every == 0:
            lines = [
                json.dumps({"tokens": self.num_timesteps, **e}, ensure_ascii=False)
                for e in self.episodes[-self.n_samples :]
            ]
            with self.samples_path.open("a", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")  # one write of whole lines
        self.episodes = []


class ProgressCallback(BaseCallback):
    """A tqdm bar over the token budget, with the latest reward-model score and KL."""

    def __init__(self, total_tokens: int, description: str = "train", metrics: RLHFMetricsCallback | None = None):
        super().__init__()
        self.total_tokens = total_tokens
        self.description = description
        self.metrics = metrics
        self.bar: tqdm[Any] | None = None

    def _on_training_start(self) -> None:
        self.bar = tqdm(total=self.total_tokens, initial=self.num_timesteps, desc=self.description, unit="tok")

    def _on_step(self) -> bool:
        if self.bar is not None:
            self.bar.update(self.num_timesteps - self.bar.n)
        return True

    def _on_rollout_end(self) -> None:
        if self.bar is not None and self.metrics is not None and self.metrics.history:
            last = self.metrics.history[-1]
            self.bar.set_postfix(
                rm=f"{last.get('rollout/rm_score', float('nan')):+.3f}",
                kl=f"{last.get('rollout/kl', 0.0):.2f}",
            )

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()
