"""Validators for text envs, shipped so that users can check their own envs with one call.

>>> import gymnasium as gym, textenv
>>> from textenv.testing import check_text_env
>>> check_text_env(gym.make("textenv/Toy-v0"))  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from textenv.errors import EnvCheckError

__all__ = ["CheckReport", "check_text_env", "rollout"]


@dataclass
class CheckReport:
    """What :func:`check_text_env` ran, and the warnings the checkers raised on the way."""

    checks: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def rollout(env: gym.Env[Any, Any], seed: int, max_steps: int = 1_000) -> list[tuple[Any, ...]]:
    """One episode with actions drawn from ``np.random.default_rng(seed)``; a comparable trace of it.

    Returns:
        ``[(obs, None, None, None, info_text), (obs, reward, terminated, truncated, info_text), ...]``.
    """
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    trace: list[tuple[Any, ...]] = [(_freeze(obs), None, None, None, _text(info))]
    n = int(env.action_space.n)  # type: ignore[attr-defined]
    for _ in range(max_steps):
        obs, reward, terminated, truncated, info = env.step(np.int64(rng.integers(n)))
        trace.append((_freeze(obs), float(reward), bool(terminated), bool(truncated), _text(info)))
        if terminated or truncated:
            return trace
    raise EnvCheckError(f"The episode did not end within {max_steps} steps; an episode must be one completion.")


def check_text_env(env: gym.Env[Any, Any], *, seed: int = 0, skip_render_check: bool = False) -> CheckReport:
    """Check that ``env`` keeps the text-env contract; raise :class:`~textenv.errors.EnvCheckError` if not.

    Runs, in order: Gymnasium's ``check_env``, stable-baselines3's ``check_env``, a same-seed determinism
    rollout (two episodes with the same seed and actions must match in observations, rewards, flags and
    completion text), and the same rollout on a ``pickle`` round trip and on a ``copy.deepcopy`` of the env.

    Args:
        env: The env to check (wrapped or not).
        seed: Seed of the reference rollouts.
        skip_render_check: Skip Gymnasium's render check.

    Returns:
        A :class:`CheckReport` with the checks run and the checkers' warnings.
    """
    report = CheckReport()
    stages: list[tuple[str, Callable[[], None]]] = [
        ("gymnasium.utils.env_checker.check_env", lambda: _gym_check(env, skip_render_check)),
        ("stable_baselines3.common.env_checker.check_env", lambda: _sb3_check(env)),
        ("determinism under reset(seed=...)", lambda: _same(rollout(env, seed), rollout(env, seed), "rerun")),
        ("pickle round trip", lambda: _same(rollout(env, seed), rollout(_pickled(env), seed), "pickle")),
        ("copy.deepcopy", lambda: _same(rollout(env, seed), rollout(copy.deepcopy(env), seed), "deepcopy")),
    ]
    for name, stage in stages:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                stage()
            except EnvCheckError as exc:
                raise EnvCheckError(f"{name} failed: {exc}") from exc
            except Exception as exc:
                raise EnvCheckError(f"{name} failed: {type(exc).__name__}: {exc}") from exc
        report.checks.append(name)
        report.warnings.extend(f"{name}: {w.message}" for w in caught)
    return report


def _gym_check(env: gym.Env[Any, Any], skip_render_check: bool) -> None:
    from gymnasium.utils.env_checker import check_env

    check_env(env.unwrapped, skip_render_check=skip_render_check, skip_close_check=True)


def _sb3_check(env: gym.Env[Any, Any]) -> None:
    from stable_baselines3.common.env_checker import check_env

    check_env(env, warn=True, skip_render_check=True)


def _pickled(env: gym.Env[Any, Any]) -> gym.Env[Any, Any]:
    clone: gym.Env[Any, Any] = pickle.loads(pickle.dumps(env))
    return clone


def _same(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]], what: str) -> None:
    if len(a) != len(b):
        raise EnvCheckError(f"{what}: episodes of different lengths ({len(a)} vs {len(b)} steps) for one seed.")
    for t, (x, y) in enumerate(zip(a, b, strict=True)):
        for part, u, v in zip(("observation", "reward", "terminated", "truncated", "info text"), x, y, strict=True):
            same = u == v if not isinstance(u, float) else np.isclose(u, v, rtol=1e-5, atol=1e-6)
            if not same:
                raise EnvCheckError(f"{what}: step {t} differs in {part}: {u!r} vs {v!r}.")


def _freeze(obs: Any) -> Any:
    if isinstance(obs, dict):
        return tuple((k, _freeze(v)) for k, v in sorted(obs.items()))
    return tuple(np.asarray(obs).reshape(-1).tolist())


def _text(info: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(info.get(k, "")) for k in ("prompt", "completion"))
