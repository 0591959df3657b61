"""The one Hugging Face loading core: tokenizers with a pad token, pretrained models ready to run, and blocks.

textenv, agents and rewards load every Hugging Face model through these functions, so a model is prepared the
same way whoever loads it:

- **The pad-token rule.** A tokenizer without a pad token pads with its EOS token (:func:`ensure_pad_token`),
  and the model's config and generation config take the tokenizer's pad id (:func:`match_pad_token`). Padded
  positions are masked out by the attention mask, so which id fills them does not matter, and reusing EOS keeps
  the vocabulary, hence the embedding matrix, unchanged. The model takes the tokenizer's id, never the other way
  round, because the tokenizer is what pads: a sequence classifier finds each row's last real token by the
  config's pad id, and ``generate`` fills finished rows with it.
- **Loading** (:func:`load_tokenizer`, :func:`load_pretrained`): ``from_pretrained`` of the given Auto class,
  with the rule applied, on a device, in eval mode. Loading errors are the library's own (``OSError``,
  ``ValueError``, ``KeyError``: :data:`LOAD_ERRORS`); each caller wraps them in its package's error type, with
  the fix that fits its users.
- **Blocks** (:func:`transformer_blocks`): the list of transformer blocks of a causal LM or a sequence
  classifier, for code that freezes, adapts or reruns some of them.

torch and transformers are imported inside the functions, so importing this module stays light.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "LOAD_ERRORS",
    "ensure_pad_token",
    "load_pretrained",
    "load_tokenizer",
    "match_pad_token",
    "transformer_blocks",
]

LOAD_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError, KeyError)
"""What ``from_pretrained`` raises for a folder or id that holds no loadable model or tokenizer."""

_TokenizerT = TypeVar("_TokenizerT")


def ensure_pad_token(tokenizer: _TokenizerT) -> _TokenizerT:
    """Give ``tokenizer`` a pad token where it has none: its EOS token (see the module docstring).

    Args:
        tokenizer: A Hugging Face tokenizer; changed in place. One with neither a pad nor an EOS token is left
            as it is.

    Returns:
        The same tokenizer.
    """
    tok: Any = tokenizer
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return tokenizer


def match_pad_token(model: Any, tokenizer: Any) -> None:
    """Set the pad id of ``model``'s config and generation config to ``tokenizer``'s (see the module docstring).

    Args:
        model: A Hugging Face model; changed in place.
        tokenizer: The tokenizer that pads the model's batches. One without a pad token changes nothing.
    """
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        return
    model.config.pad_token_id = pad_id
    generation_config = getattr(model, "generation_config", None)
    if generation_config is not None:
        generation_config.pad_token_id = pad_id


def load_tokenizer(source: str | os.PathLike[str], **kwargs: Any) -> PreTrainedTokenizerBase:
    """Load a tokenizer with ``AutoTokenizer.from_pretrained`` and give it a pad token (:func:`ensure_pad_token`).

    Args:
        source: A folder written by ``save_pretrained``, or a hub id.
        **kwargs: Passed to ``from_pretrained`` (e.g. ``local_files_only=True``, ``gguf_file=...``).

    Returns:
        The tokenizer, with a pad token where it has an EOS token.

    Raises:
        OSError, ValueError, KeyError: (:data:`LOAD_ERRORS`) ``source`` holds no loadable tokenizer.
    """
    from transformers import AutoTokenizer

    tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(source, **kwargs)
    return ensure_pad_token(tokenizer)


def load_pretrained(
    auto_class: Any,
    source: str | os.PathLike[str],
    *,
    tokenizer: Any = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    **kwargs: Any,
) -> PreTrainedModel:
    """Load a pretrained model of ``auto_class``, on ``device``, in eval mode.

    Args:
        auto_class: The class whose ``from_pretrained`` loads it, e.g. ``AutoModelForCausalLM``,
            ``AutoModelForSequenceClassification`` or ``AutoModel``.
        source: A folder written by ``save_pretrained``, or a hub id.
        tokenizer: The tokenizer that will pad the model's batches: the model takes its pad id
            (:func:`match_pad_token`). ``None`` leaves the config's pad id as saved.
        device: Where to put the model (a ``torch.device`` or its name; ``None``: where ``from_pretrained``
            puts it, the CPU).
        dtype: ``dtype`` of ``from_pretrained``: a floating-point ``torch.dtype``, or ``"auto"`` for the
            checkpoint's own; ``None``: the library's default (float32).
        **kwargs: Passed to ``from_pretrained`` (e.g. ``use_safetensors=True``, ``num_labels=...``,
            ``local_files_only=True``).

    Returns:
        The model, in eval mode.

    Raises:
        OSError, ValueError, KeyError: (:data:`LOAD_ERRORS`) ``source`` holds no loadable model of that class.
    """
    if dtype is not None:
        kwargs["dtype"] = dtype
    model: PreTrainedModel = auto_class.from_pretrained(source, **kwargs)
    if tokenizer is not None:
        match_pad_token(model, tokenizer)
    # Typed as a Module because transformers' `functools.wraps`-decorated override of `to` confuses mypy.
    module: torch.nn.Module = model
    if device is not None:
        module.to(device)
    module.eval()
    return model


def transformer_blocks(model: torch.nn.Module) -> torch.nn.ModuleList:
    """Return the list of transformer blocks of a Hugging Face model (``model.layers``, ``transformer.h``, ...).

    The blocks are the first ``ModuleList`` of the model's body (``model.base_model``: the model below its LM or
    classification head) whose length is the config's number of layers (``num_hidden_layers`` or ``n_layer``,
    of the text config for a multimodal model). The same list serves a causal LM and a sequence classifier of
    one architecture.

    Args:
        model: A Hugging Face model (or a module with a ``config``), possibly with a ``peft`` adapter added
            through ``add_adapter``.

    Returns:
        The blocks, bottom first; a submodule of ``model``, not a copy.

    Raises:
        ValueError: The config names no number of layers, or no ``ModuleList`` of that length exists.
    """
    from torch import nn

    config: Any = getattr(model, "config", None)
    n_layers = _layer_count(config)
    body = getattr(model, "base_model", model)
    body = body if isinstance(body, nn.Module) else model
    if n_layers is None:
        raise ValueError(
            f"Cannot find the transformer blocks of {type(model).__name__}: its config names no number of layers "
            "(num_hidden_layers or n_layer)."
        )
    for module in body.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers:
            return module
    raise ValueError(
        f"Cannot find the {n_layers} transformer blocks of {type(model).__name__}: it holds no nn.ModuleList of "
        f"{n_layers} modules."
    )


def _layer_count(config: Any) -> int | None:
    """The number of transformer blocks a Hugging Face config names (``None``: it names none)."""
    for candidate in (config, getattr(config, "get_text_config", lambda: None)()):
        count = getattr(candidate, "num_hidden_layers", None) or getattr(candidate, "n_layer", None)
        if isinstance(count, int) and count > 0:
            return count
    return None
