"""The label database: tasks, labels, undo, validation, concurrent writers, and files that are not ours."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from rewards.errors import LabelingError
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


def test_the_latest_label_of_an_annotator_counts(store: LabelStore) -> None:
    task = store.tasks()[0]
    store.add_label(task.id, "alice", "1", "12")
    store.add_label(task.id, "alice", "2", "12")  # e.g. a second browser tab
    assert [label.choice for label in store.labels()] == ["2"]
    assert len(store.labels(latest_only=False)) == 2


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
