"""Benchmark: the wall time of ``rewards.train_reward_model`` on the tests' tiny recipe, with no data needed.

The recipe of ``tests/rewards/conftest.py``'s ``tiny_rm_dir``, whose pairs come from :func:`separable_pairs` here:
the toy two-layer GPT-2 (``textenv.toy``), 160 separable preference pairs, 2 epochs, batch 16, learning rate 1e-3,
20% held out, one torch thread. Each repeat runs in a fresh process (``--in-process`` to time later calls of one
process instead, without the import costs), so the first-call costs (imports, Trainer set-up) are in the numbers,
as a user's ``textenv rm train`` pays them.

Run from the repository root::

    python -m benchmarks.rm_training_time               # 5 fresh-process repeats: median and range
    python -m benchmarks.rm_training_time --repeats 9

It prints each repeat's seconds, the training loop's own seconds, the held-out accuracy and loss, then the median.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POSITIVE = ("good", "great", "love", "nice", "best", "happy", "fun")
NEGATIVE = ("bad", "awful", "hate", "worst", "sad")
NEUTRAL = ("the", "movie", "cat", "dog", "book", "is", "was", "a", "very", "and", "food", "game")


def separable_pairs(n: int, seed: int = 0) -> list:
    """``n`` pairs whose chosen text holds positive words and the rejected one negative words."""
    from rewards import PreferencePair

    rng = random.Random(seed)

    def text(words: tuple[str, ...]) -> str:
        return " " + " ".join(
            rng.choice(NEUTRAL) if rng.random() < 0.5 else rng.choice(words) for _ in range(rng.randint(3, 8))
        )

    pairs: list = []
    while len(pairs) < n:
        prompt = " ".join(rng.choice(NEUTRAL) for _ in range(rng.randint(2, 5)))
        chosen, rejected = text(POSITIVE), text(NEGATIVE)
        if chosen != rejected:
            pairs.append(PreferencePair(prompt, chosen, rejected))
    return pairs


def one_run(calls: int) -> list[dict]:
    """Train ``calls`` times in this process (timing each call from its start); the results as dicts."""
    start = time.perf_counter()
    import torch

    torch.set_num_threads(1)
    from rewards import PreferenceData, RewardModelTrainingConfig, train_reward_model
    from textenv.toy import build_toy_model, build_toy_tokenizer

    results = []
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder) / "base"
        tokenizer = build_toy_tokenizer()
        build_toy_model(tokenizer, n_positions=128).save_pretrained(base)
        tokenizer.save_pretrained(base)
        config = RewardModelTrainingConfig(
            epochs=2, batch_size=16, learning_rate=1e-3, eval_fraction=0.2, progress=False
        )
        data = PreferenceData(tuple(separable_pairs(160)))
        for call in range(calls):
            result = train_reward_model(data, base, Path(folder) / f"rm{call}", config)
            training = result.info.training
            results.append(
                {
                    "seconds": round(time.perf_counter() - start, 3),
                    "train_seconds": training["train_seconds"],
                    "accuracy": training["final_eval_accuracy"],
                    "eval_loss": round(training["final_eval_loss"], 5),
                }
            )
            start = time.perf_counter()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--in-process", action="store_true", help="time calls 2.. of one process instead")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(one_run(1)[0]))
        return 0
    if args.in_process:
        runs = one_run(args.repeats + 1)[1:]
    else:
        runs = []
        for _ in range(args.repeats):
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.rm_training_time", "--child"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
    for run in runs:
        print(json.dumps(run))
    seconds = [run["seconds"] for run in runs]
    print(f"median {statistics.median(seconds):.2f} s (range {min(seconds):.2f}–{max(seconds):.2f}) over {len(runs)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
