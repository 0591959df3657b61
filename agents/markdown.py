"""Markdown building blocks of the reports: a table, an inline code span, a table cell's text."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = ["code_span", "table", "table_cell"]


def table_cell(text: str) -> str:
    """Plain text made safe for one markdown table cell: no row break, no column break."""
    return re.sub(r"\s*[\r\n]+\s*", " ", text).replace("|", r"\|")


def code_span(text: str, *, in_table: bool = False) -> str:
    """``text`` as an inline code span that shows it verbatim (backticks, newlines and pipes included).

    Newlines become ``↵`` (a code span cannot hold a line break); in a table ``|`` is escaped, which GFM
    undoes inside code spans too.
    """
    if not text:
        return "*(empty)*"
    text = text.replace("\r\n", "↵").replace("\n", "↵").replace("\r", "↵")
    if in_table:
        text = text.replace("|", r"\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    # CommonMark strips one space at each end when both are present; pad when the text begins or ends with
    # a backtick or a space, so what is shown is exactly the text.
    if text[0] in "` " or text[-1] in "` ":
        text = f" {text} "
    return f"{fence}{text}{fence}"


def table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str | None = None) -> list[str]:
    """The lines of a GFM table; ``align`` has one letter per column (``l``, ``r``, ``c``; default: first
    column left, the others right)."""
    align = align or "l" + "r" * (len(header) - 1)
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines
