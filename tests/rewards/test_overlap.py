"""Tests of the ROUGE reference-overlap reward."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest

import rewards
from rewards.errors import MissingDependencyError, RewardInputError
from rewards.overlap import RougeReward


def test_rouge_l_against_a_fixed_reference() -> None:
    reward = rewards.make("rouge", reference="the cat sat on the mat")
    scores = reward(["p"] * 3, ["the cat sat", "the cat sat on the mat", "dogs bark"])
    # LCS 3 of 3 candidate and 6 reference words: P = 1, R = 0.5, F = 2/3.
    np.testing.assert_allclose(scores, [2 / 3, 1.0, 0.0])


def test_measures_and_types() -> None:
    completions = ["the cat sat"]
    ref = "the cat sat on the mat"
    assert RougeReward(ref, measure="precision")(["p"], completions)[0] == pytest.approx(1.0)
    assert RougeReward(ref, measure="recall")(["p"], completions)[0] == pytest.approx(0.5)
    # Bigrams: candidate {the cat, cat sat} both in the reference's 5: F = 2 * 1 * 0.4 / 1.4.
    assert RougeReward(ref, rouge_type="rouge2")(["p"], completions)[0] == pytest.approx(0.8 / 1.4)


def test_stemming_matches_word_forms() -> None:
    assert RougeReward("cats running", use_stemmer=True)(["p"], ["cat run"])[0] == pytest.approx(1.0)
    assert RougeReward("cats running", use_stemmer=False)(["p"], ["cat run"])[0] == 0.0


def test_per_pair_references_take_the_best_of_several() -> None:
    reward = rewards.make("rouge", rouge_type="rouge1")
    scores = reward(["a", "b"], ["red apple", "blue sky"], reference=["red apple", ["green", "blue sky"]])
    np.testing.assert_allclose(scores, [1.0, 1.0])
    other = rewards.make("rouge", reference_key="summary")
    assert other(["a"], ["x y"], summary=["x y"])[0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        ({}, "needs the per-pair field 'reference'"),
        ({"reference": ["only one"]}, "one value per pair"),
        ({"reference": [3, "x"]}, r"reference\[0\] must be a str"),
        ({"reference": [[], "x"]}, r"reference\[0\] must be a str or a non-empty list"),
    ],
)
def test_missing_or_bad_reference_is_a_typed_error(meta: dict, match: str) -> None:
    with pytest.raises(RewardInputError, match=match):
        rewards.make("rouge")(["a", "b"], ["x", "y"], **meta)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"rouge_type": "rouge9"}, ValueError, r"rouge_type must be one of 'rouge1', .* got 'rouge9'"),
        ({"measure": "f1"}, ValueError, r"measure must be one of 'fmeasure', 'precision', 'recall', got 'f1'"),
        ({"reference": 3}, TypeError, "reference must be a str or None, got int"),
    ],
)
def test_bad_config(kwargs: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=f"RougeReward: {match}"):
        RougeReward(**kwargs)


def test_pickles() -> None:
    reward = rewards.make("rouge", reference="a b c")
    reward(["p"], ["a b"])
    clone = pickle.loads(pickle.dumps(reward))
    assert clone(["p"], ["a b"])[0] == reward(["p"], ["a b"])[0]


def test_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rouge_score.rouge_scorer", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "textenv\[rouge\]"'):
        rewards.make("rouge")
