"""Learned reward models: a sequence classifier trained on preferences, loaded and used as a reward.

A reward model folder (written by ``rewards.train_reward_model`` or ``textenv rm train``) holds:

- the classifier, saved by ``save_pretrained`` as ``model.safetensors``
  (``AutoModelForSequenceClassification`` with one output per dimension), and its tokenizer;
- ``textenv_reward_model.json`` (``METADATA_FILE``): what the outputs mean (``RewardModelInfo``: the
  dimensions, their weights in the total score, the token limit, the base model and training statistics);
- ``loss_curve.png`` and ``history.csv`` from training.

``LearnedReward`` refuses a folder without the metadata file, and one whose weights are only in pickle
formats (``*.bin``, ``*.pt``, ``*.pth``, ``*.pkl``, ``*.ckpt``): unpickling runs arbitrary code, so it loads
``model.safetensors`` only (``use_safetensors=True``).

**What the model reads.** The prompt's token ids followed by the completion's, each text tokenized on
its own (the prompt with the tokenizer's special tokens, such as a BOS, the completion without), which is
how the env builds its context window: prompt ids, then generated ids, decoded to the completion text.
So no separator is added; a prompt that should be followed by a space or a newline ends with it. Beyond
``max_length`` ids, ids are dropped from the *start* (the beginning of the prompt goes first), so the end
of the completion, where the classifier reads its score, is always kept; the special tokens stay.
Batches are padded on the right, so a text's score does not depend on its batch.

**What it returns.** With one output (trained on pairs) the score is that output: a Bradley–Terry logit,
so ``σ(r_a − r_b)`` is the modelled probability that ``a`` is preferred to ``b``. With one output per rating
dimension the score is the weighted total ``Σ_d w_d · out_d``, each ``out_d`` predicting ``(rating − 3) / 2``
(so ``[-1, 1]`` covers 1–5), and ``last_parts`` holds each dimension's output for the latest call.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from rewards._util import torch_device
from rewards.base import Reward
from rewards.errors import RewardModelError
from rewards.preferences import PreferencePair
from rewards.registry import resolve
from textenv_common.checks import check_int
from textenv_common.hf import LOAD_ERRORS, load_pretrained, load_tokenizer
from textenv_common.intervals import wilson_interval

__all__ = [
    "FORMAT_NAME",
    "METADATA_FILE",
    "LearnedReward",
    "PairwiseEvaluation",
    "RewardModelInfo",
    "check_model_folder",
    "encode_texts",
    "evaluate_pairwise",
    "rating_target",
    "wilson_interval",
]

METADATA_FILE = "textenv_reward_model.json"
"""The metadata file that marks a folder as a textenv reward model."""

FORMAT_NAME = "textenv-reward-model"
_FORMAT_VERSION = 1
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
_SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


def rating_target(rating: float) -> float:
    """Map a 1–5 rating to the regression target of its output, ``(rating − 3) / 2`` in ``[-1, 1]``."""
    return (rating - 3.0) / 2.0


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


def encode_texts(
    tokenizer: Any, prompts: Sequence[str], completions: Sequence[str], max_length: int
) -> list[list[int]]:
    """Return the token ids the reward model reads for each (prompt, completion); see the module docstring.

    The prompt is tokenized with the tokenizer's special tokens (e.g. a leading BOS), the completion
    without, and the ids are concatenated (the special tokens the tokenizer puts after a text, such as
    BERT's ``[SEP]``, go at the end). Beyond ``max_length`` ids, text ids are dropped from the start: the
    prompt's beginning goes first, and the special tokens stay.
    """
    # verbose=False: texts longer than the model are expected here; they are cut below.
    with_special = tokenizer(list(prompts), add_special_tokens=True, verbose=False)["input_ids"]
    plain = tokenizer(list(prompts), add_special_tokens=False, verbose=False)["input_ids"]
    answers = tokenizer(list(completions), add_special_tokens=False, verbose=False)["input_ids"]
    rows = []
    for full, body, answer in zip(with_special, plain, answers, strict=True):
        head = next((h for h in range(len(full) - len(body) + 1) if full[h : h + len(body)] == body), None)
        if head is None:  # special tokens inside the text: treat the whole encoding as text
            head, body = 0, full
        tail = list(full[head + len(body) :])
        text = list(body) + list(answer)
        keep = max(max_length - head - len(tail), 1)
        rows.append(list(full[:head]) + text[-keep:] + tail)
    return rows


def pad_right(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
    """Return ``(input_ids, attention_mask)`` tensors of ``rows`` padded on the right with ``pad_id``."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


class LearnedReward(Reward):
    """A trained reward model used as a reward: ``rewards.make("learned", path=DIR)``.

    See the module docstring for the folder, the input text and the score. The model is loaded when the
    reward is built (so a bad folder fails at once) and scores in batches of similar length. A pickled
    copy holds only the configuration and reloads the folder in its new process.

    Args:
        path: The reward model folder.
        batch_size: Texts per forward pass.
        device: Torch device.
        output: ``None`` for the total score, or one dimension's name to score by that output alone.
        max_length: Override the token limit stored in the metadata (never above the model's positions).

    Raises:
        RewardModelError: If the folder is missing, incomplete, unsafe or cannot be loaded.
        ValueError: If ``output`` is not one of the model's dimensions or a number is not positive.
    """

    name: ClassVar[str] = "learned"

    def __init__(
        self,
        path: str | os.PathLike[str],
        batch_size: int = 16,
        device: str = "cpu",
        output: str | None = None,
        max_length: int | None = None,
    ) -> None:
        owner = type(self).__name__
        check_int(f"{owner}: batch_size", batch_size, 1)
        check_int(f"{owner}: max_length", max_length, 2, optional=True)
        self.path = str(Path(path).expanduser())
        self.info = check_model_folder(self.path)
        if output is not None and output not in self.info.dimensions:
            raise ValueError(f"{owner}: output must be one of {list(self.info.dimensions)} or None, got {output!r}")
        self.batch_size = int(batch_size)
        self.device = device
        self.output = output
        self.max_length = self.info.max_length if max_length is None else int(max_length)
        self.last_parts: dict[str, npt.NDArray[np.float64]] = {}
        self._model: Any = None
        self._tokenizer: Any = None
        self._load()

    def _load(self) -> None:
        from transformers import AutoModelForSequenceClassification

        device = torch_device(self.device)  # a bad device is the caller's ValueError, not a loading error
        try:
            tokenizer = load_tokenizer(self.path)
            model = load_pretrained(
                AutoModelForSequenceClassification, self.path, tokenizer=tokenizer, device=device, use_safetensors=True
            )
        except LOAD_ERRORS as exc:
            raise RewardModelError(f"could not load the reward model in {self.path}: {exc}") from exc
        if model.config.num_labels != len(self.info.dimensions):
            raise RewardModelError(
                f"{self.path}: the classifier has {model.config.num_labels} outputs but {METADATA_FILE} "
                f"names {len(self.info.dimensions)} dimensions {list(self.info.dimensions)}"
            )
        positions = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
        if positions:
            self.max_length = min(self.max_length, int(positions))
        self._model, self._tokenizer = model, tokenizer

    def outputs(self, prompts: Sequence[str], completions: Sequence[str]) -> npt.NDArray[np.float64]:
        """Return the raw outputs, shape ``(len(prompts), len(dimensions))``."""
        import torch

        if self._model is None:
            self._load()
        n = len(prompts)
        result = np.zeros((n, len(self.info.dimensions)), dtype=np.float64)
        if n == 0:
            return result
        rows = encode_texts(self._tokenizer, prompts, completions, self.max_length)
        order = sorted(range(n), key=lambda i: len(rows[i]))  # similar lengths share a batch: less padding
        device = next(self._model.parameters()).device
        for start in range(0, n, self.batch_size):
            index = order[start : start + self.batch_size]
            ids, mask = pad_right([rows[i] for i in index], int(self._tokenizer.pad_token_id))
            with torch.inference_mode():
                logits = self._model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            result[index] = logits.float().cpu().double().numpy()
        return result

    @property
    def __name__(self) -> str:
        """``learned(<folder name>)``: which reward model."""
        return f"{self.name}({Path(self.path).name})"

    def score_batch(self, prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> npt.NDArray[np.float64]:
        """Return the total score (or the chosen ``output``) of each pair; ``meta`` is unused."""
        raw = self.outputs(prompts, completions)
        dims = self.info.dimensions
        if len(dims) > 1:
            self.last_parts = {d: raw[:, i].copy() for i, d in enumerate(dims)}
        if self.output is not None:
            return raw[:, dims.index(self.output)].copy()
        weights = np.array([self.info.weights[d] for d in dims], dtype=np.float64)
        total: npt.NDArray[np.float64] = raw @ weights
        return total

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_model=None, _tokenizer=None, last_parts={})
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path!r}, dimensions={list(self.info.dimensions)})"


# -- evaluation ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairwiseEvaluation:
    """Pairwise accuracy of a reward on preference pairs, with a 95% Wilson score interval.

    Attributes:
        n: Number of pairs.
        correct: Pairs where the chosen completion scored higher.
        ties: Pairs where both scored the same (each counts as half correct).
        accuracy: ``(correct + ties / 2) / n``.
        ci_low: Lower end of the 95% interval.
        ci_high: Upper end of the 95% interval.
        mean_margin: Mean of ``score(chosen) − score(rejected)``.
    """

    n: int
    correct: int
    ties: int
    accuracy: float
    ci_low: float
    ci_high: float
    mean_margin: float

    def __str__(self) -> str:
        return (
            f"pairwise accuracy {self.accuracy:.1%} (95% CI {self.ci_low:.1%} to {self.ci_high:.1%}) on "
            f"{self.n} pairs; {self.ties} ties; mean margin {self.mean_margin:+.3f}"
        )


def evaluate_pairwise(
    reward: Callable[..., Any], pairs: Sequence[PreferencePair], batch_size: int = 64
) -> PairwiseEvaluation:
    """Score both sides of each pair with ``reward`` and return the pairwise accuracy.

    Any reward works (a ``LearnedReward``, a built-in, your function), called in batches of
    ``batch_size`` pairs.

    Raises:
        ValueError: If ``pairs`` is empty.
        InvalidRewardOutputError: If the reward returns a bad score (it is wrapped in a ``ValidatedReward``).
    """
    if not pairs:
        raise ValueError("evaluate_pairwise needs at least one pair")
    checked = resolve(reward)
    margins = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        prompts = [p.prompt for p in chunk]
        scores = checked(prompts * 2, [p.chosen for p in chunk] + [p.rejected for p in chunk])
        margins.append(scores[: len(chunk)] - scores[len(chunk) :])
    margin = np.concatenate(margins)
    correct = int((margin > 0).sum())
    ties = int((margin == 0).sum())
    accuracy = (correct + 0.5 * ties) / len(margin)
    low, high = wilson_interval(correct + 0.5 * ties, len(margin))
    return PairwiseEvaluation(len(margin), correct, ties, accuracy, low, high, float(margin.mean()))
