"""Statistics of a label database: counts, inter-annotator agreement (Cohen's kappa) and position bias.

**Agreement.** For every two annotators who both labeled some tasks (skips left out), Cohen's kappa over
those tasks, on the categories "completion 1 wins", "completion 2 wins" and "tie":
``κ = (p_o − p_e) / (1 − p_e)``, with ``p_o`` the share of tasks they agree on and ``p_e`` the agreement
expected by chance from each one's own category frequencies. 1 is perfect agreement, 0 is chance level.
Kappa is undefined (``nan``) when ``p_e = 1`` (both gave one and the same category to every shared task).
With more than two annotators, ``mean_kappa`` averages the pairs (Light's kappa).

**Position bias.** With the display order drawn per annotator and task (``rewards.human.tasks.display_order``),
the share of decisive labels (ties and skips left out) that went to the completion shown as "A" should be
near 0.5; ``share_a`` reports it with a 95% Wilson interval, so a bias shows as an interval that excludes 0.5.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rewards.human.store import Label, LabelStore
from textenv_common.intervals import wilson_interval

__all__ = ["AgreementStats", "LabelStats", "cohen_kappa", "compute_stats", "wilson_interval"]


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float:
    """Cohen's kappa of two raters' categories for the same items (``nan`` where undefined).

    Raises:
        ValueError: If the two sequences differ in length or are empty.
    """
    if len(first) != len(second):
        raise ValueError(f"cohen_kappa needs one category per item from each rater; got {len(first)} and {len(second)}")
    n = len(first)
    if n == 0:
        raise ValueError("cohen_kappa needs at least one item rated by both raters")
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    count_a, count_b = Counter(first), Counter(second)
    expected = sum(count_a[c] * count_b[c] for c in count_a) / (n * n)
    if expected >= 1.0:
        return math.nan
    return (observed - expected) / (1.0 - expected)


@dataclass(frozen=True)
class AgreementStats:
    """Agreement of two annotators on the tasks both labeled (skips left out)."""

    annotators: tuple[str, str]
    shared_tasks: int
    percent_agreement: float
    kappa: float


@dataclass(frozen=True)
class LabelStats:
    """What ``textenv label stats`` reports; see the module docstring."""

    tasks: int
    labels: int
    """Current labels (each annotator's latest per task, undone ones left out), skips included."""
    choices: dict[str, int]
    """Current labels per choice: ``"1"``, ``"2"``, ``"tie"``, ``"skip"``."""
    per_annotator: dict[str, int]
    tasks_labeled: int
    """Tasks with at least one label that is not a skip."""
    tasks_overlapping: int
    """Tasks labeled (not skipped) by two or more annotators."""
    ratings: int
    """Rated completions."""
    undone: int
    decisive: int
    share_a: float
    share_a_ci95: tuple[float, float]
    agreement: list[AgreementStats] = field(default_factory=list)
    mean_kappa: float = math.nan

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``nan`` becomes ``None``)."""

        def clean(value: Any) -> Any:
            if isinstance(value, float) and math.isnan(value):
                return None
            if isinstance(value, (list, tuple)):
                return [clean(v) for v in value]
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            return value

        data = dict(self.__dict__)
        data["agreement"] = [dict(a.__dict__) for a in self.agreement]
        return dict(clean(data))

    def __str__(self) -> str:
        def pct(x: float) -> str:
            return "n/a" if math.isnan(x) else f"{x:.1%}"

        lines = [
            f"tasks: {self.tasks} ({self.tasks_labeled} labeled, {self.tasks_overlapping} by two or more annotators)",
            f"labels: {self.labels} current ({self.undone} undone): completion 1 {self.choices.get('1', 0)}, "
            f"completion 2 {self.choices.get('2', 0)}, tie {self.choices.get('tie', 0)}, "
            f"skip {self.choices.get('skip', 0)}; rated completions: {self.ratings}",
            "per annotator: " + (", ".join(f"{a} {n}" for a, n in self.per_annotator.items()) or "none"),
            f"position bias: share of A among {self.decisive} decisive labels {pct(self.share_a)} "
            f"(95% CI {pct(self.share_a_ci95[0])} to {pct(self.share_a_ci95[1])}; 50% means no bias)",
        ]
        if not self.agreement:
            lines.append("agreement: no task labeled by two annotators yet")
        for a in self.agreement:
            kappa = "n/a" if math.isnan(a.kappa) else f"{a.kappa:.3f}"
            lines.append(
                f"agreement {a.annotators[0]} / {a.annotators[1]}: Cohen's kappa {kappa}, "
                f"{pct(a.percent_agreement)} agree, on {a.shared_tasks} shared tasks"
            )
        if len(self.agreement) > 1:
            mean = "n/a" if math.isnan(self.mean_kappa) else f"{self.mean_kappa:.3f}"
            lines.append(f"mean kappa over annotator pairs: {mean}")
        return "\n".join(lines)


def compute_stats(store: LabelStore) -> LabelStats:
    """Counts, agreement and position bias of the labels in ``store``."""
    labels = store.labels()
    undone = sum(1 for label in store.labels(include_undone=True, latest_only=False) if label.undone_at is not None)
    choices = Counter(label.choice for label in labels)
    per_annotator = dict(sorted(Counter(label.annotator for label in labels).items()))
    judged = [label for label in labels if label.choice != "skip"]
    by_task: dict[str, dict[str, Label]] = {}
    for label in judged:
        by_task.setdefault(label.task_id, {})[label.annotator] = label
    decisive = [label for label in judged if label.chose_first_shown is not None]
    first = sum(1 for label in decisive if label.chose_first_shown)
    agreement = _agreement(by_task)
    kappas = [a.kappa for a in agreement if not math.isnan(a.kappa)]
    return LabelStats(
        tasks=store.count_tasks(),
        labels=len(labels),
        choices={c: choices.get(c, 0) for c in ("1", "2", "tie", "skip")},
        per_annotator=per_annotator,
        tasks_labeled=len(by_task),
        tasks_overlapping=sum(1 for votes in by_task.values() if len(votes) > 1),
        ratings=sum((label.ratings_1 is not None) + (label.ratings_2 is not None) for label in labels),
        undone=undone,
        decisive=len(decisive),
        share_a=first / len(decisive) if decisive else math.nan,
        share_a_ci95=wilson_interval(first, len(decisive)),
        agreement=agreement,
        mean_kappa=sum(kappas) / len(kappas) if kappas else math.nan,
    )


def _agreement(by_task: dict[str, dict[str, Label]]) -> list[AgreementStats]:
    annotators = sorted({a for votes in by_task.values() for a in votes})
    result = []
    for x, y in itertools.combinations(annotators, 2):
        shared = [(votes[x].choice, votes[y].choice) for votes in by_task.values() if x in votes and y in votes]
        if not shared:
            continue
        first, second = [a for a, _ in shared], [b for _, b in shared]
        agree = sum(a == b for a, b in shared) / len(shared)
        result.append(AgreementStats((x, y), len(shared), agree, cohen_kappa(first, second)))
    return result
