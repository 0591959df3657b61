"""The frozen reference model π_ref, scored one token at a time with a KV cache.

The env asks for ``log π_ref(· | context)`` once per step. When the agent's log-prob message carries the
attention masks of a whole batch (as ``agents.LMPolicy``'s does), :class:`BatchedReference` scores every row
of the batch in one KV-cached forward, shared by the envs of the process; otherwise each env's
:class:`ReferenceScorer` scores its own context. Consecutive contexts of an episode differ by one
appended token, so the scorer keeps the model's KV cache and runs one single-token forward per step. Any other
context (a new episode, a restored pickle, a rewound env) is recomputed from scratch, so correctness never
depends on the cache.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from textenv.compat import cache_kwargs, output_cache
from textenv.kl import LogProbMessage
from textenv.kv_cache import WindowKVCache
from textenv.packed import packed_linears

__all__ = ["BatchedReference", "ReferenceScorer", "batched_reference"]


class ReferenceScorer:
    """Next-token log-probabilities of a frozen causal LM for a growing context.

    Args:
        model: A Hugging Face causal LM. It is used under ``torch.no_grad`` and never modified.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self._context: list[int] = []
        self._past: Any = None
        self._logprobs: torch.Tensor | None = None

    def reset_cache(self) -> None:
        """Forget the cached context (the next call recomputes)."""
        self._context, self._past, self._logprobs = [], None, None

    @torch.no_grad()
    def next_logprobs(self, context: Sequence[int]) -> torch.Tensor:
        """``log π_ref(· | context)`` as a float32 tensor of shape ``(V,)``."""
        context = list(context)
        if self._logprobs is not None and context == self._context:
            return self._logprobs
        cached = self._logprobs is not None and len(context) == len(self._context) + 1
        if cached and context[:-1] == self._context:
            out = self._forward(context[-1:], self._past, len(context))
        else:
            out = self._forward(context, None, len(context))
        self._context, self._past = context, output_cache(out)
        self._logprobs = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        return self._logprobs

    def _forward(self, tokens: Sequence[int], past: Any, context_length: int) -> Any:
        device = next(self.model.parameters()).device
        ids = torch.tensor([list(tokens)], dtype=torch.long, device=device)
        mask = torch.ones((1, context_length), dtype=torch.long, device=device)
        with packed_linears(self.model):
            return self.model(input_ids=ids, attention_mask=mask, use_cache=True, **cache_kwargs(past))

    def __getstate__(self) -> dict[str, Any]:
        # The cache is derived state: drop it so pickles stay small and never carry stale tensors.
        return {"model": self.model}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["model"])  # type: ignore[misc]


class BatchedReference:
    """``log π_ref`` of every row of a log-prob message, in one forward pass per message.

    One instance per reference model per process (see :func:`batched_reference`); the first env that steps
    computes the batch and the others read their rows. Consecutive messages of a rollout differ by one token
    per row, so the window KV cache serves them with one single-token forward.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.device = next(model.parameters()).device
        self.cache = WindowKVCache()
        self._ids: np.ndarray | None = None
        self._result: torch.Tensor | None = None

    def logprobs(self, message: LogProbMessage) -> torch.Tensor:
        """``log π_ref(· | window)`` for every row of ``message``, shape ``(n, V)``."""
        if self._ids is not message.input_ids or self._result is None:
            if message.attention_mask is None:
                raise ValueError("Batched reference scoring needs the message's attention masks.")
            ids = torch.as_tensor(message.input_ids, device=self.device)
            mask = torch.as_tensor(message.attention_mask, device=self.device)
            logits, _ = self.cache(self.model, ids, mask)
            self._result = torch.log_softmax(logits.float(), dim=-1)
            self._ids = message.input_ids  # held, so its identity names this message
        return self._result


_BATCHED: weakref.WeakKeyDictionary[Any, BatchedReference] = weakref.WeakKeyDictionary()


def batched_reference(model: Any) -> BatchedReference:
    """The process's :class:`BatchedReference` for ``model``."""
    if model not in _BATCHED:
        _BATCHED[model] = BatchedReference(model)
    return _BATCHED[model]
