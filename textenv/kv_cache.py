"""A KV cache aligned to the env's fixed, left-padded window, for one forward of one token per row per step.

Between two steps of an episode the window shifts left by one column and the new token enters on the right.
The leftmost column at observation time is always padding (the window holds ``max_prompt_tokens +
max_new_tokens`` columns and the context at most one fewer), so dropping the cache's first column and
appending the new token's keys and values keeps the cache aligned with the window. A row whose window is not the
cached one shifted by one token (a new episode, another env order, a restored run) is recomputed from its whole
window; correctness never depends on the cache.

Speed: the keys and values live in preallocated buffers twice the window wide, and the cache is a *view* of
``W`` consecutive columns of them. A step moves the view one column to the right and writes the new token's
keys and values in place, so nothing is copied per step (a ``DynamicCache`` rebuilt from sliced tensors copies
the whole cache twice per step); once the view reaches the end of the buffer it is copied back to the start,
once every ``W`` steps. Full forwards and one-token steps skip the leading columns that are padding in every row
(at the start of an episode, half the window): padded columns are masked out, so leaving them out changes nothing
but the cost.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from textenv import compat
from textenv.packed import packed_linears
from textenv.sampler import position_ids

__all__ = ["WindowKVCache", "content_start", "forward_windows"]


def content_start(mask: torch.Tensor) -> int:
    """The first column of a batch of left-padded windows that is not padding in every row."""
    filled = mask.any(0).nonzero()
    return int(filled[0]) if filled.numel() else mask.shape[-1] - 1


def forward_windows(model: Any, ids: torch.Tensor, mask: torch.Tensor, *, use_cache: bool = False) -> Any:
    """One forward pass over left-padded windows, with positions from the mask and every layer's hidden states.

    Columns that are padding in every row are not computed: the pass starts at :func:`content_start`, so
    ``hidden_states`` (and the cache) cover the last ``W - content_start(mask)`` columns only. Padding contributes
    nothing to a causal LM's outputs under its attention mask, so results are those of the whole window. Only
    the last position's logits are computed (``logits_to_keep=1``); callers that need other positions apply the
    output embeddings to ``hidden_states[-1]`` themselves.
    """
    start = content_start(mask)
    ids, mask = ids[:, start:], mask[:, start:]
    return model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=position_ids(mask),
        use_cache=use_cache,
        output_hidden_states=True,
        logits_to_keep=1,
    )


def _step_mask(model: Any, mask: torch.Tensor) -> torch.Tensor:
    """The attention mask of a one-token step: built here as SDPA's boolean 4-D mask when the model uses SDPA.

    A single query token at the end of the window may attend to every unpadded column, so the mask is just the
    padding mask; building it here skips transformers' general mask construction, a noticeable share of a small
    model's step. Models with sliding-window layers, or another attention implementation, get the 2-D mask.
    """
    config = model.config
    if compat.attn_implementation(config) != "sdpa" or getattr(config, "sliding_window", None) is not None:
        return mask
    if any("sliding" in str(kind) for kind in getattr(config, "layer_types", None) or ()):
        return mask
    return mask[:, None, None, :].bool()


_RowsContext = Callable[[torch.Tensor | None], AbstractContextManager[Any]]


def _no_context(rows: torch.Tensor | None) -> AbstractContextManager[Any]:
    return nullcontext()


def _copies(rows: torch.Tensor, windows: int, size: int) -> torch.Tensor:
    """The indices of ``rows`` in a tensor of ``size`` rows that holds ``size // windows`` copies of the windows.

    A model may run each window more than once (``FusedReference`` runs the top blocks for the policy and for the
    reference); copy ``j`` of window ``i`` is row ``j * windows + i``, in its outputs and in its layers' caches.
    """
    return torch.cat([rows + j * windows for j in range(size // windows)])


@functools.cache
def _view_layer_class(base: type) -> type:
    """A KV cache layer (subclassing transformers' ``DynamicLayer``, see :func:`textenv.compat.dynamic_layer`) that
    is columns ``[start, end)`` of preallocated key and value buffers, appended in place."""

    class ViewLayer(base):
        def __init__(self, keys: torch.Tensor, values: torch.Tensor, start: int, end: int) -> None:
            super().__init__()
            self._kbuf, self._vbuf, self._start, self._end = keys, values, start, end
            self.keys, self.values = keys[:, :, start:end], values[:, :, start:end]
            self.dtype, self.device = keys.dtype, keys.device
            self.is_initialized = True

        def update(
            self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
        ) -> tuple[torch.Tensor, torch.Tensor]:
            end = self._end + key_states.shape[-2]
            self._kbuf[:, :, self._end : end] = key_states
            self._vbuf[:, :, self._end : end] = value_states
            self._end = end
            self.keys, self.values = self._kbuf[:, :, self._start : end], self._vbuf[:, :, self._start : end]
            return self.keys, self.values

    return ViewLayer


class WindowKVCache:
    """Next-token logits and last hidden states of a causal LM for batches of windows, reusing past work.

    Counts what it did in ``n_incremental`` (rows served by a one-token forward), ``n_recomputed`` (rows
    recomputed from their whole window) and ``n_skipped`` (rows left out, see ``skip``), for tests and benchmarks.
    """

    def __init__(self) -> None:
        self.n_incremental = 0
        self.n_recomputed = 0
        self.n_skipped = 0
        self.clear()

    def clear(self) -> None:
        """Forget everything (call when the model's weights change)."""
        self._ids: torch.Tensor | None = None
        self._mask: torch.Tensor | None = None
        self._keys: list[torch.Tensor] = []
        self._values: list[torch.Tensor] = []
        self._start = 0  # the cache is columns [start, start + W) of every buffer
        self._logits: torch.Tensor | None = None
        self._hidden: torch.Tensor | None = None

    @torch.no_grad()
    def __call__(
        self,
        model: Any,
        ids: torch.Tensor,
        mask: torch.Tensor,
        *,
        rows_context: _RowsContext | None = None,
        skip: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, hidden)`` at the last column of each window: shapes ``(n, V)`` and ``(n, H)``.

        The model's linear layers run on prepacked weights (:func:`textenv.packed.packed_linears`).

        Args:
            skip: Boolean ``(n,)``: rows whose outputs the caller will not use. Such a row that the cache cannot
                serve with one token is not recomputed: its outputs are zeros, and the cache forgets it (a later
                call recomputes it). Rows the cache serves with one token are computed as usual, and where it can
                serve none, every row is recomputed.
            rows_context: Called with the indices of the rows that a forward pass is about to run (``None``:
                all of them), it returns a context manager that the pass runs in; for per-row settings
                such as peft's ``adapter_names``. Within it the model may run each window ``m`` times from
                some layer on: its outputs then have ``m × n`` rows (copy ``j`` of window ``i`` at row
                ``j·n + i``), and so do the caches of those layers.
        """
        around = rows_context or _no_context
        with packed_linears(model):
            base = compat.dynamic_layer()
            if base is None:  # the plain path: every window from scratch, no cache
                self.clear()
                self.n_recomputed += ids.shape[0]
                return self._forward_full(model, ids, mask, around)
            return self._serve(model, ids, mask, around, skip)

    def _serve(
        self, model: Any, ids: torch.Tensor, mask: torch.Tensor, around: _RowsContext, skip: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self._ids is None or self._ids.shape != ids.shape or self._mask is None or not self._keys:
            return self._recompute_all(model, ids, mask, around)
        same = torch.equal(ids, self._ids) and torch.equal(mask, self._mask)
        if same and self._logits is not None and self._hidden is not None:
            return self._logits, self._hidden
        follows = (
            (ids[:, :-1] == self._ids[:, 1:]).all(1)
            & (mask[:, :-1] == self._mask[:, 1:]).all(1)
            & (self._mask[:, 0] == 0)
            & (mask[:, -1] == 1)
        )
        dropped = ~follows & skip if skip is not None else torch.zeros_like(follows)
        if not bool(follows.any()):
            return self._recompute_all(model, ids, mask, around)
        width = ids.shape[1]
        start, end = self._slide(width)
        # Columns that are padding in every row are left out of the step's attention (masked out, they change
        # nothing but the keys and values read): early in an episode that is most of the window.
        first = content_start(mask)
        from transformers.cache_utils import Cache

        view_layer = _view_layer_class(compat.dynamic_layer())
        buffers = zip(self._keys, self._values, strict=True)
        layers: list[Any] = [view_layer(k, v, start + first, end) for k, v in buffers]
        with around(None):
            out = model(
                input_ids=ids[:, -1:],
                attention_mask=_step_mask(model, mask[:, first:]),
                position_ids=position_ids(mask)[:, -1:],
                use_cache=True,
                output_hidden_states=True,
                **compat.cache_kwargs(Cache(layers=layers)),
            )
        logits, hidden = out.logits[:, -1].float(), out.hidden_states[-1][:, -1]
        stale = (~follows & ~dropped).nonzero().flatten()
        if stale.numel():
            r_logits, r_hidden = self._write_full(model, ids[stale], mask[stale], stale, len(ids), around)
            copies = _copies(stale, len(ids), logits.shape[0])
            logits[copies], hidden[copies] = r_logits, r_hidden
        self.n_incremental += int(follows.sum())
        self.n_recomputed += int(stale.numel())
        self._store(ids, mask, logits, hidden)
        if bool(dropped.any()):  # their cache columns hold a step on the wrong past: never serve them again
            rows = dropped.nonzero().flatten()
            copies = _copies(rows, len(ids), logits.shape[0])
            logits[copies], hidden[copies] = 0.0, 0.0
            assert self._mask is not None
            self._mask[rows, 0] = 1  # a window whose first column is not padding never "follows"
            self.n_skipped += int(rows.numel())
        return logits, hidden

    def _slide(self, width: int) -> tuple[int, int]:
        """Drop the view's first column; returns ``(start, end)`` of the ``width - 1`` columns kept."""
        start = self._start + 1
        if start + width > self._keys[0].shape[2]:  # no room for the new column: move the view to the front
            for buf in (*self._keys, *self._values):
                buf[:, :, : width - 1] = buf[:, :, start : start + width - 1]
            start = 0
        self._start = start
        return start, start + width - 1

    def _recompute_all(
        self, model: Any, ids: torch.Tensor, mask: torch.Tensor, around: _RowsContext
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self._keys, self._values, self._start = [], [], 0
        logits, hidden = self._write_full(model, ids, mask, None, len(ids), around)
        self.n_recomputed += ids.shape[0]
        self._store(ids, mask, logits, hidden)
        return logits, hidden

    def _write_full(
        self,
        model: Any,
        ids: torch.Tensor,
        mask: torch.Tensor,
        rows: torch.Tensor | None,
        windows: int,
        around: _RowsContext,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the whole windows of ``rows`` (all rows when ``None``, allocating the buffers) into the cache.

        ``windows`` is the number of windows the cache holds (``rows`` index them).
        """
        width = ids.shape[1]
        first = content_start(mask)
        with around(rows):
            out = forward_windows(model, ids[:, first:], mask[:, first:], use_cache=True)
        for i, layer in enumerate(compat.output_cache(out).layers):
            for bufs, new in ((self._keys, layer.keys), (self._values, layer.values)):
                if rows is None:
                    n, heads, _, dim = new.shape
                    bufs.append(new.new_zeros(n, heads, 2 * width, dim))
                    bufs[i][:, :, first:width] = new
                else:
                    rows_here = _copies(rows, windows, bufs[i].shape[0])
                    bufs[i][rows_here, :, self._start + first : self._start + width] = new
        return out.logits[:, -1].float(), out.hidden_states[-1][:, -1]

    @staticmethod
    def _forward_full(
        model: Any, ids: torch.Tensor, mask: torch.Tensor, around: _RowsContext
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with around(None):
            out = forward_windows(model, ids, mask)
        return out.logits[:, -1].float(), out.hidden_states[-1][:, -1]

    def _store(self, ids: torch.Tensor, mask: torch.Tensor, logits: torch.Tensor, hidden: torch.Tensor) -> None:
        self._ids, self._mask = ids.clone(), mask.clone()
        self._logits, self._hidden = logits, hidden
