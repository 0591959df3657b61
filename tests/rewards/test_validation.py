"""Tests of ValidatedReward: every malformed reward output becomes an error naming the reward."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from rewards.errors import InvalidRewardOutputError
from rewards.rules import LengthReward
from rewards.validation import ValidatedReward

PROMPTS = ["p0", "p1"]
COMPLETIONS = ["first completion", "second completion"]


class Returns:
    """A reward that returns a fixed object, whatever it is given, and counts its calls."""

    def __init__(self, output: Any) -> None:
        self.output = output
        self.calls = 0
        self.meta: dict[str, Any] = {}

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> Any:
        self.calls += 1
        self.meta = meta
        return self.output


def validated(output: Any) -> ValidatedReward:
    return ValidatedReward("my_reward", Returns(output))


@pytest.mark.parametrize("output", [[1.0, -2.5], (1, 2), np.array([0.5, 0.25], dtype=np.float32), [True, False]])
def test_valid_output_becomes_a_float64_vector(output: Any) -> None:
    scores = validated(output)(PROMPTS, COMPLETIONS)
    assert isinstance(scores, np.ndarray)
    assert scores.dtype == np.float64
    assert scores.shape == (2,)
    np.testing.assert_array_equal(scores, np.asarray(output, dtype=np.float64))


def test_output_is_a_copy() -> None:
    cached = np.array([1.0, 2.0])
    scores = validated(cached)(PROMPTS, COMPLETIONS)
    scores[0] = 99.0
    assert cached[0] == 1.0


def test_meta_is_passed_through() -> None:
    fn = Returns([0.0, 0.0])
    ValidatedReward("r", fn)(PROMPTS, COMPLETIONS, reference=["a", "b"])
    assert fn.meta == {"reference": ["a", "b"]}


def test_empty_batch_skips_the_call() -> None:
    fn = Returns("never returned")
    scores = ValidatedReward("r", fn)([], [])
    assert scores.shape == (0,)
    assert fn.calls == 0


@pytest.mark.parametrize(("bad", "shown"), [(float("nan"), "nan"), (float("inf"), "inf"), (float("-inf"), "-inf")])
def test_non_finite_score_names_reward_index_and_completion(bad: float, shown: str) -> None:
    with pytest.raises(InvalidRewardOutputError) as info:
        validated([0.0, bad])(PROMPTS, COMPLETIONS)
    message = str(info.value)
    assert "'my_reward'" in message
    assert f"returned {shown} at index 1" in message
    assert "'second completion'" in message


def test_non_finite_message_truncates_long_completions_and_counts_the_rest() -> None:
    long_text = "word " * 100
    with pytest.raises(InvalidRewardOutputError) as info:
        validated([np.nan] * 3)(["p"] * 3, [long_text] * 3)
    message = str(info.value)
    assert "at index 0 (and 2 more)" in message
    assert long_text not in message
    assert "...'" in message


def test_none_score_is_reported_as_nan() -> None:
    with pytest.raises(InvalidRewardOutputError, match="'my_reward' returned nan at index 0"):
        validated([None, 1.0])(PROMPTS, COMPLETIONS)


def test_wrong_number_of_scores() -> None:
    with pytest.raises(InvalidRewardOutputError, match="'my_reward' returned 3 scores for 2 completions"):
        validated([1.0, 2.0, 3.0])(PROMPTS, COMPLETIONS)


@pytest.mark.parametrize(
    "output",
    [["good", "bad"], "0.5", {"a": 1.0}, [1.0, "x"], [1 + 2j, 0j], [[1.0], [2.0, 3.0]], 0.5, None],
)
def test_non_numeric_output(output: Any) -> None:
    with pytest.raises(InvalidRewardOutputError, match="'my_reward' returned"):
        validated(output)(PROMPTS, COMPLETIONS)


def test_column_vector_output_hints_at_squeeze() -> None:
    with pytest.raises(InvalidRewardOutputError, match=r"'my_reward'.*shape \(2, 1\).*squeeze"):
        validated(np.zeros((2, 1)))(PROMPTS, COMPLETIONS)


def test_length_mismatch_is_raised_before_calling() -> None:
    fn = Returns([0.0])
    with pytest.raises(InvalidRewardOutputError, match="'my_reward' got 2 prompts but 1 completions"):
        ValidatedReward("my_reward", fn)(PROMPTS, ["only one"])
    assert fn.calls == 0


def test_constructor_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="non-empty str"):
        ValidatedReward("", Returns([]))
    with pytest.raises(TypeError, match="'r': fn must be callable"):
        ValidatedReward("r", 3)  # type: ignore[arg-type]


def test_pickle_and_repr() -> None:
    reward = ValidatedReward("length", LengthReward(target=2))
    assert repr(reward) == ("ValidatedReward(name='length', fn=LengthReward(target=2, tolerance=0, unit='words'))")
    clone = pickle.loads(pickle.dumps(reward))
    assert clone.name == "length"
    np.testing.assert_array_equal(clone(PROMPTS, COMPLETIONS), reward(PROMPTS, COMPLETIONS))
