"""Agents for textenv: the LM actor-critic policy for stable-baselines3, PPO and A2C, and comparisons.

>>> from stable_baselines3 import PPO
>>> from agents import LMPolicy, EpisodeRolloutBuffer
>>> from textenv.vector import make_vec_env
>>> env = make_vec_env("textenv/Toy-v0", n_envs=4)  # doctest: +SKIP
>>> from agents import ConnectLogProbs
>>> model = PPO(LMPolicy, env, rollout_buffer_class=EpisodeRolloutBuffer)  # doctest: +SKIP
>>> model.learn(2048, callback=ConnectLogProbs())  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConnectLogProbs",
    "EpisodeRolloutBuffer",
    "LMPolicy",
    "SkipDiscardedValues",
    "TrainConfig",
    "compare",
    "load_config",
    "load_pipeline_config",
    "make_agent",
    "run_pipeline",
    "train",
    "train_sft",
]

_WHERE = {
    "ConnectLogProbs": "agents.callbacks",
    "EpisodeRolloutBuffer": "agents.buffer",
    "LMPolicy": "agents.policy",
    "SkipDiscardedValues": "agents.callbacks",
    "TrainConfig": "agents.config",
    "load_config": "agents.config",
    "make_agent": "agents.train",
    "train": "agents.train",
    "compare": "agents.compare",
    "train_sft": "agents.sft",
    "run_pipeline": "agents.pipeline",
    "load_pipeline_config": "agents.pipeline",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that `import agents` (or `agents.config`) does not load torch and stable-baselines3.
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'agents' has no attribute {name!r}")
