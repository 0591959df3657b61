"""The policy's language model: which weights train, LoRA, and weights shared with the env's reference.

RLHF needs two versions of one LM: the policy π being trained and the frozen reference π_ref of the KL term.
Holding two full copies doubles memory, so :func:`build_policy_lm` gives the policy a module of its own whose
*frozen* parameters are the very tensors of the env's reference model (when that model lives in this process):

- full fine-tuning (the default): every parameter trains, so nothing can be shared — the policy gets its own
  copy;
- ``trainable_layers=N``: only the top ``N`` transformer blocks train (the idea of TRL's
  ``num_shared_layers``); everything below, the embeddings and the head are the reference's tensors;
- ``lora=...``: a LoRA adapter (``peft``) is added to the policy's module and only the adapter trains; every
  base weight is the reference's tensor, so the reference is exactly "the same weights with the adapter
  disabled", at the cost of one LM plus the adapter. With ``trainable_layers`` too, only the top ``N`` blocks
  get adapters.

Sharing is safe because shared tensors never receive gradients or optimizer steps. It needs the policy and the
env's reference on one device: moving the policy elsewhere would move the shared tensors under the env, so
:class:`~agents.policy.LMPolicy` refuses that with a clear error.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from torch import nn

from textenv import compat
from textenv.errors import ConfigError
from textenv.models import load_model_and_tokenizer
from textenv_common.checks import check_int
from textenv_common.hf import transformer_blocks

__all__ = ["LORA_DEFAULTS", "build_policy_lm", "shared_reference_model", "standalone_model", "transformer_blocks"]

#: LoRA settings used for ``lora=True`` (any of them can be overridden by passing a mapping).
LORA_DEFAULTS: dict[str, Any] = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0}


def shared_reference_model(name: str, dtype: str | None) -> tuple[Any, Any] | None:
    """The env reference model loaded by name in this process (``(model, tokenizer)``), if there is one."""
    from textenv.model_cache import MODELS

    return MODELS.find(name, dtype)


def _check_options(lora: bool | Mapping[str, Any] | None, trainable_layers: int | None) -> dict[str, Any] | None:
    check_int("trainable_layers", trainable_layers, 1, error=ConfigError, optional=True)
    if lora is None or lora is False:
        return None
    if lora is True:
        return dict(LORA_DEFAULTS)
    if not isinstance(lora, Mapping):
        raise ConfigError(
            f"lora must be None, True or a mapping of peft.LoraConfig fields (e.g. {{'r': 8}}); got {lora!r}."
        )
    return {**LORA_DEFAULTS, **lora}


def build_policy_lm(
    name: str,
    *,
    dtype: str | None = None,
    lora: bool | Mapping[str, Any] | None = None,
    trainable_layers: int | None = None,
    share: bool = True,
    loaded: tuple[Any, Any] | None = None,
) -> tuple[Any, Any, list[nn.Parameter]]:
    """Build the policy's LM; see the module docstring.

    Args:
        name: Hub id or local folder of the causal LM.
        dtype: Precision of its weights (``None``: the loader's default).
        lora: ``None``/``False`` (no adapter), ``True`` (:data:`LORA_DEFAULTS`), or ``peft.LoraConfig`` fields.
        trainable_layers: Train only the top ``N`` transformer blocks (``None``: all of them).
        share: Reuse the frozen tensors of the env's reference model of this process, when there is one.
        loaded: ``(model, tokenizer)`` already built for ``name`` (e.g. from a saved policy's model card): used
            as the base instead of loading or sharing one.

    Returns:
        ``(model, tokenizer, shared)``: the model with ``requires_grad`` set on exactly the trainable
        parameters, its tokenizer, and the parameters it shares with the env's reference model.
    """
    lora_kwargs = _check_options(lora, trainable_layers)
    found = shared_reference_model(name, dtype) if share and loaded is None else None
    if loaded is not None:
        base, tokenizer = loaded
    else:
        base, tokenizer = found if found is not None else load_model_and_tokenizer(name, dtype=dtype)

    prefix = ""
    if trainable_layers is not None:
        try:
            blocks = transformer_blocks(base)
        except ValueError as exc:
            raise ConfigError(f"{exc} Use trainable_layers=None (train every layer).") from None
        if trainable_layers > len(blocks):
            raise ConfigError(
                f"trainable_layers={trainable_layers} exceeds the model's {len(blocks)} transformer blocks."
            )
        prefix = next(n for n, m in base.named_modules() if m is blocks)
        top = range(len(blocks) - trainable_layers, len(blocks))
    names = [n for n, _ in base.named_parameters()]
    if lora_kwargs is not None:
        trainable: set[str] = set()
    elif trainable_layers is not None:
        trainable = {n for n in names if any(n.startswith(f"{prefix}.{i}.") for i in top)}
    else:
        trainable = set(names)

    if found is not None:
        frozen = {id(p): p for n, p in base.named_parameters() if n not in trainable}
        lm = copy.deepcopy(base, memo=dict(frozen))  # frozen tensors map to themselves: shared, not copied
        shared = list(frozen.values())
    else:
        lm, shared = base, []
    for n, p in lm.named_parameters():
        p.requires_grad_(n in trainable)
    if lora_kwargs is not None:
        _add_lora(lm, lora_kwargs, trainable_layers, prefix)
    lm.eval()
    return lm, tokenizer, shared


def _add_lora(lm: Any, kwargs: dict[str, Any], trainable_layers: int | None, prefix: str) -> None:
    try:
        from peft import LoraConfig
    except ImportError as exc:
        raise ConfigError("lora=... needs the peft package: pip install 'textenv[lora]'.") from exc
    if trainable_layers is not None and "layers_to_transform" not in kwargs:
        n_blocks = len(transformer_blocks(lm))
        kwargs["layers_to_transform"] = list(range(n_blocks - trainable_layers, n_blocks))
        kwargs.setdefault("layers_pattern", prefix.rsplit(".", 1)[-1])
    if getattr(lm.config, "model_type", None) == "gpt2":
        kwargs.setdefault("fan_in_fan_out", True)  # GPT-2's Conv1D stores weights transposed
    try:
        config = LoraConfig(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"Invalid LoRA settings {kwargs!r}: {exc}") from exc
    compat.check_lora_support()
    try:
        lm.add_adapter(config, adapter_name="default")
    except ValueError as exc:
        versions = compat.lora_error(exc)
        if versions is not None:
            raise versions from exc
        raise ConfigError(f"Cannot add a LoRA adapter to {type(lm).__name__} with {kwargs!r}: {exc}") from exc
    for n, p in lm.named_parameters():
        p.requires_grad_("lora_" in n)


def standalone_model(lm: Any) -> Any:
    """A plain copy of the policy's LM with any LoRA adapter merged in, for ``save_pretrained``.

    A model with a ``peft`` adapter would save the adapter alone; the copy is an ordinary model of the base
    architecture that loads anywhere. The policy's own module (whose base tensors are the reference's) is
    left untouched.
    """
    if not compat.has_peft_adapter(lm):
        return lm
    from peft.tuners.tuners_utils import BaseTunerLayer

    merged = copy.deepcopy(lm)
    for name, module in list(merged.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            setattr(merged.get_submodule(parent_name) if parent_name else merged, child, module.get_base_layer())
    compat.drop_peft_flags(merged)
    return merged
