"""File helpers of the agents package: reading a YAML mapping, and the old names of the atomic writers.

Atomic writes live in :mod:`textenv_common.atomic`; new code calls it directly, with an explicit ``overwrite``.
``atomic_write_text`` and ``atomic_dir`` remain as thin uses of it that always replace the target, for
``agents/checkpoint.py`` and ``benchmarks/learning.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from textenv_common.atomic import atomic_folder, write_text_atomic

__all__ = ["atomic_dir", "atomic_write_text", "read_yaml_mapping"]


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, replacing it if it exists (see :mod:`textenv_common.atomic`)."""
    write_text_atomic(path, text, overwrite=True)


@contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``path`` when the block succeeds (see :mod:`textenv_common.atomic`)."""
    with atomic_folder(path, overwrite=True) as tmp:
        yield tmp


def read_yaml_mapping(path: str | os.PathLike[str], what: str, empty_hint: str = "") -> dict[str, Any]:
    """The mapping a YAML file holds; ``ConfigError`` naming ``what`` (e.g. "Sweep file") and the file otherwise."""
    import yaml

    from agents.errors import ConfigError

    file = Path(path).expanduser()
    try:
        loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} {str(path)!r} does not exist (resolved to {file.resolve()}).") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {file} is not valid YAML: {exc}") from None
    if loaded is None and empty_hint:
        raise ConfigError(f"{what} {file} is empty; {empty_hint}.")
    if not isinstance(loaded, dict):
        raise ConfigError(f"{what} {file} must hold a mapping of field: value.")
    return loaded
