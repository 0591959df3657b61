"""The typed errors of textenv.

Every error a user can cause derives from :class:`TextEnvError` and, where one fits, from the matching
built-in or Gymnasium exception, so ``except ValueError`` and ``except gymnasium.error.Error`` both keep
working. Messages name the bad value, what was expected, and the fix.

Reward errors live in :mod:`rewards.errors` (the ``rewards`` package imports nothing from ``textenv``) and
are re-exported here so one import gives the whole hierarchy.
"""

from __future__ import annotations

from gymnasium import error as gym_error

from rewards.errors import InvalidRewardOutputError, RewardError

__all__ = [
    "ConfigError",
    "EnvCheckError",
    "IncompatibleVersionsError",
    "InvalidActionError",
    "InvalidRewardOutputError",
    "KLChannelError",
    "MissingExtraError",
    "ModelLoadError",
    "PromptError",
    "PromptSourceError",
    "RayAddressError",
    "RayWorkerLostError",
    "ResetNeededError",
    "RewardError",
    "ScoreMissingError",
    "TextEnvError",
    "TokenizerMismatchError",
    "UnknownEnvError",
    "UnscoredEpisodeWarning",
]


class TextEnvError(Exception):
    """Base class of every error raised by textenv for bad input or misuse."""


class ConfigError(TextEnvError, ValueError):
    """An argument or config field has a wrong type or is out of range."""


class InvalidActionError(TextEnvError, gym_error.InvalidAction, ValueError):
    """``step`` got something that is not a token id of the action space ``Discrete(V)``."""


class ResetNeededError(TextEnvError, gym_error.ResetNeeded):
    """``step`` was called before ``reset`` or after the episode ended."""


class PromptError(TextEnvError, ValueError):
    """A prompt is empty, or longer than the window allows and truncation is off."""


class PromptSourceError(TextEnvError, ValueError):
    """A prompt source is empty, missing, unreadable, or lacks the named field."""


class ModelLoadError(TextEnvError, OSError):
    """A model or tokenizer could not be found or loaded."""


class TokenizerMismatchError(TextEnvError, ValueError):
    """The tokenizer's vocabulary does not fit the model's embedding matrix."""


class UnknownEnvError(TextEnvError, gym_error.NameNotFound):
    """An env id is not in textenv's table."""


class KLChannelError(TextEnvError, RuntimeError):
    """A step arrived without the policy's log-probability while the env requires one."""


class IncompatibleVersionsError(TextEnvError, ImportError):
    """Two installed libraries (e.g. transformers and peft) refuse to work together; the message names both."""


class EnvCheckError(TextEnvError, AssertionError):
    """``textenv.testing.check_text_env`` found an env that breaks the contract."""


class MissingExtraError(TextEnvError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""


class RayAddressError(TextEnvError, ConnectionError):
    """A Ray address is malformed, or no Ray cluster answers there."""


class RayWorkerLostError(TextEnvError, RuntimeError):
    """A Ray actor of a ``RayVecEnv`` died more often than ``max_restarts`` allows."""


class ScoreMissingError(TextEnvError, RuntimeError):
    """A sub-env whose episodes are scored elsewhere (a ``RayVecEnv``'s reward actor) ended without a score."""


class UnscoredEpisodeWarning(UserWarning):
    """An episode was left before its completion ended (e.g. cut by Gymnasium's ``TimeLimit``): the reward model
    never scored it and the adaptive KL controller did not count it."""
