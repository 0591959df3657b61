"""π_ref scored inside the policy's own rollout forward, when π_ref is the policy's LoRA base weights.

With ``lora=...`` and shared weights (the default), the env's reference model *is* the policy's base: the same
tensors, with no adapter. The env would score ``log π_ref`` with a second forward pass per step; instead, the
policy runs each rollout step once over ``2n`` rows, the ``n`` observed windows with the adapter on and the same
windows with it off, through peft's mixed-batch inference (``adapter_names``, ``"__base__"`` = no adapter). On
CPU a one-token step is bound by reading the weights, which the two halves now read once. The reference rows'
log-probabilities of the sampled actions go to the env with the policy's ``log π`` on the log-prob channel,
together with the env's reference model itself; the env uses them only when that model is its own
(:class:`textenv.kl.LogProbMessage`), and scores π_ref itself otherwise.

Used only for rollouts (``LMPolicy.forward`` without gradients); training passes run the policy rows alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import torch

from agents.trunk import shared_reference_model
from textenv.kv_cache import WindowKVCache

__all__ = ["FusedReference"]


class FusedReference:
    """Scores the policy (adapter on) and π_ref (adapter off) of a LoRA policy in one batched forward.

    Args:
        lm: The policy's LM, with exactly one active LoRA adapter.
        reference: The env's reference model, whose every parameter is one of ``lm``'s base tensors.
    """

    def __init__(self, lm: Any, reference: Any) -> None:
        self.lm = lm
        self.reference = reference
        self.adapter = lm.active_adapters()[0]
        # Its own cache: its rows (policy, then reference) must never be served to a plain policy call.
        self.cache = WindowKVCache()

    @classmethod
    def find(cls, lm: Any, name: str, dtype: str | None) -> FusedReference | None:
        """The fused scorer for ``lm``, or ``None`` unless it is a LoRA model built on the env's reference."""
        if not getattr(lm, "_hf_peft_config_loaded", False) or len(lm.active_adapters()) != 1:
            return None
        found = shared_reference_model(name, dtype)
        if found is None:
            return None
        reference = found[0]
        base = {id(p) for n, p in lm.named_parameters() if "lora_" not in n}
        if not all(id(p) in base for p in reference.parameters()):
            return None  # a policy with weights of its own (share_reference_weights=False)
        return cls(lm, reference)

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(logits, hidden, reference_logits)`` at the last column of each window (no gradients)."""
        n = ids.shape[0]
        names = [self.adapter] * n + ["__base__"] * n

        def rows_context(rows: torch.Tensor | None) -> AbstractContextManager[Any]:
            return _adapter_names(self.lm, names if rows is None else [names[i] for i in rows.tolist()])

        both = torch.cat([ids, ids]), torch.cat([mask, mask])
        logits, hidden = self.cache(self.lm, *both, rows_context=rows_context)
        return logits[:n], hidden[:n], logits[n:]


@contextmanager
def _adapter_names(lm: Any, names: list[str]) -> Iterator[None]:
    """Pass peft's ``adapter_names`` (one adapter per row) to every LoRA layer of ``lm`` within the block."""
    from peft.tuners.lora import LoraLayer

    def inject(module: Any, args: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        kwargs["adapter_names"] = names
        return args, kwargs

    layers: list[Any] = [m for m in lm.modules() if isinstance(m, LoraLayer)]
    handles = [layer.register_forward_pre_hook(inject, with_kwargs=True) for layer in layers]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
