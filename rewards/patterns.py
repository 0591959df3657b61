"""More rule rewards: regular expressions, repetition (distinct-n) and output format.

Like the rewards in ``rewards.rules`` (length, keyword), these score the completion's text by a fixed rule,
with no model; the prompt and metadata are ignored. Each is a small callable class with plain attributes
(a compiled pattern pickles as its source and flags), so it travels to vectorised-env workers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, get_args

import numpy as np
import numpy.typing as npt

from rewards.base import Reward
from textenv_common.checks import check_int

__all__ = ["FormatReward", "RegexReward", "RepetitionReward"]

RegexMode = Literal["present", "absent", "count"]
FormatKind = Literal["json", "sentence", "bullets", "numbered", "single_line", "regex"]

_WORD = re.compile(r"\w+")
_FLAG_LETTERS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}


def _check_choice(name: str, value: object, choices: tuple[str, ...], owner: str) -> None:
    if value not in choices:
        raise ValueError(f"{owner}: {name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _compile(pattern: object, flags: str, owner: str) -> re.Pattern[str]:
    """Compile ``pattern`` with flags given as letters (``"i"``, ``"ms"``), or raise naming ``owner``."""
    if not isinstance(pattern, str):
        raise TypeError(f"{owner}: pattern must be a str, got {type(pattern).__name__} {pattern!r}")
    if not isinstance(flags, str) or any(letter not in _FLAG_LETTERS for letter in flags):
        raise ValueError(
            f"{owner}: flags must be a string of the letters {''.join(_FLAG_LETTERS)} "
            f"(ignorecase, multiline, dotall, verbose), got {flags!r}"
        )
    value = 0
    for letter in flags:
        value |= _FLAG_LETTERS[letter]
    try:
        return re.compile(pattern, value)
    except re.error as exc:
        raise ValueError(f"{owner}: pattern {pattern!r} is not a valid regular expression: {exc}") from None


class RegexReward(Reward):
    """Reward the presence, or the absence, of a regular-expression match in the completion.

    The score, per ``mode``:

    - ``"present"``: ``1.0`` if the pattern matches anywhere (``re.search``), else ``0.0``.
    - ``"absent"``: ``0.0`` if it does not match, else ``-1.0`` (a penalty; 0 is the best score).
    - ``"count"``: the number of non-overlapping matches (``re.findall``), in ``{0, 1, 2, ...}``.

    Args:
        pattern: A Python regular expression, e.g. ``r"\\bthank(s| you)\\b"``.
        mode: ``"present"``, ``"absent"`` or ``"count"``, as above.
        flags: Regex flags as letters: ``"i"`` (ignore case), ``"m"`` (multiline), ``"s"`` (dot matches
            newlines), ``"x"`` (verbose). Letters, not ``re`` constants, so the config fits in YAML.

    Raises:
        TypeError: If ``pattern`` is not a string.
        ValueError: If ``pattern`` does not compile, or ``mode`` or ``flags`` is unknown.
    """

    name: ClassVar[str] = "regex"

    def __init__(self, pattern: str, mode: RegexMode = "present", flags: str = "") -> None:
        owner = type(self).__qualname__
        self._regex = _compile(pattern, flags, owner)
        _check_choice("mode", mode, get_args(RegexMode), owner)
        self.pattern = pattern
        self.mode: RegexMode = mode
        self.flags = flags

    def score(self, completion: str) -> float:
        """Return the score of one completion; see the class docstring."""
        if self.mode == "count":
            return float(sum(1 for _ in self._regex.finditer(completion)))
        found = self._regex.search(completion) is not None
        if self.mode == "present":
            return 1.0 if found else 0.0
        return -1.0 if found else 0.0

    def score_batch(self, prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> npt.NDArray[np.float64]:
        """Score each completion; ``prompts`` and ``meta`` are unused."""
        return np.array([self.score(c) for c in completions], dtype=np.float64)

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(pattern={self.pattern!r}, mode={self.mode!r}, flags={self.flags!r})"


class RepetitionReward(Reward):
    """Penalise repeated word n-grams in the completion (distinct-n).

    distinct-n is the number of distinct word n-grams divided by the number of n-grams; it is 1 when no
    n-gram repeats and falls towards 0 as the text loops ("the the the ..."). The score is
    ``distinct_n - 1``, in ``[-1, 0]``: 0 (the best score) for text without repeats, and for a text too
    short to hold two n-grams (nothing can repeat in it; pair with ``"length"`` to stop the policy from
    escaping the penalty by writing nothing).

    Words are runs of letters, digits and underscores, compared case-folded unless ``case_sensitive``.

    Args:
        n: The n-gram size, at least 1 (``n=1`` counts repeated words, ``n=2`` repeated word pairs, ...).
        case_sensitive: Whether ``"The"`` and ``"the"`` are different words.

    Raises:
        TypeError: If ``n`` is not an int.
        ValueError: If ``n`` is below 1.
    """

    name: ClassVar[str] = "repetition"

    def __init__(self, n: int = 2, case_sensitive: bool = False) -> None:
        owner = type(self).__qualname__
        check_int(f"{owner}: n", n, 1, type_error=TypeError)
        self.n = int(n)
        self.case_sensitive = bool(case_sensitive)

    def distinct_n(self, text: str) -> float:
        """Return distinct-n of ``text`` (1.0 when it holds fewer than two n-grams)."""
        words = _WORD.findall(text if self.case_sensitive else text.casefold())
        grams = [tuple(words[i : i + self.n]) for i in range(len(words) - self.n + 1)]
        if len(grams) < 2:
            return 1.0
        return len(set(grams)) / len(grams)

    def score_batch(self, prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> npt.NDArray[np.float64]:
        """Score each completion as ``distinct_n - 1``; ``prompts`` and ``meta`` are unused."""
        return np.array([self.distinct_n(c) - 1.0 for c in completions], dtype=np.float64)

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(n={self.n}, case_sensitive={self.case_sensitive})"


class FormatReward(Reward):
    """Reward completions whose whole text has a given format: ``1.0`` if it does, else ``0.0``.

    Leading and trailing whitespace is ignored. The formats (``kind``):

    - ``"json"``: the text parses as a JSON object or array (``json.loads``).
    - ``"sentence"``: one or more sentences: starts with an upper-case letter (or a digit or quote) and
      ends with ``.``, ``!`` or ``?`` (optionally followed by a closing quote or bracket).
    - ``"bullets"``: every non-empty line starts with ``-``, ``*`` or ``•`` and a space.
    - ``"numbered"``: every non-empty line starts with a number and ``.`` or ``)``, numbered 1, 2, 3, ...
    - ``"single_line"``: non-empty and without a line break.
    - ``"regex"``: ``pattern`` matches the whole text (``re.fullmatch``).

    An empty (or all-whitespace) completion never has the format. With ``penalty=True`` the score is
    ``0.0`` for a completion in format and ``-1.0`` otherwise, so the best score is 0 as for the other
    penalties.

    Args:
        kind: One of the formats above.
        pattern: The regular expression for ``kind="regex"``; must be ``None`` for the other kinds.
        flags: Regex flags as letters (see ``RegexReward``), for ``kind="regex"``.
        penalty: Score ``{-1, 0}`` instead of ``{0, 1}``.

    Raises:
        ValueError: If ``kind`` is unknown, ``pattern`` is missing for ``"regex"`` or given for another
            kind, or does not compile.
    """

    name: ClassVar[str] = "format"

    def __init__(self, kind: FormatKind, pattern: str | None = None, flags: str = "", penalty: bool = False) -> None:
        owner = type(self).__qualname__
        _check_choice("kind", kind, get_args(FormatKind), owner)
        if kind == "regex" and pattern is None:
            raise ValueError(f"{owner}: kind='regex' needs a pattern, e.g. pattern=r'[A-Z].*\\.'")
        if kind != "regex" and pattern is not None:
            raise ValueError(f"{owner}: pattern is only used with kind='regex', got kind={kind!r}")
        self._regex = _compile(pattern, flags, owner) if pattern is not None else None
        self.kind: FormatKind = kind
        self.pattern = pattern
        self.flags = flags
        self.penalty = bool(penalty)

    def matches(self, completion: str) -> bool:
        """Return whether ``completion`` has this reward's format."""
        text = completion.strip()
        if not text:
            return False
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if self.kind == "json":
            try:
                return isinstance(json.loads(text), (dict, list))
            except ValueError:
                return False
        if self.kind == "sentence":
            return re.fullmatch(r"[\"'(\[]?[A-Z0-9].*[.!?][\"')\]]?", text, re.DOTALL) is not None
        if self.kind == "bullets":
            return all(re.match(r"[-*•] \S", line) for line in lines)
        if self.kind == "numbered":
            numbers = [re.match(r"(\d+)[.)] \S", line) for line in lines]
            return all(m is not None and int(m.group(1)) == i for i, m in enumerate(numbers, start=1))
        if self.kind == "single_line":
            return "\n" not in text and "\r" not in text
        return self._regex is not None and self._regex.fullmatch(text) is not None

    def score_batch(self, prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> npt.NDArray[np.float64]:
        """Score each completion; ``prompts`` and ``meta`` are unused."""
        hits = np.array([self.matches(c) for c in completions], dtype=np.float64)
        return hits - 1.0 if self.penalty else hits

    def __repr__(self) -> str:
        extra = f", pattern={self.pattern!r}, flags={self.flags!r}" if self.kind == "regex" else ""
        return f"{type(self).__qualname__}(kind={self.kind!r}{extra}, penalty={self.penalty})"
