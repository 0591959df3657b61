"""Terminal input and output for the human-feedback tools: safe display of model text, lines read with a timeout.

Model output can hold terminal control sequences (``ESC [ 2 J`` clears the screen, others rewrite the title or
move the cursor) and bidirectional-override characters that reorder what a reader sees. ``printable`` shows
them as escapes (``\\x1b``), so the terminal labeler and ``HumanReward`` display exactly the text that is
labeled.

``LineReader`` reads lines from a stream, with an optional deadline. A stream with a file descriptor (a
terminal, a pipe) is read with ``select`` and ``os.read`` on the descriptor itself, so a line typed after
the deadline is not lost to, or mistaken for, a later question's answer, and Python's own buffering cannot
hide pending input from ``select``. A stream without one (``io.StringIO`` in tests) is read with
``readline``, and cannot time out.
"""

from __future__ import annotations

import os
import select
import sys
import time
import unicodedata
from typing import IO, Any

__all__ = ["LineReader", "printable"]

_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)}


def printable(text: str) -> str:
    """``text`` with control characters (except newline and tab) and bidi controls shown as escapes."""
    out = []
    for ch in text:
        if ch in "\n\t" or (unicodedata.category(ch) != "Cc" and ch not in _BIDI):
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


class LineReader:
    """Read lines from ``stream`` (default ``sys.stdin`` at each call), optionally before a deadline.

    Args:
        stream: A text stream; ``None`` means the process's standard input.
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream
        self._pending = b""
        self._eof = False

    def _fd(self) -> int | None:
        stream = self.stream if self.stream is not None else sys.stdin
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):  # io.StringIO and friends have none
            return None
        return fd if os.name == "posix" else None  # select() works on pipes and terminals on POSIX only

    def readline(self, deadline: float | None = None) -> str | None:
        """The next line without its line ending; ``None`` at end of input.

        Args:
            deadline: A ``time.monotonic()`` time; ``None`` waits as long as it takes.

        Raises:
            TimeoutError: If no whole line arrived before ``deadline`` (what was typed so far is kept for the
                next call).
        """
        fd = self._fd()
        if fd is None:
            stream: Any = self.stream if self.stream is not None else sys.stdin
            line = stream.readline()
            return None if line == "" else line.rstrip("\r\n")
        while b"\n" not in self._pending and not self._eof:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                raise TimeoutError
            chunk = os.read(fd, 4096)
            if chunk:
                self._pending += chunk
            else:
                self._eof = True
        if b"\n" in self._pending:
            line, self._pending = self._pending.split(b"\n", 1)
        elif self._pending:
            line, self._pending = self._pending, b""
        else:
            return None
        return line.decode("utf-8", errors="replace").rstrip("\r")
