"""The numbers of a comparison: each run's metrics, and each algorithm's mean over seeds with its interval.

The numbers per run are defined once, in :func:`run_metrics`:

- **curve start** and **curve end**: the mean reward-model score (without the KL penalty) of the completions
  sampled during training over the first and the last 25% of the run's rollouts (at least one rollout each).
- **final KL**: the mean summed KL(π‖π_ref) per episode, in nats, over the last 25% of the rollouts.
- **curve gain / KL**: (curve end − curve start) / max(final KL, 0.01): both ends are training-rollout means,
  and the floor keeps a run that barely moved (or whose sampled KL estimate came out at or below zero) from
  being divided by a near-zero number.
- **tokens/s** and **wall time**: generated tokens over the wall time of training (evaluations excluded).

:func:`summarize` shows each per algorithm as an :class:`Estimate`: the mean ± half-width of the 95% Student's
t interval over seeds. The report (:mod:`agents.report`) and the plots (:mod:`agents.plots`) read these.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.stats import mean_ci
from textenv_common.formatting import format_number

if TYPE_CHECKING:
    from agents.train import RunResult

__all__ = [
    "CONFIDENCE",
    "FINAL_WINDOW",
    "KL_FLOOR",
    "KL_KEY",
    "REWARD_KEY",
    "X_KEY",
    "Estimate",
    "RunMetrics",
    "SummaryRow",
    "group_by_algo",
    "metric_value",
    "run_metrics",
    "summarize",
]

#: Share of a run's rollouts, at its end, that the final reward and KL average over.
FINAL_WINDOW = 0.25
#: Floor of the KL in the reward-gain-per-KL ratio (nats): a run that barely moved, or whose sampled KL estimate
#: came out at or below zero, is divided by this instead of by a near-zero number.
KL_FLOOR = 0.01
#: Coverage of every interval of the comparison.
CONFIDENCE = 0.95

#: Keys of the training history: the x axis (generated tokens), the reward-model score and the KL per episode.
X_KEY = "time/total_tokens"
REWARD_KEY = "rollout/rm_score"
KL_KEY = "rollout/kl"


@dataclass(frozen=True)
class RunMetrics:
    """The numbers of one run that the report compares (see the module docstring for definitions)."""

    algo: str
    seed: int
    tokens: int
    reward_before: float
    curve_start: float
    final_reward: float
    final_kl: float
    reward_per_kl: float
    eval_reward: float
    eval_kl: float
    tokens_per_s: float
    wall_time_s: float
    rollouts: int
    out_dir: str


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with the half-width of its confidence interval (NaN when n = 1)."""

    mean: float
    half_width: float
    n: int

    def format(self, digits: int = 3) -> str:
        """``mean ± half_width``, ``mean (n=1)``, or ``—`` when no seed has a finite value."""
        if self.n == 0 or not math.isfinite(self.mean):
            return "—"
        if self.n == 1 or not math.isfinite(self.half_width):
            return f"{format_number(self.mean, digits)} (n=1)"
        return f"{format_number(self.mean, digits)} ± {format_number(self.half_width, digits)}"


@dataclass(frozen=True)
class SummaryRow:
    """One algorithm's line of the summary table: each metric as mean ± 95% CI over its seeds."""

    algo: str
    seeds: tuple[int, ...]
    reward_before: Estimate
    curve_start: Estimate
    final_reward: Estimate
    final_kl: Estimate
    reward_per_kl: Estimate
    eval_reward: Estimate
    tokens_per_s: Estimate
    wall_time_s: Estimate


def _final_window(history: Sequence[Mapping[str, float]], key: str, *, first: bool = False) -> float:
    """Mean of ``key`` over the last (or ``first``) :data:`FINAL_WINDOW` of the rollouts (rows lacking it are
    skipped)."""
    if not history:
        return math.nan
    n = max(1, math.ceil(len(history) * FINAL_WINDOW))
    window = history[:n] if first else history[-n:]
    values = [float(row[key]) for row in window if row.get(key) is not None]
    values = [v for v in values if math.isfinite(v)]
    return float(np.mean(values)) if values else math.nan


def metric_value(mapping: Mapping[str, Any], key: str) -> float:
    """``mapping[key]`` as a float; NaN where it is missing or ``None``."""
    value = mapping.get(key)
    return math.nan if value is None else float(value)


def run_metrics(result: RunResult) -> RunMetrics:
    """The report's numbers for one run."""
    final_reward = _final_window(result.history, REWARD_KEY)
    curve_start = _final_window(result.history, REWARD_KEY, first=True)
    final_kl = _final_window(result.history, KL_KEY)
    before = metric_value(result.before, "rm_score")
    return RunMetrics(
        algo=result.config.algo,
        seed=int(result.config.seed),
        tokens=int(result.tokens),
        reward_before=before,
        curve_start=curve_start,
        final_reward=final_reward,
        final_kl=final_kl,
        reward_per_kl=(final_reward - curve_start) / max(final_kl, KL_FLOOR),
        eval_reward=metric_value(result.after, "rm_score"),
        eval_kl=metric_value(result.after, "kl"),
        tokens_per_s=float(result.tokens_per_s),
        wall_time_s=float(result.wall_time_s),
        rollouts=len(result.history),
        out_dir=str(result.out_dir),
    )


def _estimate(values: Iterable[float]) -> Estimate:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return Estimate(math.nan, math.nan, 0)
    mean, half = mean_ci(finite, CONFIDENCE)
    return Estimate(mean, half, len(finite))


def group_by_algo(results: Sequence[RunResult]) -> dict[str, list[RunResult]]:
    """Runs by algorithm, in order of first appearance."""
    groups: dict[str, list[RunResult]] = {}
    for result in results:
        groups.setdefault(result.config.algo, []).append(result)
    return groups


def summarize(results: Sequence[RunResult]) -> list[SummaryRow]:
    """One :class:`SummaryRow` per algorithm, in order of first appearance."""
    rows = []
    for algo, runs in group_by_algo(results).items():
        metrics = [run_metrics(r) for r in runs]

        def est(name: str, metrics: list[RunMetrics] = metrics) -> Estimate:
            return _estimate(getattr(m, name) for m in metrics)

        rows.append(
            SummaryRow(
                algo=algo,
                seeds=tuple(m.seed for m in metrics),
                reward_before=est("reward_before"),
                curve_start=est("curve_start"),
                final_reward=est("final_reward"),
                final_kl=est("final_kl"),
                reward_per_kl=est("reward_per_kl"),
                eval_reward=est("eval_reward"),
                tokens_per_s=est("tokens_per_s"),
                wall_time_s=est("wall_time_s"),
            )
        )
    return rows
