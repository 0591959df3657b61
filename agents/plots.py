"""The comparison's plots: learning curves with their bands over seeds, and reward against KL.

:func:`write_plots` draws on matplotlib's object API (a ``Figure`` with its own Agg canvas), so it never
switches the process's backend nor leaves figures in pyplot's registry, and writes each PNG atomically.
matplotlib is imported only when the plots are drawn.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from agents.stats import interpolate_curves, t_critical
from agents.summary import CONFIDENCE, KL_KEY, REWARD_KEY, X_KEY, run_metrics
from textenv_common.atomic import atomic_file

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from agents.train import RunResult

__all__ = ["write_plots"]

#: Most points of the common token grid the curves are interpolated onto.
_MAX_GRID = 200


def _grid(histories: Sequence[Sequence[Mapping[str, float]]]) -> np.ndarray:
    xs = sorted({float(row[X_KEY]) for h in histories for row in h if row.get(X_KEY) is not None})
    if len(xs) > _MAX_GRID:
        return np.linspace(xs[0], xs[-1], _MAX_GRID)
    return np.array(xs)


def _save_png(fig: Figure, path: Path) -> None:
    with atomic_file(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png", dpi=120)


def _smooth(history: Sequence[Mapping[str, float]], key: str) -> list[dict[str, float]]:
    """``history`` with ``key`` replaced by its centred moving average over a window of about 1/8 of the rollouts
    (at least 1, odd), shrunk at the ends; rows lacking ``key`` are dropped."""
    rows = [r for r in history if r.get(key) is not None and math.isfinite(float(r[key])) and r.get(X_KEY) is not None]
    if not rows:
        return []
    values = np.array([float(r[key]) for r in rows])
    half = max(0, len(values) // 16)
    kernel = np.ones(2 * half + 1)
    sums = np.convolve(values, kernel, mode="same")
    counts = np.convolve(np.ones_like(values), kernel, mode="same")
    return [{X_KEY: float(r[X_KEY]), key: float(v)} for r, v in zip(rows, sums / counts, strict=True)]


def _curves(runs: Sequence[RunResult]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Common token grid, smoothed rewards and KLs of shape (seeds, grid)."""
    histories = [r.history for r in runs]
    grid = _grid(histories)
    return (
        grid,
        interpolate_curves([_smooth(h, REWARD_KEY) for h in histories], X_KEY, REWARD_KEY, grid),
        interpolate_curves([_smooth(h, KL_KEY) for h in histories], X_KEY, KL_KEY, grid),
    )


def _band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds (rows) and its 95% t interval, per column; the interval is NaN where < 2 seeds reach."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # columns that no seed, or one seed, reaches
        n = np.sum(np.isfinite(values), axis=0)
        mean = np.nanmean(values, axis=0)
        sem = np.nanstd(values, axis=0, ddof=1) / np.sqrt(n)
    t = np.array([t_critical(int(k) - 1, CONFIDENCE) if k > 1 else np.nan for k in n])
    return mean, mean - t * sem, mean + t * sem


def write_plots(groups: Mapping[str, list[RunResult]], out: Path) -> list[str]:
    """Write ``learning_curves.png`` and ``reward_vs_kl.png`` of the runs ``groups`` (by algorithm) into ``out``.

    Args:
        groups: Each algorithm's finished runs (:func:`agents.summary.group_by_algo`).
        out: The folder to write into; it must exist.

    Returns:
        The names of the files written.

    Raises:
        ImportError: matplotlib is not installed.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curves = {algo: _curves(runs) for algo, runs in groups.items()}
    colors = {algo: f"C{i}" for i, algo in enumerate(groups)}

    # Figure + Agg canvas rather than pyplot: no global backend switch and no figure registry to leak into.
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharex=True)
    for algo, (grid, reward, kl) in curves.items():
        for ax, values in zip(axes, (reward, kl), strict=True):
            defined = ~np.all(np.isnan(values), axis=0)
            if not defined.any():
                continue
            x = grid[defined]
            mean, low, high = _band(values[:, defined])
            ax.plot(x, mean, color=colors[algo], label=f"{algo} (n={len(values)})")
            if len(values) > 1:
                ax.fill_between(x, low, high, color=colors[algo], alpha=0.2)
    axes[0].set(title="Reward-model score", xlabel="generated tokens", ylabel="mean RM score per episode")
    axes[1].set(title="KL to the reference", xlabel="generated tokens", ylabel="mean Σ KL per episode (nats)")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle("Training curves, smoothed over rollouts: mean over seeds, band = 95% CI over seeds")
    _save_png(fig, out / "learning_curves.png")

    fig = Figure(figsize=(6.5, 5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for algo, (_, reward, kl) in curves.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "Mean of empty slice" where no seed reached
            mean_kl, mean_reward = np.nanmean(kl, axis=0), np.nanmean(reward, axis=0)
        ok = np.isfinite(mean_kl) & np.isfinite(mean_reward)
        if ok.any():
            ax.plot(mean_kl[ok], mean_reward[ok], color=colors[algo], marker=".", label=f"{algo} (mean)")
            ax.plot(mean_kl[ok][0], mean_reward[ok][0], color=colors[algo], marker="o", fillstyle="none")
        finals = [(m.final_kl, m.final_reward) for m in map(run_metrics, groups[algo])]
        finals = [(k, r) for k, r in finals if math.isfinite(k) and math.isfinite(r)]
        if finals:
            final_kl, final_reward = zip(*finals, strict=True)
            ax.scatter(final_kl, final_reward, color=colors[algo], marker="*", s=90, zorder=3,
                       label=f"{algo} final, per seed")  # fmt: skip
    ax.set(title="Reward against KL (o = first rollout)", xlabel="mean Σ KL per episode (nats)",
           ylabel="mean RM score per episode")  # fmt: skip
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    _save_png(fig, out / "reward_vs_kl.png")
    return ["learning_curves.png", "reward_vs_kl.png"]
