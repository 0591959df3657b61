"""Confidence intervals: the Wilson score interval of a share and Student's t critical value.

Both take their quantiles from :mod:`scipy.stats`, imported on first use so that importing this module stays
cheap.
"""

from __future__ import annotations

import math
from numbers import Integral

__all__ = ["t_critical", "wilson_interval", "z_critical"]


def _check_confidence(confidence: float) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95; got {confidence!r}.")
    return float(confidence)


def z_critical(confidence: float = 0.95) -> float:
    """The two-sided critical value z* of the standard normal: P(|Z| ≤ z*) = ``confidence``.

    >>> round(z_critical(0.95), 4)
    1.96
    """
    from scipy.stats import norm

    return float(norm.ppf(0.5 + _check_confidence(confidence) / 2.0))


def t_critical(df: int, confidence: float = 0.95) -> float:
    """The two-sided critical value t* of Student's t: P(|T| ≤ t*) = ``confidence`` with ``df`` degrees.

    Args:
        df: Degrees of freedom, an integer ≥ 1 (n − 1 for a mean of n values).
        confidence: Coverage of the interval, in (0, 1).

    Returns:
        t*, e.g. 12.706 for df = 1 and 2.042 for df = 30 at 95%.

    >>> round(t_critical(1), 3), round(t_critical(30), 3)
    (12.706, 2.042)
    """
    if isinstance(df, bool) or not isinstance(df, Integral) or df < 1:
        raise ValueError(f"df must be an integer ≥ 1; got {df!r}.")
    confidence = _check_confidence(confidence)
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2.0, int(df)))


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a binomial share ``successes / n``.

    ``successes`` may be fractional (a tie counted as half a success). With no trials (``n`` = 0) there is
    nothing to estimate, and the interval is ``(nan, nan)``: reports show it as missing rather than as a
    confident-looking (0, 1).

    >>> low, high = wilson_interval(8, 10)
    >>> round(low, 3), round(high, 3)
    (0.49, 0.943)
    >>> wilson_interval(0, 0)
    (nan, nan)

    Raises:
        ValueError: ``n`` is negative or not an integer, ``successes`` is outside [0, n], or ``confidence`` is
            not in (0, 1).
    """
    if isinstance(n, bool) or not isinstance(n, Integral) or n < 0:
        raise ValueError(f"n must be an integer ≥ 0 (the number of trials); got {n!r}.")
    if not 0.0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n = {n}; got {successes!r}.")
    z = z_critical(confidence)
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # The interval always holds p; the clamps only remove rounding error at p = 0 or 1.
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))
