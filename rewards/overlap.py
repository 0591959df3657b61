"""Reference overlap: ROUGE between the completion and a reference text, from Google's ``rouge-score``.

ROUGE counts shared n-grams (``rouge1``, ``rouge2``) or the longest common subsequence (``rougeL``)
between a candidate and a reference; it is the usual automatic score of summaries (for example TL;DR
completions against a human summary). The package lives in the optional extra ``textenv[rouge]`` and is
imported only when a ``RougeReward`` is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal, get_args

import numpy as np
import numpy.typing as npt

from rewards._util import meta_column
from rewards.base import Reward
from rewards.errors import MissingDependencyError, RewardInputError

__all__ = ["RougeReward"]

RougeType = Literal["rouge1", "rouge2", "rougeL", "rougeLsum"]
RougeMeasure = Literal["fmeasure", "precision", "recall"]


def _scorer_class() -> Any:
    try:
        from rouge_score.rouge_scorer import RougeScorer
    except ImportError as exc:
        raise MissingDependencyError(
            f'The "rouge" reward (RougeReward) needs the rouge-score package, which is not installed '
            f'({exc}). Install it with: pip install "textenv[rouge]"'
        ) from exc
    return RougeScorer


class RougeReward(Reward):
    """Score each completion by its ROUGE overlap with a reference, in ``[0, 1]``.

    The reference is the fixed ``reference`` given here, or else the per-pair field ``reference_key``
    (default ``"reference"``) that the env passes from the prompt's record. A per-pair value may be one
    string or a list of strings; with several references the best score counts. A pair without a
    reference is a ``RewardInputError``. Text is lower-cased and tokenised on non-alphanumerics by
    ``rouge-score`` (so it is meant for English), optionally with Porter stemming.

    Args:
        reference: A fixed reference for every pair, or ``None`` to read it per pair.
        rouge_type: ``"rouge1"``, ``"rouge2"``, ``"rougeL"`` or ``"rougeLsum"`` (LCS over lines).
        measure: ``"fmeasure"`` (default), ``"precision"`` or ``"recall"``.
        use_stemmer: Apply Porter stemming before matching ("cats" matches "cat").
        reference_key: The per-pair field holding the reference.

    Raises:
        ValueError: If ``rouge_type`` or ``measure`` is unknown.
        MissingDependencyError: If ``rouge-score`` is not installed (the message names the extra).
    """

    name: ClassVar[str] = "rouge"

    def __init__(
        self,
        reference: str | None = None,
        rouge_type: RougeType = "rougeL",
        measure: RougeMeasure = "fmeasure",
        use_stemmer: bool = True,
        reference_key: str = "reference",
    ) -> None:
        owner = type(self).__name__
        for field, value, choices in (
            ("rouge_type", rouge_type, get_args(RougeType)),
            ("measure", measure, get_args(RougeMeasure)),
        ):
            if value not in choices:
                raise ValueError(f"{owner}: {field} must be one of {', '.join(map(repr, choices))}, got {value!r}")
        if reference is not None and not isinstance(reference, str):
            raise TypeError(f"{owner}: reference must be a str or None, got {type(reference).__name__}")
        _scorer_class()  # fail when the env is built
        self.reference = reference
        self.rouge_type: RougeType = rouge_type
        self.measure: RougeMeasure = measure
        self.use_stemmer = bool(use_stemmer)
        self.reference_key = reference_key
        self._scorer: Any = None

    def _references(self, n: int, meta: dict[str, Any]) -> list[list[str]]:
        if self.reference is not None:
            return [[self.reference]] * n
        refs: list[list[str]] = []
        for i, value in enumerate(meta_column(meta, self.reference_key, n, self.name)):
            options = [value] if isinstance(value, str) else value
            if not isinstance(options, (list, tuple)) or not options or not all(isinstance(o, str) for o in options):
                raise RewardInputError(
                    f"reward {self.name!r}: {self.reference_key}[{i}] must be a str or a non-empty list of "
                    f"str, got {type(value).__name__} {value!r:.80}"
                )
            refs.append(list(options))
        return refs

    def score_batch(self, prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> npt.NDArray[np.float64]:
        """Return each completion's ROUGE ``measure`` against its reference(s); ``prompts`` are unused."""
        if self._scorer is None:
            self._scorer = _scorer_class()([self.rouge_type], use_stemmer=self.use_stemmer)
        references = self._references(len(completions), meta)
        scores = []
        for completion, refs in zip(completions, references, strict=True):
            result = self._scorer.score_multi(refs, completion)[self.rouge_type]
            scores.append(getattr(result, self.measure))
        return np.array(scores, dtype=np.float64)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_scorer"] = None
        return state

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(reference={self.reference!r:.60}, rouge_type={self.rouge_type!r}, "
            f"measure={self.measure!r}, use_stemmer={self.use_stemmer})"
        )
