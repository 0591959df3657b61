"""Export human labels to the JSON Lines that reward-model training reads (``rewards.load_preferences``).

- A label that picks a completion becomes a pair ``{"prompt", "chosen", "rejected"}``.
- A rated completion becomes ``{"prompt", "completion", "ratings": {"coherence", "creativity", "relevance",
  "fluency"}}``.
- Ties say that neither completion is better, so they are not pairs (the Bradley–Terry loss has no term for
  them); skips are not exported at all. Ratings given with a tie are exported.

Each record also carries provenance fields that training ignores: ``task_id`` and, per label, ``annotator``
and ``labeled_at`` (ISO 8601, UTC).

``aggregate="all"`` (the default) writes one record per annotator's label: every judgement is a training
example, and a pair two annotators disagree on appears once each way, which is how the Bradley–Terry model
sees annotator noise. ``aggregate="majority"`` writes one pair per task that a strict plurality of its
annotators decided for one completion (a plurality of ties, or an even split, gives no pair), with the
``votes``, and per rated completion the mean of its ratings.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from rewards.errors import LabelingError
from rewards.human.store import DIMENSIONS, Label, LabelStore
from rewards.human.tasks import LabelTask
from rewards.preferences import PreferencePair, RatedCompletion, write_jsonl

__all__ = ["Aggregate", "ExportResult", "export_labels", "export_records"]

Aggregate = Literal["all", "majority"]


@dataclass(frozen=True)
class ExportResult:
    """How many records an export wrote, and what it left out."""

    pairs: int
    ratings: int
    ties: int
    skips: int
    undecided_tasks: int = 0
    """``aggregate="majority"`` only: tasks whose votes had no strict plurality for one completion."""


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="seconds")


def _pair(task: LabelTask, winner: str) -> dict[str, Any]:
    chosen, rejected = task.completions if winner == "1" else task.completions[::-1]
    # PreferencePair validates the texts exactly as training will read them.
    return PreferencePair(task.prompt, chosen, rejected).to_json()


def _rating(task: LabelTask, index: int, ratings: dict[str, float]) -> dict[str, Any]:
    return RatedCompletion(task.prompt, task.completions[index], ratings).to_json()


def export_records(store: LabelStore, aggregate: Aggregate = "all") -> tuple[list[dict[str, Any]], ExportResult]:
    """The records ``export_labels`` writes (pairs first, then ratings), and their counts."""
    if aggregate not in ("all", "majority"):
        raise LabelingError(f"aggregate must be 'all' or 'majority', got {aggregate!r}")
    tasks = {task.id: task for task in store.tasks()}
    labels = store.labels()
    counts = Counter(label.choice for label in labels)
    judged = [label for label in labels if label.choice != "skip"]
    if aggregate == "all":
        pairs, ratings = list(_each_label(judged, tasks)), list(_each_rating(judged, tasks))
        undecided = 0
    else:
        pairs, ratings, undecided = _majority(judged, tasks)
    result = ExportResult(len(pairs), len(ratings), counts.get("tie", 0), counts.get("skip", 0), undecided)
    return pairs + ratings, result


def _each_label(labels: list[Label], tasks: dict[str, LabelTask]) -> Iterator[dict[str, Any]]:
    for label in labels:
        if label.choice in ("1", "2"):
            provenance = {"task_id": label.task_id, "annotator": label.annotator, "labeled_at": _iso(label.created_at)}
            yield {**_pair(tasks[label.task_id], label.choice), **provenance}


def _each_rating(labels: list[Label], tasks: dict[str, LabelTask]) -> Iterator[dict[str, Any]]:
    for label in labels:
        for index, rated in enumerate((label.ratings_1, label.ratings_2)):
            if rated is not None:
                provenance = {
                    "task_id": label.task_id,
                    "annotator": label.annotator,
                    "labeled_at": _iso(label.created_at),
                }
                yield {**_rating(tasks[label.task_id], index, {k: float(v) for k, v in rated.items()}), **provenance}


def _majority(
    labels: list[Label], tasks: dict[str, LabelTask]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    by_task: dict[str, list[Label]] = {}
    for label in labels:
        by_task.setdefault(label.task_id, []).append(label)
    pairs, ratings, undecided = [], [], 0
    for task_id, votes in by_task.items():
        task = tasks[task_id]
        tally = Counter(label.choice for label in votes)
        (top, n_top), *rest = tally.most_common()
        if top in ("1", "2") and (not rest or rest[0][1] < n_top):
            pairs.append({**_pair(task, top), "task_id": task_id, "votes": dict(tally), "annotators": len(votes)})
        elif any(label.choice in ("1", "2") for label in votes):
            undecided += 1
        for index in (0, 1):
            rated = [r for r in ((v.ratings_1, v.ratings_2)[index] for v in votes) if r is not None]
            if rated:
                mean = {d: sum(r[d] for r in rated) / len(rated) for d in DIMENSIONS}
                ratings.append({**_rating(task, index, mean), "task_id": task_id, "annotators": len(rated)})
    return pairs, ratings, undecided


def export_labels(store: LabelStore, path: str | os.PathLike[str], *, aggregate: Aggregate = "all") -> ExportResult:
    """Write the labels of ``store`` as preference JSONL at ``path``, atomically (see the module docstring).

    Raises:
        LabelingError: If there is nothing to export: no label picks a completion and none rates one.
    """
    records, result = export_records(store, aggregate)
    if not records:
        raise LabelingError(
            f"{store.path} has no label to export yet ({result.ties} ties and {result.skips} skips, which are not "
            "preference pairs; undecided tasks under majority vote: "
            f"{result.undecided_tasks}); label some pairs first"
        )
    write_jsonl(path, records)
    return result
