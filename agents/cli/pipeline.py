"""``textenv pipeline``: every RLHF stage of a pipeline.yaml, resumable (:func:`agents.pipeline.run_pipeline`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agents.cli.flags import add_ray_flags, ray_options
from agents.config_flags import add_dataclass_flags

__all__ = ["add_commands", "pipeline_overrides"]

#: The stage sections of PipelineConfig: set in the YAML file, not by flags.
_SECTIONS = ("sft", "preferences", "reward_model", "rl", "evaluation")


def pipeline_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The top-level PipelineConfig fields given as flags; a local ``--model`` or ``--prompts`` path is taken from
    the working directory (the file's own relative paths are taken from the file's folder)."""
    from agents.config_flags import flag_values
    from agents.pipeline import PipelineConfig

    overrides = flag_values(args, PipelineConfig, skip=_SECTIONS)
    for key in ("model", "prompts"):
        if key in overrides and Path(overrides[key]).exists():
            overrides[key] = str(Path(overrides[key]).resolve())
    return overrides


def _cmd_pipeline(args: argparse.Namespace) -> int:
    from agents.pipeline import load_pipeline_config, run_pipeline

    config = load_pipeline_config(args.config, **pipeline_overrides(args))
    try:
        result = run_pipeline(config, force=args.force, progress=not args.no_progress, ray=ray_options(args))
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: finished stages are kept; run the same command again to go on. {config.root}/report.md",
            file=sys.stderr,
        )
        return 130
    reused = f" (reused: {', '.join(result.reused)})" if result.reused else ""
    print(f"pipeline {config.name}: ran {', '.join(result.ran) or 'nothing'}{reused}. Report: {result.report}")
    return 0


def add_commands(sub: Any) -> None:
    """Add ``pipeline`` to the ``textenv`` parser's subcommands (a flag for every top-level PipelineConfig field)."""
    from agents.pipeline import PipelineConfig

    p = sub.add_parser(
        "pipeline",
        help="the whole RLHF pipeline: SFT, preferences, reward model, PPO vs A2C, evaluation, report",
        description="Run every stage of a pipeline.yaml into runs/<name>/<stage>/. A stage done earlier with "
        "the same config and inputs is skipped, so an interrupted pipeline resumes where it stopped. A flag of a "
        "top-level field overrides the file's value; the stages' settings are set in the file.",
    )
    p.add_argument("--config", required=True, help="the pipeline YAML file")
    add_dataclass_flags(p, PipelineConfig, skip=_SECTIONS)
    p.add_argument("--force", nargs="+", default=[], metavar="STAGE", help="run these stages again even if done")
    add_ray_flags(p)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_cmd_pipeline)
