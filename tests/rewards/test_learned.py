"""Tests of learned reward models: training (pairs, ratings, both), loading, scoring, evaluation, bad input."""

from __future__ import annotations

import json
import math
import pickle
import random
import shutil
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

import rewards
from rewards import (
    METADATA_FILE,
    InvalidRewardOutputError,
    PreferenceData,
    PreferencePair,
    RatedCompletion,
    RewardModelError,
    RewardModelTrainingConfig,
    evaluate_pairwise,
    train_reward_model,
)
from rewards.learned import LearnedReward, encode_texts, wilson_interval

from .conftest import separable_pairs

FAST = {"batch_size": 16, "learning_rate": 1e-3, "progress": False}


def test_trained_on_separable_pairs_it_ranks_unseen_pairs(tiny_rm_dir: Path) -> None:
    info = rewards.RewardModelInfo.read(tiny_rm_dir)
    assert info.dimensions == ("score",)
    assert info.kind == "pairwise"
    assert info.training["final_eval_accuracy"] > 0.9
    assert info.training["eval_pairs"] == 32
    result = evaluate_pairwise(rewards.make("learned", path=tiny_rm_dir), separable_pairs(60, seed=1))
    assert result.accuracy > 0.9
    assert result.n == 60
    assert 0 <= result.ci_low <= result.accuracy <= result.ci_high <= 1


def test_the_folder_holds_safetensors_metadata_tokenizer_and_plots(tiny_rm_dir: Path) -> None:
    names = {p.name for p in tiny_rm_dir.iterdir()}
    assert {"model.safetensors", "config.json", METADATA_FILE, "history.csv", "loss_curve.png"} <= names
    assert "tokenizer.json" in names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pkl"))]
    assert not [p for p in tiny_rm_dir.parent.iterdir() if "partial" in p.name]
    meta = json.loads((tiny_rm_dir / METADATA_FILE).read_text())
    assert meta["format"] == "textenv-reward-model"
    assert meta["training"]["train_pairs"] == 128
    assert (tiny_rm_dir / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    rows = (tiny_rm_dir / "history.csv").read_text().splitlines()
    assert rows[0] == "step,epoch,train_loss,eval_loss,eval_accuracy,best"
    assert len(rows) == 3  # one evaluation per epoch


def test_scores_are_batched_deterministic_and_picklable(tiny_rm_dir: Path) -> None:
    reward = rewards.make("learned", path=tiny_rm_dir, batch_size=3)
    pairs = separable_pairs(7, seed=2)
    prompts = [p.prompt for p in pairs]
    completions = [p.chosen for p in pairs]
    scores = reward(prompts, completions)
    assert scores.shape == (7,)
    assert np.all(np.isfinite(scores))
    alone = [reward([p], [c])[0] for p, c in zip(prompts, completions, strict=True)]
    np.testing.assert_allclose(scores, alone, atol=1e-5)
    np.testing.assert_array_equal(reward(prompts, completions), scores)
    data = pickle.dumps(reward)
    assert len(data) < 20_000  # the configuration, not the weights
    np.testing.assert_allclose(pickle.loads(data)(prompts, completions), scores, atol=1e-6)
    assert reward.last_parts == {}  # one output: no parts


def test_long_inputs_are_cut_from_the_left_of_the_prompt(tiny_rm_dir: Path) -> None:
    reward = LearnedReward(tiny_rm_dir, max_length=12)
    completion = " good fun cat"  # 3 toy tokens
    long_prompt = " ".join(["the dog"] * 100) + " movie was very nice"
    rows = encode_texts(reward._tokenizer, [long_prompt], [completion], 12)
    assert len(rows[0]) == 12
    assert reward._tokenizer.decode(rows[0]) == "dog the dog the dog movie was very nice good fun cat"
    tail = reward._tokenizer(" movie was very nice" + completion, add_special_tokens=False)["input_ids"]
    assert rows[0][-len(tail) :] == tail
    kept_prompt = " ".join(long_prompt.split()[-9:])
    np.testing.assert_allclose(reward([long_prompt], [completion]), reward([kept_prompt], [completion]), atol=1e-5)
    # Far beyond the model's 128 positions, scoring still works.
    assert np.isfinite(rewards.make("learned", path=tiny_rm_dir)([long_prompt * 5], [completion * 80])[0])


class _BosTokenizer:
    """Stands in for a tokenizer that adds a BOS token (id 1) in front of each text, one id per character."""

    def __call__(
        self, texts: Sequence[str], add_special_tokens: bool = True, **kwargs: Any
    ) -> dict[str, list[list[int]]]:
        return {"input_ids": [([1] if add_special_tokens else []) + [ord(ch) for ch in t] for t in texts]}


def test_truncation_keeps_the_leading_special_tokens() -> None:
    rows = encode_texts(_BosTokenizer(), ["abcdefgh"], ["XYZ"], 6)
    assert rows == [[1, ord("g"), ord("h"), ord("X"), ord("Y"), ord("Z")]]
    rows = encode_texts(_BosTokenizer(), ["ab"], ["VWXYZ"], 4)
    assert rows == [[1, ord("X"), ord("Y"), ord("Z")]]
    assert encode_texts(_BosTokenizer(), ["ab"], ["c"], 10) == [[1, 97, 98, 99]]


def rated(n: int, seed: int = 0) -> list[RatedCompletion]:
    """Ratings whose coherence follows the number of positive words and whose fluency is constant."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randint(0, 4)
        words = ["good"] * k + ["the"] * (4 - k)
        rng.shuffle(words)
        ratings = {"coherence": 1 + k, "creativity": 3, "relevance": 5 - k, "fluency": 4}
        out.append(RatedCompletion("the movie", " " + " ".join(words), ratings))
    return out


def test_ratings_train_one_output_per_dimension(tiny_lm_dir: Path, tmp_path: Path) -> None:
    data = PreferenceData(ratings=tuple(rated(96)))
    config = RewardModelTrainingConfig(
        epochs=3,
        dimension_weights={"coherence": 1.0, "creativity": 0.0, "relevance": 0.0, "fluency": 0.0},
        **FAST,
    )
    result = train_reward_model(data, tiny_lm_dir, tmp_path / "rm", config)
    assert result.info.dimensions == ("coherence", "creativity", "relevance", "fluency")
    assert result.info.kind == "ratings"
    reward = rewards.make("learned", path=tmp_path / "rm")
    completions = [" good good good good", " the the the the"]
    total = reward(["the movie"] * 2, completions)
    parts = reward.last_parts
    assert set(parts) == set(result.info.dimensions)
    np.testing.assert_allclose(total, parts["coherence"], atol=1e-6)  # weights: coherence only
    assert parts["coherence"][0] > parts["coherence"][1]
    assert parts["relevance"][0] < parts["relevance"][1]
    only = rewards.make("learned", path=tmp_path / "rm", output="fluency")
    np.testing.assert_allclose(only(["the movie"] * 2, completions), parts["fluency"], atol=1e-6)
    with pytest.raises(ValueError, match="output must be one of"):
        LearnedReward(tmp_path / "rm", output="humour")


def test_pairs_and_ratings_train_one_model_with_a_margin(tiny_lm_dir: Path, tmp_path: Path) -> None:
    pairs = tuple(PreferencePair(p.prompt, p.chosen, p.rejected, margin=1.0) for p in separable_pairs(32))
    data = PreferenceData(pairs, tuple(rated(32)))
    config = RewardModelTrainingConfig(epochs=1, use_margin=True, eval_fraction=0.25, **FAST)
    result = train_reward_model(data, tiny_lm_dir, tmp_path / "rm", config)
    assert result.info.kind == "pairwise+ratings"
    assert result.info.weights == {d: 0.25 for d in result.info.dimensions}
    assert {"final_eval_loss", "final_eval_accuracy"} <= set(result.info.training)
    assert (result.info.training["eval_pairs"], result.info.training["eval_ratings"]) == (8, 8)


def test_early_stopping_keeps_the_best_weights(tiny_lm_dir: Path, tmp_path: Path) -> None:
    config = RewardModelTrainingConfig(
        epochs=6,
        batch_size=8,
        learning_rate=3e-2,
        eval_every=2,
        patience=2,
        eval_fraction=0.25,
        progress=False,
    )
    result = train_reward_model(PreferenceData(tuple(separable_pairs(48))), tiny_lm_dir, tmp_path / "rm", config)
    evals = [row["eval_loss"] for row in result.history]
    assert result.info.training["final_eval_loss"] == pytest.approx(min(evals), rel=1e-4, abs=1e-5)
    # At this step size the held-out loss overshoots after its best: training must stop, `patience` evaluations
    # after the best one, well before its 6 epochs of ceil(36 / 8) steps.
    best = evals.index(min(evals))
    assert result.info.training["stopped_early"] is True
    assert len(evals) == best + 1 + config.patience
    assert [row["step"] for row in result.history] == [2 * (i + 1) for i in range(len(evals))]  # eval_every=2
    assert result.info.training["steps"] == result.history[-1]["step"] < 6 * math.ceil(36 / 8)


def test_train_layers_freezes_the_lower_blocks(tiny_lm_dir: Path, tmp_path: Path) -> None:
    data = PreferenceData(tuple(separable_pairs(16)))
    full = train_reward_model(data, tiny_lm_dir, tmp_path / "a", RewardModelTrainingConfig(**FAST))
    top = train_reward_model(data, tiny_lm_dir, tmp_path / "b", RewardModelTrainingConfig(train_layers=1, **FAST))
    head = train_reward_model(data, tiny_lm_dir, tmp_path / "c", RewardModelTrainingConfig(train_layers=0, **FAST))
    sizes = [r.info.training["trainable_parameters"] for r in (full, top, head)]
    assert sizes[0] > sizes[1] > sizes[2] > 0


def test_an_existing_output_folder_is_kept_unless_overwrite(tiny_lm_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "rm"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    data = PreferenceData(tuple(separable_pairs(8)))
    with pytest.raises(RewardModelError, match="already exists"):
        train_reward_model(data, tiny_lm_dir, out, RewardModelTrainingConfig(**FAST))
    train_reward_model(data, tiny_lm_dir, out, RewardModelTrainingConfig(**FAST), overwrite=True)
    assert not (out / "keep.txt").exists()
    assert (out / METADATA_FILE).is_file()


def test_a_failed_save_leaves_nothing_half_written(
    tiny_lm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rewards import training

    def broken_plot(*args: Any) -> bool:
        raise OSError("disk full")

    monkeypatch.setattr(training, "_plot", broken_plot)
    with pytest.raises(OSError, match="disk full"):
        train_reward_model(
            PreferenceData(tuple(separable_pairs(8))),
            tiny_lm_dir,
            tmp_path / "rm",
            RewardModelTrainingConfig(**FAST),
        )
    assert list(tmp_path.iterdir()) == []


def test_bad_base_and_empty_data(tiny_lm_dir: Path, tmp_path: Path) -> None:
    data = PreferenceData(tuple(separable_pairs(4)))
    with pytest.raises(RewardModelError, match="not a local model folder"):
        train_reward_model(data, tmp_path / "nothing", tmp_path / "rm")
    with pytest.raises(RewardModelError, match="no preference pairs or ratings"):
        train_reward_model(PreferenceData(), tiny_lm_dir, tmp_path / "rm")
    with pytest.raises(ValueError, match="dimension_weights"):
        train_reward_model(data, tiny_lm_dir, tmp_path / "rm", RewardModelTrainingConfig(dimension_weights={"x": 1}))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0}, "epochs must be an integer ≥ 1"),
        ({"eval_fraction": 0.9}, "eval_fraction must be in"),
        ({"learning_rate": 0}, "learning_rate must be > 0"),
        ({"eval_every": 0}, "eval_every must be an integer ≥ 1"),
        ({"train_layers": -1}, "train_layers must be an integer ≥ 0"),
        ({"patience": -1}, "patience must be an integer ≥ 0"),
        ({"dimension_weights": {"a": float("nan")}}, "dimension_weights"),
    ],
)
def test_config_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RewardModelTrainingConfig(**kwargs)


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_a_folder_without_metadata_is_refused(tiny_rm_dir: Path, tmp_path: Path) -> None:
    folder = copy_model(tiny_rm_dir, tmp_path / "rm")
    (folder / METADATA_FILE).unlink()
    with pytest.raises(RewardModelError, match=f"has no {METADATA_FILE}.*textenv rm train"):
        rewards.make("learned", path=folder)


def test_pickle_weights_are_refused(tiny_rm_dir: Path, tmp_path: Path) -> None:
    folder = copy_model(tiny_rm_dir, tmp_path / "rm")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(RewardModelError, match=r"pickle format \(pytorch_model\.bin\).*never unpickles"):
        rewards.make("learned", path=folder)
    (folder / "pytorch_model.bin").unlink()
    with pytest.raises(RewardModelError, match=r"no model\.safetensors"):
        rewards.make("learned", path=folder)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda m: "{not json", "cannot read it as JSON"),
        (lambda m: json.dumps({**m, "format": "other"}), "not a textenv reward model description"),
        (lambda m: json.dumps({**m, "version": 99}), "format version 99"),
        (lambda m: json.dumps({**m, "dimensions": ["a", "b"]}), "invalid reward model description"),
        (lambda m: json.dumps({**m, "dimensions": ["a"], "weights": {"a": 1}}), None),
    ],
)
def test_bad_metadata_is_refused(tiny_rm_dir: Path, tmp_path: Path, change: Any, match: str | None) -> None:
    folder = copy_model(tiny_rm_dir, tmp_path / "rm")
    meta = json.loads((folder / METADATA_FILE).read_text())
    (folder / METADATA_FILE).write_text(change(meta))
    if match is None:  # a consistent description of another model: one output, so it loads
        assert rewards.make("learned", path=folder).fn.info.dimensions == ("a",)
        return
    with pytest.raises(RewardModelError, match=match):
        rewards.make("learned", path=folder)


def test_output_count_must_match_the_metadata(tiny_rm_dir: Path, tmp_path: Path) -> None:
    folder = copy_model(tiny_rm_dir, tmp_path / "rm")
    meta = json.loads((folder / METADATA_FILE).read_text())
    meta.update(dimensions=["a", "b"], weights={"a": 1, "b": 1})
    (folder / METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(RewardModelError, match="has 1 outputs but"):
        rewards.make("learned", path=folder)


def test_missing_folder() -> None:
    with pytest.raises(RewardModelError, match="no reward model folder"):
        rewards.make("learned", path="/nonexistent/rm")


def length_reward(prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> list[float]:
    return [float(len(c)) for c in completions]


def test_evaluate_pairwise_counts_ties_as_half_with_a_wilson_interval() -> None:
    pairs = [PreferencePair("p", "long one", "short")] * 6 + [PreferencePair("p", "a", "bb")] * 2
    pairs += [PreferencePair("p", "xy", "zw")] * 2
    result = evaluate_pairwise(length_reward, pairs, batch_size=3)
    assert (result.n, result.correct, result.ties) == (10, 6, 2)
    assert result.accuracy == pytest.approx(0.7)
    low, high = wilson_interval(7, 10)
    assert (result.ci_low, result.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert (low, high) == (pytest.approx(0.3968, abs=1e-4), pytest.approx(0.8922, abs=1e-4))
    assert "pairwise accuracy 70.0%" in str(result)


def test_evaluate_pairwise_rejects_nan_scores_and_empty_input() -> None:
    def nan_reward(prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> list[float]:
        return [math.nan] * len(completions)

    with pytest.raises(InvalidRewardOutputError, match="'nan_reward' returned nan"):
        evaluate_pairwise(nan_reward, [PreferencePair("p", "a", "b")])
    with pytest.raises(ValueError, match="at least one pair"):
        evaluate_pairwise(length_reward, [])


class _CountsToken(torch.nn.Module):
    """A hand-built one-output scorer: the score of a text is how often one token occurs in it."""

    def __init__(self, token_id: int) -> None:
        super().__init__()
        self.token_id = token_id

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        hits = (input_ids == self.token_id) & attention_mask.bool()
        return SimpleNamespace(logits=hits.sum(dim=1, keepdim=True).float())


def test_training_time_accuracy_counts_ties_as_wrong_exactly(tmp_path: Path) -> None:
    from rewards.training_data import PreferenceCollator, encode_records
    from rewards.training_loop import build_reward_trainer, preference_loss
    from textenv.toy import build_toy_tokenizer

    tokenizer = build_toy_tokenizer()
    (good,) = tokenizer(" good")["input_ids"]
    pairs = [
        PreferencePair("the movie was", " good good", " good"),  # 2 > 1: right
        PreferencePair("the movie was", " good", " bad"),  # 1 > 0: right
        PreferencePair("the day was", " bad", " good"),  # 0 < 1: wrong
        PreferencePair("the day was", " good day", " good"),  # 1 = 1, a tie: wrong
        PreferencePair("the book is", " bad", " day"),  # 0 = 0, a tie: wrong
    ]
    config = RewardModelTrainingConfig(batch_size=2, use_margin=False, progress=False, device="cpu")
    rows = encode_records(pairs, tokenizer, ("score",), config.max_length, use_margin=False)
    collator = PreferenceCollator(int(tokenizer.pad_token_id), 1)
    trainer = build_reward_trainer(_CountsToken(good), config, torch.tensor([1.0]), [], rows, collator, tmp_path)
    result = trainer.evaluate()  # batches of 2, 2 and 1: the counts add up across them
    assert result["eval_accuracy"] == 2 / 5  # ties counted as half would give 3 / 5, as right 4 / 5
    diffs = [1, 1, -1, 0, 0]  # chosen − rejected; the Bradley–Terry loss is −log σ(diff)
    assert result["eval_loss"] == pytest.approx(sum(math.log1p(math.exp(-d)) for d in diffs) / 5, rel=1e-6)
    batch = collator(rows)
    logits = _CountsToken(good)(batch["input_ids"], batch["attention_mask"]).logits
    _, gaps = preference_loss(logits, batch, torch.tensor([1.0]), rating_loss_weight=1.0)
    correct, n_pairs = int((gaps > 0).sum()), len(gaps)
    assert (correct, n_pairs) == (2, 5)
