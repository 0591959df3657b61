"""The label database: tasks and human labels in one SQLite file, safe against crashes and concurrent writers.

**Durability.** The database runs in WAL mode with ``synchronous=FULL``: every label is its own transaction,
and ``add_label`` returns only after SQLite has written and fsynced it to the write-ahead log. The labeling
page shows "saved" only after the server's response, which comes after ``add_label`` returns, so a label
the page calls saved survives the server being killed (SIGKILL) or the machine losing power right after.
(``synchronous=NORMAL`` with WAL would already survive a killed process; FULL also survives a power cut, and
one fsync per human label costs nothing a person can notice.)

**Concurrency.** Every operation opens its own connection, so the store can be shared by the server's
worker threads, and several processes (two servers, a server and ``textenv label cli``) can use one file:
writes take SQLite's write lock (``BEGIN IMMEDIATE``) and wait up to ``busy_timeout`` for it, readers never
block under WAL. The file must be on a local disk (WAL needs shared memory; NFS is not supported).

**Rows.** ``tasks`` holds each task once (its id, prompt, the two completions, meta, and its place in the
serving order). ``labels`` holds one row per label: the task, the annotator's id, the choice (``"1"`` or
``"2"``: which completion won; ``"tie"``; ``"skip"``), the order the two completions were shown in, optional
1–5 ratings of each completion on the four ``DIMENSIONS``, a free-text note, the source (``"web"`` or
``"cli"``) and the time (Unix seconds, UTC). Nothing is ever deleted: undo marks the annotator's latest label
as undone (``undone_at``), which returns its task to the annotator's queue. An annotator has at most one
current (not undone) label per task: a second one is refused with ``LabelConflictError`` (undo the first to
change it), by ``add_label`` and by a unique index, so that every writer obeys it. Skips count as labels (the
task is not served again), but are neither exported nor counted in agreement.

**Older files.** A database of schema version 1 could hold two current labels of one task by one annotator
(e.g. from two browser tabs), of which the latest counted. Opening it upgrades it in place, under the write
lock: each such older label is marked undone as of the time the next one was given (what it already meant),
then the unique index is added.

**Permissions.** A new database file is created readable and writable by its owner only (0600; SQLite gives
its ``-wal`` and ``-shm`` files the same mode), since notes and annotator ids are nobody else's business. An
existing file keeps its mode (a group may share it on purpose). If opening a new file fails, it is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rewards.errors import LabelConflictError, LabelingError
from rewards.human.tasks import DisplayOrder, LabelTask

__all__ = [
    "CHOICES",
    "DIMENSIONS",
    "MAX_NOTE_LENGTH",
    "Choice",
    "Label",
    "LabelStore",
    "Ratings",
    "check_annotator",
    "check_ratings",
    "remove_database",
]

DIMENSIONS = ("coherence", "creativity", "relevance", "fluency")
"""The rating dimensions of the labeling page, each rated from 1 to 5."""

Choice = Literal["1", "2", "tie", "skip"]
CHOICES: tuple[Choice, ...] = ("1", "2", "tie", "skip")
Ratings = Mapping[str, int]

MAX_NOTE_LENGTH = 2000
_ANNOTATOR = re.compile(r"[\w.@+\- ]{1,64}")
_SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    position INTEGER NOT NULL UNIQUE,
    prompt TEXT NOT NULL,
    completion_1 TEXT NOT NULL,
    completion_2 TEXT NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}',
    added_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL REFERENCES tasks(id),
    annotator TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('1', '2', 'tie', 'skip')),
    shown TEXT NOT NULL CHECK (shown IN ('12', '21')),
    ratings_1 TEXT,
    ratings_2 TEXT,
    note TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL,
    created_at REAL NOT NULL,
    undone_at REAL
);
CREATE INDEX IF NOT EXISTS labels_by_annotator ON labels (annotator, undone_at, task_id);
CREATE INDEX IF NOT EXISTS labels_by_task ON labels (task_id);
CREATE UNIQUE INDEX IF NOT EXISTS one_current_label ON labels (annotator, task_id) WHERE undone_at IS NULL;
"""
# Version 1 -> 2: an older duplicate current label is marked undone when the next one of the same annotator and
# task was given; then the unique index of _SCHEMA can be created.
_UPGRADE_1_TO_2 = """
UPDATE labels SET undone_at = (
    SELECT MIN(newer.created_at) FROM labels newer WHERE newer.annotator = labels.annotator
    AND newer.task_id = labels.task_id AND newer.undone_at IS NULL AND newer.id > labels.id
) WHERE undone_at IS NULL AND EXISTS (
    SELECT 1 FROM labels newer WHERE newer.annotator = labels.annotator AND newer.task_id = labels.task_id
    AND newer.undone_at IS NULL AND newer.id > labels.id
)
"""


def check_annotator(annotator: object) -> str:
    """Return the annotator id stripped of outer spaces, or raise ``LabelingError``.

    An id is 1 to 64 letters, digits, spaces or ``_ . @ + -`` (a name or an e-mail address).
    """
    if not isinstance(annotator, str) or not _ANNOTATOR.fullmatch(annotator.strip() or "!"):
        raise LabelingError(
            f"annotator id {annotator!r:.80} is not valid: use 1 to 64 letters, digits, spaces or _ . @ + -, "
            "e.g. 'alice' or 'bob@lab'"
        )
    return annotator.strip()


def check_ratings(ratings: object, what: str = "ratings") -> dict[str, int] | None:
    """Return ``ratings`` as a plain dict of the four ``DIMENSIONS`` (each an int from 1 to 5), or ``None``.

    Ratings are all or nothing per completion, so that every exported rating record scores the same
    dimensions (what reward-model training requires).

    Raises:
        LabelingError: If ``ratings`` is not ``None`` and not such a mapping.
    """
    if ratings is None:
        return None
    expected = ", ".join(DIMENSIONS)
    if not isinstance(ratings, Mapping) or set(ratings) != set(DIMENSIONS):
        keys = sorted(ratings) if isinstance(ratings, Mapping) else type(ratings).__name__
        raise LabelingError(
            f"{what} must rate all four dimensions ({expected}) or be left out, got {keys}; "
            "rate every dimension or none"
        )
    clean: dict[str, int] = {}
    for name in DIMENSIONS:
        value = ratings[name]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            raise LabelingError(f"{what}: {name} is {value!r}; a rating is an integer from 1 to 5")
        clean[name] = value
    return clean


@dataclass(frozen=True)
class Label:
    """One row of the ``labels`` table (see the module docstring)."""

    id: int
    task_id: str
    annotator: str
    choice: Choice
    shown: DisplayOrder
    ratings_1: dict[str, int] | None
    ratings_2: dict[str, int] | None
    note: str
    source: str
    created_at: float
    undone_at: float | None = None

    @property
    def chose_first_shown(self) -> bool | None:
        """Whether the completion shown first ("A") won; ``None`` for a tie or a skip."""
        if self.choice not in ("1", "2"):
            return None
        return self.choice == self.shown[0]


class LabelStore:
    """Tasks and labels in a SQLite database file (created with its folder when missing).

    Args:
        path: The database file, e.g. ``labels.sqlite``.
        busy_timeout: Seconds a write waits for another writer's lock before failing.

    Raises:
        LabelingError: If the file is not a label database of this version, or cannot be opened.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.busy_timeout = float(busy_timeout)
        if self.path.is_dir():
            raise LabelingError(f"--db {self.path} is a folder; give a file name such as labels.sqlite")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = _create_private(self.path)
        try:
            with self._write() as db:  # under the write lock, so two processes creating one file agree
                self._set_up(db)
        except BaseException as exc:
            if created:
                remove_database(self.path)
            if isinstance(exc, sqlite3.DatabaseError):
                raise LabelingError(
                    f"cannot open {self.path} as a label database ({exc}); give another --db file"
                ) from None
            raise

    def _set_up(self, db: sqlite3.Connection) -> None:
        """Create the tables of an empty file, or upgrade an older schema (inside the write transaction)."""
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version > _SCHEMA_VERSION:
            raise LabelingError(
                f"{self.path} is a label database of schema version {version}, written by a newer textenv "
                f"(this one reads versions up to {_SCHEMA_VERSION}); upgrade textenv"
            )
        if version < 0 or (version == 0 and tables):
            raise LabelingError(
                f"{self.path} is a SQLite file but not a textenv label database (schema version "
                f"{version}, tables {sorted(tables)}); give another --db file"
            )
        if version == _SCHEMA_VERSION:
            return
        if version == 1:
            db.execute(_UPGRADE_1_TO_2)
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    # -- connections ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT), never implicit.
        db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A connection inside one write transaction: committed when the block succeeds, rolled back if not."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # -- tasks ---------------------------------------------------------------------------------------

    def add_tasks(self, tasks: Iterable[LabelTask]) -> int:
        """Add tasks at the end of the serving order; a task already stored with the same texts is kept as is.

        Returns:
            How many tasks were new.

        Raises:
            LabelingError: If a task's id is stored with other texts (nothing is added then).
        """
        added = 0
        now = time.time()
        with self._write() as db:
            position = db.execute("SELECT COALESCE(MAX(position), -1) FROM tasks").fetchone()[0]
            for task in tasks:
                row = db.execute(
                    "SELECT prompt, completion_1, completion_2 FROM tasks WHERE id = ?", (task.id,)
                ).fetchone()
                if row is not None:
                    if tuple(row) != (task.prompt, *task.completions):
                        raise LabelingError(
                            f"task id {task.id!r} is already in {self.path} with other texts; give the new "
                            "task another id (or none, to derive one from its texts), or use another --db"
                        )
                    continue
                position += 1
                db.execute(
                    "INSERT INTO tasks (id, position, prompt, completion_1, completion_2, meta, added_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (task.id, position, task.prompt, *task.completions, json.dumps(dict(task.meta)), now),
                )
                added += 1
        return added

    def task(self, task_id: str) -> LabelTask | None:
        """The task with this id, or ``None``."""
        with self._connect() as db:
            row = db.execute(
                "SELECT id, prompt, completion_1, completion_2, meta FROM tasks WHERE id = ?", (task_id,)
            ).fetchone()
        return _task(row) if row else None

    def tasks(self) -> list[LabelTask]:
        """All tasks, in serving order."""
        with self._connect() as db:
            rows = db.execute("SELECT id, prompt, completion_1, completion_2, meta FROM tasks ORDER BY position")
            return [_task(row) for row in rows]

    def count_tasks(self) -> int:
        """How many tasks the database holds."""
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0])

    def next_task(self, annotator: str) -> LabelTask | None:
        """The first task in serving order that ``annotator`` has not labeled (or skipped), or ``None``."""
        annotator = check_annotator(annotator)
        with self._connect() as db:
            row = db.execute(
                "SELECT id, prompt, completion_1, completion_2, meta FROM tasks t WHERE NOT EXISTS ("
                "  SELECT 1 FROM labels l WHERE l.task_id = t.id AND l.annotator = ? AND l.undone_at IS NULL"
                ") ORDER BY position LIMIT 1",
                (annotator,),
            ).fetchone()
        return _task(row) if row else None

    def progress(self, annotator: str) -> tuple[int, int]:
        """``(labeled, total)``: tasks ``annotator`` has labeled or skipped, and all tasks."""
        annotator = check_annotator(annotator)
        with self._connect() as db:
            done = db.execute(
                "SELECT COUNT(DISTINCT task_id) FROM labels WHERE annotator = ? AND undone_at IS NULL", (annotator,)
            ).fetchone()[0]
            total = db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
        return int(done), int(total)

    # -- labels --------------------------------------------------------------------------------------

    def add_label(
        self,
        task_id: str,
        annotator: str,
        choice: Choice,
        shown: DisplayOrder,
        *,
        ratings: Sequence[Ratings | None] = (None, None),
        note: str = "",
        source: str = "api",
    ) -> Label:
        """Store one label, durably (see the module docstring); it is on disk when this returns.

        Args:
            task_id: The labeled task.
            annotator: Who labeled it (see ``check_annotator``).
            choice: ``"1"`` or ``"2"`` (the winning completion of the task), ``"tie"`` or ``"skip"``.
            shown: The order the completions were shown in (``"12"``: completion 1 as "A").
            ratings: Ratings of completion 1 and completion 2, each all four ``DIMENSIONS`` or ``None``.
            note: A free-text note (at most 2000 characters).
            source: Where the label came from (``"web"``, ``"cli"``, ...).

        Raises:
            LabelConflictError: If ``annotator`` already has a current label of this task (undo it first).
            LabelingError: If a value is invalid or the task does not exist.
        """
        annotator = check_annotator(annotator)
        if choice not in CHOICES:
            raise LabelingError(f"choice {choice!r} is not one of {CHOICES} (1 or 2: the winning completion)")
        if shown not in ("12", "21"):
            raise LabelingError(f"shown {shown!r} is not '12' or '21' (the order the completions were shown in)")
        if len(ratings) != 2:
            raise LabelingError(f"ratings must be two entries (completion 1, completion 2), got {len(ratings)}")
        r1, r2 = (check_ratings(r, f"ratings of completion {i}") for i, r in enumerate(ratings, start=1))
        if not isinstance(note, str) or len(note) > MAX_NOTE_LENGTH:
            raise LabelingError(f"the note must be a string of at most {MAX_NOTE_LENGTH} characters")
        now = time.time()
        with self._write() as db:
            if db.execute("SELECT 1 FROM tasks WHERE id = ?", (task_id,)).fetchone() is None:
                raise LabelingError(f"no task has the id {task_id!r} in {self.path}; reload the task list")
            current = db.execute(
                "SELECT id FROM labels WHERE annotator = ? AND task_id = ? AND undone_at IS NULL", (annotator, task_id)
            ).fetchone()
            if current is not None:
                raise _conflict(annotator, task_id, current[0])
            try:
                cursor = db.execute(
                    "INSERT INTO labels (task_id, annotator, choice, shown, ratings_1, ratings_2, note, source, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (task_id, annotator, choice, shown, _dump(r1), _dump(r2), note, source, now),
                )
            except sqlite3.IntegrityError:  # the unique index: only reachable if a writer skipped the check above
                raise _conflict(annotator, task_id, None) from None
            label_id = int(cursor.lastrowid or 0)
        return Label(label_id, task_id, annotator, choice, shown, r1, r2, note, source, now)

    def undo(self, annotator: str) -> Label | None:
        """Mark ``annotator``'s latest label (not yet undone) as undone, and return it; ``None`` if there is none.

        Its task goes back to the front of the annotator's queue. Calling it again undoes the label before.
        """
        annotator = check_annotator(annotator)
        with self._write() as db:
            row = db.execute(
                f"SELECT {_LABEL_COLUMNS} FROM labels WHERE annotator = ? AND undone_at IS NULL "
                "ORDER BY id DESC LIMIT 1",
                (annotator,),
            ).fetchone()
            if row is None:
                return None
            now = time.time()
            db.execute("UPDATE labels SET undone_at = ? WHERE id = ?", (now, row[0]))
        return _label((*row[:-1], now))

    def labels(self, *, include_undone: bool = False, latest_only: bool = True) -> list[Label]:
        """Labels in the order they were given.

        Args:
            include_undone: Include undone labels (the full history).
            latest_only: Keep only each annotator's latest label per task (their current one).
        """
        where = "" if include_undone else "WHERE undone_at IS NULL"
        with self._connect() as db:
            rows = [_label(row) for row in db.execute(f"SELECT {_LABEL_COLUMNS} FROM labels {where} ORDER BY id")]
        if not latest_only:
            return rows
        latest: dict[tuple[str, str], Label] = {}
        for label in rows:
            latest[(label.annotator, label.task_id)] = label
        return sorted(latest.values(), key=lambda label: label.id)

    def annotators(self) -> list[str]:
        """The ids of everyone with a current label, sorted."""
        return sorted({label.annotator for label in self.labels()})


def remove_database(path: str | os.PathLike[str]) -> None:
    """Delete the database file ``path`` and its ``-wal`` and ``-shm`` files, where they exist."""
    for name in (os.fspath(path), f"{os.fspath(path)}-wal", f"{os.fspath(path)}-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def _create_private(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 (an empty file is an empty SQLite database); ``False`` if it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def _conflict(annotator: str, task_id: str, label_id: int | None) -> LabelConflictError:
    which = "" if label_id is None else f" (label {label_id})"
    return LabelConflictError(
        f"{annotator!r} has already labeled task {task_id!r}{which}; to change that label, undo it first "
        "(u on the labeling page or in `textenv label cli`), then label the task again"
    )


_LABEL_COLUMNS = "id, task_id, annotator, choice, shown, ratings_1, ratings_2, note, source, created_at, undone_at"


def _dump(ratings: dict[str, int] | None) -> str | None:
    return None if ratings is None else json.dumps(ratings)


def _load(text: str | None) -> dict[str, int] | None:
    return None if text is None else dict(json.loads(text))


def _task(row: Sequence[Any]) -> LabelTask:
    return LabelTask(row[1], (row[2], row[3]), row[0], json.loads(row[4]))


def _label(row: Sequence[Any]) -> Label:
    undone = row[10]
    return Label(
        int(row[0]),
        row[1],
        row[2],
        row[3],
        row[4],
        _load(row[5]),
        _load(row[6]),
        row[7],
        row[8],
        float(row[9]),
        None if undone is None else float(undone),
    )
