"""Compare PPO with A2C: the same env, seeds and token budget for each; a report with CIs, curves and samples.

    python examples/compare_ppo_a2c.py                            # Sentiment-v0 with SmolLM2-135M: ~8 minutes
    TEXTENV_EXAMPLE_TINY=1 python examples/compare_ppo_a2c.py     # the toy env: seconds

The same from the command line: ``textenv compare --env textenv/Sentiment-v0 --algos ppo a2c --seeds 1
--preset small --config examples/compare.yaml --out runs/compare-example``.
"""

from __future__ import annotations

import os
from pathlib import Path

from agents.compare import compare
from agents.config import PRESETS

TINY = os.environ.get("TEXTENV_EXAMPLE_TINY") == "1"

result = compare(
    "textenv/Toy-v0" if TINY else "textenv/Sentiment-v0",
    ["ppo", "a2c"],
    seeds=1,
    budget_tokens=32 if TINY else PRESETS["small"]["budget_tokens"],  # small: 256 episodes of 16 tokens
    preset="tiny" if TINY else "small",
    config=Path(__file__).resolve().parent / "compare.yaml",  # settings shared by both algorithms
    overrides={"n_steps": 8, "eval_episodes": 2} if TINY else None,
    out_dir="runs/compare-example",
    progress=not TINY,
)
for row in result.rows:
    print(f"{row.algo}: final reward {row.final_reward.format()}, final KL {row.final_kl.format()} nats")
print(f"report: {result.report}")
