"""Tests of the LM judge on the tiny random GPT-2 with GPT-2's real BPE tokenizer."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rewards
from rewards.judge import PLAIN_TEMPLATE, LMJudge

PROMPTS = ["The film was", "Dinner at this place", "My day"]
COMPLETIONS = [" wonderful, I loved it.", " cold and late.", " fine"]


@pytest.fixture(scope="module")
def bpe_tokenizer(tiny_gpt2_bpe_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_gpt2_bpe_dir)


@pytest.fixture(scope="module")
def judge(tiny_gpt2_bpe_dir: Path) -> rewards.ValidatedReward:
    return rewards.make("judge", model=str(tiny_gpt2_bpe_dir), question="Is this review positive?")


def test_scores_are_finite_one_per_pair_and_deterministic(judge: rewards.ValidatedReward) -> None:
    scores = judge(PROMPTS, COMPLETIONS)
    assert scores.shape == (3,)
    assert np.all(np.isfinite(scores))
    np.testing.assert_array_equal(judge(PROMPTS, COMPLETIONS), scores)


def test_a_left_padded_batch_scores_like_each_query_alone(judge: rewards.ValidatedReward) -> None:
    together = judge(PROMPTS, COMPLETIONS)
    alone = [judge([p], [c])[0] for p, c in zip(PROMPTS, COMPLETIONS, strict=True)]
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_both_spellings_of_the_answers_count(judge: rewards.ValidatedReward) -> None:
    fn: Any = judge.fn
    yes_ids, no_ids = fn._answer_ids
    tok = fn._tokenizer
    assert {tok.decode([i]) for i in yes_ids} == {"Yes", " Yes"}
    assert {tok.decode([i]) for i in no_ids} == {"No", " No"}


def test_the_query_shows_the_text_and_asks_the_question(judge: rewards.ValidatedReward) -> None:
    fn: Any = judge.fn
    assert not fn.uses_chat
    assert fn.query("Prompt:", " text") == PLAIN_TEMPLATE.format(
        prompt="Prompt:", completion=" text", question="Is this review positive?"
    )


def test_long_queries_keep_their_end(tiny_gpt2_bpe_dir: Path) -> None:
    judge = LMJudge(str(tiny_gpt2_bpe_dir), max_length=32)
    query = judge.query("word " * 200, " end")
    ids, mask, positions = judge._encode([query, "short"])
    assert ids.shape == (2, 32)
    full = judge._tokenizer(query)["input_ids"]
    assert ids[0].tolist() == full[-32:]
    assert mask[1].sum() < 32
    assert positions[1, -1] == mask[1].sum() - 1
    assert np.isfinite(judge(["word " * 500], [" end"])[0])


class _Answering:
    """A stand-in causal LM whose next token is always the token ``token_id`` (logit 10, others 0)."""

    def __init__(self, vocab_size: int, token_id: int) -> None:
        import torch

        self.token_id = token_id
        self.vocab_size = vocab_size
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def parameters(self) -> Any:
        return iter([self.weight])

    def __call__(self, input_ids: Any, **kwargs: Any) -> Any:
        import torch

        logits = torch.zeros(*input_ids.shape, self.vocab_size)
        logits[..., self.token_id] = 10.0
        return type("Output", (), {"logits": logits})()


def test_a_model_that_answers_yes_scores_positive_and_no_negative(bpe_tokenizer: Any) -> None:
    tok = bpe_tokenizer
    yes = tok(" Yes", add_special_tokens=False)["input_ids"][0]
    no = tok("No", add_special_tokens=False)["input_ids"][0]
    for token, sign in ((yes, 1.0), (no, -1.0)):
        judge = rewards.resolve(LMJudge(_Answering(len(tok), token), tokenizer=tok))
        scores = judge(PROMPTS, COMPLETIONS)
        assert np.all(np.sign(scores) == sign)
        assert np.all(np.abs(scores) > 5.0)


def test_chat_models_get_their_chat_template(tiny_gpt2_bpe_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_gpt2_bpe_dir)
    tok.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2_bpe_dir)
    judge = LMJudge(model, tokenizer=tok, question="Is it kind?")
    assert judge.uses_chat
    query = judge.query("Hi", " there")
    assert query.startswith("<|user|>Read this text:\n\nHi there\n\nIs it kind? Answer with Yes or No only.")
    assert query.endswith("<|assistant|>")
    assert np.isfinite(judge(["Hi"], [" there"])[0])
    assert not LMJudge(model, tokenizer=tok, chat=False).uses_chat


def test_pickle_reloads_a_judge_loaded_from_a_folder(judge: rewards.ValidatedReward) -> None:
    data = pickle.dumps(judge)
    assert len(data) < 10_000
    np.testing.assert_allclose(pickle.loads(data)(PROMPTS, COMPLETIONS), judge(PROMPTS, COMPLETIONS), atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"template": "{prompt} {answer}"}, ValueError, "must be a str.format pattern"),
        ({"template": "{prompt} only"}, ValueError, "never shows the {completion}"),
        ({"question": " "}, ValueError, "question must be a non-empty str"),
        ({"batch_size": 0}, ValueError, "batch_size must be an integer ≥ 1; got 0"),
        ({"yes": "Yes", "no": "Yes!"}, ValueError, "start with the same token"),
    ],
)
def test_bad_config(bpe_tokenizer: Any, kwargs: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        LMJudge(_Answering(len(bpe_tokenizer), 0), tokenizer=bpe_tokenizer, **kwargs)


def test_bad_model_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a model folder"):
        rewards.make("judge", model=str(tmp_path))
    with pytest.raises(TypeError, match="needs its tokenizer"):
        LMJudge(object())
