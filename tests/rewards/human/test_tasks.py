"""Task files: reading, validation with file and line in the message, stable ids, display order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewards.errors import LabelingError
from rewards.human import LabelTask, display_order, load_tasks, write_tasks


def _write(path: Path, *lines: object) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return path


def test_a_task_file_round_trips_and_ids_come_from_the_texts(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "tasks.jsonl",
        {"prompt": "Say hi.", "completions": ["Hi!", "Hello."], "source": "demo"},
        "",
        {"prompt": "Say bye.", "completions": ["Bye.", "Ciao."], "id": "mine"},
    )
    tasks = load_tasks(path)
    assert [t.completions for t in tasks] == [("Hi!", "Hello."), ("Bye.", "Ciao.")]
    assert tasks[0].meta == {"source": "demo"}
    assert tasks[1].id == "mine"
    assert tasks[0].id == LabelTask("Say hi.", ("Hi!", "Hello.")).id  # the same texts, the same id
    assert tasks[0].id != LabelTask("Say hi.", ("Hello.", "Hi!")).id
    write_tasks(tmp_path / "copy.jsonl", tasks)
    assert load_tasks(tmp_path / "copy.jsonl") == tasks


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ('{"prompt": "p", "completions": ["a", "b"]', "malformed JSON"),
        ({"prompt": "p"}, "lacks 'completions'"),
        ({"prompt": "p", "completions": ["a"]}, "exactly two strings"),
        ({"prompt": "p", "completions": "ab"}, "exactly two strings"),
        ({"prompt": "p", "completions": ["same", "same"]}, "the same text"),
        ({"prompt": " ", "completions": ["a", "b"]}, "'prompt' is empty"),
        ({"prompt": "p", "completions": ["a", 3]}, r"'completions'\[1\] must be a string"),
        ({"prompt": "p", "completions": ["a", "b"], "id": 7}, "'id' must be a string"),
        (["p", "a", "b"], "must be a JSON object"),
    ],
)
def test_a_bad_line_names_file_and_line(tmp_path: Path, line: object, match: str) -> None:
    path = _write(tmp_path / "tasks.jsonl", {"prompt": "ok", "completions": ["x", "y"]}, line)
    with pytest.raises(LabelingError, match=match) as info:
        load_tasks(path)
    assert f"{path}:2" in str(info.value)


def test_duplicate_ids_missing_and_empty_files_are_refused(tmp_path: Path) -> None:
    record = {"prompt": "p", "completions": ["a", "b"]}
    with pytest.raises(LabelingError, match="also the id of line 1"):
        load_tasks(_write(tmp_path / "dup.jsonl", record, record))
    with pytest.raises(LabelingError, match="does not exist"):
        load_tasks(tmp_path / "missing.jsonl")
    with pytest.raises(LabelingError, match="holds no tasks"):
        load_tasks(_write(tmp_path / "empty.jsonl", ""))


def test_display_order_is_fixed_per_annotator_and_task_and_balanced() -> None:
    assert display_order("alice", "t1") == display_order("alice", "t1")
    orders = [display_order(annotator, f"task{i}") for annotator in ("alice", "bob") for i in range(400)]
    assert set(orders) == {"12", "21"}
    assert 0.42 < orders.count("12") / len(orders) < 0.58
    assert [display_order("alice", f"task{i}") for i in range(50)] != [
        display_order("bob", f"task{i}") for i in range(50)
    ]
