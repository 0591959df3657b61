"""Labeling tasks: a prompt and two completions to compare, read from a JSON Lines file.

A task file holds one object per line (blank lines are skipped)::

    {"prompt": "The movie was", "completions": [" great fun.", " a bore."], "id": "t1"}

- ``prompt``: a non-empty string;
- ``completions``: exactly two different, non-empty strings (the order carries no meaning: the labeling
  page and the terminal labeler show them in an order drawn per annotator, see ``display_order``);
- ``id`` (optional): a unique string of at most 200 characters. Without one, the id is a hash of the three
  texts, so loading the same file twice yields the same tasks, and labels stay attached to them.

Other fields are kept as the task's ``meta`` (stored with it, never shown). Bad input raises
``LabelingError`` naming the file and line.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rewards.errors import LabelingError
from textenv_common.atomic import atomic_file

__all__ = ["MAX_ID_LENGTH", "DisplayOrder", "LabelTask", "display_order", "load_tasks", "write_tasks"]

MAX_ID_LENGTH = 200

DisplayOrder = Literal["12", "21"]
"""Which completion is shown first (as "A"): ``"12"`` shows completion 1 as A, ``"21"`` shows completion 2."""


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise LabelingError(f"{what} must be a string, got {type(value).__name__} {value!r:.60}")
    if not value.strip():
        raise LabelingError(f"{what} is empty; a task needs some text in its prompt and in both completions")
    return value


@dataclass(frozen=True)
class LabelTask:
    """One comparison to label.

    Attributes:
        prompt: The prompt.
        completions: The two completions, different non-empty strings.
        id: A unique id; default: a hash of the three texts.
        meta: Other fields of the task record (kept, not shown).

    Raises:
        LabelingError: If a text is empty or not a string, the completions are not two different texts, or
            the id is not a string of 1 to 200 characters.
    """

    prompt: str
    completions: tuple[str, str]
    id: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        _text(self.prompt, "'prompt'")
        completions = self.completions
        if isinstance(completions, (str, bytes)) or not isinstance(completions, (list, tuple)) or len(completions) != 2:
            raise LabelingError(
                f"'completions' must be a list of exactly two strings, got {completions!r:.80}; a task compares "
                "two completions of one prompt"
            )
        first = _text(completions[0], "'completions'[0]")
        second = _text(completions[1], "'completions'[1]")
        if first == second:
            raise LabelingError(
                "the two completions are the same text, so there is nothing to choose between; drop the task "
                "or sample another completion"
            )
        object.__setattr__(self, "completions", (first, second))
        task_id = self.id or content_id(self.prompt, first, second)
        if not isinstance(task_id, str) or len(task_id) > MAX_ID_LENGTH:
            raise LabelingError(f"'id' must be a string of 1 to {MAX_ID_LENGTH} characters, got {task_id!r:.80}")
        object.__setattr__(self, "id", task_id)
        object.__setattr__(self, "meta", dict(self.meta))

    def to_json(self) -> dict[str, Any]:
        """The task as a record of a task file (meta fields included)."""
        return {**self.meta, "id": self.id, "prompt": self.prompt, "completions": list(self.completions)}


def content_id(prompt: str, first: str, second: str) -> str:
    """A task id derived from its texts: the first 16 hex digits of a SHA-256 of the three, in order."""
    return hashlib.sha256(json.dumps([prompt, first, second], ensure_ascii=False).encode()).hexdigest()[:16]


def parse_task(record: object) -> LabelTask:
    """Turn one JSON object of a task file into a ``LabelTask`` (see the module docstring)."""
    if not isinstance(record, Mapping):
        raise LabelingError(
            f'a task must be a JSON object like {{"prompt": ..., "completions": [..., ...]}}, got '
            f"{type(record).__name__} {record!r:.60}"
        )
    missing = [key for key in ("prompt", "completions") if key not in record]
    if missing:
        raise LabelingError(
            f"the task lacks {', '.join(map(repr, missing))} (it has {sorted(record)}); a task is "
            '{"prompt": ..., "completions": [..., ...]} with an optional "id"'
        )
    task_id = record.get("id", "")
    if task_id is None or task_id == "":
        task_id = ""
    elif not isinstance(task_id, str):
        raise LabelingError(f"'id' must be a string, got {type(task_id).__name__} {task_id!r:.60}")
    elif not task_id.strip():
        raise LabelingError("'id' is blank; leave it out to derive one from the texts")
    meta = {k: v for k, v in record.items() if k not in ("id", "prompt", "completions")}
    completions = record["completions"]
    if isinstance(completions, list):
        completions = tuple(completions)
    return LabelTask(record["prompt"], completions, task_id, meta)


def load_tasks(path: str | os.PathLike[str]) -> list[LabelTask]:
    """Read a task file (JSON Lines; see the module docstring).

    Raises:
        LabelingError: If the file is missing or unreadable, a line is not a valid task (the message names
            file and line), two tasks share an id, or the file holds no task.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LabelingError(f"task file {path} does not exist; write one (see `textenv label tasks`)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelingError(f"cannot read the task file {path}: {exc}") from None
    tasks: list[LabelTask] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LabelingError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})") from None
        try:
            task = parse_task(record)
        except LabelingError as exc:
            raise LabelingError(f"{where}: {exc}") from None
        if task.id in seen:
            raise LabelingError(
                f"{where}: the task id {task.id!r} is also the id of line {seen[task.id]}; ids must be unique "
                "(two tasks without ids are duplicates when their texts are equal: drop one)"
            )
        seen[task.id] = number
        tasks.append(task)
    if not tasks:
        raise LabelingError(
            f"task file {path} holds no tasks; write one JSON object per line, such as "
            '{"prompt": "...", "completions": ["...", "..."]}'
        )
    return tasks


def write_tasks(path: str | os.PathLike[str], tasks: Iterable[LabelTask]) -> int:
    """Write tasks as a task file, atomically; returns how many were written."""
    count = 0
    with atomic_file(path, overwrite=True) as tmp, tmp.open("w", encoding="utf-8") as out:
        for task in tasks:
            out.write(json.dumps(task.to_json(), ensure_ascii=False) + "\n")
            count += 1
    return count


def display_order(annotator: str, task_id: str) -> DisplayOrder:
    """The order in which ``annotator`` sees the completions of ``task_id``: a fair coin, fixed per pair.

    Drawing the order per (annotator, task) rather than always showing completion 1 first decouples a
    position bias (a preference for whatever is shown as "A") from the content, so the share of "A" that
    ``label stats`` reports measures the bias, and the exported preferences do not inherit it. The draw is
    a hash, so a reload shows the same order.
    """
    digest = hashlib.sha256(f"{annotator}\x00{task_id}".encode()).digest()
    return "12" if digest[0] % 2 == 0 else "21"
