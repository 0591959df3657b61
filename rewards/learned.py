"""Learned reward models: a sequence classifier trained on preferences, loaded and used as a reward.

The model lives in a reward model folder (``rewards.model_folder``: the classifier's safetensors weights, its
tokenizer and ``textenv_reward_model.json``). ``LearnedReward`` refuses a folder that ``check_model_folder``
refuses (no metadata file, or pickle-only weights) and loads ``model.safetensors`` only
(``use_safetensors=True``). Its pairwise accuracy on held-out pairs is ``rewards.evaluation.evaluate_pairwise``.

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

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from rewards._util import torch_device
from rewards.base import Reward
from rewards.errors import RewardModelError
from rewards.evaluation import PairwiseEvaluation, evaluate_pairwise
from rewards.model_folder import FORMAT_NAME, METADATA_FILE, RewardModelInfo, check_model_folder
from textenv_common.checks import check_int
from textenv_common.hf import LOAD_ERRORS, load_pretrained, load_tokenizer
from textenv_common.intervals import wilson_interval

# The folder format, the evaluation and the interval are re-exported: they lived here before.
__all__ = [
    "FORMAT_NAME",
    "METADATA_FILE",
    "LearnedReward",
    "PairwiseEvaluation",
    "RewardModelInfo",
    "check_model_folder",
    "encode_texts",
    "evaluate_pairwise",
    "pad_right",
    "rating_target",
    "wilson_interval",
]


def rating_target(rating: float) -> float:
    """Map a 1–5 rating to the regression target of its output, ``(rating − 3) / 2`` in ``[-1, 1]``."""
    return (rating - 3.0) / 2.0


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
