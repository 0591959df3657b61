"""Agreement, position bias and export: the numbers by hand, and the export read back by reward-model training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import rewards
from rewards.errors import LabelingError
from rewards.human import LabelStore, cohen_kappa, compute_stats, export_labels
from rewards.human.stats import wilson_interval

FULL = {"coherence": 4, "creativity": 2, "relevance": 5, "fluency": 3}


def test_cohen_kappa_matches_the_textbook_example() -> None:
    # 50 items: both "yes" 20, first yes / second no 5, first no / second yes 10, both "no" 15.
    first = ["yes"] * 25 + ["no"] * 25
    second = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(first, second) == pytest.approx(0.4)  # p_o = 0.7, p_e = 0.5
    assert cohen_kappa(["a", "b", "c"], ["a", "b", "c"]) == pytest.approx(1.0)
    assert math.isnan(cohen_kappa(["a", "a"], ["a", "a"]))  # chance agreement is 1: undefined
    with pytest.raises(ValueError, match="one category per item"):
        cohen_kappa(["a"], [])


def test_cohen_kappa_agrees_with_scikit_learn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    first = list("1122tt12t1212")
    second = list("121tt212t1122")
    assert cohen_kappa(first, second) == pytest.approx(metrics.cohen_kappa_score(first, second))


def test_wilson_interval() -> None:
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-3)
    assert high == pytest.approx(0.5962, abs=1e-3)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def _label_all(store: LabelStore, annotator: str, choices: list[str], shown: str = "12") -> None:
    for task, choice in zip(store.tasks(), choices, strict=False):
        store.add_label(task.id, annotator, choice, shown)  # type: ignore[arg-type]


def test_stats_report_counts_kappa_and_position_bias(store: LabelStore) -> None:
    _label_all(store, "alice", ["1", "1", "2", "tie", "skip", "1"])
    _label_all(store, "bob", ["1", "2", "2", "tie"])
    store.add_label(store.tasks()[5].id, "carol", "2", "21")
    store.undo("carol")
    stats = compute_stats(store)
    assert stats.tasks == 6
    assert stats.labels == 10
    assert stats.undone == 1
    assert stats.choices == {"1": 4, "2": 3, "tie": 2, "skip": 1}
    assert stats.per_annotator == {"alice": 6, "bob": 4}
    assert stats.tasks_labeled == 5
    assert stats.tasks_overlapping == 4
    (pair,) = stats.agreement
    assert pair.annotators == ("alice", "bob")
    assert pair.shared_tasks == 4
    assert pair.percent_agreement == pytest.approx(0.75)
    assert pair.kappa == pytest.approx(cohen_kappa(["1", "1", "2", "tie"], ["1", "2", "2", "tie"]))
    # every label showed completion 1 as A, so the share of A is the share of "1" among decisive labels
    assert stats.decisive == 7
    assert stats.share_a == pytest.approx(4 / 7)
    text = str(stats)
    assert "Cohen's kappa" in text
    assert "share of A" in text
    assert "alice / bob" in text
    data = stats.to_json()
    json.dumps(data)
    assert data["mean_kappa"] == pytest.approx(pair.kappa)


def test_an_annotator_who_always_picks_a_shows_as_position_biased(store: LabelStore) -> None:
    for task in store.tasks():
        store.add_label(task.id, "lazy", "1", "12")
        store.add_label(task.id, "lazy2", "2", "21")
    stats = compute_stats(store)
    assert stats.share_a == 1.0
    assert stats.share_a_ci95[0] > 0.5


def test_export_writes_pairs_and_ratings_that_training_reads(store: LabelStore, tmp_path: Path) -> None:
    tasks = store.tasks()
    store.add_label(tasks[0].id, "alice", "2", "21", ratings=(FULL, {**FULL, "fluency": 1}))
    store.add_label(tasks[1].id, "alice", "1", "12", note="obvious")
    store.add_label(tasks[2].id, "alice", "tie", "12", ratings=(None, FULL))
    store.add_label(tasks[3].id, "alice", "skip", "12", ratings=(FULL, FULL))  # ratings of a skip are dropped
    store.add_label(tasks[4].id, "alice", "1", "12")
    store.undo("alice")  # undone: not exported
    out = tmp_path / "prefs.jsonl"
    result = export_labels(store, out)
    assert (result.pairs, result.ratings, result.ties, result.skips) == (2, 3, 1, 1)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records[0]["chosen"] == tasks[0].completions[1]
    assert records[0]["rejected"] == tasks[0].completions[0]
    assert records[0]["annotator"] == "alice"
    assert records[0]["task_id"] == tasks[0].id
    assert records[0]["labeled_at"].endswith("+00:00")
    data = rewards.load_preferences(out)
    assert len(data.pairs) == 2
    assert len(data.ratings) == 3
    assert data.dimensions == ("coherence", "creativity", "relevance", "fluency")
    assert data.ratings[1].ratings["fluency"] == 1.0
    assert data.ratings[1].completion == tasks[0].completions[1]


def test_majority_export_keeps_one_pair_per_decided_task(store: LabelStore, tmp_path: Path) -> None:
    tasks = store.tasks()
    votes = {1: ["1", "2"], 2: ["tie", "tie", "1"], 3: ["2", "2", "2"], 0: ["1", "1", "2"]}
    for index, choices in votes.items():
        for annotator, choice in zip(("a", "b", "c"), choices, strict=False):
            store.add_label(tasks[index].id, annotator, choice, "12", ratings=({**FULL, "fluency": 2}, None))  # type: ignore[arg-type]
    assert store.undo("c").task_id == tasks[0].id  # type: ignore[union-attr]  # c changes their mind
    store.add_label(tasks[0].id, "c", "1", "12", ratings=({**FULL, "fluency": 5}, None))
    out = tmp_path / "majority.jsonl"
    result = export_labels(store, out, aggregate="majority")
    assert result.pairs == 2
    assert result.undecided_tasks == 2
    records = [json.loads(line) for line in out.read_text().splitlines()]
    pairs = [r for r in records if "chosen" in r]
    assert [(r["task_id"], r["chosen"]) for r in pairs] == [
        (tasks[3].id, tasks[3].completions[1]),
        (tasks[0].id, tasks[0].completions[0]),
    ]
    assert pairs[1]["votes"] == {"1": 3}
    first_rating = next(r for r in records if "ratings" in r and r["task_id"] == tasks[0].id)
    assert first_rating["ratings"]["fluency"] == pytest.approx((2 + 2 + 5) / 3)
    assert len(rewards.load_preferences(out).pairs) == 2


def test_nothing_to_export_is_an_error(store: LabelStore, tmp_path: Path) -> None:
    store.add_label(store.tasks()[0].id, "alice", "tie", "12")
    with pytest.raises(LabelingError, match=r"no label to export yet .*1 ties"):
        export_labels(store, tmp_path / "prefs.jsonl")
    assert not (tmp_path / "prefs.jsonl").exists()
    with pytest.raises(LabelingError, match="aggregate must be"):
        export_labels(store, tmp_path / "prefs.jsonl", aggregate="mean")  # type: ignore[arg-type]
