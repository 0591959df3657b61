"""The reward-model folder: what ``rewards.train_reward_model`` writes and ``LearnedReward`` reads.

A reward model folder (written by ``rewards.train_reward_model`` or ``textenv rm train``) holds:

- the classifier, saved by ``save_pretrained`` as ``model.safetensors``
  (``AutoModelForSequenceClassification`` with one output per dimension), and its tokenizer;
- ``textenv_reward_model.json`` (``METADATA_FILE``): what the outputs mean (``RewardModelInfo``: the
  dimensions, their weights in the total score, the token limit, the base model and training statistics);
- ``loss_curve.png`` and ``history.csv`` from training.

``check_model_folder`` refuses a folder without the metadata file, and one whose weights are only in pickle
formats (``*.bin``, ``*.pt``, ``*.pth``, ``*.pkl``, ``*.ckpt``): unpickling runs arbitrary code, so a reward
model is loaded from ``model.safetensors`` only.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rewards.errors import RewardModelError
from textenv_common.checks import check_int

__all__ = ["FORMAT_NAME", "METADATA_FILE", "RewardModelInfo", "check_model_folder"]

METADATA_FILE = "textenv_reward_model.json"
"""The metadata file that marks a folder as a textenv reward model."""

FORMAT_NAME = "textenv-reward-model"
_FORMAT_VERSION = 1
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
_SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


@dataclass(frozen=True)
class RewardModelInfo:
    """The contents of ``textenv_reward_model.json``.

    Attributes:
        dimensions: The output names: ``("score",)`` for a pairwise model, else the rating dimensions.
        weights: Weight of each dimension in the total score.
        max_length: Token limit of the inputs (see the module docstring).
        base: The base model the classifier was fine-tuned from.
        kind: ``"pairwise"``, ``"ratings"`` or ``"pairwise+ratings"``: what it was trained on.
        training: Training statistics (sizes, losses, held-out accuracy, time, config).
    """

    dimensions: tuple[str, ...]
    weights: Mapping[str, float]
    max_length: int
    base: str
    kind: str = "pairwise"
    training: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        dims = tuple(self.dimensions)
        if not dims or len(set(dims)) != len(dims) or not all(isinstance(d, str) and d for d in dims):
            raise ValueError(f"dimensions must be distinct non-empty strings, got {self.dimensions!r}")
        if set(self.weights) != set(dims):
            raise ValueError(f"weights must name exactly the dimensions {list(dims)}, got {dict(self.weights)}")
        for name, w in self.weights.items():
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
                raise ValueError(f"the weight of {name!r} must be a finite number, got {w!r}")
        check_int("max_length", self.max_length, 2)
        object.__setattr__(self, "dimensions", dims)
        object.__setattr__(self, "max_length", int(self.max_length))
        object.__setattr__(self, "weights", {d: float(self.weights[d]) for d in dims})

    def to_json(self) -> dict[str, Any]:
        """Return the JSON object written to ``METADATA_FILE``."""
        body = asdict(self)
        body["dimensions"] = list(self.dimensions)
        body["weights"] = dict(self.weights)
        body["training"] = dict(self.training)
        return {
            "format": FORMAT_NAME,
            "version": _FORMAT_VERSION,
            "input": "prompt ids + completion ids, each tokenized alone; truncated from the left",
            **body,
        }

    @classmethod
    def read(cls, folder: Path) -> RewardModelInfo:
        """Read and check ``folder / METADATA_FILE``.

        Raises:
            RewardModelError: If the file is missing, not JSON, or not a valid reward model description.
        """
        path = folder / METADATA_FILE
        if not path.is_file():
            raise RewardModelError(
                f"{folder} is not a textenv reward model: it has no {METADATA_FILE}. Train one with "
                "`textenv rm train --data F --base MODEL --out DIR` (or rewards.train_reward_model), which "
                "writes the weights with this file"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RewardModelError(f"{path}: cannot read it as JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise RewardModelError(f"{path}: not a textenv reward model description (no format {FORMAT_NAME!r})")
        if data.get("version") != _FORMAT_VERSION:
            raise RewardModelError(
                f"{path}: format version {data.get('version')!r}; this textenv reads version {_FORMAT_VERSION}"
            )
        try:
            return cls(
                dimensions=tuple(data["dimensions"]),
                weights=data["weights"],
                max_length=data["max_length"],
                base=str(data.get("base", "")),
                kind=str(data.get("kind", "pairwise")),
                training=data.get("training") or {},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RewardModelError(f"{path}: invalid reward model description: {exc!r}") from exc


def check_model_folder(path: str | os.PathLike[str]) -> RewardModelInfo:
    """Check that ``path`` is a complete, safe reward model folder and return its metadata.

    Raises:
        RewardModelError: If the folder is missing, lacks ``METADATA_FILE`` or ``model.safetensors``, or
            holds only pickle-format weights.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise RewardModelError(f"no reward model folder at {str(path)!r}")
    info = RewardModelInfo.read(folder)
    if not any((folder / name).is_file() for name in _SAFE_WEIGHTS):
        unsafe = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in _PICKLE_SUFFIXES)
        if unsafe:
            raise RewardModelError(
                f"{folder} holds its weights in pickle format ({', '.join(unsafe)}) and no "
                "model.safetensors; "
                "textenv never unpickles weights (unpickling can run arbitrary code). Convert them where you "
                "trust the file: load the model and call save_pretrained(folder), which writes safetensors"
            )
        raise RewardModelError(f"{folder} has no model.safetensors: the folder is incomplete")
    return info
