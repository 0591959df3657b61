"""Offensive-language penalty from ``alt-profanity-check``, a small trained classifier that ships its model.

The package holds a linear SVM (calibrated to probabilities) over a TF-IDF vocabulary, trained on
labelled offensive and clean text, so it runs offline and fast on a CPU. It lives in the optional extra
``textenv[offensive]`` and is imported only when an ``OffensiveLanguage`` reward is built.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from rewards.base import Reward
from rewards.errors import MissingDependencyError

__all__ = ["OffensiveLanguage"]


def _predict_prob() -> Any:
    """Import and return ``profanity_check.predict_prob``, or raise naming the extra to install."""
    try:
        from profanity_check import predict_prob
    except ImportError as exc:
        raise MissingDependencyError(
            'The "offensive" reward (OffensiveLanguage) needs the alt-profanity-check package, which is '
            f'not installed ({exc}). Install it with: pip install "textenv[offensive]"'
        ) from exc
    return predict_prob


class OffensiveLanguage(Reward):
    """Penalise offensive completions by the probability that they are offensive.

    The score is ``-scale * p``, where ``p`` in ``[0, 1]`` is alt-profanity-check's probability that the
    completion is offensive or profane. So its range is ``[-scale, 0]``, and 0 is the best score. The
    prompt is ignored: a rude prompt does not cost a polite answer anything. An empty completion gets the
    classifier's probability for empty text (low).

    The classifier is looked up on the first call (it is module-level state of the package, loaded once
    per process) and is never pickled, so a copy sent to a worker process finds it there.

    Args:
        scale: Weight of the penalty, a finite float ``>= 0``.

    Raises:
        ValueError: If ``scale`` is negative or not finite.
        MissingDependencyError: If ``alt-profanity-check`` is not installed (the message says
            ``pip install "textenv[offensive]"``).
    """

    name: ClassVar[str] = "offensive"

    def __init__(self, scale: float = 1.0) -> None:
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
            raise ValueError(f"{type(self).__name__}: scale must be a finite number, got {scale!r}")
        if scale < 0:
            raise ValueError(f"{type(self).__name__}: scale must be >= 0 (it weights a penalty), got {scale}")
        _predict_prob()  # fail when the env is built, not at the end of its first episode
        self.scale = float(scale)

    def probability(self, completions: Sequence[str]) -> npt.NDArray[np.float64]:
        """Return the probability that each completion is offensive, in ``[0, 1]``."""
        return np.asarray(_predict_prob()(list(completions)), dtype=np.float64).reshape(len(completions))

    def score_batch(self, prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> npt.NDArray[np.float64]:
        """Return ``-scale * p(offensive)`` for each completion; see the class docstring."""
        if len(completions) == 0:
            return np.zeros(0, dtype=np.float64)
        return 0.0 - self.scale * self.probability(completions)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scale={self.scale})"
