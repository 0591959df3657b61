"""``textenv train``, ``compare``, ``demo`` and ``sweep``: RL runs, each with a flag for every TrainConfig field."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agents.cli.flags import add_device_flag, add_ray_flags, ray_options

__all__ = ["DEMO", "add_commands"]

#: The main job: PPO against A2C on the sentiment task with the real default model (its wall time on 2 cores is
#: in BENCHMARKS.md).
DEMO: dict[str, Any] = {
    "env": "textenv/Sentiment-v0",
    "algos": ["ppo", "a2c"],
    "seeds": 3,
    "budget_tokens": 2048,
    "preset": "demo",
    "out": "runs/demo",
}


def _add_run_flags(p: argparse.ArgumentParser, default_env: str) -> None:
    p.add_argument("--env", default=default_env, help="registered env id")
    p.add_argument("--config", default=None, help="YAML file of TrainConfig fields")
    p.add_argument(
        "--preset",
        default=None,
        help="named set of settings: 'tiny' (toy model, seconds), 'small' or 'demo' (see agents.config.PRESETS)",
    )
    p.add_argument(
        "--budget-tokens",
        type=int,
        default=None,
        help="training budget in generated tokens per run (default: the config file's, else the preset's)",
    )
    p.add_argument("--model", default=None, help="model to fine-tune (hub id or local folder)")
    add_device_flag(p)
    p.add_argument(
        "--precision", default=None, choices=["fp32", "bf16"], help="bf16: bfloat16 autocast on CUDA (default fp32)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


#: TrainConfig fields that ``compare`` and ``demo`` set for every run themselves (their own flags).
_SET_BY_COMPARE = ("env", "algo", "seed", "budget_tokens")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Every TrainConfig field given as a flag (generated from the dataclass, :mod:`agents.config_flags`)."""
    from agents.config import TrainConfig
    from agents.config_flags import flag_values

    return flag_values(args, TrainConfig, skip=("env", "algo", "seed"))


def _cmd_train(args: argparse.Namespace) -> int:
    from agents.config import load_config
    from agents.train import train

    config = load_config(args.config, args.preset, env=args.env, algo=args.algo, seed=args.seed, **_overrides(args))
    out = Path(args.out or f"runs/{config.algo}-seed{config.seed}")
    try:
        result = train(config, out, resume=args.resume, progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"\ninterrupted: checkpoint and results so far are in {out}", file=sys.stderr)
        return 130
    print(
        f"{config.algo} on {config.env}: reward-model score {result.before['rm_score']:+.3f} -> "
        f"{result.after['rm_score']:+.3f}, KL {result.after['kl']:.3f} nats, {result.tokens_per_s:.1f} tokens/s, "
        f"{result.wall_time_s:.0f} s. Run folder: {out}"
    )
    return 0


def _budget_tokens(args: argparse.Namespace) -> int:
    """``--budget-tokens``, else the budget of ``--config``, else of ``--preset``, else TrainConfig's default."""
    if args.budget_tokens is not None:
        return int(args.budget_tokens)
    from agents.config import load_config

    return load_config(args.config, args.preset, env=args.env).budget_tokens


def _cmd_compare(args: argparse.Namespace) -> int:
    from agents.compare import compare

    out = Path(args.out)
    try:
        compare(
            args.env,
            args.algos,
            args.seeds,
            _budget_tokens(args),
            preset=args.preset,
            config=args.config,
            out_dir=out,
            overrides={k: v for k, v in _overrides(args).items() if k not in _SET_BY_COMPARE} or None,
            progress=not args.no_progress,
            ray=ray_options(args),
        )
    except KeyboardInterrupt:
        print(f"\ninterrupted: the report of the finished runs is in {out / 'report.md'}", file=sys.stderr)
        return 130
    print(f"report: {out / 'report.md'}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from agents.sweep import load_sweep_config, run_sweep

    sweep = load_sweep_config(args.config)
    result = run_sweep(sweep, args.out, address=args.ray or None)
    print(f"best gain {result.best_gain:+.3f}: {result.best_yaml} (all trials: {result.table})")
    return 0


def add_commands(sub: Any) -> None:
    """Add ``train``, ``compare``, ``sweep`` and ``demo`` (each takes a flag for every TrainConfig field)."""
    from agents.config import TrainConfig
    from agents.config_flags import add_dataclass_flags

    p = sub.add_parser("train", help="train one agent (PPO or A2C) on an env")
    _add_run_flags(p, "textenv/Toy-v0")
    p.add_argument("--algo", default="ppo", help="ppo or a2c")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--out", default=None, help="run folder (default runs/<algo>-seed<seed>)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    add_dataclass_flags(p, TrainConfig, skip=("env", "algo", "seed"))
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("compare", help="train several algorithms on the same env, seeds and budget; write a report")
    _add_run_flags(p, "textenv/Toy-v0")
    p.add_argument("--algos", nargs="+", default=["ppo", "a2c"], help="algorithms to compare")
    p.add_argument("--seeds", type=int, default=2, help="number of seeds per algorithm")
    p.add_argument("--out", default="runs/compare", help="output folder (report.md, plots, one run per seed)")
    add_ray_flags(p)
    add_dataclass_flags(p, TrainConfig, skip=_SET_BY_COMPARE)
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("sweep", help="search TrainConfig fields with Ray Tune (ASHA), by the fixed evaluation's gain")
    p.add_argument("--config", required=True, help="the sweep YAML file (see agents.sweep)")
    p.add_argument("--out", default="runs/sweep", help="output folder: best.yaml, trials.md, tune/")
    p.add_argument("--ray", default=None, metavar="ADDRESS", help="a Ray cluster: auto, HOST:PORT or ray://HOST:PORT "
                   "(default: RAY_ADDRESS or a new local cluster)")  # fmt: skip
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("demo", help="the main job: PPO vs A2C on textenv/Sentiment-v0 with SmolLM2-135M")
    p.set_defaults(func=_cmd_compare, **{k: v for k, v in DEMO.items() if k != "out"}, out=DEMO["out"])
    p.add_argument("--model", default=None, help="another model than SmolLM2-135M (hub id or local folder)")
    add_device_flag(p)
    p.add_argument("--precision", default=None, choices=["fp32", "bf16"], help="bf16: bfloat16 autocast on CUDA")
    add_ray_flags(p)
    add_dataclass_flags(p, TrainConfig, skip=_SET_BY_COMPARE)
    p.set_defaults(config=None, no_progress=False)
