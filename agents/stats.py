"""Small statistics for comparing runs over seeds: Student's t intervals and curves on a common grid.

The t critical value comes from :func:`textenv_common.intervals.t_critical` (scipy's quantile), re-exported
here for the report and the tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from textenv_common.intervals import t_critical

__all__ = ["interpolate_curves", "mean_ci", "t_critical"]


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float]:
    """The mean of ``values`` and the half-width of its Student's t confidence interval.

    The interval is mean ± t*(n−1) · s / √n with s the sample standard deviation (ddof = 1). One value has no
    spread to estimate: its half-width is NaN (reports show "n=1"). NaN values propagate; drop them first if
    they mean "missing".

    Raises:
        ValueError: ``values`` is empty, or ``confidence`` is not in (0, 1).
    """
    data = np.asarray(list(values), dtype=float)
    if data.size == 0:
        raise ValueError("mean_ci needs at least one value; got none.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95; got {confidence!r}.")
    mean = float(data.mean())
    n = int(data.size)
    if n == 1:
        return mean, math.nan
    sem = float(data.std(ddof=1)) / math.sqrt(n)
    return mean, t_critical(n - 1, confidence) * sem


def interpolate_curves(
    histories: Sequence[Sequence[Mapping[str, float]]],
    x_key: str,
    y_key: str,
    grid: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """Put several runs' curves on one x grid by linear interpolation, so they can be averaged point-wise.

    Args:
        histories: One list of logged rows per run (e.g. ``RunResult.history``).
        x_key: The row key of the x axis (e.g. ``"time/total_tokens"``), increasing within a run.
        y_key: The row key of the y axis (e.g. ``"rollout/rm_score"``).
        grid: The x values to evaluate every run at.

    Returns:
        An array of shape ``(len(histories), len(grid))``. A run is NaN at grid points outside the x range it
        logged (no extrapolation) and everywhere if it has no row with both keys finite. Rows that lack
        either key (a rollout in which no episode ended has no reward) are skipped.
    """
    xs_grid = np.asarray(grid, dtype=float)
    if xs_grid.ndim != 1:
        raise ValueError(f"grid must be one-dimensional; got shape {xs_grid.shape}.")
    out = np.full((len(histories), xs_grid.size), np.nan)
    for i, history in enumerate(histories):
        points = sorted(
            (float(row[x_key]), float(row[y_key]))
            for row in history
            if row.get(x_key) is not None
            and row.get(y_key) is not None
            and math.isfinite(float(row[x_key]))
            and math.isfinite(float(row[y_key]))
        )
        if not points:
            continue
        x, y = np.array(points).T
        inside = (xs_grid >= x[0]) & (xs_grid <= x[-1])
        out[i, inside] = np.interp(xs_grid[inside], x, y)
    return out
