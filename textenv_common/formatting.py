"""The one number formatter of reports and tables."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

__all__ = ["format_number"]


def format_number(value: Any, digits: int = 3) -> str:
    """A number as a report cell shows it.

    Missing values (``None``, NaN, ±inf) are "—", integers (and bools) print as they are, large floats get
    thousands separators and very large ones scientific notation; anything else is ``str(value)``.

    >>> format_number(0.12345), format_number(1234.5), format_number(3), format_number(float("nan"))
    ('0.123', '1,234', '3', '—')
    >>> format_number(2.5e6)
    '2.50e+06'
    """
    if value is None:
        return "—"
    if isinstance(value, Integral):
        return str(value)
    if isinstance(value, Real):
        number = float(value)
        if not math.isfinite(number):
            return "—"
        if abs(number) >= 1e5:
            return f"{number:.{digits - 1}e}"
        if abs(number) >= 100:
            return f"{number:,.0f}"
        return f"{number:.{digits}f}"
    return str(value)
