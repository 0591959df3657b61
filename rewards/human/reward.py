"""``HumanReward`` (registered as ``"human"``): a person scores each completion in the terminal.

For tiny interactive experiments: an env built with ``reward="human"`` stops at the end of each batch of
episodes and asks whoever runs it for a score per completion, on a 0/1 scale (bad / good) or a 1–5 scale.
Completions are shown ``batch_size`` at a time (all of a batch first, then one question per completion), with
control characters escaped (``rewards.human.console.printable``).

**Skip and timeout.** Typing ``s`` skips a completion; when ``timeout`` seconds pass before a batch is fully
scored, or the input ends, the rest of the batch is not asked. A completion without an answer gets the score
``default``, which is the middle of the scale unless set: 0.5 on the 0/1 scale, 3 on the 1–5 scale, i.e. "no
information", so a skip pushes the policy neither way. ``last_status`` tells, per completion of the latest
call, ``"answered"``, ``"skipped"``, ``"timeout"`` or ``"eof"``.

The input and output streams are injectable (``input=``, ``output=``) for tests and for other front ends; by
default they are the process's standard input and output, looked up at each call, so the reward pickles
(an injected stream may not).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from typing import IO, Any, ClassVar, Literal

import numpy as np

from rewards.base import Reward
from rewards.human.console import LineReader, printable
from textenv_common.checks import check_int

__all__ = ["HumanReward"]

Scale = Literal["binary", "likert"]
_SCALES: dict[str, tuple[tuple[str, ...], float, str]] = {
    "binary": (("0", "1"), 0.5, "0 = bad, 1 = good"),
    "likert": (("1", "2", "3", "4", "5"), 3.0, "1 = very bad ... 5 = very good"),
}


class HumanReward(Reward):
    """A reward that asks a person for a score per completion, in the terminal.

    Args:
        scale: ``"binary"`` (0 or 1) or ``"likert"`` (1 to 5).
        batch_size: Completions shown together before their questions (at least 1).
        timeout: Seconds a batch waits for its answers (``None``: no limit; needs an input stream with a
            file descriptor, i.e. a terminal or pipe, to apply).
        default: The score of a skipped or unanswered completion; default the middle of the scale.
        show_prompt: Show each completion's prompt too.
        input: Where answers are read from (default: standard input).
        output: Where completions and questions are written (default: standard output).

    Raises:
        ValueError: If an argument is out of range.
    """

    name: ClassVar[str] = "human"

    def __init__(
        self,
        scale: Scale = "binary",
        batch_size: int = 4,
        timeout: float | None = None,
        default: float | None = None,
        show_prompt: bool = True,
        input: IO[str] | None = None,
        output: IO[str] | None = None,
    ) -> None:
        if scale not in _SCALES:
            raise ValueError(f"scale must be 'binary' (0/1) or 'likert' (1-5), got {scale!r}")
        check_int("batch_size", batch_size, 1)
        if timeout is not None and not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"timeout must be a number of seconds > 0, or None for no limit; got {timeout!r}")
        if default is not None and not (isinstance(default, (int, float)) and math.isfinite(default)):
            raise ValueError(f"default must be a finite number (the score of a skipped completion), got {default!r}")
        self.scale = scale
        self.batch_size = int(batch_size)
        self.timeout = None if timeout is None else float(timeout)
        self.default = float(_SCALES[scale][1] if default is None else default)
        self.show_prompt = show_prompt
        self.input = input
        self.output = output
        self.last_status: list[str] = []
        self._reader: LineReader | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_reader"] = None  # its buffer belongs to this process's stream
        return state

    def score_batch(self, prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> np.ndarray:
        """Ask for one score per completion; returns them as float64 (``default`` where none was given)."""
        if self._reader is None:
            self._reader = LineReader(self.input)
        reader = self._reader
        out = self.output if self.output is not None else sys.stdout
        scores = np.full(len(completions), self.default, dtype=np.float64)
        self.last_status = ["eof"] * len(completions)
        ended = False
        for start in range(0, len(completions), self.batch_size):
            stop = min(start + self.batch_size, len(completions))
            self._show(out, prompts, completions, start, stop)
            deadline = None if self.timeout is None else time.monotonic() + self.timeout
            for i in range(start, stop):
                if ended:
                    break
                status, score = self._ask(reader, out, i, len(completions), deadline)
                self.last_status[i] = status
                if score is not None:
                    scores[i] = score
                if status == "timeout":
                    out.write(f"no answer within {self.timeout:g} s: the rest of this batch scores {self.default:g}\n")
                    for j in range(i + 1, stop):
                        self.last_status[j] = "timeout"
                    break
                if status == "eof":
                    out.write(f"end of input: the remaining completions score {self.default:g}\n")
                    ended = True
        out.flush()
        return scores

    def _show(self, out: IO[str], prompts: Sequence[str], completions: Sequence[str], start: int, stop: int) -> None:
        values, _, meaning = _SCALES[self.scale]
        out.write(
            f"\n=== human reward: completions {start + 1}-{stop} of {len(completions)} "
            f"(score {'/'.join(values)}: {meaning}; s = skip, scored {self.default:g}) ===\n"
        )
        for i in range(start, stop):
            if self.show_prompt:
                out.write(f"[{i + 1}] prompt: {printable(prompts[i])}\n")
            out.write(f"[{i + 1}] completion: {printable(completions[i])}\n")

    def _ask(
        self, reader: LineReader, out: IO[str], i: int, n: int, deadline: float | None
    ) -> tuple[str, float | None]:
        values = _SCALES[self.scale][0]
        while True:
            out.write(f"score [{i + 1}/{n}] ({'/'.join(values)}, s = skip) > ")
            out.flush()
            try:
                line = reader.readline(deadline)
            except TimeoutError:
                out.write("\n")
                return "timeout", None
            if line is None:
                return "eof", None
            answer = line.strip().lower()
            if answer in ("s", "skip"):
                return "skipped", None
            if answer in values:
                return "answered", float(answer)
            out.write(f"  please type one of {', '.join(values)}, or s to skip\n")
