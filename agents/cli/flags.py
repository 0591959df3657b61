"""Flags that several commands share: ``--device`` and ``--ray`` with the resources of each run. The flags of a
config dataclass come from :func:`agents.config_flags.add_dataclass_flags`."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_device_flag", "add_ray_flags", "ray_options"]


def add_device_flag(p: argparse.ArgumentParser) -> None:
    """``--device``, as every training command takes it."""
    p.add_argument(
        "--device",
        default=None,
        help="where to train: auto (CUDA when a GPU is visible; the default), cpu, cuda, cuda:N or mps",
    )


def add_ray_flags(p: argparse.ArgumentParser) -> None:
    """``--ray [ADDRESS]`` and the resources of each run, as ``compare``, ``demo`` and ``pipeline`` take them."""
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="train each (algo, seed) run as a Ray task: no ADDRESS = RAY_ADDRESS or a new local cluster; 'auto', "
        "HOST:PORT or ray://HOST:PORT = that cluster",
    )
    p.add_argument("--storage", default=None, help="with --ray: a folder every worker can reach, for the run folders")
    p.add_argument("--ray-cpus", type=float, default=1.0, help="with --ray: CPUs per run (default 1)")
    p.add_argument("--ray-gpus", type=float, default=0.0, help="with --ray: GPUs per run (default 0)")


def ray_options(args: argparse.Namespace) -> Any:
    """The :class:`agents.ray_runs.RayOptions` of ``--ray`` and its flags, or ``None`` without ``--ray``."""
    if args.ray is None:
        if args.storage is not None:
            from textenv.errors import ConfigError

            raise ConfigError("--storage applies to runs on Ray: add --ray (and an address for a remote cluster).")
        return None
    from agents.ray_runs import RayOptions

    return RayOptions(address=args.ray or None, storage=args.storage, num_cpus=args.ray_cpus, num_gpus=args.ray_gpus)
