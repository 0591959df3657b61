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
    type_error: type[Exception] | None = None,
    optional: bool = False,
) -> None:
    """Raise ``error`` naming ``name`` unless ``value`` is an integer ≥ ``low`` (a bool is not an integer).

    Args:
        name: The setting's name as the user wrote it, e.g. ``"sft.batch_size"``.
        value: The value to check; numpy integers count as integers.
        low: The smallest value allowed.
        error: The exception type to raise, e.g. the package's ``ConfigError``.
        type_error: The exception type to raise instead when ``value`` is not an integer at all (e.g.
            ``TypeError``, where a caller's API separates a wrong type from a wrong value); ``None``: ``error``.
        optional: ``None`` is allowed too.

    >>> check_int("batch_size", 8, 1)
    >>> check_int("batch_size", 0, 1)
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be an integer ≥ 1; got 0.
    >>> check_int("target", 2.5, 0, type_error=TypeError)
    Traceback (most recent call last):
    ...
    TypeError: target must be an integer ≥ 0; got 2.5.
    """
    if value is None and optional:
        return
    message = f"{name} must be an integer ≥ {low}; got {value!r}."
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise (type_error or error)(message)
    if value < low:
        raise error(message)
