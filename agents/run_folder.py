"""The layout of a run folder, as :func:`agents.train.train` writes it, for the code that reads one back.

A run folder holds ``config.yaml`` (the run's TrainConfig), ``checkpoint/`` (see :mod:`agents.checkpoint`) and, once
the run has finished, ``policy/``: the trained LM as a plain ``save_pretrained`` folder. :func:`run_source` reads
what sampling from a finished run needs: that policy, the run's prompt source, completion length, stop strings
and sampling temperature, taken from its ``config.yaml`` and the env id's defaults. So
``textenv label tasks --from-run RUN`` labels what the trained policy writes on the prompts it was trained on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from textenv.errors import ConfigError
from textenv.registration import ENV_IDS

__all__ = ["POLICY_FOLDER", "RunSource", "run_source"]

#: The subfolder of a run that holds its trained LM (written by ``agents.train`` when the run finishes, or by
#: ``agents.checkpoint.export_policy`` from a checkpoint).
POLICY_FOLDER = "policy"


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
    policy = folder / POLICY_FOLDER
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
