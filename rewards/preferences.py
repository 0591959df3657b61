"""Preference data for reward-model training: pairwise comparisons and 1–5 ratings, read from files.

**Native formats** (JSON Lines, one object per line; blank lines are skipped):

- a pair: ``{"prompt": ..., "chosen": ..., "rejected": ...}``, optionally with ``"margin": float`` (how
  much better ``chosen`` is; used by the margin loss);
- a rating: ``{"prompt": ..., "completion": ..., "ratings": {"coherence": 4, "creativity": 2, ...}}``,
  each rating a number from 1 to 5 (any set of dimensions, the same on every line; the labeling page and
  this project use ``coherence``, ``creativity``, ``relevance`` and ``fluency``).

Other fields are ignored, so a file may carry scores or ids along.

**Adapters** for two common public shapes, applied per record by ``load_preferences``:

- ``{"conversations": [{"from": "human", "value": ...}, ...], "chosen": {"from": "gpt", "value": ...},
  "rejected": {...}}`` (LLaMA-Factory, ShareGPT style; ``role``/``content`` keys work too; ``chosen`` may be
  a plain string): see ``from_conversations``.
- ``{"Question": "Human: ...", "Answer1": "Assistant: ...", "Answer2": "Assistant: ...",
  "Preference": "Answer1"}`` (Anthropic HH style): see ``from_question_answers``.

Both render a dialogue as ``"Human: ...\\n\\nAssistant: "``, so the prompt ends where the answer starts:
the reward model reads the prompt followed directly by the completion, as the env produces them (see
``rewards.learned``). Files may be ``.jsonl`` or a ``.json`` array of the same objects.

**Bad input** raises ``PreferenceDataError`` naming the file and line (or array item): malformed JSON, a
missing or non-string field, an empty (or whitespace-only) prompt or text, a pair whose chosen and
rejected texts are identical, ratings outside 1–5. With ``skip_bad_lines=True`` such records are skipped
and counted instead (``PreferenceData.skipped``); a file without a single good record is still an error.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from rewards.errors import PreferenceDataError
from textenv_common.atomic import atomic_file

__all__ = [
    "PreferenceData",
    "PreferencePair",
    "RatedCompletion",
    "RecordFormat",
    "from_conversations",
    "from_question_answers",
    "load_preferences",
    "parse_record",
    "write_jsonl",
]

RecordFormat = Literal["auto", "pairs", "ratings", "conversations", "qa"]

RATING_MIN = 1.0
RATING_MAX = 5.0

_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json-lines")
_ROLES = {
    "human": "Human",
    "user": "Human",
    "gpt": "Assistant",
    "assistant": "Assistant",
    "model": "Assistant",
    "bot": "Assistant",
    "system": "System",
}


def _text(value: object, what: str) -> str:
    """Return ``value`` if it is a string with a non-space character, else raise naming ``what``."""
    if not isinstance(value, str):
        raise PreferenceDataError(f"{what} must be a string, got {type(value).__name__} {value!r:.60}")
    if not value.strip():
        raise PreferenceDataError(f"{what} is empty; every prompt and text must hold some text")
    return value


@dataclass(frozen=True)
class PreferencePair:
    """One comparison: for ``prompt``, the completion ``chosen`` was preferred to ``rejected``.

    Attributes:
        prompt: The prompt (the reward model reads the prompt, then the completion).
        chosen: The preferred completion.
        rejected: The other completion; must differ from ``chosen``.
        margin: How strongly ``chosen`` is preferred (a finite number >= 0), or ``None``; used by the
            margin loss ``-log σ(r_chosen − r_rejected − margin)``.

    Raises:
        PreferenceDataError: If a text is not a non-empty string, the two completions are identical, or
            ``margin`` is not a finite non-negative number.
    """

    prompt: str
    chosen: str
    rejected: str
    margin: float | None = None

    def __post_init__(self) -> None:
        _text(self.prompt, "'prompt'")
        _text(self.chosen, "'chosen'")
        _text(self.rejected, "'rejected'")
        if self.chosen == self.rejected:
            raise PreferenceDataError(
                "'chosen' and 'rejected' are the same text, which says nothing about which is better; "
                "drop the pair (or record it as a tie elsewhere)"
            )
        if self.margin is not None:
            m = self.margin
            if isinstance(m, bool) or not isinstance(m, (int, float)) or not math.isfinite(m) or m < 0:
                raise PreferenceDataError(f"'margin' must be a finite number >= 0 or absent, got {m!r}")
            object.__setattr__(self, "margin", float(m))

    def to_json(self) -> dict[str, Any]:
        """Return the native JSON object of this pair."""
        record: dict[str, Any] = {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}
        if self.margin is not None:
            record["margin"] = self.margin
        return record


@dataclass(frozen=True)
class RatedCompletion:
    """One completion rated from 1 to 5 on one or more dimensions.

    Attributes:
        prompt: The prompt.
        completion: The rated completion.
        ratings: Rating per dimension name, each a number in ``[1, 5]`` (stored as float, in a plain dict).

    Raises:
        PreferenceDataError: If a text is empty, ``ratings`` is empty, or a rating is not a number in 1–5.
    """

    prompt: str
    completion: str
    ratings: Mapping[str, float] = field(hash=False)

    def __post_init__(self) -> None:
        _text(self.prompt, "'prompt'")
        _text(self.completion, "'completion'")
        if not isinstance(self.ratings, Mapping) or not self.ratings:
            raise PreferenceDataError(
                f"'ratings' must be a non-empty object such as {{'coherence': 4, 'fluency': 5}}, "
                f"got {self.ratings!r:.60}"
            )
        clean: dict[str, float] = {}
        for name, value in self.ratings.items():
            if not isinstance(name, str) or not name:
                raise PreferenceDataError(f"rating names must be non-empty strings, got {name!r}")
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or not RATING_MIN <= value <= RATING_MAX:
                raise PreferenceDataError(
                    f"rating {name!r} is {value!r}; ratings must be numbers from {RATING_MIN:g} to {RATING_MAX:g}"
                )
            clean[name] = float(value)
        object.__setattr__(self, "ratings", clean)

    def to_json(self) -> dict[str, Any]:
        """Return the native JSON object of this rating."""
        return {"prompt": self.prompt, "completion": self.completion, "ratings": dict(self.ratings)}


@dataclass(frozen=True)
class PreferenceData:
    """The records of one or more preference files.

    Attributes:
        pairs: The pairwise comparisons, in file order.
        ratings: The rated completions, in file order.
        skipped: One message per record skipped by ``skip_bad_lines`` (file, line and reason).
        sources: The files read.
    """

    pairs: tuple[PreferencePair, ...] = ()
    ratings: tuple[RatedCompletion, ...] = ()
    skipped: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    @property
    def dimensions(self) -> tuple[str, ...]:
        """The rating dimensions, in the order of the first rating (empty without ratings)."""
        return tuple(self.ratings[0].ratings) if self.ratings else ()

    def __len__(self) -> int:
        return len(self.pairs) + len(self.ratings)

    def __add__(self, other: PreferenceData) -> PreferenceData:
        merged = PreferenceData(
            self.pairs + other.pairs,
            self.ratings + other.ratings,
            self.skipped + other.skipped,
            self.sources + other.sources,
        )
        _check_dimensions(merged.ratings, "the combined files")
        return merged


def _check_dimensions(ratings: tuple[RatedCompletion, ...], where: str) -> None:
    if not ratings:
        return
    expected = set(ratings[0].ratings)
    for i, rated in enumerate(ratings):
        if set(rated.ratings) != expected:
            raise PreferenceDataError(
                f"{where}: rating {i + 1} has the dimensions {sorted(rated.ratings)} but the first has "
                f"{sorted(expected)}; every rating must score the same dimensions"
            )


# -- adapters --------------------------------------------------------------------------------------------


def _turn_text(turn: object, what: str) -> tuple[str | None, str]:
    """Return (role, text) of a turn given as a string or a ``{from/role, value/content}`` mapping."""
    if isinstance(turn, str):
        return None, _text(turn, what)
    if not isinstance(turn, Mapping):
        raise PreferenceDataError(f"{what} must be a string or an object with 'value', got {turn!r:.60}")
    role = turn.get("from", turn.get("role"))
    value = turn.get("value", turn.get("content"))
    if value is None:
        raise PreferenceDataError(f"{what} has no 'value' (or 'content') field: {dict(turn)!r:.80}")
    return (str(role) if role is not None else None), _text(value, what)


def from_conversations(record: Mapping[str, Any]) -> PreferencePair:
    """Convert a ``{"conversations", "chosen", "rejected"}`` record (LLaMA-Factory/ShareGPT style).

    The turns are rendered as ``"<Role>: <text>"`` blocks joined by blank lines, where the role
    ``human``/``user`` becomes ``Human``, ``gpt``/``assistant`` becomes ``Assistant`` and ``system`` stays
    ``System``; the prompt then ends with ``"\\n\\nAssistant: "``. ``chosen`` and ``rejected`` (a turn
    object or a string) are the answers' texts, unchanged.

    Raises:
        PreferenceDataError: If a field is missing, malformed or empty, a role is unknown, or the two
            answers are the same.
    """
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise PreferenceDataError(f"'conversations' must be a non-empty list of turns, got {turns!r:.60}")
    blocks = []
    for i, turn in enumerate(turns):
        role, text = _turn_text(turn, f"conversations[{i}]")
        label = _ROLES.get((role or "human").lower())
        if label is None:
            raise PreferenceDataError(
                f"conversations[{i}] has the role {role!r}; expected one of {', '.join(sorted(_ROLES))}"
            )
        blocks.append(f"{label}: {text}")
    answers = []
    for key in ("chosen", "rejected"):
        if key not in record:
            raise PreferenceDataError(f"missing field {key!r}")
        answers.append(_turn_text(record[key], repr(key))[1])
    return PreferencePair("\n\n".join(blocks) + "\n\nAssistant: ", answers[0], answers[1])


def from_question_answers(record: Mapping[str, Any]) -> PreferencePair:
    """Convert a ``{"Question", "Answer1", "Answer2", "Preference"}`` record (Anthropic HH style).

    ``Preference`` names the better answer: ``"Answer1"`` or ``"Answer2"`` (or ``1``/``2``). When both
    answers start with ``"Assistant:"`` that prefix moves into the prompt, so the result reads like
    ``from_conversations``' output: prompt ``"Human: <question>\\n\\nAssistant: "`` (``"Human: "`` is added
    when the question lacks it) and the bare answers.

    Raises:
        PreferenceDataError: If a field is missing or empty, ``Preference`` is not one of the answers, or
            the answers are the same.
    """
    fields = {}
    for key in ("Question", "Answer1", "Answer2", "Preference"):
        if key not in record:
            raise PreferenceDataError(f"missing field {key!r}")
        fields[key] = record[key]
    question = _text(fields["Question"], "'Question'").strip()
    answers = [_text(fields["Answer1"], "'Answer1'"), _text(fields["Answer2"], "'Answer2'")]
    preference = str(fields["Preference"]).strip()
    choices = {"Answer1": 0, "1": 0, "Answer2": 1, "2": 1}
    if preference not in choices:
        raise PreferenceDataError(f"'Preference' must be 'Answer1' or 'Answer2', got {fields['Preference']!r}")
    if not question.startswith("Human:"):
        question = "Human: " + question
    prompt = question + "\n\n"
    if all(a.lstrip().startswith("Assistant:") for a in answers):
        answers = [a.lstrip().removeprefix("Assistant:").lstrip() or a for a in answers]
        prompt += "Assistant: "
    best = choices[preference]
    return PreferencePair(prompt, answers[best], answers[1 - best])


def _pair(record: Mapping[str, Any]) -> PreferencePair:
    for key in ("prompt", "chosen", "rejected"):
        if key not in record:
            raise PreferenceDataError(f"missing field {key!r} (a pair needs prompt, chosen and rejected)")
    return PreferencePair(record["prompt"], record["chosen"], record["rejected"], record.get("margin"))


def _rating(record: Mapping[str, Any]) -> RatedCompletion:
    for key in ("prompt", "completion", "ratings"):
        if key not in record:
            raise PreferenceDataError(f"missing field {key!r} (a rating needs prompt, completion and ratings)")
    return RatedCompletion(record["prompt"], record["completion"], record["ratings"])


_PARSERS: dict[str, Callable[[Mapping[str, Any]], PreferencePair | RatedCompletion]] = {
    "pairs": _pair,
    "ratings": _rating,
    "conversations": from_conversations,
    "qa": from_question_answers,
}


def _detect(record: Mapping[str, Any]) -> str:
    keys = set(record)
    if "conversations" in keys:
        return "conversations"
    if keys & {"Question", "Answer1", "Answer2", "Preference"}:
        return "qa"
    if keys & {"ratings", "completion"}:
        return "ratings"
    if keys & {"chosen", "rejected"}:
        return "pairs"
    raise PreferenceDataError(
        f"unrecognised record with the fields {sorted(keys)}; expected a pair {{prompt, chosen, rejected}}, "
        "a rating {prompt, completion, ratings}, {conversations, chosen, rejected} or "
        "{Question, Answer1, Answer2, Preference}"
    )


def parse_record(record: object, format: RecordFormat = "auto") -> PreferencePair | RatedCompletion:
    """Turn one decoded JSON object into a pair or a rating.

    Args:
        record: The object.
        format: ``"auto"`` (recognise it by its fields), ``"pairs"``, ``"ratings"``, ``"conversations"`` or
            ``"qa"``.

    Raises:
        PreferenceDataError: If the record is not an object or is invalid for its format.
        ValueError: If ``format`` is unknown.
    """
    if format not in get_args(RecordFormat):
        raise ValueError(f"format must be one of {', '.join(map(repr, get_args(RecordFormat)))}, got {format!r}")
    if not isinstance(record, Mapping):
        raise PreferenceDataError(f"expected a JSON object, got {type(record).__name__} {record!r:.60}")
    kind = _detect(record) if format == "auto" else format
    return _PARSERS[kind](record)


# -- files ------------------------------------------------------------------------------------------------


def _records(path: Path) -> Iterator[tuple[str, object]]:
    """Yield ``(location, decoded object or the JSONDecodeError)`` for each record of the file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise PreferenceDataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PreferenceDataError(f"{path}: cannot read it as UTF-8 text: {exc}") from exc
    if path.suffix.lower() == ".json":
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PreferenceDataError(
                f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); a .json file must hold one array of "
                "records (use .jsonl for one record per line)"
            ) from None
        if not isinstance(items, list):
            raise PreferenceDataError(f"{path}: a .json file must hold an array of records, got {type(items).__name__}")
        for i, item in enumerate(items, start=1):
            yield f"{path}: item {i}", item
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield f"{path}:{number}", json.loads(line)
        except json.JSONDecodeError as exc:
            yield f"{path}:{number}", exc


def load_preferences(
    path: str | os.PathLike[str],
    *,
    format: RecordFormat = "auto",
    skip_bad_lines: bool = False,
) -> PreferenceData:
    """Read pairs and ratings from a ``.jsonl`` file (or a ``.json`` array); see the module docstring.

    Args:
        path: The file.
        format: Record format; ``"auto"`` recognises each record by its fields.
        skip_bad_lines: Skip and count malformed or invalid records instead of raising.

    Returns:
        The records, with the messages of skipped ones.

    Raises:
        PreferenceDataError: If the file is missing or unreadable, a record is bad (unless skipped; the
            message names the file and line), ratings disagree on their dimensions, or no good record is left.
    """
    path = Path(path)
    if path.suffix.lower() not in (*_JSONL_SUFFIXES, ".json") and path.suffix:
        raise PreferenceDataError(
            f"{path}: unsupported file type {path.suffix!r}; use JSON Lines ({', '.join(_JSONL_SUFFIXES)}) "
            "or a .json array"
        )
    pairs: list[PreferencePair] = []
    ratings: list[RatedCompletion] = []
    skipped: list[str] = []
    for where, item in _records(path):
        try:
            if isinstance(item, json.JSONDecodeError):
                raise PreferenceDataError(f"malformed JSON ({item.msg} at column {item.colno})")
            record = parse_record(item, format)
            if isinstance(record, RatedCompletion) and ratings and set(record.ratings) != set(ratings[0].ratings):
                raise PreferenceDataError(
                    f"the ratings have the dimensions {sorted(record.ratings)} but earlier lines have "
                    f"{sorted(ratings[0].ratings)}; every rating must score the same dimensions"
                )
        except PreferenceDataError as exc:
            message = f"{where}: {exc}"
            if not skip_bad_lines:
                hint = " (pass skip_bad_lines=True, or --skip-bad-lines, to skip bad records)"
                raise PreferenceDataError(message + hint) from None
            skipped.append(message)
            continue
        (ratings if isinstance(record, RatedCompletion) else pairs).append(record)  # type: ignore[arg-type]
    if not pairs and not ratings:
        detail = f" ({len(skipped)} bad records skipped; the first: {skipped[0]})" if skipped else ""
        raise PreferenceDataError(f"{path}: holds no preference pairs or ratings{detail}")
    return PreferenceData(tuple(pairs), tuple(ratings), tuple(skipped), (str(path),))


def write_jsonl(
    path: str | os.PathLike[str], records: Iterable[PreferencePair | RatedCompletion | Mapping[str, Any]]
) -> int:
    """Write records as JSON Lines, atomically (a temporary file renamed into place).

    Args:
        path: The file to write (replaced if it exists).
        records: Pairs, ratings, or plain JSON-serialisable mappings.

    Returns:
        The number of records written.
    """
    count = 0
    with atomic_file(path, overwrite=True) as tmp, tmp.open("w", encoding="utf-8") as out:
        for record in records:
            obj = record.to_json() if isinstance(record, (PreferencePair, RatedCompletion)) else dict(record)
            out.write(json.dumps(obj, ensure_ascii=False) + "\n")
            count += 1
    return count
