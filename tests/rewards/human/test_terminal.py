"""The terminal labeler, driven by scripted input: choices, ratings, undo, quit, and escaped model text."""

from __future__ import annotations

import io

from rewards.human import LabelStore, LabelTask, display_order, run_terminal
from rewards.human.console import printable

from .conftest import make_tasks


def _run(store: LabelStore, script: str, **kwargs: object) -> tuple[int, str]:
    out = io.StringIO()
    saved = run_terminal(store, "alice", input=io.StringIO(script), output=out, **kwargs)  # type: ignore[arg-type]
    return saved, out.getvalue()


def test_choices_map_from_the_shown_order_to_the_completions(store: LabelStore) -> None:
    tasks = store.tasks()
    saved, text = _run(store, "a\nb\nt\ns\nwhat\nq\n")
    assert saved == 4
    assert "unknown answer 'what'" in text
    assert "Stopped: 4 of 6 tasks" in text
    labels = store.labels()
    expected = [
        display_order("alice", tasks[0].id)[0],  # "a": the completion shown as A
        display_order("alice", tasks[1].id)[1],  # "b": the completion shown as B
        "tie",
        "skip",
    ]
    assert [label.choice for label in labels] == expected
    assert all(label.source == "cli" for label in labels)
    assert [label.shown for label in labels] == [display_order("alice", t.id) for t in tasks[:4]]


def test_ratings_undo_and_the_end_of_the_queue(tmp_path) -> None:
    store = LabelStore(tmp_path / "l.sqlite")
    store.add_tasks(make_tasks(2))
    # task 1: A, with ratings for A only (a bad line first); undo; task 1 again: B; task 2: tie, no ratings
    script = "a\n4 3 9 4\n4 3 5 4\n\nu\nb\n\n1,2,3,4\nt\n\n\n"
    saved, text = _run(store, script, ratings=True, shuffle=False)
    assert saved == 3
    assert "give four numbers from 1 to 5" in text
    assert "undid the label of task" in text
    assert "All 2 tasks are labeled by 'alice'" in text
    first, second = store.labels()
    assert first.choice == "2"
    assert first.ratings_1 is None
    assert first.ratings_2 == {"coherence": 1, "creativity": 2, "relevance": 3, "fluency": 4}
    assert second.choice == "tie"
    assert second.ratings_1 is None
    assert second.ratings_2 is None
    undone = store.labels(include_undone=True, latest_only=False)[0]
    assert undone.undone_at is not None
    assert undone.ratings_1 == {"coherence": 4, "creativity": 3, "relevance": 5, "fluency": 4}


def test_control_sequences_in_model_text_are_shown_escaped(tmp_path) -> None:
    store = LabelStore(tmp_path / "l.sqlite")
    store.add_tasks([LabelTask("clear \x1b[2J screen", ("bidi \u202e txet", "bell \x07 and\nnewline"))])
    _, text = _run(store, "q\n")
    assert "\x1b" not in text
    assert "\u202e" not in text
    assert "\x07" not in text
    assert "clear \\x1b[2J screen" in text
    assert "bidi \\u202e txet" in text
    assert "bell \\x07 and" in text
    assert "    newline" in text  # newlines stay, indented under their heading


def test_invisible_characters_in_model_text_are_shown_visibly(tmp_path) -> None:
    store = LabelStore(tmp_path / "l.sqlite")
    # two completions that look the same on a terminal, and a prompt with every kind of invisible character
    invisible = "\u200b\u200c\u200d\u2060\ufeff\u00ad\u2028\u2029\u2066\u3164"
    store.add_tasks([LabelTask(f"odd{invisible}prompt", ("same text", "same\u200btext"))])
    _, text = _run(store, "q\n", shuffle=False)
    assert not set(invisible) & set(text)
    assert "odd\\u200b\\u200c\\u200d\\u2060\\ufeff\\xad\\u2028\\u2029\\u2066\\u3164prompt" in text
    assert "    same text\n" in text
    assert "    same\\u200btext\n" in text  # the difference is visible
    assert "é 日本 👍" in printable("é 日本 👍")  # visible text is left alone


def test_a_task_labeled_meanwhile_elsewhere_is_not_saved_twice(store: LabelStore) -> None:
    first = store.tasks()[0]

    class OtherTabFirst(io.StringIO):
        """Answers "a"; just before, the same annotator labels the shown task on the page."""

        def readline(self, *args: object) -> str:
            if not store.labels():
                store.add_label(first.id, "alice", "tie", "12", source="web")
            return super().readline(*args)  # type: ignore[arg-type]

    out = io.StringIO()
    saved = run_terminal(store, "alice", input=OtherTabFirst("a\nq\n"), output=out)
    assert saved == 0
    assert f"NOT saved: 'alice' has already labeled task '{first.id}'" in out.getvalue()
    assert [(label.task_id, label.choice, label.source) for label in store.labels()] == [(first.id, "tie", "web")]


def test_end_of_input_stops_without_saving(store: LabelStore) -> None:
    saved, text = _run(store, "a\n", ratings=True)
    assert saved == 0
    assert store.labels() == []
    assert "Stopped before saving this label" in text
