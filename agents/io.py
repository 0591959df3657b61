"""File helpers of the agents package: reading a YAML mapping.

Atomic writes live in :mod:`textenv_common.atomic`; callers use it directly, with an explicit ``overwrite``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["read_yaml_mapping"]


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
