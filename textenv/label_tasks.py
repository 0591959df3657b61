"""Labeling tasks sampled from a model: two completions per prompt, for people to compare.

``sample_tasks`` samples from any model ``load_model_and_tokenizer`` loads, on any prompt source
``load_prompts`` reads. ``run_source`` reads what a finished ``textenv train`` run needs for that: the trained
policy saved in ``RUN/policy/`` (see :mod:`agents.checkpoint`), the run's prompt source, completion length,
stop strings and sampling temperature, taken from its ``config.yaml`` and the env id's defaults. So
``textenv label tasks --from-run RUN`` labels what the trained policy writes on the prompts it was trained on.

Pairs are sampled by :func:`textenv.pairs.sample_pairs` (cut at the env's stop strings; equal or empty pairs are
dropped and counted); a pair that comes twice becomes one task.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rewards.human.tasks import LabelTask
from textenv.errors import ConfigError
from textenv.registration import ENV_IDS

__all__ = ["POLICY_DIR", "RunSource", "SampledTasks", "run_source", "sample_tasks"]

#: The subfolder of a run that holds its trained LM (written by ``agents.train`` when the run finishes).
POLICY_DIR = "policy"


@dataclass(frozen=True)
class SampledTasks:
    """Tasks sampled from a model, and how many prompts gave no usable pair."""

    tasks: list[LabelTask]
    skipped: int


@dataclass(frozen=True)
class RunSource:
    """What sampling from a finished run needs: its policy folder and its env's prompt settings."""

    model: Path
    prompts: Any
    prompt_field: str = "prompt"
    max_new_tokens: int = 32
    stop_strings: tuple[str, ...] = ()
    temperature: float = 1.0
    env: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def run_source(run: str | os.PathLike[str]) -> RunSource:
    """Read the policy folder and prompt settings of a finished ``textenv train`` run.

    Raises:
        ConfigError: If ``run`` is not a run folder, or has no ``policy/`` folder (the run did not finish,
            or was written by a textenv from before runs saved their policy).
    """
    folder = Path(run)
    config_file = folder / "config.yaml"
    if not config_file.is_file():
        raise ConfigError(
            f"{folder} is not a run folder (no config.yaml); pass the --out folder of `textenv train`, "
            "e.g. runs/ppo-seed0"
        )
    policy = folder / POLICY_DIR
    if not (policy / "config.json").is_file():
        raise ConfigError(
            f"run {folder} has no trained policy in {policy}: the run has not finished (or predates saving it). "
            f"Finish it with `textenv train --resume --out {folder}` (and the same --env/--algo/--config), "
            "or sample from a model with --model"
        )
    config = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    env_id = str(config.get("env", ""))
    kwargs = {**ENV_IDS.get(env_id, {}), **(config.get("env_kwargs") or {})}
    if "prompts" not in kwargs:
        raise ConfigError(
            f"run {folder} trained on {env_id!r}, whose prompt source textenv does not know; pass --prompts"
        )
    stops = kwargs.get("stop_strings") or ()
    return RunSource(
        model=policy,
        prompts=kwargs["prompts"],
        prompt_field=str(kwargs.get("prompt_field", "prompt")),
        max_new_tokens=int(kwargs.get("max_new_tokens", 32)),
        stop_strings=(stops,) if isinstance(stops, str) else tuple(stops),
        temperature=float(config.get("temperature", 1.0)),
        env=env_id,
    )


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
