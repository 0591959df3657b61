"""Small helpers shared by the built-in rewards (torch is imported inside the functions that need it)."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rewards.errors import MissingDependencyError, RewardInputError

__all__ = ["meta_column", "package_folder", "torch_device"]


def package_folder(module: str, extra: str, reward: str) -> Path:
    """Return an installed package's folder without importing it, or raise naming the extra to install."""
    spec = importlib.util.find_spec(module)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise MissingDependencyError(
            f"The {reward!r} reward needs the package {module!r}, which is not installed. Install it with: "
            f'pip install "textenv[{extra}]"'
        )
    return Path(locations[0])


def torch_device(device: Any) -> Any:
    """Return ``torch.device(device)``, or raise ``ValueError`` naming the bad value.

    ``"auto"`` is CUDA where a GPU is visible, else the CPU (MPS only when asked for by name).
    """
    import torch

    if isinstance(device, str) and device.strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r}; expected 'auto', 'cpu', 'cuda', 'cuda:0' or 'mps'") from exc


def meta_column(meta: Mapping[str, Any], key: str, n: int, reward: str) -> Sequence[Any]:
    """Return ``meta[key]`` checked to hold one value per pair, or raise ``RewardInputError``."""
    if key not in meta or meta[key] is None:
        given = ", ".join(sorted(meta)) or "none"
        raise RewardInputError(
            f"reward {reward!r} needs the per-pair field {key!r} (e.g. a 'reference' column in the prompt "
            f"file, passed as {key}=[...]), but got only these fields: {given}. Give it per pair, or "
            "configure the reward with a fixed one"
        )
    column = meta[key]
    if isinstance(column, (str, bytes)) or not isinstance(column, Sequence) or len(column) != n:
        size = len(column) if isinstance(column, Sequence) else "not a sequence"
        raise RewardInputError(
            f"reward {reward!r}: the field {key!r} must be a sequence with one value per pair ({n}), "
            f"got {type(column).__name__} ({size})"
        )
    return column
