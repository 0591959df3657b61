"""Tests of textenv.toy: the word-level tokenizer and the seeded tiny GPT-2 of the toy task."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from textenv import toy
from textenv.models import TOY_MODEL, load_model_and_tokenizer
from textenv.toy import TOY_WORDS, build_toy_tokenizer, toy_model_dir


def test_vocabulary():
    assert len(TOY_WORDS) == len(set(TOY_WORDS)) == 67
    assert all(word.isalnum() and word == word.lower() for word in TOY_WORDS)
    assert {str(d) for d in range(10)} <= set(TOY_WORDS)
    assert {"good", "great", "happy", "love", "nice", "fun", "best", "yes"} <= set(TOY_WORDS)
    assert {"bad", "sad", "awful", "hate", "no", "worst"} <= set(TOY_WORDS)


def test_special_ids_and_size():
    tokenizer = build_toy_tokenizer()
    assert len(tokenizer) == 70
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == ("<pad>", 0)
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == ("<eos>", 1)
    assert (tokenizer.unk_token, tokenizer.unk_token_id) == ("<unk>", 2)
    assert tokenizer.convert_tokens_to_ids(list(TOY_WORDS)) == list(range(3, 70))


def test_round_trip():
    tokenizer = build_toy_tokenizer()
    sentence = "the cat is very happy and i love this movie 7"
    ids = tokenizer(sentence)["input_ids"]
    assert len(ids) == len(sentence.split())  # one token per word, nothing added
    assert tokenizer.decode(ids) == sentence
    everything = " ".join(TOY_WORDS)
    assert tokenizer.decode(tokenizer(everything)["input_ids"]) == everything


def test_unknown_words_case_and_eos():
    tokenizer = build_toy_tokenizer()
    ids = tokenizer("Good  DOG zebra")["input_ids"]
    assert tokenizer.decode(ids) == "good dog <unk>"
    assert tokenizer.decode([*ids, tokenizer.eos_token_id], skip_special_tokens=True) == "good dog"


def test_batches_pad_on_the_left():
    batch = build_toy_tokenizer()(["good", "the cat is"], padding=True)
    assert batch["input_ids"][0] == [0, 0, 3]
    assert batch["attention_mask"][0] == [0, 0, 1]


def test_toy_model_is_deterministic_and_leaves_the_rng_alone(tmp_path):
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    first = toy_model_dir(tmp_path / "a")
    second = toy_model_dir(tmp_path / "b")
    assert torch.equal(torch.get_rng_state(), state)
    assert first == tmp_path / "a" / "models" / "toy-gpt2-v0"
    weights_a = load_file(first / "model.safetensors")
    weights_b = load_file(second / "model.safetensors")
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[name], weights_b[name]) for name in weights_a)


def test_toy_model_is_built_once(tmp_path, monkeypatch):
    folder = toy_model_dir(tmp_path)

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("rebuilt a cached toy model")

    monkeypatch.setattr(toy, "build_toy_model", fail)
    assert toy_model_dir(tmp_path) == folder


def test_alias_loads_the_toy_model_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTENV_CACHE", str(tmp_path))
    model, tokenizer = load_model_and_tokenizer(TOY_MODEL)
    assert (tmp_path / "models" / "toy-gpt2-v0" / "model.safetensors").is_file()
    assert model.config.model_type == "gpt2"
    assert model.config.vocab_size == len(tokenizer) == 70
    assert model.config.n_positions == 64
    assert (model.config.eos_token_id, model.config.pad_token_id) == (1, 0)
    assert not model.training
    assert tokenizer.padding_side == "left"
    assert tokenizer.decode(tokenizer("yes it is fun")["input_ids"]) == "yes it is fun"


@pytest.mark.parametrize("text", ["i love this", "the worst day"])
def test_toy_model_scores_a_prompt(text):
    model, tokenizer = load_model_and_tokenizer(TOY_MODEL)
    batch = tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (1, len(text.split()), 70)
    assert torch.isfinite(logits).all()
