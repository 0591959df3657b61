"""Labeling tasks sampled from a model: two completions per prompt, for people to compare.

``sample_tasks`` samples from any model ``load_model_and_tokenizer`` loads, on any prompt source
``load_prompts`` reads; ``textenv label tasks --from-run RUN`` gives it the trained policy and prompt settings of a
finished run, read from the run folder by the command line.

Pairs are sampled by :func:`textenv.pairs.sample_pairs` (cut at the env's stop strings; equal or empty pairs are
dropped and counted); a pair that comes twice becomes one task.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rewards.human.tasks import LabelTask
from textenv.errors import ConfigError

__all__ = ["SampledTasks", "sample_tasks"]


@dataclass(frozen=True)
class SampledTasks:
    """Tasks sampled from a model, and how many prompts gave no usable pair."""

    tasks: list[LabelTask]
    skipped: int


def sample_tasks(
    model: str | os.PathLike[str],
    prompts: Any,
    *,
    prompt_field: str = "prompt",
    limit: int | None = None,
    repeats: int = 1,
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    top_p: float = 1.0,
    stop_strings: Sequence[str] = (),
    batch_size: int = 8,
    seed: int = 0,
    progress: bool = False,
) -> SampledTasks:
    """Sample two completions per prompt from ``model`` and make each pair a labeling task.

    Args:
        model: A model folder, hub id, ``textenv/toy-gpt2`` or the default model (see ``textenv.models``).
        prompts: A prompt source (see :func:`textenv.prompts.load_prompts`).
        prompt_field: The prompt field of the records.
        limit: Use only the first ``limit`` prompts.
        repeats: Pairs per prompt.
        max_new_tokens: Length limit of a completion.
        temperature: Sampling temperature (> 0).
        top_p: Nucleus sampling threshold.
        stop_strings: Completions are cut at the first of these.
        batch_size: Prompts per ``generate`` call.
        seed: Seed of the sampling; the same seed gives the same tasks (and task ids).
        progress: Show a progress bar.

    Raises:
        ConfigError: If ``limit`` or ``repeats`` is not a positive integer.
    """
    from textenv.pairs import sample_pairs
    from textenv.prompts import load_prompts

    for name, value in (("limit", limit), ("repeats", repeats)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name} must be a positive integer; got {value!r}")
    records = list(load_prompts(prompts, field=prompt_field))[:limit]
    texts = [r.text for r in records for _ in range(repeats)]
    sampled = sample_pairs(
        model,
        texts,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        stop_strings=stop_strings,
        batch_size=batch_size,
        seed=seed,
        progress=progress,
    )
    tasks, skipped, seen = [], sampled.dropped, set()
    for prompt, pair in zip(sampled.prompts, sampled.pairs, strict=True):
        task = LabelTask(prompt, pair)
        if task.id in seen:  # the same pair twice (a repeated prompt, a short completion): label it once
            skipped += 1
            continue
        seen.add(task.id)
        tasks.append(task)
    return SampledTasks(tasks, skipped)
