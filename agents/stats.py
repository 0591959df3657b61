"""Small statistics for comparing runs over seeds: Student's t intervals and curves on a common grid.

No scipy: Student's t distribution function has a closed form for integer degrees of freedom (a finite
trigonometric series, Abramowitz & Stegun 26.7.3–4), which is inverted here by bisection, so any confidence
level and any number of seeds gets an exact critical value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from statistics import NormalDist

import numpy as np

__all__ = ["interpolate_curves", "mean_ci", "t_critical"]

# Above this many degrees of freedom the series gets long; the Cornish–Fisher expansion of the t quantile
# around the normal one is then accurate to better than 1e-6.
_SERIES_MAX_DF = 1000


def _t_central_probability(t: float, df: int) -> float:
    """P(|T| ≤ t) for Student's t with ``df`` (a positive integer) degrees of freedom and t ≥ 0."""
    theta = math.atan(t / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 1:
        # 2/π · [θ + sin θ · (cos θ + 2/3 cos³θ + 2·4/(3·5) cos⁵θ + ... up to cos^(df−2) θ)]
        total, term = 0.0, math.cos(theta)
        for k in range(1, (df - 1) // 2 + 1):
            total += term
            term *= c2 * (2 * k) / (2 * k + 1)
        return 2.0 / math.pi * (theta + s * total)
    # sin θ · [1 + 1/2 cos²θ + 1·3/(2·4) cos⁴θ + ... up to cos^(df−2) θ]
    total, term = 0.0, 1.0
    for k in range(1, df // 2 + 1):
        total += term
        term *= c2 * (2 * k - 1) / (2 * k)
    return s * total


def t_critical(df: int, confidence: float = 0.95) -> float:
    """The two-sided critical value t* of Student's t: P(|T| ≤ t*) = ``confidence`` with ``df`` degrees.

    Args:
        df: Degrees of freedom, an integer ≥ 1 (n − 1 for a mean of n values).
        confidence: Coverage of the interval, in (0, 1).

    Returns:
        t*, e.g. 12.706 for df = 1 and 2.042 for df = 30 at 95%.
    """
    if isinstance(df, bool) or not isinstance(df, (int, np.integer)) or df < 1:
        raise ValueError(f"df must be an integer ≥ 1; got {df!r}.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95; got {confidence!r}.")
    df = int(df)
    if df == 1:
        return math.tan(math.pi * confidence / 2.0)  # the Cauchy distribution inverts in closed form
    if df > _SERIES_MAX_DF:
        z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
        return (
            z
            + (z**3 + z) / (4 * df)
            + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
        )
    lo, hi = 0.0, 2.0
    while _t_central_probability(hi, df) < confidence:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_central_probability(mid, df) < confidence:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return 0.5 * (lo + hi)


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
