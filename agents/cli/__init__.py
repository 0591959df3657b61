"""The ``textenv`` console script, one module per command group.

=================  =====================================================
``env``            ``list``, ``check``, ``rollout``
``train``          ``train``, ``compare``, ``demo``, ``sweep``
``sft``            ``sft``
``rm``             ``rm train``, ``rm eval``, ``prefs simulate``
``label``          ``label tasks|serve|cli|export|stats``
``pipeline``       ``pipeline``
=================  =====================================================

This is the composition root: it may import every package, and no library module imports it. The commands do
their work through library functions; they only turn flags into the arguments of those functions and print the
results. ``python -m agents.cli`` runs it as the ``textenv`` script does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agents.cli import env, label, pipeline, rm, sft, train
from agents.cli.flags import add_device_flag, add_ray_flags, ray_options
from agents.cli.train import DEMO, _overrides  # noqa: F401  (tests/agents/test_config_flags.py imports it here)

__all__ = ["DEMO", "add_device_flag", "add_ray_flags", "build_parser", "main", "ray_options", "run"]


def build_parser() -> argparse.ArgumentParser:
    """The full ``textenv`` parser."""
    parser = argparse.ArgumentParser(prog="textenv", description="RLHF as ordinary RL: text envs, rewards, agents.")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (env, rm, label, sft, pipeline, train):
        group.add_commands(sub)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run a parsed command; a typed error of textenv or rewards prints its message and exits with 2."""
    from rewards.errors import RewardError
    from textenv.errors import TextEnvError

    try:
        return int(args.func(args))
    except (TextEnvError, RewardError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``textenv`` console script."""
    return run(build_parser().parse_args(argv))
