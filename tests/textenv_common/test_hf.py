"""Tests of textenv_common.hf: the pad-token rule, loading, and the transformer-block finder, on tiny models."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    GPT2Config,
    GPT2ForSequenceClassification,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedTokenizerFast,
)

from textenv_common.hf import (
    LOAD_ERRORS,
    ensure_pad_token,
    load_pretrained,
    load_tokenizer,
    match_pad_token,
    transformer_blocks,
)

_WORDS = ("<eos>", "<unk>", "<pad>", "good", "bad", "day")


def _tokenizer(*, pad: bool) -> PreTrainedTokenizerFast:
    """A word-level tokenizer of six tokens, with an EOS token (id 0) and a pad token (id 2) only if ``pad``."""
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(_WORDS)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    special = {"pad_token": "<pad>"} if pad else {}
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", unk_token="<unk>", **special)


def _gpt2_config(**kwargs: object) -> GPT2Config:
    return GPT2Config(vocab_size=len(_WORDS), n_positions=16, n_embd=16, n_layer=3, n_head=2, **kwargs)


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random GPT-2 whose config pads with id 5, saved with a tokenizer that has no pad token."""
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    GPT2LMHeadModel(_gpt2_config(pad_token_id=5)).save_pretrained(folder)
    _tokenizer(pad=False).save_pretrained(folder)
    return folder


def test_load_tokenizer_pads_with_eos_where_it_has_no_pad_token(gpt2_dir: Path, tmp_path: Path) -> None:
    tokenizer = load_tokenizer(gpt2_dir)
    assert tokenizer.pad_token == tokenizer.eos_token == "<eos>"
    assert tokenizer.pad_token_id == 0
    assert len(tokenizer) == len(_WORDS)  # no token added
    _tokenizer(pad=True).save_pretrained(tmp_path)
    assert load_tokenizer(tmp_path).pad_token == "<pad>"  # an own pad token is kept


def test_ensure_pad_token_needs_an_eos_token() -> None:
    tokenizer = _tokenizer(pad=False)
    tokenizer.eos_token = None
    assert ensure_pad_token(tokenizer) is tokenizer
    assert tokenizer.pad_token is None


def test_load_pretrained_is_ready_and_pads_like_its_tokenizer(gpt2_dir: Path) -> None:
    tokenizer = load_tokenizer(gpt2_dir)
    model = load_pretrained(
        AutoModelForCausalLM, gpt2_dir, tokenizer=tokenizer, device=torch.device("cpu"), dtype=torch.bfloat16
    )
    assert isinstance(model, GPT2LMHeadModel)
    assert not model.training
    assert model.dtype == torch.bfloat16
    assert model.device.type == "cpu"
    # The saved config said 5; the tokenizer pads with EOS (0), so the model takes 0.
    assert model.config.pad_token_id == model.generation_config.pad_token_id == 0
    untouched = load_pretrained(AutoModelForCausalLM, gpt2_dir, use_safetensors=True)
    assert untouched.config.pad_token_id == 5
    assert untouched.dtype == torch.float32


def test_load_pretrained_sequence_classifier(gpt2_dir: Path) -> None:
    tokenizer = load_tokenizer(gpt2_dir)
    model = load_pretrained(AutoModelForSequenceClassification, gpt2_dir, tokenizer=tokenizer, num_labels=3)
    assert isinstance(model, GPT2ForSequenceClassification)
    assert model.config.num_labels == 3
    assert model.config.pad_token_id == tokenizer.pad_token_id == 0
    ids = torch.tensor([[3, 4, 0, 0]])  # right-padded: the score is read at the last real token
    with torch.no_grad():
        assert model(ids).logits.shape == (1, 3)


def test_match_pad_token_without_a_pad_token_changes_nothing() -> None:
    model = GPT2LMHeadModel(_gpt2_config(pad_token_id=5))
    tokenizer = _tokenizer(pad=False)
    tokenizer.eos_token = None
    match_pad_token(model, tokenizer)
    assert model.config.pad_token_id == 5


def test_load_errors_are_the_libraries_own(tmp_path: Path) -> None:
    with pytest.raises(LOAD_ERRORS):
        load_pretrained(AutoModelForCausalLM, tmp_path)  # a folder without config.json
    with pytest.raises(LOAD_ERRORS):
        load_tokenizer(tmp_path / "missing")


def _llama_config() -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(_WORDS),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=16,
    )


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (lambda: GPT2LMHeadModel(_gpt2_config()), "transformer.h"),
        (lambda: GPT2ForSequenceClassification(_gpt2_config(num_labels=1)), "transformer.h"),
        (lambda: LlamaForCausalLM(_llama_config()), "model.layers"),
        (lambda: LlamaForSequenceClassification(_llama_config()), "model.layers"),
    ],
    ids=["gpt2-lm", "gpt2-classifier", "llama-lm", "llama-classifier"],
)
def test_transformer_blocks_of_lms_and_classifiers(build: Callable[[], torch.nn.Module], name: str) -> None:
    model = build()
    blocks = transformer_blocks(model)
    assert blocks is model.get_submodule(name)
    assert len(blocks) == 3


def test_transformer_blocks_errors_name_the_model() -> None:
    model = GPT2LMHeadModel(_gpt2_config())
    model.transformer.h = torch.nn.ModuleList(list(model.transformer.h)[:2])  # config says 3
    with pytest.raises(ValueError, match=r"3 transformer blocks of GPT2LMHeadModel"):
        transformer_blocks(model)
    bare = torch.nn.Sequential(torch.nn.ModuleList([torch.nn.Linear(2, 2)]))
    with pytest.raises(ValueError, match="names no number of layers"):
        transformer_blocks(bare)


def test_import_is_light() -> None:
    code = "import sys, textenv_common.hf; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
