"""``ValidatedReward``: a reward function whose every output is checked before anyone uses it.

A bad score (NaN, an infinity, a string, one score too few) from a user's reward would otherwise travel
silently into advantages and losses and surface much later as a NaN in the policy. The wrapper turns it
into an ``InvalidRewardOutputError`` at the call that produced it, naming the reward and the completion.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from rewards.base import Reward, texts
from rewards.errors import InvalidRewardOutputError
from rewards.protocol import RewardFn

__all__ = ["ValidatedReward"]

_SNIPPET_CHARS = 80


def _snippet(text: object) -> str:
    """Return ``repr`` of ``text`` cut to about 80 characters, for error messages."""
    text = str(text)
    if len(text) > _SNIPPET_CHARS:
        text = text[: _SNIPPET_CHARS - 3] + "..."
    return repr(text)


class ValidatedReward:
    """A named reward function whose output is checked on every call.

    Calling it runs ``fn(prompts, completions, **meta)`` and returns the scores as a new float64 array of
    shape ``(len(prompts),)``. An empty batch returns an empty array without calling ``fn``. Prompts and
    completions given as lists of chat messages (TRL's conversational shape) reach ``fn`` as plain text, as
    every built-in reward reads them (:mod:`rewards.base`). ``__name__`` is the wrapped built-in reward's own
    (``"clip(sentiment)"``), else ``name``: TRL's trainers label metrics with it.

    Args:
        name: The name used in error messages and logs (the registry name for ``rewards.make``).
        fn: The reward function to wrap; see ``rewards.RewardFn``.

    Raises:
        TypeError: If ``name`` is not a non-empty string or ``fn`` is not callable.

    Example:
        >>> def shortness(prompts, completions, **meta):
        ...     return [-len(c) for c in completions]
        >>> ValidatedReward("shortness", shortness)(["Say hi"], ["hi"])
        array([-2.])
    """

    def __init__(self, name: str, fn: RewardFn) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"ValidatedReward name must be a non-empty str, got {name!r}")
        if not callable(fn):
            raise TypeError(
                f"reward {name!r}: fn must be callable as fn(prompts, completions, **meta), "
                f"got {type(fn).__name__} {fn!r}"
            )
        self.name = name
        self.fn = fn

    @property
    def __name__(self) -> str:
        """The wrapped built-in reward's ``__name__``, else :attr:`name`."""
        return self.fn.__name__ if isinstance(self.fn, Reward) else self.name

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **meta: Any) -> npt.NDArray[np.float64]:
        """Score each (prompt, completion) pair and check the scores.

        Args:
            prompts: The prompts, one per pair: strings, or lists of ``{"role", "content"}`` messages.
            completions: The completions, aligned with ``prompts``, in either shape.
            **meta: Per-pair metadata passed through to the wrapped function unchanged.

        Returns:
            A float64 array of shape ``(len(prompts),)`` with only finite values.

        Raises:
            InvalidRewardOutputError: If ``prompts`` and ``completions`` differ in length, or the wrapped
                function returned something that is not one finite number per pair.
            RewardInputError: A prompt or completion is neither a string nor a list of messages.
        """
        prompts = texts(prompts, what="prompts", reward=self.name)
        completions = texts(completions, what="completions", reward=self.name)
        n = len(prompts)
        if len(completions) != n:
            raise InvalidRewardOutputError(
                f"reward {self.name!r} got {n} prompts but {len(completions)} completions; "
                "pass one completion per prompt"
            )
        if n == 0:
            return np.zeros(0, dtype=np.float64)
        return self._check(self.fn(prompts, completions, **meta), completions)

    def _check(self, output: object, completions: Sequence[str]) -> npt.NDArray[np.float64]:
        """Convert ``output`` to a float64 vector of ``len(completions)`` finite values, or raise."""
        n = len(completions)
        what = f"reward {self.name!r} returned {type(output).__name__}"
        if isinstance(output, (str, bytes)):
            raise InvalidRewardOutputError(f"{what} {_snippet(output)}; expected one float per completion")
        try:
            raw = np.asarray(output)
            # Strings, complex numbers and the like would convert (or half-convert) silently; refuse them.
            if raw.dtype.kind not in "biufO":
                raise TypeError(f"its elements have dtype {raw.dtype}, not a real number type")
            scores = np.array(raw, dtype=np.float64)  # always a copy: the caller may keep it
        except (TypeError, ValueError, RuntimeError) as exc:
            # RuntimeError: e.g. a torch tensor that requires grad or lives on a GPU.
            raise InvalidRewardOutputError(
                f"{what}, which is not a sequence of floats ({exc}); return a list of floats or a 1-D "
                "NumPy array (call .detach().cpu().numpy() on a tensor)"
            ) from exc
        if scores.ndim != 1:
            hint = " (squeeze the trailing axis)" if scores.shape == (n, 1) else ""
            raise InvalidRewardOutputError(
                f"{what} of shape {scores.shape}; expected a 1-D sequence of {n} scores{hint}"
            )
        if scores.shape[0] != n:
            raise InvalidRewardOutputError(
                f"reward {self.name!r} returned {scores.shape[0]} scores for {n} completions; "
                "it must return exactly one score per completion"
            )
        bad = np.flatnonzero(~np.isfinite(scores))
        if bad.size:
            i = int(bad[0])
            more = f" (and {bad.size - 1} more)" if bad.size > 1 else ""
            raise InvalidRewardOutputError(
                f"reward {self.name!r} returned {scores[i]} at index {i}{more}, for completion "
                f"{_snippet(completions[i])}; scores must be finite numbers"
            )
        return scores

    @property
    def last_parts(self) -> dict[str, npt.NDArray[np.float64]]:
        """The parts of the latest call's scores, from the wrapped reward's ``last_parts``, else ``{}``.

        Combinators (``rewards.WeightedSum``, ``Clip``, ``RunningNormalize``) and multi-dimension learned
        reward models record one array per part, aligned with the latest call's pairs; the env reports
        them in the last step's ``info["rm_parts"]``. A reward function of your own may do the same by
        setting a ``last_parts`` attribute of type ``dict[str, array]`` in each call.
        """
        parts = getattr(self.fn, "last_parts", None)
        return dict(parts) if isinstance(parts, dict) else {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, fn={self.fn!r})"
