"""π_ref scored inside the policy's own rollout forward, when the policy is built on the env's reference weights.

With shared weights (the default) and ``lora=...`` or ``trainable_layers=N``, the env's reference model and the
policy are largely the same tensors: LoRA's base weights, or every block but the top ``N``. The env would score
``log π_ref`` with a second forward pass per step; instead, the policy scores both in one forward of each rollout
step, the ``n`` observed windows as the policy and the same windows as the reference:

- with LoRA, through peft's mixed-batch inference (``adapter_names``; ``"__base__"`` = no adapter);
- with ``trainable_layers``, the shared blocks run the ``n`` windows once; from the first trained block on, every
  row is doubled, and every module that holds weights of the policy's own (the top blocks' linear layers and
  norms) runs the policy's copies itself and hands the reference's copies to the reference's module of the same
  name. The caches of those upper layers hold each window twice (see ``WindowKVCache``).

On CPU a one-token step costs little more for ``2n`` rows than for ``n`` (LoRA), and the shared blocks run once
(``trainable_layers``). The reference rows' log-probabilities of the sampled actions go to the env with the policy's
``log π`` on the log-prob channel, together with the env's reference model itself; the env uses them only when
that model is its own (:class:`textenv.kl.LogProbMessage`), and scores π_ref itself otherwise.

Used only for rollouts (``LMPolicy.forward`` without gradients); training passes run the policy rows alone.
``TEXTENV_FUSED_REFERENCE=0`` (or ``TEXTENV_FAST_PATHS=0``) turns it off: the env then scores π_ref itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import torch
from torch import nn

from agents.trunk import shared_reference_model
from textenv import compat
from textenv.kv_cache import WindowKVCache
from textenv.packed import packed_linears
from textenv_common.hf import transformer_blocks

__all__ = ["FusedReference"]


class FusedReference:
    """Scores the policy and π_ref in one batched forward of the policy's LM (see the module docstring).

    Args:
        lm: The policy's LM.
        reference: The env's reference model.
        split: How a forward over rows ``[0, k)`` of the policy and ``[k, m)`` of the reference is arranged:
            ``split(k, m)`` returns the context manager the forward runs in.
    """

    def __init__(
        self,
        lm: Any,
        reference: Any,
        split: Callable[[int, int], AbstractContextManager[Any]],
        duplicate_from: list[nn.Module] | None = None,
    ) -> None:
        self.lm = lm
        self.reference = reference
        self._split = split
        self._duplicate_from = duplicate_from
        # Its own cache: its rows (policy, then reference) must never be served to a plain policy call.
        self.cache = WindowKVCache()

    @classmethod
    def find(cls, lm: Any, name: str, dtype: str | None) -> FusedReference | None:
        """The fused scorer for ``lm``, or ``None`` unless it is built on the env's reference model's weights."""
        if not compat.fused_reference():
            return None
        found = shared_reference_model(name, dtype)
        if found is None:
            return None
        reference = found[0]
        shared = {id(p) for p in reference.parameters()}
        own = [n for n, p in lm.named_parameters() if id(p) not in shared]
        if compat.has_peft_adapter(lm):
            from peft.tuners.lora import LoraLayer

            adapters = lm.active_adapters()
            if len(adapters) != 1 or not all("lora_" in n for n in own):
                return None  # several adapters, or weights of its own besides the adapter
            layers: list[Any] = [m for m in lm.modules() if isinstance(m, LoraLayer)]
            return cls(lm, reference, lambda k, m: _adapter_names(layers, [adapters[0]] * k + ["__base__"] * (m - k)))
        pairs = _module_pairs(lm, reference)
        if not own or pairs is None:
            return None  # nothing shared (full fine-tuning, share_reference_weights=False), or no clean split
        blocks = _blocks_from_first_with(lm, {id(module) for module, _ in pairs})
        return cls(lm, reference, lambda k, m: _row_split(pairs, k), duplicate_from=blocks)

    def __call__(
        self, ids: torch.Tensor, mask: torch.Tensor, *, skip: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(logits, hidden, reference_logits)`` at the last column of each window (no gradients).

        ``skip``: rows whose outputs will not be used (see :class:`~textenv.kv_cache.WindowKVCache`).
        """
        n = ids.shape[0]
        if self._duplicate_from is not None:  # shared blocks run once; the rows double from the first own block
            blocks = self._duplicate_from

            def doubled(rows: torch.Tensor | None) -> AbstractContextManager[Any]:
                k = n if rows is None else len(rows)
                return _entered([_double_rows(blocks, k), self._split(k, 2 * k)])

            logits, hidden = self.cache(self.lm, ids, mask, rows_context=doubled, skip=skip)
            return logits[:n], hidden[:n], logits[n:]

        def rows_context(rows: torch.Tensor | None) -> AbstractContextManager[Any]:
            if rows is None:
                return self._split(n, 2 * n)
            return self._split(int((rows < n).sum()), len(rows))  # rows come sorted: the policy's first

        both = torch.cat([ids, ids]), torch.cat([mask, mask])
        logits, hidden = self.cache(self.lm, *both, rows_context=rows_context,
                                    skip=None if skip is None else torch.cat([skip, skip]))  # fmt: skip
        return logits[:n], hidden[:n], logits[n:]


def _module_pairs(lm: Any, reference: Any) -> list[tuple[nn.Module, nn.Module]] | None:
    """``(policy module, reference module)`` for every module that holds weights of the policy's own.

    ``None`` unless each such module holds its weights directly, maps batch rows to batch rows (linear layers,
    norms), and has a counterpart of the same name, type and shapes in the reference.
    """
    shared = {id(p) for p in reference.parameters()}
    references = dict(reference.named_modules())
    pairs = []
    for name, module in lm.named_modules():
        direct = list(module.parameters(recurse=False))
        if not direct or all(id(p) in shared for p in direct):
            continue
        counterpart = references.get(name)
        if (
            counterpart is None
            or type(counterpart) is not type(module)
            or not _row_wise(module)
            or [p.shape for p in direct] != [p.shape for p in counterpart.parameters(recurse=False)]
        ):
            return None
        pairs.append((module, counterpart))
    return pairs


def _blocks_from_first_with(lm: Any, own: set[int]) -> list[nn.Module] | None:
    """The transformer blocks from the lowest one that holds one of the ``own`` modules up (``None``: unknown)."""
    try:
        blocks = list(transformer_blocks(lm))
    except ValueError:
        return None
    for i, block in enumerate(blocks):
        if any(id(m) in own for m in block.modules()):
            return blocks[i:]
    return None


@contextmanager
def _double_rows(blocks: list[nn.Module], k: int) -> Iterator[None]:
    """Within the block, ``blocks`` (and what follows them) see each of the ``k`` rows twice (``[rows; rows]``).

    Every input of these decoder blocks that still has ``k`` rows is doubled: the hidden states at the first
    block (later ones get them doubled already), and each tensor (or tuple of tensors) of two or more dimensions
    whose first is ``k``, which the model hands every block (attention masks, position ids, rotary embeddings);
    one-dimensional ones such as ``cache_position`` are left alone.
    """

    def twice(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.ndim >= 2 and value.shape[0] == k:
            return torch.cat([value, value])
        if isinstance(value, tuple) and value and all(isinstance(v, torch.Tensor) for v in value):
            return tuple(twice(v) for v in value)
        return value

    def double(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        return tuple(twice(a) for a in args), {key: twice(v) for key, v in kwargs.items()}

    with _entered(block.register_forward_pre_hook(double, with_kwargs=True) for block in blocks):
        yield


@contextmanager
def _entered(contexts: Iterable[AbstractContextManager[Any]]) -> Iterator[None]:
    """Enter every context (hook handles remove their hook on exit) for the duration of the block."""
    with contextlib.ExitStack() as stack:
        for context in contexts:
            stack.enter_context(context)
        yield


def _row_wise(module: nn.Module) -> bool:
    """Whether ``module`` treats each row of its input's first dimension on its own (linear layers, norms)."""
    kinds = (nn.Linear, nn.LayerNorm)
    return isinstance(module, kinds) or type(module).__name__ in {"Conv1D"} or type(module).__name__.endswith("RMSNorm")


@contextmanager
def _row_split(pairs: list[tuple[nn.Module, nn.Module]], k: int) -> Iterator[None]:
    """Within the block, each policy module runs rows ``[0, k)`` and its reference counterpart the rest."""
    stash: dict[int, torch.Tensor] = {}

    def before(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        stash[id(module)] = args[0][k:]
        return (args[0][:k], *args[1:])

    def after(counterpart: nn.Module) -> Callable[[nn.Module, Any, torch.Tensor], torch.Tensor]:
        def hook(module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
            rest = stash.pop(id(module))
            if rest.shape[0] == 0:
                return output
            with packed_linears(counterpart):
                return torch.cat([output, counterpart(rest)]) if k else counterpart(rest)

        return hook

    hooks = [module.register_forward_pre_hook(before) for module, _ in pairs]
    hooks += [module.register_forward_hook(after(counterpart)) for module, counterpart in pairs]
    with _entered(hooks):
        yield


@contextmanager
def _adapter_names(layers: list[Any], names: list[str]) -> Iterator[None]:
    """Pass peft's ``adapter_names`` (one adapter per row) to each of the LoRA ``layers`` within the block."""

    def inject(module: Any, args: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        kwargs["adapter_names"] = names
        return args, kwargs

    with _entered(layer.register_forward_pre_hook(inject, with_kwargs=True) for layer in layers):
        yield
