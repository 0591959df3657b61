"""Learning per wall-minute: textenv's PPO and A2C against TRL's ``GRPOTrainer`` on the main job's task.

``python -m benchmarks.learning --demo runs/demo --seeds 0 1 2`` reads the PPO and A2C runs of a finished
``textenv demo`` (their fixed, paired evaluation and their training wall time), trains TRL's ``GRPOTrainer`` once per
seed on the same model, training prompts, 8-token completions, VADER reward and β for about the same wall time as
the demo's PPO runs took, and puts each GRPO model through the same evaluation: the held-out prompts × the same
samples, with the same sampling variates, against the same starting policy. It writes
``runs/benchmarks/learning.json`` and ``learning.md``: per algorithm the gain with its 95% CI (t over prompts,
seeds pooled), the per-seed gains, KL per episode, training wall time and gain per wall-minute (the mean gain over
the mean wall time of the seeds' training, model loading excluded for every algorithm).

GRPO's settings are those of the issue's measurement (full fine-tuning, learning rate 1e-5, 8 completions per
step, 4 per prompt, temperature 1, float32 on the CPU), except the stop: a wall-clock budget, checked after every
step. Needs the ``bench`` extra (``pip install "textenv[bench]"``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "train_grpo"]


def train_grpo(config: Any, seed: int, budget_s: float, out: Path, *, lr: float = 1e-5) -> dict[str, Any]:
    """Train GRPO on ``config``'s training prompts for about ``budget_s`` seconds; save the model into ``out``.

    Returns the training wall time (from the first step's start to the last step's end), steps and tokens.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    from agents.train import split_prompts
    from benchmarks.grpo import grpo_args, grpo_model
    from rewards.sentiment import VaderSentiment
    from textenv.models import smollm2_from_gguf

    folder = config.model or smollm2_from_gguf()
    vader = VaderSentiment()
    tokens: list[int] = []

    def sentiment(prompts: Any, completions: Any, completion_ids: Any = None, **meta: Any) -> list[float]:
        tokens.append(sum(len(ids) for ids in completion_ids))
        return [float(x) for x in vader(list(prompts), list(completions))]

    clock: dict[str, float] = {}

    class WallBudget(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            clock["start"] = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            clock["end"] = time.perf_counter()
            if clock["end"] - clock["start"] >= budget_s:
                control.should_training_stop = True

    new_tokens = int(config.env_kwargs.get("max_new_tokens", 8))
    with tempfile.TemporaryDirectory() as scratch:
        args = grpo_args(
            scratch,
            seed=seed,
            per_device_train_batch_size=8,
            num_generations=4,
            max_completion_length=new_tokens,
            temperature=config.temperature,
            beta=float(config.env_kwargs.get("kl_coef", 0.05)),
            learning_rate=lr,
            max_steps=100_000,  # the wall budget stops it
        )
        model, tokenizer = grpo_model(folder)
        prompts = [p.text for p in split_prompts(config)[0]]
        trainer = GRPOTrainer(model=model, reward_funcs=sentiment, args=args,
                              train_dataset=Dataset.from_dict({"prompt": prompts}), processing_class=tokenizer,
                              callbacks=[WallBudget()])  # fmt: skip
        trainer.train()
        trainer.model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    return {"wall_s": clock["end"] - clock["start"], "steps": len(tokens), "tokens": int(sum(tokens))}


def _demo_runs(demo: Path) -> dict[str, Any]:
    """The demo's evaluation samples and each run's training wall time, by ``<algo>/seed<seed>``."""
    samples: dict[str, list[dict[str, Any]]] = {}
    with (demo / "evaluation" / "samples.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            samples.setdefault(record.pop("policy"), []).append(record)
    walls = {}
    for result in demo.glob("*/seed*/result.json"):
        key = f"{result.parent.parent.name}/{result.parent.name}"
        walls[key] = float(json.loads(result.read_text(encoding="utf-8"))["wall_time_s"])
    return {"samples": samples, "walls": walls}


def main(argv: list[str] | None = None) -> int:
    """Entry point: see the module docstring."""
    from agents.compare import load_run
    from agents.evaluation import (
        evaluation_prompts,
        gain_difference,
        gain_matrix,
        load_policy,
        sample_paired,
        summarize_policy,
    )
    from textenv_common.atomic import write_text_atomic

    parser = argparse.ArgumentParser(prog="python -m benchmarks.learning", description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", default="runs/demo", help="a finished `textenv demo` folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget-s", type=float, default=None, help="GRPO's wall budget (default: PPO's mean)")
    parser.add_argument("--out", default="runs/benchmarks")
    args = parser.parse_args(argv)

    demo = Path(args.demo)
    found = _demo_runs(demo)
    config = load_run(demo / "ppo" / f"seed{args.seeds[0]}").config
    prompts = evaluation_prompts(config)
    k = config.eval_samples
    start = found["samples"]["start"]
    ppo_walls = [found["walls"][f"ppo/seed{s}"] for s in args.seeds if f"ppo/seed{s}" in found["walls"]]
    budget = args.budget_s or float(np.mean(ppo_walls))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grpo: dict[int, list[dict[str, Any]]] = {}
    walls: dict[str, list[float]] = {"grpo": []}
    extra: dict[str, Any] = {}
    queue = [p for p in prompts for _ in range(k)]
    for seed in args.seeds:
        folder = out / f"grpo-seed{seed}"
        print(f"GRPO seed {seed}: training for {budget:.0f} s", flush=True)
        info = train_grpo(config, seed, budget, folder)
        extra[f"grpo/seed{seed}"] = info
        walls["grpo"].append(info["wall_s"])
        grpo[seed] = sample_paired(load_policy(folder, config), config, queue)
    table = []
    gains = {}
    for algo in ("ppo", "a2c", "grpo"):
        if algo == "grpo":
            runs = grpo
        else:
            runs = {s: found["samples"][f"{algo}/seed{s}"] for s in args.seeds if f"{algo}/seed{s}" in found["samples"]}
            walls[algo] = [found["walls"][f"{algo}/seed{s}"] for s in runs]
        if not runs:
            continue
        row = summarize_policy(algo, runs, len(prompts), start)
        gains[algo] = gain_matrix(runs, start, len(prompts))
        wall = float(np.mean(walls[algo]))
        table.append({
            "algo": algo,
            "seeds": sorted(runs),
            "gain": row.metrics["gain"].mean,
            "gain_ci95_half_width": row.metrics["gain"].half_width,
            "gain_per_seed": [float(g) for g in gains[algo].mean(axis=1)],
            "kl": row.metrics["kl"].mean,
            "perplexity": row.metrics["perplexity"].mean,
            "wall_s": wall,
            "gain_per_minute": row.metrics["gain"].mean / (wall / 60.0),
        })  # fmt: skip
    diffs = [gain_difference(gains["ppo"], gains[b], ("ppo", b)) for b in ("grpo", "a2c") if b in gains]
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "loadavg": os.getloadavg(),
        "cpus": os.cpu_count(),
        "budget_s": budget,
        "prompts": len(prompts),
        "samples_per_prompt": k,
        "start_rm": summarize_policy("start", {0: start}, len(prompts)).metrics["rm_score"].mean,
        "rows": table,
        "differences": [d.__dict__ for d in diffs],
        "grpo_runs": extra,
    }
    write_text_atomic(out / "learning.json", json.dumps(report, indent=2) + "\n", overwrite=True)
    lines = [
        "| algorithm | seeds | gain [95% CI] | gain per seed | KL (nats) | ref. perplexity | train wall (s) "
        "| gain / min |",
        "|:---|:---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table:
        half = r["gain_ci95_half_width"]
        lines.append(
            f"| {r['algo']} | {', '.join(map(str, r['seeds']))} | {r['gain']:+.3f} [{r['gain'] - half:+.3f}, "
            f"{r['gain'] + half:+.3f}] | {', '.join(f'{g:+.3f}' for g in r['gain_per_seed'])} | {r['kl']:.2f} | "
            f"{r['perplexity']:.1f} | {r['wall_s']:.0f} | {r['gain_per_minute']:+.3f} |"
        )
    for d in diffs:
        lines.append(
            f"\n{d.a} − {d.b}: {d.mean:+.3f}, 95% CI [{d.low:+.3f}, {d.high:+.3f}] (bootstrap, seeds × prompts)"
        )
    write_text_atomic(out / "learning.md", "\n".join(lines) + "\n", overwrite=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
