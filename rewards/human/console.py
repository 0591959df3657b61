"""Terminal input and output for the human-feedback tools: safe display of model text, lines read with a timeout.

Model output can hold terminal control sequences (``ESC [ 2 J`` clears the screen, others rewrite the title or
move the cursor), bidirectional-override characters that reorder what a reader sees, and invisible characters
(zero-width spaces and joiners, the byte-order mark, soft hyphens, line and paragraph separators) that make two
different texts look the same. ``printable`` shows all of them as escapes (``\\x1b``, ``\\u200b``), so the
terminal labeler and ``HumanReward`` display exactly the text that is labeled.

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

# Unicode categories shown as escapes: controls (Cc), format characters (Cf: the bidi controls, zero-width
# space/joiners, word joiner, BOM, soft hyphen, tag characters), line and paragraph separators (Zl, Zp), and
# lone surrogates (Cs), which no terminal can show.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
# Invisible characters Unicode does not class as format characters.
_INVISIBLE = frozenset({"\u115f", "\u1160", "\u3164", "\uffa0", "\u034f"})


def printable(text: str) -> str:
    """``text`` with control, format (bidi, zero-width) and other invisible characters shown as escapes.

    Newlines and tabs stay as they are. Emoji built with a zero-width joiner show their parts and the joiner
    (``\\u200d``): exactness matters more here than looks.
    """
    out = []
    for ch in text:
        if ch in "\n\t" or (unicodedata.category(ch) not in _ESCAPED_CATEGORIES and ch not in _INVISIBLE):
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
