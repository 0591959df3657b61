"""``textenv pipeline``: every RLHF stage of a pipeline.yaml, resumable (:func:`agents.pipeline.run_pipeline`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agents.cli.flags import add_ray_flags, ray_options

__all__ = ["add_commands"]


def _cmd_pipeline(args: argparse.Namespace) -> int:
    from agents.pipeline import load_pipeline_config, run_pipeline

    config = load_pipeline_config(args.config, name=args.name, runs_dir=args.runs_dir, device=args.device)
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
    """Add ``pipeline`` to the ``textenv`` parser's subcommands."""
    p = sub.add_parser(
        "pipeline",
        help="the whole RLHF pipeline: SFT, preferences, reward model, PPO vs A2C, evaluation, report",
        description="Run every stage of a pipeline.yaml into runs/<name>/<stage>/. A stage done earlier with "
        "the same config and inputs is skipped, so an interrupted pipeline resumes where it stopped.",
    )
    p.add_argument("--config", required=True, help="the pipeline YAML file")
    p.add_argument("--name", default=None, help="override the config's name (the run folder)")
    p.add_argument("--runs-dir", default=None, help="override the parent folder of the run folder")
    p.add_argument("--force", nargs="+", default=[], metavar="STAGE", help="run these stages again even if done")
    p.add_argument("--device", default=None, help="override the config's device: auto, cpu, cuda, cuda:N or mps")
    add_ray_flags(p)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_cmd_pipeline)
