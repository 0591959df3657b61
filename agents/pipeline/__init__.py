"""The whole RLHF pipeline in one call: ``textenv pipeline --config pipeline.yaml``.

Stages, each in its own folder ``<runs_dir>/<name>/<stage>/`` and each usable alone through its own command:

1. ``sft`` (optional): supervised fine-tuning on demonstrations (``textenv sft``);
2. ``preferences``: a simulated annotator, a JSONL file, or the labeling page's database (``textenv prefs``);
3. ``reward_model``: a sequence classifier trained on them (``textenv rm train``);
4. ``rl``: PPO and A2C against that reward model, same seeds and budget (``textenv compare``);
5. ``evaluation``: the starting and tuned policies on fixed prompts (:mod:`agents.evaluation`).

A stage is skipped when it finished before with the same config and inputs (:mod:`agents.pipeline.runner`),
so an interrupted pipeline, run again, redoes only the stage it was in. ``<run>/report.md`` links every
stage's artifacts and metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agents.errors import ConfigError
from agents.pipeline.config import PipelineConfig, load_pipeline_config, pipeline_config_from_dict
from agents.pipeline.runner import RunLog, StageRecord, run_stages
from textenv_common.atomic import write_text_atomic

__all__ = [
    "STAGES",
    "PipelineConfig",
    "PipelineResult",
    "load_pipeline_config",
    "pipeline_config_from_dict",
    "run_pipeline",
]

#: The stage names, in order.
STAGES = ("sft", "preferences", "reward_model", "rl", "evaluation")


@dataclass(frozen=True)
class PipelineResult:
    """What :func:`run_pipeline` did."""

    root: Path
    """The run folder."""
    report: Path
    """``report.md``."""
    records: dict[str, StageRecord]
    """Each stage's ``done.json``."""
    ran: list[str]
    """Stages run by this call."""
    reused: list[str]
    """Stages skipped because they were done with the same config and inputs."""


def run_pipeline(
    config: PipelineConfig,
    *,
    force: Sequence[str] = (),
    progress: bool = True,
    say: Callable[[str], None] = print,
    ray: Any = None,
) -> PipelineResult:
    """Run every stage of ``config`` that is not done yet, then write ``report.md``.

    Args:
        config: The pipeline (see :func:`load_pipeline_config`).
        force: Stage names to run again even if done.
        progress: Show progress bars.
        say: Receives one-line status messages.
        ray: :class:`agents.ray_runs.RayOptions`: train the RL stage's runs as Ray tasks.

    Raises:
        ConfigError: ``force`` names an unknown stage.
        Exception: Whatever a stage raises; the report of the stages done so far is written first.
    """
    from agents.pipeline.report import write_pipeline_report
    from agents.pipeline.stages import plan

    unknown = sorted(set(force) - set(STAGES))
    if unknown:
        raise ConfigError(f"Unknown stages {unknown} to force; the stages are {', '.join(STAGES)}.")
    root = config.root
    root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(root / "pipeline.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False), overwrite=True)
    log = RunLog()
    started = time.perf_counter()
    try:
        run_stages(plan(config, ray), root, force=force, progress=progress, say=say, log=log)
    except BaseException as exc:
        note = f"Stopped by {type(exc).__name__} ({exc}); run the pipeline again to go on from the stage it was in."
        try:
            write_pipeline_report(config, log, notes=[note], wall_time_s=time.perf_counter() - started)
        except Exception as report_error:  # never hide the stage's own error behind the report's
            say(f"could not write the report of the stages done so far: {report_error}")
        raise
    report = write_pipeline_report(config, log, wall_time_s=time.perf_counter() - started)
    say(f"report: {report}")
    return PipelineResult(root, report, dict(log.records), list(log.ran), list(log.reused))
