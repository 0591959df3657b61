"""Tests of the simulated annotator: Bradley–Terry labels from a reward, and sampling from an LM."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rewards
from rewards import InvalidRewardOutputError, LMPairSampler, load_preferences, simulate_preferences
from rewards.errors import RewardInputError


def by_length(prompts: Sequence[str]) -> list[tuple[str, str]]:
    """Two fixed completions per prompt: one word and three words."""
    return [("one", "one two three")] * len(prompts)


def word_count(prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> list[float]:
    return [float(len(c.split())) for c in completions]


def test_temperature_zero_always_prefers_the_higher_reward() -> None:
    result = simulate_preferences(["p"] * 20, by_length, word_count, temperature=0.0)
    assert len(result.pairs) == 20
    assert all(a.pair.chosen == "one two three" and a.pair.rejected == "one" for a in result.pairs)
    assert result.agreement == 1.0
    assert all(a.p_chosen == 1.0 for a in result.pairs)


def test_bradley_terry_noise_follows_the_logistic() -> None:
    # Reward difference 2 at temperature 2: the longer text wins with probability σ(1) ≈ 0.731.
    result = simulate_preferences(["p"] * 4000, by_length, word_count, temperature=2.0, seed=3)
    wins = np.mean([a.pair.chosen == "one two three" for a in result.pairs])
    assert wins == pytest.approx(1 / (1 + math.exp(-1)), abs=0.03)
    assert result.agreement == pytest.approx(wins)


def test_same_seed_same_labels_and_ties_are_coin_flips() -> None:
    def twins(prompts: Sequence[str]) -> list[tuple[str, str]]:
        return [("aa", "bb")] * len(prompts)

    first = simulate_preferences(["p"] * 200, twins, word_count, temperature=0.0, seed=1)
    again = simulate_preferences(["p"] * 200, twins, word_count, temperature=0.0, seed=1)
    assert [a.pair for a in first.pairs] == [a.pair for a in again.pairs]
    share = np.mean([a.pair.chosen == "aa" for a in first.pairs])
    assert 0.35 < share < 0.65
    assert math.isnan(first.agreement)  # every pair was a tie


def test_identical_or_empty_completions_and_empty_prompts_are_skipped() -> None:
    asked: list[str] = []

    def sampler(prompts: Sequence[str]) -> list[tuple[str, str]]:
        asked.extend(prompts)
        return [("same", "same"), ("", "x"), ("a", "b c")][: len(prompts)]

    result = simulate_preferences(["p1", "p2", " ", "p3"], sampler, word_count, temperature=0.0)
    assert asked == ["p1", "p2", "p3"]
    assert result.skipped == 3
    assert [a.pair.prompt for a in result.pairs] == ["p3"]


def test_a_nan_reward_is_a_typed_error_and_nothing_is_written(tmp_path: Path) -> None:
    def nan_reward(prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> list[float]:
        return [math.nan] * len(completions)

    with pytest.raises(InvalidRewardOutputError, match="'nan_reward' returned nan"):
        simulate_preferences(["p"], by_length, nan_reward).write(tmp_path / "prefs.jsonl")
    assert list(tmp_path.iterdir()) == []


def test_meta_reaches_the_reward_and_is_checked() -> None:
    def sampler(prompts: Sequence[str]) -> list[tuple[str, str]]:
        return [("the cat sat", "a dog ran")] * len(prompts)

    result = simulate_preferences(
        ["p", "q"], sampler, rewards.make("rouge"), temperature=0.0, meta={"reference": ["the cat", "a dog"]}
    )
    assert [a.pair.chosen for a in result.pairs] == ["the cat sat", "a dog ran"]
    with pytest.raises(RewardInputError, match="has 1 values for 2 prompts"):
        simulate_preferences(["p", "q"], sampler, "rouge", meta={"reference": ["x"]})


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="temperature must be"):
        simulate_preferences(["p"], by_length, word_count, temperature=-1.0)
    with pytest.raises(ValueError, match="returned 1 pairs for 2 prompts"):
        simulate_preferences(["p", "q"], lambda ps: [("a", "b")], word_count)


def test_written_pairs_are_training_data(tmp_path: Path) -> None:
    result = simulate_preferences(["p"] * 3, by_length, word_count, temperature=0.0)
    assert result.write(tmp_path / "prefs.jsonl") == 3
    data = load_preferences(tmp_path / "prefs.jsonl")
    assert len(data.pairs) == 3
    line = (tmp_path / "prefs.jsonl").read_text().splitlines()[0]
    assert '"reward_chosen": 3.0' in line


def test_lm_pair_sampler_samples_two_seeded_completions(tiny_lm_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_dir)
    sampler = LMPairSampler(model, tokenizer, max_new_tokens=6, batch_size=2, seed=5)
    prompts = ["the movie was", "a", "the cat is very"]
    pairs = sampler(prompts)
    assert len(pairs) == 3
    assert all(isinstance(a, str) and isinstance(b, str) for a, b in pairs)
    assert all(len(a.split()) <= 6 for a, _ in pairs)
    assert sampler(prompts) == pairs
    assert LMPairSampler(model, tokenizer, max_new_tokens=6, batch_size=2, seed=6)(prompts) != pairs
    result = simulate_preferences(prompts, sampler, "repetition", temperature=1.0)
    assert len(result.pairs) + result.skipped == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"temperature": 0.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
    ],
)
def test_lm_pair_sampler_checks_its_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LMPairSampler(object(), object(), **kwargs)
