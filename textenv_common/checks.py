"""The one integer check for configuration values: one message, the caller's error type."""

from __future__ import annotations

from numbers import Integral
from typing import Any

__all__ = ["check_int"]


def check_int(
    name: str,
    value: Any,
    low: int,
    *,
    error: type[Exception] = ValueError,
    optional: bool = False,
) -> None:
    """Raise ``error`` naming ``name`` unless ``value`` is an integer ≥ ``low`` (a bool is not an integer).

    Args:
        name: The setting's name as the user wrote it, e.g. ``"sft.batch_size"``.
        value: The value to check; numpy integers count as integers.
        low: The smallest value allowed.
        error: The exception type to raise, e.g. the package's ``ConfigError``.
        optional: ``None`` is allowed too.

    >>> check_int("batch_size", 8, 1)
    >>> check_int("batch_size", 0, 1)
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be an integer ≥ 1; got 0.
    """
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise error(f"{name} must be an integer ≥ {low}; got {value!r}.")
