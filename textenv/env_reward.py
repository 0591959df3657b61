"""The env's reward, resolved once when the env is built, on the env's device.

:class:`textenv.env.TextGenEnv` takes its reward as a registered name with keyword arguments, as plain data
``{"reward": name, **config}``, or as any callable; :func:`resolve_env_reward` turns each into the one
validated reward the env calls. A reward given by name whose factory takes ``device`` (the learned, judge and
similarity rewards) runs on the env's device unless its keyword arguments say otherwise. The Ray vector env
(:mod:`textenv.ray_vec_env`) resolves its shared reward actor's copy the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rewards import RewardFn, ValidatedReward, accepts, resolve

__all__ = ["resolve_env_reward", "with_device"]


def resolve_env_reward(
    reward: str | Mapping[str, Any] | RewardFn | ValidatedReward, reward_kwargs: Mapping[str, Any] | None, device: str
) -> ValidatedReward:
    """``rewards.resolve(reward, **reward_kwargs)``, with the env's ``device`` added where it applies.

    Args:
        reward: A registered reward name, a mapping ``{"reward": name, **config}``, a callable, or a
            ``ValidatedReward`` (used as it is).
        reward_kwargs: Keyword arguments of a reward given by name.
        device: The env's device (``"cpu"``, ``"cuda:0"``, ...).

    Returns:
        The validated reward.
    """
    return resolve(reward, **with_device(reward, reward_kwargs, device))


def with_device(reward: Any, reward_kwargs: Mapping[str, Any] | None, device: str) -> dict[str, Any]:
    """``reward_kwargs``, plus ``device`` for a reward given by name whose factory takes one.

    >>> with_device("length", {"target": 3}, "cuda:0")  # the length reward has no device
    {'target': 3}
    """
    kwargs = dict(reward_kwargs or {})
    if isinstance(reward, str) and "device" not in kwargs and accepts(reward, "device"):
        kwargs["device"] = device
    return kwargs
