"""Rule-based rewards: scores computed from the completion's text by a fixed rule, with no model.

Each reward is a small callable class whose configuration is checked in ``__init__`` and stored as plain
attributes, so instances pickle into vectorised-env workers. They score the completion only; the prompt
and any metadata are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, get_args

import numpy as np
import numpy.typing as npt

from rewards.base import Reward
from textenv_common.checks import check_int

__all__ = ["KeywordReward", "LengthReward"]

LengthUnit = Literal["words", "chars"]
KeywordMode = Literal["count", "fraction", "any"]

# A word is a maximal run of letters, digits or underscores (Unicode-aware), so "don't" is two words.
# Completions and keywords are split by the same rule, which keeps keyword matches on whole words.
_WORD = re.compile(r"\w+")


def _check_choice(name: str, value: object, choices: tuple[str, ...], owner: str) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{owner}: {name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


class LengthReward(Reward):
    """Penalise completions whose length is far from a target length.

    The score is ``-max(0, |length - target| - tolerance) / max(target, 1)``: ``0.0`` (the best score)
    while the length is within ``tolerance`` of ``target``, and falling by ``1 / target`` per word (or
    character) beyond that. Its range is ``(-inf, 0]``; a completion of length 0 scores
    ``-(target - tolerance) / target`` at worst, so with ``target > 0`` too-short texts cost at most 1.

    Words are counted with ``str.split`` (runs of non-whitespace); characters with ``len``.

    Args:
        target: The desired length, in ``unit``. A non-negative int.
        tolerance: How far from ``target`` the length may be without any penalty. A non-negative int.
        unit: ``"words"`` or ``"chars"``.

    Raises:
        TypeError: If ``target`` or ``tolerance`` is not an int.
        ValueError: If ``target`` or ``tolerance`` is negative, or ``unit`` is not a known unit.
    """

    name: ClassVar[str] = "length"

    def __init__(self, target: int, tolerance: int = 0, unit: LengthUnit = "words") -> None:
        owner = type(self).__qualname__
        check_int(f"{owner}: target", target, 0, type_error=TypeError)
        check_int(f"{owner}: tolerance", tolerance, 0, type_error=TypeError)
        self.target = int(target)
        self.tolerance = int(tolerance)
        _check_choice("unit", unit, get_args(LengthUnit), owner)
        self.unit: LengthUnit = unit

    def length(self, text: str) -> int:
        """Return the length of ``text`` in this reward's unit."""
        return len(text.split()) if self.unit == "words" else len(text)

    def score_batch(self, prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> npt.NDArray[np.float64]:
        """Score each completion's length; see the class docstring. ``prompts`` and ``meta`` are unused."""
        lengths = np.array([self.length(c) for c in completions], dtype=np.float64)
        excess = np.maximum(0.0, np.abs(lengths - self.target) - self.tolerance)
        return 0.0 - excess / max(self.target, 1)  # 0.0 - x: a perfect score is 0.0, not -0.0

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(target={self.target}, tolerance={self.tolerance}, unit={self.unit!r})"


class KeywordReward(Reward):
    """Reward (or, with ``absent=True``, penalise) keywords appearing as whole words in the completion.

    Keywords match whole words only: ``"cat"`` matches in ``"a cat."`` but not in ``"concatenate"``. A
    keyword may be a phrase of several words (``"thank you"``), which matches those words in a row. Words
    are runs of letters, digits and underscores, in both the completion and the keywords; matches do not
    overlap and the longest keyword wins at each position.

    The score, per ``mode``:

    - ``"fraction"``: the fraction of the completion's words that belong to keyword matches, in
      ``[0, 1]``; an empty completion scores 0.
    - ``"count"``: the number of keyword matches, in ``{0, 1, 2, ...}``.
    - ``"any"``: ``1.0`` if any keyword appears, else ``0.0``.

    With ``absent=True`` the score is negated, so the keywords become a penalty with range ``[-1, 0]``
    (``"fraction"``, ``"any"``) or ``{..., -1, 0}`` (``"count"``); 0 is then the best score.

    Args:
        keywords: The words or phrases to look for; a list (stored as a tuple), not a single string.
        mode: ``"fraction"``, ``"count"`` or ``"any"``, as above.
        case_sensitive: Whether ``"Cat"`` and ``"cat"`` differ. Off by default (case-folded matching).
        absent: Negate the score, to reward completions that avoid the keywords.

    Raises:
        TypeError: If ``keywords`` is a single string or holds a non-string.
        ValueError: If ``keywords`` is empty, a keyword has no word characters, or ``mode`` is unknown.
    """

    name: ClassVar[str] = "keyword"

    def __init__(
        self,
        keywords: Sequence[str],
        mode: KeywordMode = "fraction",
        case_sensitive: bool = False,
        absent: bool = False,
    ) -> None:
        owner = type(self).__qualname__
        if isinstance(keywords, (str, bytes)):
            raise TypeError(f"{owner}: keywords must be a list of strings, got the single string {keywords!r}")
        keywords = list(keywords)
        if not keywords:
            raise ValueError(f"{owner}: keywords is empty; give at least one word or phrase to look for")
        for keyword in keywords:
            if not isinstance(keyword, str):
                raise TypeError(f"{owner}: keywords must be strings, got {type(keyword).__name__} {keyword!r}")
            if not _WORD.search(keyword):
                raise ValueError(f"{owner}: keyword {keyword!r} has no letters or digits, so it can never match a word")
        _check_choice("mode", mode, get_args(KeywordMode), owner)
        self.keywords = tuple(keywords)
        self.mode: KeywordMode = mode
        self.case_sensitive = bool(case_sensitive)
        self.absent = bool(absent)
        # Keyword phrases (as word lists) by their first word, longest first so the longest phrase wins.
        self._by_first: dict[str, list[list[str]]] = {}
        for phrase in sorted({tuple(self._words(k)) for k in self.keywords}, key=len, reverse=True):
            self._by_first.setdefault(phrase[0], []).append(list(phrase))

    def _words(self, text: str) -> list[str]:
        """Split ``text`` into words, case-folded unless the reward is case-sensitive."""
        return _WORD.findall(text if self.case_sensitive else text.casefold())

    def _matches(self, words: list[str]) -> list[int]:
        """Return the length in words of each keyword match in ``words``, left to right."""
        found: list[int] = []
        i = 0
        while i < len(words):
            for phrase in self._by_first.get(words[i], ()):
                if words[i : i + len(phrase)] == phrase:
                    found.append(len(phrase))
                    i += len(phrase)
                    break
            else:
                i += 1
        return found

    def score(self, completion: str) -> float:
        """Return the score of one completion; see the class docstring."""
        words = self._words(completion)
        matches = self._matches(words)
        if self.mode == "count":
            value = float(len(matches))
        elif self.mode == "any":
            value = 1.0 if matches else 0.0
        else:
            value = sum(matches) / len(words) if words else 0.0
        return -value if self.absent and value else value

    def score_batch(self, prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> npt.NDArray[np.float64]:
        """Score each completion; see the class docstring. ``prompts`` and ``meta`` are unused."""
        return np.array([self.score(c) for c in completions], dtype=np.float64)

    def __repr__(self) -> str:
        return (
            f"{type(self).__qualname__}(keywords={self.keywords!r}, mode={self.mode!r}, "
            f"case_sensitive={self.case_sensitive}, absent={self.absent})"
        )
