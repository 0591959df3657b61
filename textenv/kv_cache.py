"""A KV cache aligned to the env's fixed, left-padded window, for one forward of one token per row per step.

Between two steps of an episode the window shifts left by one column and the new token enters on the right.
The leftmost column at observation time is always padding (the window holds ``max_prompt_tokens +
max_new_tokens`` columns and the context at most one fewer), so dropping the cache's first column and
appending
the new token's keys and values keeps the cache aligned with the window. A row whose window is not the cached
one shifted by one token (a new episode, another env order, a restored run) is recomputed from its whole
window; correctness never depends on the cache.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional
from transformers import DynamicCache

from textenv.sampler import position_ids

__all__ = ["WindowKVCache", "first_real_column", "forward_windows"]


def first_real_column(mask: torch.Tensor) -> int:
    """The first column of a batch of left-padded windows where any row has a real token (0 if none)."""
    occupied = mask.bool().any(0)
    return int(occupied.long().argmax()) if bool(occupied.any()) else 0


def forward_windows(model: Any, ids: torch.Tensor, mask: torch.Tensor, *, use_cache: bool = False) -> Any:
    """One forward pass over left-padded windows, with positions from the mask and every layer's hidden states.

    Columns that are padding in every row are not computed: the pass starts at :func:`first_real_column`, so
    ``hidden_states`` (and the cache) cover the last ``W - first_real_column(mask)`` columns only. Padding
    contributes nothing to a causal LM's outputs under its attention mask, so results are those of the whole
    window. Only the last position's logits are computed (``logits_to_keep=1``); callers that need other
    positions apply the output embeddings to ``hidden_states[-1]`` themselves.
    """
    start = first_real_column(mask)
    ids, mask = ids[:, start:], mask[:, start:]
    return model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=position_ids(mask),
        use_cache=use_cache,
        output_hidden_states=True,
        logits_to_keep=1,
    )


class WindowKVCache:
    """Next-token logits and last hidden states of a causal LM for batches of windows, reusing past work.

    Counts what it did in ``n_incremental`` (rows served by a one-token forward) and ``n_recomputed`` (rows
    recomputed from their whole window), for tests and benchmarks.
    """

    def __init__(self) -> None:
        self.n_incremental = 0
        self.n_recomputed = 0
        self.clear()

    def clear(self) -> None:
        """Forget everything (call when the model's weights change)."""
        self._ids: torch.Tensor | None = None
        self._mask: torch.Tensor | None = None
        self._kv: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._logits: torch.Tensor | None = None
        self._hidden: torch.Tensor | None = None

    @torch.no_grad()
    def __call__(self, model: Any, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, hidden)`` at the last column of each window: shapes ``(n, V)`` and ``(n, H)``."""
        if self._ids is None or self._ids.shape != ids.shape or self._mask is None:
            return self._recompute_all(model, ids, mask)
        same = torch.equal(ids, self._ids) and torch.equal(mask, self._mask)
        if same and self._logits is not None and self._hidden is not None:
            return self._logits, self._hidden
        follows = (
            (ids[:, :-1] == self._ids[:, 1:]).all(1)
            & (mask[:, :-1] == self._mask[:, 1:]).all(1)
            & (self._mask[:, 0] == 0)
            & (mask[:, -1] == 1)
        )
        if not bool(follows.any()):
            return self._recompute_all(model, ids, mask)
        past = DynamicCache(ddp_cache_data=[(k[:, :, 1:], v[:, :, 1:]) for k, v in self._kv], config=model.config)
        out = model(
            input_ids=ids[:, -1:],
            attention_mask=mask,
            position_ids=position_ids(mask)[:, -1:],
            past_key_values=past,
            use_cache=True,
            output_hidden_states=True,
        )
        kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        logits, hidden = out.logits[:, -1].float(), out.hidden_states[-1][:, -1]
        stale = (~follows).nonzero().flatten()
        if stale.numel():
            r_logits, r_hidden, r_kv = self._forward_full(model, ids[stale], mask[stale])
            logits[stale], hidden[stale] = r_logits, r_hidden
            for (k, v), (rk, rv) in zip(kv, r_kv, strict=True):
                k[stale], v[stale] = rk, rv
        self.n_incremental += int(follows.sum())
        self.n_recomputed += int(stale.numel())
        self._store(ids, mask, kv, logits, hidden)
        return logits, hidden

    def _recompute_all(self, model: Any, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, hidden, kv = self._forward_full(model, ids, mask)
        self.n_recomputed += ids.shape[0]
        self._store(ids, mask, kv, logits, hidden)
        return logits, hidden

    @staticmethod
    def _forward_full(
        model: Any, ids: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        out = forward_windows(model, ids, mask, use_cache=True)
        skipped = ids.shape[1] - out.hidden_states[-1].shape[1]
        # Keys and values of the skipped all-padding columns: zeros, never attended to (their mask is 0).
        kv = [
            (functional.pad(layer.keys, (0, 0, skipped, 0)), functional.pad(layer.values, (0, 0, skipped, 0)))
            for layer in out.past_key_values.layers
        ]
        return out.logits[:, -1].float(), out.hidden_states[-1][:, -1], kv

    def _store(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        kv: list[tuple[torch.Tensor, torch.Tensor]],
        logits: torch.Tensor,
        hidden: torch.Tensor,
    ) -> None:
        self._ids, self._mask, self._kv = ids.clone(), mask.clone(), kv
        self._logits, self._hidden = logits, hidden
