"""Sentiment reward from VADER, a lexicon- and rule-based sentiment scorer that ships its own lexicon.

VADER needs no model download and no GPU, which makes it the usual first reward for "make the model
write positive text". It lives in the optional extra ``textenv[sentiment]`` (package ``vaderSentiment``),
imported only when a ``VaderSentiment`` reward is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal, get_args

import numpy as np
import numpy.typing as npt

from rewards.base import Reward
from rewards.errors import MissingDependencyError

__all__ = ["VaderSentiment"]

VaderField = Literal["compound", "pos", "neg", "neu"]


def _analyzer_class() -> Any:
    """Import and return VADER's ``SentimentIntensityAnalyzer``, or raise naming the extra to install."""
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError as exc:
        raise MissingDependencyError(
            'The "sentiment" reward (VaderSentiment) needs the vaderSentiment package, which is not '
            f'installed ({exc}). Install it with: pip install "textenv[sentiment]"'
        ) from exc
    return SentimentIntensityAnalyzer


class VaderSentiment(Reward):
    """Score the sentiment of each completion with VADER.

    Only the completion is scored: the prompt and any metadata are ignored, so a negative prompt does
    not pull down the score of a positive answer.

    The score is one field of VADER's ``polarity_scores``:

    - ``"compound"`` (default): overall sentiment, normalised to ``[-1, 1]``; above 0 is positive.
    - ``"pos"``, ``"neg"``, ``"neu"``: the share of the text that is positive, negative or neutral,
      each in ``[0, 1]``. Note that ``"neg"`` grows with negativity, so use it as a penalty.

    The analyzer (which loads VADER's lexicon) is created on the first call and is not pickled: a copy
    sent to a worker process rebuilds it there.

    Args:
        field: Which VADER score to return.

    Raises:
        ValueError: If ``field`` is not one of the four above.
        MissingDependencyError: If ``vaderSentiment`` is not installed (an ``ImportError`` whose message
            says ``pip install "textenv[sentiment]"``).
    """

    name: ClassVar[str] = "sentiment"

    def __init__(self, field: VaderField = "compound") -> None:
        choices = get_args(VaderField)
        if field not in choices:
            raise ValueError(
                f"{type(self).__name__}: field must be one of {', '.join(map(repr, choices))}, got {field!r}"
            )
        _analyzer_class()  # fail when the env is built, not at the end of its first episode
        self.field: VaderField = field
        self._analyzer: Any = None

    def score_batch(self, prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> npt.NDArray[np.float64]:
        """Return VADER's ``field`` score of each completion; see the class docstring."""
        if self._analyzer is None:
            self._analyzer = _analyzer_class()()
        return np.array([self._analyzer.polarity_scores(c)[self.field] for c in completions], dtype=np.float64)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_analyzer"] = None  # the lexicon is large and cheap to reload
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}(field={self.field!r})"
