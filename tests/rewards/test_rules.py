"""Tests of the rule rewards (length, keyword) on hand-checked inputs."""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
import pytest

from rewards.rules import KeywordReward, LengthReward


def scores(reward: Any, *completions: str) -> list[float]:
    return list(reward(["any prompt"] * len(completions), list(completions)))


# ---- LengthReward ---------------------------------------------------------------------------------


def test_length_in_words_with_tolerance() -> None:
    reward = LengthReward(target=5, tolerance=1)
    # 5 and 4 words are within tolerance; 3 words: (|3-5| - 1)/5; 8 words: (|8-5| - 1)/5.
    assert scores(reward, "a b c d e", "a b c d", "a b c", "a b c d e f g h") == pytest.approx([0.0, 0.0, -0.2, -0.4])


def test_length_counts_whitespace_separated_words() -> None:
    reward = LengthReward(target=2)
    assert scores(reward, "  hello,\n  world!  ", "") == pytest.approx([0.0, -1.0])


def test_length_in_chars() -> None:
    reward = LengthReward(target=4, unit="chars")
    assert scores(reward, "abcd", "ab", "abcdefgh") == pytest.approx([0.0, -0.5, -1.0])


def test_length_target_zero_divides_by_one() -> None:
    assert scores(LengthReward(target=0), "", "one two three") == pytest.approx([0.0, -3.0])


def test_length_perfect_score_is_positive_zero() -> None:
    (score,) = scores(LengthReward(target=1), "one")
    assert score == 0.0
    assert math.copysign(1.0, score) == 1.0


def test_length_ignores_the_prompt() -> None:
    reward = LengthReward(target=3)
    a = reward(["short"], ["one two three four"])
    b = reward(["a much longer prompt than the other"], ["one two three four"])
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"target": -1}, ValueError, "target must be an integer ≥ 0; got -1"),
        ({"target": 2.5}, TypeError, "target must be an integer ≥ 0; got 2.5"),
        ({"target": True}, TypeError, "target must be an integer ≥ 0; got True"),
        ({"target": 3, "tolerance": -2}, ValueError, "tolerance must be an integer ≥ 0; got -2"),
        ({"target": 3, "unit": "tokens"}, ValueError, "unit must be one of 'words', 'chars', got 'tokens'"),
    ],
)
def test_length_rejects_bad_config(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        LengthReward(**kwargs)


# ---- KeywordReward --------------------------------------------------------------------------------


def test_keyword_fraction_counts_whole_words_only() -> None:
    reward = KeywordReward(["cat"])
    # 7 words, 2 of them "cat"; "cats" and "concatenate" are other words.
    assert scores(reward, "The cat sat on the cat mat", "cats concatenate", "") == pytest.approx([2 / 7, 0.0, 0.0])


def test_keyword_punctuation_does_not_hide_a_match() -> None:
    assert scores(KeywordReward(["great"], mode="any"), "Great!", "(great)", "greatest") == [1.0, 1.0, 0.0]


def test_keyword_case_sensitivity() -> None:
    assert scores(KeywordReward(["Paris"], mode="count"), "paris PARIS Paris") == [3.0]
    assert scores(KeywordReward(["Paris"], mode="count", case_sensitive=True), "paris PARIS Paris") == [1.0]


def test_keyword_count_and_any() -> None:
    text = "please help, please, and thanks"
    assert scores(KeywordReward(["please", "thanks"], mode="count"), text) == [3.0]
    assert scores(KeywordReward(["please", "thanks"], mode="any"), text, "no") == [1.0, 0.0]


def test_keyword_phrases_match_words_in_a_row() -> None:
    reward = KeywordReward(["thank you", "thank"], mode="count")
    # The longer phrase wins where both match: two "thank you", one lone "thank"; "you thank" is not a phrase.
    assert scores(reward, "Thank you, thank you very much. I thank") == [3.0]
    fraction = KeywordReward(["thank you"])
    # 6 words: thank you thank you very much; 4 of them are in matches.
    assert scores(fraction, "Thank you, thank you very much") == pytest.approx([4 / 6])


def test_keyword_absent_turns_into_a_penalty() -> None:
    reward = KeywordReward(["sorry"], mode="any", absent=True)
    result = scores(reward, "I am sorry", "All good")
    assert result == [-1.0, 0.0]
    assert math.copysign(1.0, result[1]) == 1.0  # 0.0, not -0.0
    assert scores(KeywordReward(["sorry"], absent=True), "sorry sorry ok ok") == pytest.approx([-0.5])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"keywords": []}, ValueError, "keywords is empty"),
        ({"keywords": "cat"}, TypeError, "got the single string 'cat'"),
        ({"keywords": ["cat", 3]}, TypeError, "keywords must be strings, got int 3"),
        ({"keywords": ["!!!"]}, ValueError, "keyword '!!!' has no letters or digits"),
        ({"keywords": ["cat"], "mode": "sum"}, ValueError, r"mode must be one of .*got 'sum'"),
    ],
)
def test_keyword_rejects_bad_config(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        KeywordReward(**kwargs)


@pytest.mark.parametrize(
    "reward",
    [LengthReward(target=3, tolerance=1, unit="chars"), KeywordReward(["thank you", "please"], mode="count")],
)
def test_rules_pickle(reward: Any) -> None:
    texts = ["please, thank you", "no"]
    clone = pickle.loads(pickle.dumps(reward))
    assert repr(clone) == repr(reward)
    np.testing.assert_array_equal(clone(["p", "q"], texts), reward(["p", "q"], texts))
