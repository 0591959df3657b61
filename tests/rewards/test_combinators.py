"""Tests of the combinators: weighted sums with their parts, clipping, running normalisation."""

from __future__ import annotations

import math
import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

import rewards
from rewards.combinators import Clip, RunningNormalize, WeightedSum, build_reward
from rewards.errors import InvalidRewardOutputError, RewardConfigError, UnknownRewardError
from rewards.validation import ValidatedReward

PROMPTS = ["p1", "p2", "p3"]
COMPLETIONS = ["good good", "one two three four five", "bad"]


def word_count(prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> list[float]:
    return [float(len(c.split())) for c in completions]


def nan_reward(prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> list[float]:
    return [float("nan")] * len(completions)


def test_weighted_sum_totals_and_reports_raw_parts() -> None:
    reward = rewards.make(
        "weighted_sum",
        terms={
            "length": {"weight": 0.5, "target": 2},
            "kw": {"reward": "keyword", "keywords": ["good"], "mode": "count", "weight": 2.0},
            "words": (word_count, -0.1),
        },
    )
    total = reward(PROMPTS, COMPLETIONS)
    parts = reward.last_parts
    assert set(parts) == {"length", "kw", "words"}
    np.testing.assert_allclose(parts["kw"], [2.0, 0.0, 0.0])
    np.testing.assert_allclose(parts["words"], [2.0, 5.0, 1.0])
    np.testing.assert_allclose(parts["length"], [0.0, -1.5, -0.5])
    np.testing.assert_allclose(total, 0.5 * parts["length"] + 2.0 * parts["kw"] - 0.1 * parts["words"])
    assert all(len(v) == len(PROMPTS) for v in parts.values())


def test_a_bare_weight_builds_the_reward_named_by_its_label() -> None:
    reward = WeightedSum({"sentiment": 1.0, "repetition": 0.5})
    assert reward.terms["sentiment"].name == "sentiment"
    assert reward.weights == {"sentiment": 1.0, "repetition": 0.5}


def test_parts_of_nested_combinators_are_prefixed() -> None:
    inner = WeightedSum({"a": (word_count, 1.0)})
    outer = WeightedSum({"sum": (inner, 1.0), "clipped": (Clip(word_count, high=2.0), 1.0)})
    outer(PROMPTS, COMPLETIONS)
    assert set(outer.last_parts) == {"sum", "sum/a", "clipped", "clipped/raw"}
    np.testing.assert_allclose(outer.last_parts["clipped"], [2.0, 2.0, 1.0])


def test_validated_reward_exposes_parts_or_nothing() -> None:
    assert rewards.resolve(word_count).last_parts == {}
    reward = rewards.resolve(WeightedSum({"w": (word_count, 1.0)}))
    assert reward.last_parts == {}
    reward(PROMPTS, COMPLETIONS)
    assert list(reward.last_parts) == ["w"]


def test_a_nan_part_is_reported_under_its_label() -> None:
    reward = rewards.resolve(WeightedSum({"ok": (word_count, 1.0), "broken": (nan_reward, 1.0)}))
    with pytest.raises(InvalidRewardOutputError, match="reward 'broken' returned nan"):
        reward(PROMPTS, COMPLETIONS)


@pytest.mark.parametrize(
    ("terms", "error", "match"),
    [
        ({}, ValueError, "non-empty mapping"),
        ({"length": float("inf")}, ValueError, "weight of term 'length' must be a finite number"),
        ({"x": "length"}, RewardConfigError, "must be a weight, a mapping"),
        ({"w": {"reward": word_count, "scale": 2}}, RewardConfigError, "configure the function yourself"),
        ({"nosuch": 1.0}, UnknownRewardError, "'nosuch'"),
    ],
)
def test_weighted_sum_rejects_bad_terms(terms: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        WeightedSum(terms)


def test_build_reward_needs_a_name_in_a_mapping() -> None:
    with pytest.raises(RewardConfigError, match="needs the registered name under 'reward'"):
        build_reward({"target": 3})
    assert build_reward({"reward": "length", "target": 3}).name == "length"
    assert build_reward(word_count, name="mine").name == "mine"


def test_clip_bounds() -> None:
    reward = rewards.make("clip", reward=word_count, low=1.5, high=4.0)
    np.testing.assert_allclose(reward(PROMPTS, COMPLETIONS), [2.0, 4.0, 1.5])
    np.testing.assert_allclose(reward.last_parts["raw"], [2.0, 5.0, 1.0])
    np.testing.assert_allclose(Clip(word_count, high=3.0)(PROMPTS, COMPLETIONS), [2.0, 3.0, 1.0])


@pytest.mark.parametrize(
    ("low", "high", "match"),
    [(None, None, "give low, high or both"), (2.0, 1.0, "must not exceed"), (float("nan"), 1.0, "finite")],
)
def test_clip_rejects_bad_bounds(low: Any, high: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Clip(word_count, low=low, high=high)


def test_running_normalize_matches_the_statistics_of_all_scores_seen() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(5.0, 3.0, size=300)

    def fixed(prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> list[float]:
        return [float(c) for c in completions]

    reward = RunningNormalize(fixed, epsilon=1e-8)
    out = []
    for batch in np.split(values, 30):
        out.append(reward(["p"] * len(batch), [repr(float(v)) for v in batch]))
    assert reward.mean == pytest.approx(values.mean(), rel=1e-6)
    assert reward.var == pytest.approx(values.var(), rel=1e-6)
    last = values[-10:]
    np.testing.assert_allclose(out[-1], (last - values.mean()) / np.sqrt(values.var() + 1e-8), rtol=1e-6)
    np.testing.assert_allclose(reward.last_parts["raw"], last)


def test_running_normalize_pickles_with_its_statistics_and_can_freeze() -> None:
    reward = rewards.make("normalize", reward=word_count, clip=1.0)
    reward(PROMPTS, COMPLETIONS)
    clone = pickle.loads(pickle.dumps(reward))
    assert (clone.fn.count, clone.fn.mean, clone.fn.var) == (reward.fn.count, reward.fn.mean, reward.fn.var)
    clone.fn.freeze()
    before = (clone.fn.count, clone.fn.mean)
    scores = clone(PROMPTS, COMPLETIONS)
    assert (clone.fn.count, clone.fn.mean) == before
    assert np.all(np.abs(scores) <= 1.0)
    scale_only = RunningNormalize(word_count, center=False, update=False)
    np.testing.assert_allclose(scale_only(PROMPTS, COMPLETIONS), [2.0, 5.0, 1.0] / np.sqrt(1.0 + 1e-4))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"clip": 0.0}, "clip must be > 0"), ({"epsilon": 0.0}, "epsilon must be > 0"), ({"epsilon": math.inf}, "finite")],
)
def test_running_normalize_rejects_bad_config(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RunningNormalize(word_count, **kwargs)


def test_combinators_pickle_with_their_parts() -> None:
    reward = rewards.make("weighted_sum", terms={"length": {"target": 2}, "repetition": 0.5})
    clone = pickle.loads(pickle.dumps(reward))
    np.testing.assert_array_equal(clone(PROMPTS, COMPLETIONS), reward(PROMPTS, COMPLETIONS))
    assert isinstance(clone.fn.terms["length"], ValidatedReward)
