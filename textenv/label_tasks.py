"""Labeling tasks sampled from a model: two completions per prompt, for people to compare.

``sample_tasks`` samples from any model ``load_model_and_tokenizer`` loads, on any prompt source
``load_prompts`` reads; ``textenv label tasks --from-run RUN`` gives it the trained policy and prompt settings of a
finished run, read from the run folder by the command line.

Pairs are sampled by :func:`textenv.pairs.sample_pairs` (cut at the env's stop strings; equal or empty pairs are
dropped and counted); a pair that comes twice becomes one task.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from rewards.human.tasks import LabelTask
from textenv.errors import ConfigError
from textenv.pairs import PairSampling, sample_pairs
from textenv_common.checks import check_int

__all__ = ["SampledTasks", "sample_tasks"]


@dataclass(frozen=True)
class SampledTasks:
    """Tasks sampled from a model, and how many prompts gave no usable pair."""

    tasks: list[LabelTask]
    skipped: int


def sample_tasks(
    model: str | os.PathLike[str],
    prompts: Any,
    sampling: PairSampling | None = None,
    *,
    prompt_field: str = "prompt",
    limit: int | None = None,
    repeats: int = 1,
) -> SampledTasks:
    """Sample two completions per prompt from ``model`` and make each pair a labeling task.

    Args:
        model: A model folder, hub id, ``textenv/toy-gpt2`` or the default model (see ``textenv.models``).
        prompts: A prompt source (see :func:`textenv.prompts.load_prompts`).
        sampling: How the pairs are sampled (see :class:`textenv.pairs.PairSampling`; ``None`` for its
            defaults); the same seed gives the same tasks (and task ids).
        prompt_field: The prompt field of the records.
        limit: Use only the first ``limit`` prompts.
        repeats: Pairs per prompt.

    Raises:
        ConfigError: If ``limit`` or ``repeats`` is not a positive integer.
    """
    from textenv.prompts import load_prompts

    check_int("limit", limit, 1, error=ConfigError, optional=True)
    check_int("repeats", repeats, 1, error=ConfigError)
    records = list(load_prompts(prompts, field=prompt_field))[:limit]
    sampled = sample_pairs(model, [r.text for r in records for _ in range(repeats)], sampling)
    tasks, skipped, seen = [], sampled.dropped, set()
    for prompt, pair in zip(sampled.prompts, sampled.pairs, strict=True):
        task = LabelTask(prompt, pair)
        if task.id in seen:  # the same pair twice (a repeated prompt, a short completion): label it once
            skipped += 1
            continue
        seen.add(task.id)
        tasks.append(task)
    return SampledTasks(tasks, skipped)
