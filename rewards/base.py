"""What every built-in reward shares: a name that logs and trainers can show, and text inputs of either shape.

**Names.** TRL's trainers (``GRPOTrainer``, ``RLOOTrainer``) label each reward function's metrics with its
``__name__``. A built-in reward's ``__name__`` is its registry name (``"length"``, ``"sentiment"``), or for a
reward made of others or of a model folder, one that says which (``"clip(sentiment)"``, ``"learned(rm)"``);
:class:`~rewards.validation.ValidatedReward` passes it on.

**Conversational inputs.** TRL passes chat datasets' prompts and completions as lists of messages
``{"role": ..., "content": ...}`` instead of strings. :func:`texts` turns both shapes into plain text, in this one
place for every built-in reward and ``ValidatedReward``: a completion becomes the text of its assistant messages,
a prompt the text of all its messages, one per line. A ``content`` given as a list of parts keeps its text parts.
Anything else is a :class:`~rewards.errors.RewardInputError` naming the reward, the position and the value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from rewards.errors import RewardInputError

__all__ = ["Reward", "texts"]


def _content_text(content: object) -> str | None:
    """The text of a message's ``content``: a string, or the ``text`` of a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, (str, bytes)):
        parts = [p.get("text") for p in content if isinstance(p, Mapping) and p.get("type") == "text"]
        if all(isinstance(t, str) for t in parts):
            return "".join(parts)  # type: ignore[arg-type]
    return None


def _text(item: object, roles: tuple[str, ...] | None) -> str | None:
    """``item`` as text, or None if it is neither a string nor a list of messages."""
    if isinstance(item, str):
        return item
    if isinstance(item, Mapping) or not isinstance(item, Sequence) or isinstance(item, bytes):
        return None
    lines = []
    for message in item:
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            return None
        content = _content_text(message.get("content"))
        if content is None:
            return None
        if roles is None or message["role"] in roles:
            lines.append(content)
    return "\n".join(lines)


def texts(items: Sequence[Any], *, what: str, reward: str) -> list[str]:
    """Plain texts of a batch of prompts (``what="prompts"``) or completions (``what="completions"``).

    Raises:
        RewardInputError: An item is neither a string nor a list of ``{"role", "content"}`` messages.
    """
    if isinstance(items, (str, bytes)):
        raise RewardInputError(
            f"reward {reward!r} got {what} as a single {type(items).__name__} {items[:40]!r}; pass a list with "
            f"one entry per pair"
        )
    roles = ("assistant",) if what == "completions" else None
    out = []
    for i, item in enumerate(items):
        text = _text(item, roles)
        if text is None:
            raise RewardInputError(
                f"reward {reward!r}: {what}[{i}] is {type(item).__name__} {item!r:.80}, not text; pass strings, "
                'or lists of {"role": ..., "content": "..."} messages (a chat dataset\'s shape)'
            )
        out.append(text)
    return out


class Reward:
    """Base class of the built-in rewards: ``__call__`` takes plain or conversational inputs (see the module
    docstring) and hands plain strings to :meth:`score_batch`; ``__name__`` is the reward's name.
    """

    name: ClassVar[str]
    """The registry name of the reward."""

    @property
    def __name__(self) -> str:
        """The name trainers label this reward's metrics with (see the module docstring)."""
        return self.name

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **meta: Any) -> npt.NDArray[np.float64]:
        """Score each (prompt, completion) pair; prompts and completions may be strings or lists of messages."""
        name = self.__name__
        return self.score_batch(
            texts(prompts, what="prompts", reward=name), texts(completions, what="completions", reward=name), **meta
        )

    def score_batch(self, prompts: Sequence[str], completions: Sequence[str], **meta: Any) -> npt.NDArray[np.float64]:
        """Score plain-text pairs; every built-in reward defines it."""
        raise NotImplementedError(f"{type(self).__name__} must define score_batch(prompts, completions, **meta)")
