"""Inference forwards on oneDNN-prepacked weights: the rollout's matrix products, 1.3-2.5× faster on CPU.

A rollout step multiplies a handful of rows (one token per env) by every weight matrix of the model. PyTorch's
default float32 kernel for such skinny products (MKL's ``sgemm``) runs far below the machine's speed; oneDNN's
inner product on a weight reordered once into its blocked layout (what ``torch.compile`` uses on CPU) computes the
same products 1.3-2.5× faster (measured per layer in ``BENCHMARKS.md``). :func:`packed_linears` runs a model's
``nn.Linear`` and GPT-2 ``Conv1D`` layers that way for the duration of a ``with`` block:

- only in no-grad forwards of float32 weights on the CPU; anything else takes the layer's own ``forward``;
- each weight is packed on first use and kept in a table keyed by the weight tensor, and packed again when it
  may have changed: after any ``torch.optim`` optimizer steps it (a global step hook; fused optimizers do not
  bump version counters), after an in-place change (its version counter), when its storage or shape changes,
  or when a strided sample of its values differs from the packed one (writes through ``.data``);
- the packed copy costs one more copy of the weights in memory (freed with the weight).

Results equal the plain ones up to float32 rounding (a different summation order). Set the environment
variable ``TEXTENV_PACKED_WEIGHTS=0`` to turn it off (for instance to save the memory of the packed copies);
oneDNN's ops are reached through :func:`textenv.compat.mkldnn_linear`, which also closes this path on a torch
without them and under ``TEXTENV_FAST_PATHS=0``. The layers' ``forward`` is replaced on the instances only
inside the block, and only where the class's own ``forward`` is ``nn.Linear``'s or ``Conv1D``'s.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from textenv import compat

__all__ = ["enabled", "forget", "packed_linears"]

# id(weight) -> (weak reference to the weight, version, data pointer, shape, a strided view of some of its values,
# those values when packed, packed weight).
# Keyed by id, not by the tensor (a WeakKeyDictionary would compare tensors with ``==``); an entry is dropped
# with its weight.
_PACKED: dict[
    int, tuple[weakref.ref[torch.Tensor], int, int, torch.Size, torch.Tensor, torch.Tensor, torch.Tensor]
] = {}
_BATCH_HINT = 32  # oneDNN's layout choice; measured equal for 1 to 256 rows
_SAMPLE = 16  # values compared before each use
_STATE = {"usable": True}


def forget(weights: Iterable[torch.Tensor]) -> None:
    """Drop the packed copies of ``weights`` now (they are packed again on their next use)."""
    for weight in weights:
        _PACKED.pop(id(weight), None)


def _forget_stepped(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    forget(param for group in optimizer.param_groups for param in group["params"])


register_optimizer_step_post_hook(_forget_stepped)


def enabled() -> bool:
    """Whether :func:`packed_linears` packs weights (oneDNN's ops present, not turned off by the environment)."""
    return _STATE["usable"] and compat.mkldnn_linear() is not None


@contextmanager
def packed_linears(model: nn.Module) -> Iterator[None]:
    """Within the block, no-grad CPU float32 forwards of ``model`` use prepacked weights."""
    ops = compat.mkldnn_linear() if _STATE["usable"] else None  # resolved once per block, not per layer call
    if ops is None or torch.is_grad_enabled():
        yield
        return
    conv1d = _conv1d_type()
    patched = []
    for module in model.modules():
        kind = type(module)
        if kind.forward is nn.Linear.forward:
            module.forward = partial(_linear_forward, ops, module, False)
        elif conv1d is not None and kind.forward is conv1d.forward:
            module.forward = partial(_linear_forward, ops, module, True)
        else:
            continue
        patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            module.__dict__.pop("forward", None)


def _conv1d_type() -> Any:
    """transformers' ``Conv1D`` (GPT-2's linear layer, weight stored ``[in, out]``)."""
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover - transformers is a dependency
        return None
    return Conv1D


def _packed(weight: torch.Tensor, transposed: bool, reorder: Any) -> torch.Tensor | None:
    """The packed copy of ``weight`` (``[out, in]``; a ``Conv1D`` weight is ``[in, out]``), or None.

    ``reorder`` is oneDNN's weight-reordering op (:func:`textenv.compat.mkldnn_linear`).
    """
    if weight.device.type != "cpu" or weight.dtype != torch.float32 or not _STATE["usable"]:
        return None
    key = id(weight)
    entry = _PACKED.get(key)
    if (
        entry is not None
        and entry[0]() is weight
        and (entry[1], entry[2], entry[3]) == (weight._version, weight.data_ptr(), weight.shape)
        and torch.equal(entry[4], entry[5])
    ):
        return entry[6]
    dense = weight.detach().t().contiguous() if transposed else weight.detach().contiguous()
    try:
        packed = reorder(dense, _BATCH_HINT)
    except RuntimeError:  # an oneDNN build that cannot run the op: plain kernels from now on
        _STATE["usable"] = False
        return None
    if entry is None or entry[0]() is not weight:
        weakref.finalize(weight, _PACKED.pop, key, None)
    sample = _sample(weight)
    _PACKED[key] = (weakref.ref(weight), weight._version, weight.data_ptr(), weight.shape, sample, sample.clone(),
                    packed)  # fmt: skip
    return packed


def _sample(weight: torch.Tensor) -> torch.Tensor:
    """A strided view of about ``_SAMPLE`` of the weight's values: it reads the weight's storage when compared."""
    side = max(1, round(_SAMPLE**0.5))
    rows, cols = weight.shape
    return weight.detach()[:: max(1, rows // side), :: max(1, cols // side)]


def _linear_forward(ops: tuple[Any, Any], module: Any, transposed: bool, x: torch.Tensor) -> torch.Tensor:
    usable = x.dtype == torch.float32 and x.device.type == "cpu"
    packed = _packed(module.weight, transposed, ops[0]) if usable else None
    if packed is None:
        return type(module).forward(module, x)
    out_features = packed.shape[0]
    y = ops[1](x.reshape(-1, x.shape[-1]), packed, module.bias, "none", [], "")
    return y.view(*x.shape[:-1], out_features)
