"""Tests of the regex, repetition and format rule rewards."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import rewards
from rewards.patterns import FormatReward, RegexReward, RepetitionReward


def score(reward: object, *completions: str) -> list[float]:
    return list(rewards.resolve(reward)(["p"] * len(completions), list(completions)))  # type: ignore[arg-type]


def test_regex_modes() -> None:
    texts = ("Thanks, thank you!", "no gratitude here", "THANKS")
    assert score(RegexReward(r"\bthank(s| you)\b"), *texts) == [1.0, 0.0, 0.0]
    assert score(RegexReward(r"\bthank(s| you)\b", flags="i"), *texts) == [1.0, 0.0, 1.0]
    assert score(RegexReward(r"\bthank(s| you)\b", mode="absent", flags="i"), *texts) == [-1.0, 0.0, -1.0]
    assert score(RegexReward(r"\bthank(s| you)\b", mode="count", flags="i"), *texts) == [2.0, 0.0, 1.0]


def test_regex_flags_multiline_and_dotall() -> None:
    assert score(RegexReward(r"^b", flags="m"), "a\nb") == [1.0]
    assert score(RegexReward(r"a.b", flags="s"), "a\nb") == [1.0]
    assert score(RegexReward(r"a.b"), "a\nb") == [0.0]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"pattern": "("}, ValueError, "not a valid regular expression"),
        ({"pattern": 3}, TypeError, "pattern must be a str"),
        ({"pattern": "a", "mode": "some"}, ValueError, "mode must be one of"),
        ({"pattern": "a", "flags": "q"}, ValueError, "flags must be a string of the letters"),
    ],
)
def test_regex_rejects_bad_config(kwargs: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        RegexReward(**kwargs)


def test_repetition_is_distinct_n_minus_one() -> None:
    reward = RepetitionReward(n=2)
    # "the cat the cat the cat": 5 bigrams, 2 distinct ("the cat", "cat the").
    assert score(reward, "the cat the cat the cat") == pytest.approx([2 / 5 - 1])
    assert score(reward, "every word here differs", "one", "") == [0.0, 0.0, 0.0]
    assert score(RepetitionReward(n=1), "Go go GO") == pytest.approx([1 / 3 - 1])
    assert score(RepetitionReward(n=1, case_sensitive=True), "Go go GO") == [0.0]


@pytest.mark.parametrize(("n", "error"), [(0, ValueError), (1.5, TypeError), (True, TypeError)])
def test_repetition_rejects_bad_n(n: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="n must be"):
        RepetitionReward(n=n)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        ("json", ' {"a": [1, 2]} ', "{'a': 1}"),
        ("json", "[1, 2]", "3"),
        ("sentence", "It works. Really!", "it works."),
        ("sentence", '"Quoted."', "No end"),
        ("bullets", "- one\n* two\n\n• three", "- one\ntwo"),
        ("numbered", "1. one\n2) two\n3. three", "1. one\n3. three"),
        ("single_line", "  just one line  ", "two\nlines"),
    ],
)
def test_format_kinds(kind: str, good: str, bad: str) -> None:
    reward = FormatReward(kind)  # type: ignore[arg-type]
    assert score(reward, good, bad, "", "   ") == [1.0, 0.0, 0.0, 0.0]


def test_format_regex_fullmatch_and_penalty() -> None:
    reward = FormatReward("regex", pattern=r"answer: \d+", flags="i", penalty=True)
    assert score(reward, "Answer: 42", "the answer: 42", "answer: 4 2") == [0.0, -1.0, -1.0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "yaml"}, "kind must be one of"),
        ({"kind": "regex"}, "needs a pattern"),
        ({"kind": "json", "pattern": "x"}, "only used with kind='regex'"),
        ({"kind": "regex", "pattern": "["}, "not a valid regular expression"),
    ],
)
def test_format_rejects_bad_config(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FormatReward(**kwargs)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("regex", {"pattern": "cat", "flags": "i"}),
        ("repetition", {"n": 3}),
        ("format", {"kind": "regex", "pattern": "[a-z ]+"}),
    ],
)
def test_registered_by_name_and_pickle(name: str, kwargs: dict) -> None:
    reward = rewards.make(name, **kwargs)
    completions = ["a cat a cat a cat", "Dog!", "b"]
    scores = reward(["p"] * 3, completions)
    clone = pickle.loads(pickle.dumps(reward))
    np.testing.assert_array_equal(clone(["p"] * 3, completions), scores)
    assert name in repr(reward) or type(reward.fn).__name__ in repr(reward)
