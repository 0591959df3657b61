"""Tests of the reward-model trainer's parts: record encoding and collation, the loss, the history, the RNG rule."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from rewards import PreferenceData, PreferencePair, RatedCompletion, RewardModelTrainingConfig, train_reward_model
from rewards.training import _history
from rewards.training_data import PreferenceCollator, encode_records
from rewards.training_loop import preference_loss

from .conftest import separable_pairs


class _OneIdPerWord:
    """Stands in for a tokenizer: one id per word (its length), no special tokens."""

    def __call__(self, texts: list[str], add_special_tokens: bool = True, **kwargs: object) -> dict:
        return {"input_ids": [[len(w) for w in t.split()] for t in texts]}


def test_records_keep_their_order_and_batches_put_chosen_rejected_then_rated() -> None:
    records = [
        PreferencePair("p", "aaa", "b", margin=2.0),
        RatedCompletion("p", "cc dd", {"x": 5, "y": 1}),
        PreferencePair("p q", "e", "ffff gg"),
    ]
    rows = encode_records(records, _OneIdPerWord(), ("x", "y"), 16, use_margin=True)
    assert rows[0] == {"chosen": [1, 3], "rejected": [1, 1], "margin": 2.0}
    assert rows[1] == {"ids": [1, 2, 2], "targets": [1.0, -1.0]}
    assert rows[2] == {"chosen": [1, 1, 1], "rejected": [1, 1, 4, 2], "margin": 0.0}  # no margin: 0
    assert [r["margin"] for r in encode_records(records[:1], _OneIdPerWord(), ("x",), 16, use_margin=False)] == [0.0]

    batch = PreferenceCollator(pad_id=0, n_dims=2)(rows)
    assert batch["input_ids"].tolist() == [
        [1, 3, 0, 0],  # chosen, pair 1
        [1, 1, 1, 0],  # chosen, pair 2
        [1, 1, 0, 0],  # rejected, pair 1
        [1, 1, 4, 2],  # rejected, pair 2
        [1, 2, 2, 0],  # rated
    ]
    assert batch["attention_mask"].sum(dim=1).tolist() == [2, 3, 2, 4, 3]
    assert batch["margins"].tolist() == [2.0, 0.0]
    assert batch["rating_targets"].tolist() == [[1.0, -1.0]]
    assert PreferenceCollator(0, 3)(rows[:1])["rating_targets"].shape == (0, 3)


def test_the_loss_is_bradley_terry_with_margins_plus_the_weighted_rating_error_per_record() -> None:
    batch = {"margins": torch.tensor([1.0, 0.0]), "rating_targets": torch.tensor([[0.5, -0.5]])}
    # Rows: chosen 1, chosen 2, rejected 1, rejected 2, rated; two outputs each.
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0], [1.0, 1.0], [0.5, 0.5]])
    weights = torch.tensor([0.5, 0.5])
    loss, gaps = preference_loss(logits, batch, weights, rating_loss_weight=2.0)
    assert gaps.tolist() == [1.0, -0.5]  # totals 1, 0.5 against 0, 1; margins are not part of the gap
    pair_terms = math.log1p(math.exp(-(1.0 - 1.0))) + math.log1p(math.exp(0.5))
    rating_term = 2.0 * ((0.5 - 0.5) ** 2 + (0.5 + 0.5) ** 2) / 2
    assert float(loss) == pytest.approx((pair_terms + rating_term) / 3, rel=1e-6)
    ratings_only = {"margins": torch.zeros(0), "rating_targets": torch.tensor([[0.0, 0.0]])}
    loss, gaps = preference_loss(torch.tensor([[1.0, 3.0]]), ratings_only, weights, 1.0)
    assert (float(loss), len(gaps)) == (pytest.approx(5.0), 0)


def test_the_history_has_a_row_per_evaluation_point_with_or_without_held_out_data() -> None:
    log = [{"step": s, "loss": float(s)} for s in range(1, 8)]
    log += [{"step": 3, "eval_loss": 0.5, "eval_accuracy": 0.75}, {"step": 6, "eval_loss": 0.6}]
    history, steps = _history(log, 7, steps_per_epoch=3, eval_every=None)
    assert steps == [(s, float(s)) for s in range(1, 8)]
    assert history == [
        {"step": 3, "epoch": 1, "train_loss": 2.0, "eval_loss": 0.5, "eval_accuracy": 0.75, "best": 1.0},
        {"step": 6, "epoch": 2, "train_loss": 5.0, "eval_loss": 0.6},
    ]
    history, _ = _history(log[:7], 7, steps_per_epoch=3, eval_every=2)
    assert [(r["step"], r["epoch"], r["train_loss"]) for r in history] == [(2, 1, 1.5), (4, 2, 3.5), (6, 2, 5.5)]


def test_training_is_seeded_and_leaves_the_global_random_states_alone(tiny_lm_dir: Path, tmp_path: Path) -> None:
    data = PreferenceData(tuple(separable_pairs(24)))
    config = RewardModelTrainingConfig(epochs=2, batch_size=8, learning_rate=1e-3, eval_fraction=0.25, progress=False)
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    first = train_reward_model(data, tiny_lm_dir, tmp_path / "a", config)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    second = train_reward_model(data, tiny_lm_dir, tmp_path / "b", config)
    assert first.history == second.history  # same seed: same batches, dropout and losses
    assert first.info.training["final_eval_loss"] == second.info.training["final_eval_loss"]
