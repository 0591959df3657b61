"""GPT-2's tanh GELU as torch's fused kernel: the same function, one operation instead of six.

transformers builds GPT-2's MLP activation (``activation_function="gelu_new"``) as ``NewGELUActivation``, which
evaluates ``0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`` in six elementwise operations. In training each of them
keeps its input for the backward pass: about five extra copies of every MLP's widest activation. torch's
``nn.GELU(approximate="tanh")`` computes the same formula in one kernel, forward and backward, and keeps only its
input. :func:`fuse_activations` swaps one for the other in a loaded model; results agree up to float32 rounding.

:func:`textenv.models.load_model_and_tokenizer` and :func:`textenv.models.reference_copy` apply it, so the env's
reference model, the policy and the rollouts all run the fused kernel. The saved config is untouched: a model
saved afterwards reloads with transformers' own activation.
"""

from __future__ import annotations

from torch import nn

__all__ = ["fuse_activations"]


def fuse_activations(model: nn.Module) -> int:
    """Replace every ``NewGELUActivation`` in ``model`` with ``nn.GELU(approximate="tanh")``, in place.

    Returns:
        How many modules were replaced (0 for models without GPT-2's activation, such as Llama's SiLU).
    """
    try:
        from transformers.activations import NewGELUActivation
    except ImportError:  # pragma: no cover - transformers is a dependency
        return 0
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is NewGELUActivation:
                setattr(parent, name, nn.GELU(approximate="tanh"))
                replaced += 1
    return replaced
