"""``textenv/Summarize-v0``: write the summary that follows "TL;DR:" at the end of a text."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from rewards import RewardFn
from textenv.env import TextGenEnv
from textenv.errors import ConfigError
from textenv.models import DEFAULT_MODEL
from textenv.prompts import PromptSource, load_prompts

__all__ = ["SUMMARY_PROMPTS", "SummarizeEnv"]

#: The builtin prompt set: 32 short everyday posts, each ending in "TL;DR:", with a reference summary.
SUMMARY_PROMPTS = "builtin:tldr_posts"


class SummarizeEnv(TextGenEnv):
    """Summarise a text: the prompt ends in ``"TL;DR:"`` and the completion is the summary.

    ## Description
    The TL;DR task of Stiennon et al. (2020) on a small scale: each prompt is a short text followed by
    ``"\\nTL;DR:"``, and an episode writes the summary one token at a time. It is a :class:`TextGenEnv`
    with other defaults; only the choice of reward is its own.

    ## Action Space
    ``Discrete(V)``, ``V`` the model's vocabulary size, as in :class:`TextGenEnv`.

    ## Observation Space
    As in :class:`TextGenEnv`: ``input_ids``, ``attention_mask`` and ``completion_start`` over a window of
    ``max_prompt_tokens + max_new_tokens`` tokens.

    ## Rewards
    ``R(prompt, summary) − β·Σ_t KL_t``, where ``R`` is, in this order of precedence:

    1. ``reward`` (with ``reward_kwargs``) when given: any registered reward or callable;
    2. the learned reward model in the folder ``reward_model`` (``rewards.make("learned", path=...)``,
       trained by ``textenv rm train`` or ``textenv pipeline``): the default for real use;
    3. ROUGE (``rouge_type``, F-measure) against each prompt's ``reference`` field, when every prompt of the
       source has one, as the builtin set does. Needs the ``rouge`` extra.

    Without any of these the env refuses to build and says what to pass.

    ## Starting State
    A prompt drawn from ``prompts`` (default ``"builtin:tldr_posts"``, 32 short posts with reference
    summaries, written for textenv).

    ## Episode End
    Terminated on the end-of-sequence token, a newline (the summary is one line) or ``max_new_tokens``.

    ## Arguments
    - ``reward_model``: folder of a learned reward model.
    - ``rouge_type``: ``"rouge1"``, ``"rouge2"``, ``"rougeL"`` (default) or ``"rougeLsum"`` for the ROUGE reward.
    - Every other argument is :class:`TextGenEnv`'s; the defaults here are ``max_prompt_tokens=96``,
      ``max_new_tokens=32``, ``stop_strings=("\\n",)`` and ``kl_coef=0.05``.

    ## Version History
    - v0: initial version.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | Any = DEFAULT_MODEL,
        prompts: Any = SUMMARY_PROMPTS,
        reward: str | Mapping[str, Any] | RewardFn | None = None,
        *,
        reward_model: str | os.PathLike[str] | None = None,
        reward_kwargs: Mapping[str, Any] | None = None,
        rouge_type: str = "rougeL",
        prompt_field: str = "prompt",
        max_prompt_tokens: int = 96,
        max_new_tokens: int = 32,
        stop_strings: tuple[str, ...] = ("\n",),
        kl_coef: float = 0.05,
        **kwargs: Any,
    ) -> None:
        source = load_prompts(prompts, field=prompt_field)
        kwargs_of_reward = dict(reward_kwargs or {})
        if reward is None:
            if reward_model is not None:
                reward, kwargs_of_reward = "learned", {"path": os.fspath(reward_model), **kwargs_of_reward}
            elif _all_have_reference(source):
                reward, kwargs_of_reward = "rouge", {"rouge_type": rouge_type, **kwargs_of_reward}
            else:
                raise ConfigError(
                    f"textenv/Summarize-v0 needs a reward: the prompts {source.name!r} carry no 'reference' "
                    "summary on every record, so ROUGE cannot be used. Pass reward_model='path/to/rm' (a "
                    "folder written by `textenv rm train` or `textenv pipeline`), prompts whose records all "
                    "have a 'reference' field, or any reward=... (see rewards.names())."
                )
        elif reward_model is not None:
            raise ConfigError(f"Pass either reward={reward!r} or reward_model={os.fspath(reward_model)!r}, not both.")
        super().__init__(
            model,
            source,
            reward,
            reward_kwargs=kwargs_of_reward,
            prompt_field=prompt_field,
            max_prompt_tokens=max_prompt_tokens,
            max_new_tokens=max_new_tokens,
            stop_strings=stop_strings,
            kl_coef=kl_coef,
            **kwargs,
        )


def _all_have_reference(source: PromptSource) -> bool:
    return all(isinstance(p.meta.get("reference"), (str, list)) and p.meta["reference"] for p in source)
