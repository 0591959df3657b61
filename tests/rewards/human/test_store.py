"""The label database: tasks, labels, undo, validation, concurrent writers, and files that are not ours."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from rewards.errors import LabelConflictError, LabelingError
from rewards.human import LabelStore, LabelTask

from .conftest import make_tasks

FULL = {"coherence": 4, "creativity": 2, "relevance": 5, "fluency": 3}


def test_tasks_are_added_once_and_served_in_order(store: LabelStore) -> None:
    tasks = make_tasks(6)
    assert store.add_tasks(tasks) == 0  # the same texts again: nothing new
    assert store.add_tasks([*tasks, *make_tasks(2, prefix="q")]) == 2
    assert [t.id for t in store.tasks()] == [t.id for t in tasks + make_tasks(2, prefix="q")]
    clash = LabelTask("other prompt", ("x", "y"), id=tasks[0].id)
    with pytest.raises(LabelingError, match=r"already in .* with other texts"):
        store.add_tasks([clash])
    assert store.count_tasks() == 8
    reopened = LabelStore(store.path)
    assert reopened.tasks() == store.tasks()


def test_labels_progress_and_multi_level_undo(store: LabelStore) -> None:
    tasks = store.tasks()
    assert store.next_task("alice") == tasks[0]
    first = store.add_label(tasks[0].id, "alice", "1", "21", ratings=(FULL, None), note="clear winner", source="cli")
    store.add_label(tasks[1].id, "alice", "skip", "12")
    assert store.next_task("alice") == tasks[2]
    assert store.next_task("bob") == tasks[0]  # annotators have their own queues
    assert store.progress("alice") == (2, 6)
    assert store.undo("alice").task_id == tasks[1].id  # type: ignore[union-attr]
    assert store.next_task("alice") == tasks[1]
    assert store.undo("alice").task_id == tasks[0].id  # type: ignore[union-attr]
    assert store.undo("alice") is None
    assert store.progress("alice") == (0, 6)
    assert store.labels() == []
    history = store.labels(include_undone=True, latest_only=False)
    assert [label.id for label in history] == [first.id, first.id + 1]
    assert all(label.undone_at is not None for label in history)
    assert history[0].ratings_1 == FULL
    assert history[0].ratings_2 is None
    assert history[0].note == "clear winner"
    assert history[0].source == "cli"
    assert history[0].chose_first_shown is False  # completion 1 won, shown second


def test_a_second_label_of_a_task_is_refused_until_the_first_is_undone(store: LabelStore) -> None:
    task, other = store.tasks()[:2]
    first = store.add_label(task.id, "alice", "1", "12")
    store.add_label(other.id, "alice", "tie", "12")
    with pytest.raises(LabelConflictError, match=rf"'alice' has already labeled task '{task.id}'.*undo it first"):
        store.add_label(task.id, "alice", "2", "12")  # e.g. a second browser tab still showing the task
    assert [label.id for label in store.labels(include_undone=True, latest_only=False)] == [first.id, first.id + 1]
    store.add_label(task.id, "bob", "2", "12")  # another annotator's label is their own
    # one undo per label: the newest goes, then the first, and the task comes back
    assert store.undo("alice").task_id == other.id  # type: ignore[union-attr]
    assert store.undo("alice").task_id == task.id  # type: ignore[union-attr]
    assert store.next_task("alice") == task
    assert [(label.annotator, label.choice) for label in store.labels()] == [("bob", "2")]
    relabeled = store.add_label(task.id, "alice", "2", "21")
    assert [label.id for label in store.labels() if label.annotator == "alice"] == [relabeled.id]


def test_the_database_itself_refuses_two_current_labels(store: LabelStore) -> None:
    task = store.tasks()[0]
    store.add_label(task.id, "alice", "1", "12")
    with store._connect() as db, pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        db.execute(  # a writer that skips add_label's check (another tool, an older textenv)
            "INSERT INTO labels (task_id, annotator, choice, shown, note, source, created_at) "
            "VALUES (?, 'alice', '2', '12', '', 'raw', 0)",
            (task.id,),
        )


def test_a_version_1_database_with_duplicate_labels_is_upgraded_to_its_latest_labels(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(_VERSION_1_SCHEMA)
    db.execute("INSERT INTO tasks VALUES ('t1', 0, 'p', 'a', 'b', '{}', 0), ('t2', 1, 'q', 'c', 'd', '{}', 0)")
    rows = [  # (task, annotator, choice, created_at, undone_at)
        ("t1", "alice", "1", 10.0, None),
        ("t1", "alice", "2", 20.0, None),  # a second tab: the latest counted
        ("t1", "alice", "tie", 30.0, None),
        ("t1", "bob", "1", 15.0, None),
        ("t2", "alice", "1", 40.0, 41.0),  # already undone: stays as it was
        ("t2", "alice", "2", 50.0, None),
    ]
    db.executemany(
        "INSERT INTO labels (task_id, annotator, choice, shown, source, created_at, undone_at) "
        "VALUES (?, ?, ?, '12', 'web', ?, ?)",
        rows,
    )
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    store = LabelStore(path)
    history = store.labels(include_undone=True, latest_only=False)
    assert [label.undone_at for label in history] == [20.0, 30.0, None, None, 41.0, None]
    assert [(label.annotator, label.task_id, label.choice) for label in store.labels(latest_only=False)] == [
        ("alice", "t1", "tie"),
        ("bob", "t1", "1"),
        ("alice", "t2", "2"),
    ]
    with pytest.raises(LabelConflictError):
        store.add_label("t1", "alice", "1", "12")
    assert store.undo("alice").task_id == "t2"  # type: ignore[union-attr]
    assert store.undo("alice").task_id == "t1"  # type: ignore[union-attr]
    assert store.next_task("alice") is not None
    assert [label.annotator for label in store.labels()] == ["bob"]  # no older label of alice's counts again
    with store._connect() as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2


def test_a_database_of_a_newer_version_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "new.sqlite")
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(LabelingError, match="schema version 99, written by a newer textenv"):
        LabelStore(tmp_path / "new.sqlite")


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_new_database_and_its_wal_are_private_to_their_owner(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # the usual umask, which gives 0644 files
    try:
        store = LabelStore(tmp_path / "labels.sqlite")
        store.add_tasks(make_tasks(1))
        store.add_label(store.tasks()[0].id, "alice", "1", "12", note="private remark")
        with store._connect() as db:  # an open connection keeps the -wal and -shm files
            db.execute("SELECT COUNT(*) FROM labels").fetchone()
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    finally:
        os.umask(previous)
    assert modes == {"labels.sqlite": 0o600, "labels.sqlite-wal": 0o600, "labels.sqlite-shm": 0o600}


def test_a_new_file_that_cannot_be_opened_is_not_left_behind(tmp_path: Path, monkeypatch) -> None:
    def refuse(self: LabelStore, db: sqlite3.Connection) -> None:
        raise LabelingError("refused for the test")

    monkeypatch.setattr(LabelStore, "_set_up", refuse)
    with pytest.raises(LabelingError, match="refused for the test"):
        LabelStore(tmp_path / "labels.sqlite")
    assert list(tmp_path.iterdir()) == []


_VERSION_1_SCHEMA = """
CREATE TABLE tasks (id TEXT PRIMARY KEY, position INTEGER NOT NULL UNIQUE, prompt TEXT NOT NULL,
    completion_1 TEXT NOT NULL, completion_2 TEXT NOT NULL, meta TEXT NOT NULL DEFAULT '{}', added_at REAL NOT NULL);
CREATE TABLE labels (id INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL REFERENCES tasks(id),
    annotator TEXT NOT NULL, choice TEXT NOT NULL, shown TEXT NOT NULL, ratings_1 TEXT, ratings_2 TEXT,
    note TEXT NOT NULL DEFAULT '', source TEXT NOT NULL, created_at REAL NOT NULL, undone_at REAL);
CREATE INDEX labels_by_annotator ON labels (annotator, undone_at, task_id);
CREATE INDEX labels_by_task ON labels (task_id);
"""


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"annotator": "bad<name>"}, "annotator id"),
        ({"annotator": ""}, "annotator id"),
        ({"annotator": "x" * 65}, "annotator id"),
        ({"choice": "A"}, "choice 'A' is not one of"),
        ({"shown": "ab"}, "shown 'ab'"),
        ({"task_id": "nope"}, "no task has the id 'nope'"),
        ({"ratings": ({"coherence": 4}, None)}, "all four dimensions"),
        ({"ratings": ({**FULL, "fluency": 6}, None)}, "fluency is 6"),
        ({"ratings": (None, {**FULL, "fluency": True})}, "fluency is True"),
        ({"ratings": (None, {**FULL, "fluency": 2.5})}, "fluency is 2.5"),
        ({"note": "x" * 2001}, "at most 2000"),
    ],
)
def test_bad_labels_are_refused_and_nothing_is_stored(store: LabelStore, kwargs: dict, match: str) -> None:
    args = {"task_id": store.tasks()[0].id, "annotator": "alice", "choice": "1", "shown": "12", **kwargs}
    extra = {k: args.pop(k) for k in ("ratings", "note") if k in args}
    with pytest.raises(LabelingError, match=match):
        store.add_label(args["task_id"], args["annotator"], args["choice"], args["shown"], **extra)
    assert store.labels(include_undone=True) == []


def test_files_that_are_not_label_databases_are_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("just some text, long enough to not be a database header at all")
    with pytest.raises(LabelingError, match=r"cannot open .* as a label database"):
        LabelStore(tmp_path / "notes.txt")
    other = sqlite3.connect(tmp_path / "other.sqlite")
    other.execute("CREATE TABLE things (x)")
    other.commit()
    other.close()
    with pytest.raises(LabelingError, match="not a textenv label database"):
        LabelStore(tmp_path / "other.sqlite")
    with pytest.raises(LabelingError, match="is a folder"):
        LabelStore(tmp_path)


def test_the_database_runs_in_wal_mode_with_full_sync(store: LabelStore) -> None:
    with store._connect() as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_concurrent_writers_from_two_stores_keep_every_label(tmp_path: Path) -> None:
    path = tmp_path / "labels.sqlite"
    LabelStore(path).add_tasks(make_tasks(40))
    errors: list[BaseException] = []

    def label_all(annotator: str) -> None:
        own = LabelStore(path)  # its own connections, as another process would have
        try:
            while (task := own.next_task(annotator)) is not None:
                own.add_label(task.id, annotator, "1" if annotator == "alice" else "2", "12")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=label_all, args=(name,)) for name in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    labels = LabelStore(path).labels()
    assert sorted((label.annotator, label.choice) for label in labels) == [("alice", "1")] * 40 + [("bob", "2")] * 40
