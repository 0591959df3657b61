"""Rewards for textenv: the protocol, the registry and the built-in reward models.

A reward is any callable ``fn(prompts, completions, **meta)`` that returns one float per pair (see
``RewardFn``). Build a registered one by name, or wrap your own function::

    import rewards

    reward = rewards.make("length", target=20)        # a built-in, by name
    reward = rewards.resolve(my_reward_fn)             # any reward function
    scores = reward(["Tell a story."], ["Once upon a time ..."])  # float64 array, one score per pair

Both return a ``ValidatedReward``, which raises ``InvalidRewardOutputError`` naming the reward when a
score is NaN, infinite, non-numeric or missing. ``rewards.names()`` lists the registered rewards,
including third-party ones from the ``textenv.rewards`` entry-point group.

This package does not import textenv or agents, nor torch or transformers at import time.
"""

from rewards.errors import (
    InvalidRewardOutputError,
    MissingDependencyError,
    RewardConfigError,
    RewardError,
    RewardPluginWarning,
    UnknownRewardError,
)
from rewards.protocol import RewardFn
from rewards.registry import ENTRY_POINT_GROUP, make, names, register, resolve
from rewards.rules import KeywordReward, LengthReward
from rewards.sentiment import VaderSentiment
from rewards.validation import ValidatedReward

__all__ = [
    "ENTRY_POINT_GROUP",
    "InvalidRewardOutputError",
    "KeywordReward",
    "LengthReward",
    "MissingDependencyError",
    "RewardConfigError",
    "RewardError",
    "RewardFn",
    "RewardPluginWarning",
    "UnknownRewardError",
    "VaderSentiment",
    "ValidatedReward",
    "make",
    "names",
    "register",
    "resolve",
]
