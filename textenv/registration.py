"""The table of textenv's env ids, registered with Gymnasium's own machinery.

Every id builds :class:`textenv.env.TextGenEnv` (``textenv/Summarize-v0`` a subclass of it that picks its reward);
the table only sets its defaults, and any keyword given to ``gym.make(id, **kwargs)`` overrides them. Entry points
are strings, so registering imports no torch.
"""

from __future__ import annotations

import difflib
from typing import Any

import gymnasium as gym

from textenv.errors import UnknownEnvError

__all__ = ["ENV_IDS", "env_ids", "make", "register_envs"]

_ENTRY_POINT = "textenv.env:TextGenEnv"

#: Positive words of the toy vocabulary that ``textenv/Toy-v0`` rewards.
TOY_POSITIVE_WORDS = ("good", "great", "happy", "love", "nice", "fun", "best", "yes")

# id -> default keyword arguments of TextGenEnv.
ENV_IDS: dict[str, dict[str, Any]] = {
    # Bring your own model, prompts and reward: gym.make("textenv/TextGen-v0", prompts=..., reward=...).
    "textenv/TextGen-v0": {},
    # Continue the opening of a review so that it reads positive (VADER compound score of the completion).
    "textenv/Sentiment-v0": {
        "prompts": "builtin:review_openings",
        "reward": "sentiment",
        "max_prompt_tokens": 24,
        "max_new_tokens": 24,
        "kl_coef": 0.05,
        "stop_strings": ("\n",),
    },
    # A toy task on a tiny word-level GPT-2: say as many positive words as possible in 8 tokens.
    "textenv/Toy-v0": {
        "model": "textenv/toy-gpt2",
        "prompts": "builtin:toy",
        # One mapping, not a name plus reward_kwargs, so that `reward=...` alone overrides it; plain data, not an
        # instance, so that the spec serialises (EnvSpec.to_json).
        "reward": {"reward": "keyword", "keywords": list(TOY_POSITIVE_WORDS), "mode": "fraction"},
        "max_prompt_tokens": 8,
        "max_new_tokens": 8,
        "kl_coef": 0.02,
    },
    # Summarise a short post ending in "TL;DR:": a learned reward model (reward_model=...) or ROUGE against the
    # prompts' references (the builtin posts have them). Defaults are SummarizeEnv's own.
    "textenv/Summarize-v0": {},
}

# Ids whose entry point is not TextGenEnv itself.
_ENTRY_POINTS: dict[str, str] = {"textenv/Summarize-v0": "textenv.summarize:SummarizeEnv"}


def register_envs() -> None:
    """Register every id of :data:`ENV_IDS` with Gymnasium (idempotent)."""
    for env_id, kwargs in ENV_IDS.items():
        if env_id in gym.registry:
            continue
        # order_enforce=False: the env raises its own typed ResetNeededError with a fix in the message.
        entry_point = _ENTRY_POINTS.get(env_id, _ENTRY_POINT)
        gym.register(id=env_id, entry_point=entry_point, kwargs=dict(kwargs), order_enforce=False)


def env_ids() -> list[str]:
    """The ids textenv registers."""
    return sorted(ENV_IDS)


def make(env_id: str, **kwargs: Any) -> gym.Env[Any, Any]:
    """``gym.make`` for textenv ids, with an error that suggests the id you probably meant.

    Args:
        env_id: A registered id such as ``"textenv/Toy-v0"``.
        **kwargs: Overrides of the id's defaults (any ``TextGenEnv`` argument).
    """
    if env_id not in gym.registry:
        known = sorted(set(env_ids()) | {k for k in gym.registry if k.startswith("textenv/")})
        close = difflib.get_close_matches(env_id, known, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownEnvError(
            f"Unknown env id {env_id!r}.{hint} textenv registers: {', '.join(known)} "
            "(list them with `textenv list`; register your own with gymnasium.register)."
        )
    return gym.make(env_id, **kwargs)
