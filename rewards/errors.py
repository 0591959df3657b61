"""Typed errors of the reward package (independent of textenv and agents)."""

from __future__ import annotations

__all__ = [
    "InvalidRewardOutputError",
    "LabelConflictError",
    "LabelingError",
    "MissingDependencyError",
    "PreferenceDataError",
    "RewardConfigError",
    "RewardError",
    "RewardInputError",
    "RewardModelError",
    "RewardPluginWarning",
    "UnknownRewardError",
]


class RewardError(Exception):
    """Base class of errors raised by reward models and the reward registry."""


class UnknownRewardError(RewardError, KeyError):
    """``rewards.make`` got a name that no reward is registered under."""

    def __str__(self) -> str:  # KeyError would repr() the message and add quotes
        return str(self.args[0]) if self.args else ""


class InvalidRewardOutputError(RewardError, ValueError):
    """A reward returned NaN, an infinity, a non-number, or the wrong number of scores."""


class RewardConfigError(RewardError, TypeError):
    """``rewards.make`` got keyword arguments that the reward's factory does not accept."""


class MissingDependencyError(RewardError, ImportError):
    """A built-in reward needs an optional package that is not installed (the message names the extra)."""


class RewardPluginWarning(UserWarning):
    """A third-party reward from the ``textenv.rewards`` entry-point group was skipped."""


class RewardInputError(RewardError, ValueError):
    """A reward was called without the per-pair data it needs (e.g. no ``reference`` for a ROUGE reward)."""


class PreferenceDataError(RewardError, ValueError):
    """A preference or ratings file is missing, unreadable, or holds a bad record (the message names the
    file and line)."""


class RewardModelError(RewardError, OSError):
    """A learned reward model folder is missing, incomplete, unsafe (pickle weights) or cannot be loaded or
    written."""


class LabelingError(RewardError, ValueError):
    """Human-feedback input is bad: a task file record, a label, a label database, or the labeling server's
    settings (the message names the value and the fix)."""


class LabelConflictError(LabelingError):
    """An annotator labeled a task that they have already labeled (and not undone): undo the label first to
    change it. The labeling page answers it with 409 Conflict."""
