"""The terminal labeler (``textenv label cli``): label pairs over SSH, into the same database as the page.

It shows the next task of the annotator (prompt, then the two completions as A and B, in the order
``display_order`` draws), and reads one key per task: ``a``/``1`` (A is better), ``b``/``2`` (B is better),
``t`` (tie), ``s`` (skip), ``u`` (undo the last label), ``q`` (quit). With ``ratings=True`` it then asks for
1–5 ratings of each completion on the four dimensions (four numbers on one line, or Enter for none). Each
label is committed before "saved" is printed. Model text is shown with control characters escaped (see
``rewards.human.console.printable``).
"""

from __future__ import annotations

import textwrap
from typing import IO

from rewards.errors import LabelConflictError
from rewards.human.console import LineReader, printable
from rewards.human.store import DIMENSIONS, Choice, LabelStore, check_annotator
from rewards.human.tasks import LabelTask, display_order

__all__ = ["run_terminal"]

_KEYS: dict[str, str] = {"a": "A", "1": "A", "b": "B", "2": "B", "t": "tie", "s": "skip", "u": "undo", "q": "quit"}
_HELP = "a = A is better, b = B is better, t = tie, s = skip, u = undo the last label, q = quit"


def _block(title: str, text: str) -> str:
    body = "\n".join(textwrap.indent(line or " ", "    ") for line in printable(text).split("\n"))
    return f"{title}\n{body}"


def _ask_ratings(reader: LineReader, out: IO[str], which: str) -> dict[str, int] | bool | None:
    """Ratings of one completion; ``None`` for none; ``False`` at end of input."""
    names = " ".join(DIMENSIONS)
    while True:
        out.write(f"rate {which} ({names}; four numbers 1-5, Enter for none) > ")
        out.flush()
        line = reader.readline()
        if line is None:
            return False
        parts = line.replace(",", " ").split()
        if not parts:
            return None
        if len(parts) == len(DIMENSIONS) and all(p in "12345" and len(p) == 1 for p in parts):
            return dict(zip(DIMENSIONS, map(int, parts), strict=True))
        out.write(f"  give four numbers from 1 to 5, e.g. '4 3 5 4' ({names}), or press Enter\n")


def run_terminal(
    store: LabelStore,
    annotator: str,
    *,
    ratings: bool = False,
    shuffle: bool = True,
    input: IO[str] | None = None,
    output: IO[str] | None = None,
) -> int:
    """Label the annotator's open tasks in the terminal until they are done, or the person quits.

    Args:
        store: The label database.
        annotator: The annotator's id (see ``rewards.human.store.check_annotator``).
        ratings: Also ask for 1–5 ratings of both completions after each choice.
        shuffle: Show the completions in the order ``display_order`` draws (else completion 1 as A).
        input: Where answers come from (default: standard input).
        output: Where questions go (default: standard output).

    Returns:
        How many labels were saved in this session (undone ones included).
    """
    import sys

    annotator = check_annotator(annotator)
    out = output if output is not None else sys.stdout
    reader = LineReader(input)
    saved = 0
    out.write(f"Labeling as {annotator!r} into {store.path}. Keys: {_HELP}.\n")
    while True:
        task = store.next_task(annotator)
        done, total = store.progress(annotator)
        if task is None:
            out.write(f"\nAll {total} tasks are labeled by {annotator!r}. Thank you!\n")
            return saved
        shown = display_order(annotator, task.id) if shuffle else "12"
        _show(out, task, shown, done, total)
        answer = _ask_choice(reader, out)
        if answer in (None, "quit"):
            out.write(f"\nStopped: {done} of {total} tasks labeled by {annotator!r}.\n")
            return saved
        if answer == "undo":
            undone = store.undo(annotator)
            out.write("nothing to undo\n" if undone is None else f"undid the label of task {undone.task_id}\n")
            continue
        choice: Choice = {"A": shown[0], "B": shown[1]}.get(answer, answer)  # type: ignore[assignment]
        rated: list[dict[str, int] | None] = [None, None]
        if ratings and choice != "skip":
            for position, letter in enumerate("AB"):
                got = _ask_ratings(reader, out, letter)
                if got is False:
                    out.write("\nStopped before saving this label (end of input).\n")
                    return saved
                rated[int(shown[position]) - 1] = got if isinstance(got, dict) else None
        try:
            label = store.add_label(task.id, annotator, choice, shown, ratings=rated, source="cli")
        except LabelConflictError as exc:  # labeled meanwhile elsewhere (the page, another terminal)
            out.write(f"NOT saved: {printable(str(exc))}\n")
            continue
        saved += 1
        out.write(f"saved ({answer}, label {label.id})\n")


def _show(out: IO[str], task: LabelTask, shown: str, done: int, total: int) -> None:
    first, second = (task.completions[int(i) - 1] for i in shown)
    out.write(f"\n[{done + 1}/{total}] task {printable(task.id)}\n")
    out.write(_block("PROMPT", task.prompt) + "\n")
    out.write(_block("A", first) + "\n")
    out.write(_block("B", second) + "\n")


def _ask_choice(reader: LineReader, out: IO[str]) -> str | None:
    while True:
        out.write("a / b / t(ie) / s(kip) / u(ndo) / q(uit) > ")
        out.flush()
        line = reader.readline()
        if line is None:
            return None
        key = line.strip().lower()
        if key in _KEYS:
            return _KEYS[key]
        out.write(f"  unknown answer {printable(key)!r}; {_HELP}\n")
