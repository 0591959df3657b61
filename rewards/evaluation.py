"""Pairwise accuracy of any reward on preference pairs, with a Wilson score interval."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rewards.preferences import PreferencePair
from rewards.registry import resolve
from textenv_common.intervals import wilson_interval

__all__ = ["PairwiseEvaluation", "evaluate_pairwise"]


@dataclass(frozen=True)
class PairwiseEvaluation:
    """Pairwise accuracy of a reward on preference pairs, with a 95% Wilson score interval.

    Attributes:
        n: Number of pairs.
        correct: Pairs where the chosen completion scored higher.
        ties: Pairs where both scored the same (each counts as half correct).
        accuracy: ``(correct + ties / 2) / n``.
        ci_low: Lower end of the 95% interval.
        ci_high: Upper end of the 95% interval.
        mean_margin: Mean of ``score(chosen) − score(rejected)``.
    """

    n: int
    correct: int
    ties: int
    accuracy: float
    ci_low: float
    ci_high: float
    mean_margin: float

    def __str__(self) -> str:
        return (
            f"pairwise accuracy {self.accuracy:.1%} (95% CI {self.ci_low:.1%} to {self.ci_high:.1%}) on "
            f"{self.n} pairs; {self.ties} ties; mean margin {self.mean_margin:+.3f}"
        )


def evaluate_pairwise(
    reward: Callable[..., Any], pairs: Sequence[PreferencePair], batch_size: int = 64
) -> PairwiseEvaluation:
    """Score both sides of each pair with ``reward`` and return the pairwise accuracy.

    Any reward works (a ``LearnedReward``, a built-in, your function), called in batches of
    ``batch_size`` pairs.

    Raises:
        ValueError: If ``pairs`` is empty.
        InvalidRewardOutputError: If the reward returns a bad score (it is wrapped in a ``ValidatedReward``).
    """
    if not pairs:
        raise ValueError("evaluate_pairwise needs at least one pair")
    checked = resolve(reward)
    margins = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        prompts = [p.prompt for p in chunk]
        scores = checked(prompts * 2, [p.chosen for p in chunk] + [p.rejected for p in chunk])
        margins.append(scores[: len(chunk)] - scores[len(chunk) :])
    margin = np.concatenate(margins)
    correct = int((margin > 0).sum())
    ties = int((margin == 0).sum())
    accuracy = (correct + 0.5 * ties) / len(margin)
    low, high = wilson_interval(correct + 0.5 * ties, len(margin))
    return PairwiseEvaluation(len(margin), correct, ties, accuracy, low, high, float(margin.mean()))
