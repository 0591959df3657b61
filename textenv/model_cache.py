"""The process's reference models, loaded once by name and shared by every env of the process.

A ``DummyVecEnv`` of 8 envs that name the same model holds one frozen reference model, not 8: :data:`MODELS`
loads a model the first time an env names it and hands the same object to the next. The models are frozen
(``requires_grad`` off), so sharing them is safe; each env keeps its own KV cache. It is a cache, not a channel:
nothing travels through it. An agent may look a model up to share its frozen weights (``agents.LMPolicy`` with
``lora=...`` or ``trainable_layers=...``), and a caller may forget models to free their memory.

Example:
    >>> from textenv.model_cache import ModelCache
    >>> cache = ModelCache()  # MODELS is the process's own; this one is empty
    >>> cache.names(), len(cache)
    ([], 0)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["MODELS", "ModelCache", "ModelKey"]


@dataclass(frozen=True)
class ModelKey:
    """What identifies a loaded model: its name or folder, its tokenizer's, its dtype and its device."""

    name: str
    tokenizer: str | None = None
    dtype: str | None = None
    device: str = "cpu"


class ModelCache:
    """Frozen models and their tokenizers, by :class:`ModelKey`."""

    def __init__(self) -> None:
        self._models: dict[ModelKey, tuple[Any, Any]] = {}

    def load(
        self, name: str, *, tokenizer: str | None = None, dtype: str | None = None, device: str = "cpu"
    ) -> tuple[Any, Any]:
        """``(model, tokenizer)`` of ``name``: loaded (frozen) on first use, the same objects afterwards."""
        key = ModelKey(name, tokenizer, dtype, device)
        if key not in self._models:
            from textenv.models import load_model_and_tokenizer

            model, tok = load_model_and_tokenizer(name, dtype=dtype, device=device, tokenizer=tokenizer)
            model.requires_grad_(False)
            self._models[key] = (model, tok)
        return self._models[key]

    def find(self, name: str, dtype: str | None = None) -> tuple[Any, Any] | None:
        """The loaded ``(model, tokenizer)`` of ``name`` in ``dtype`` (on any device), or ``None``."""
        for key, pair in self._models.items():
            if key.name == name and key.dtype == dtype:
                return pair
        return None

    def names(self, vocab_size: int | None = None) -> list[str]:
        """The names of the loaded models (only those with ``vocab_size`` tokens, when given), sorted."""
        return sorted(
            {
                key.name
                for key, (model, _) in self._models.items()
                if vocab_size is None or int(model.config.vocab_size) == vocab_size
            }
        )

    def forget(self, keys: Iterator[ModelKey] | list[ModelKey] | set[ModelKey] | None = None) -> None:
        """Drop ``keys`` (all models when ``None``); envs that hold one keep using it."""
        for key in list(self._models) if keys is None else list(keys):
            self._models.pop(key, None)

    def keys(self) -> set[ModelKey]:
        """The keys of the loaded models."""
        return set(self._models)

    def __len__(self) -> int:
        return len(self._models)


#: The cache of this process, which :class:`textenv.env.TextGenEnv` loads models by name through.
MODELS = ModelCache()
