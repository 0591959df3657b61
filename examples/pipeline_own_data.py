"""Run the whole RLHF pipeline on your own data: SFT, preferences, reward model, PPO vs A2C, evaluation.

The data and settings are in ``examples/support/`` (replies to customer messages); point ``pipeline.yaml`` at
your own prompts and demonstrations to use yours. The same run from the command line:
``textenv pipeline --config examples/support/pipeline.yaml``.

    python examples/pipeline_own_data.py                            # SmolLM2-135M: about 8 minutes on 2 cores
    TEXTENV_EXAMPLE_TINY=1 python examples/pipeline_own_data.py     # the toy model: seconds
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from agents.pipeline import pipeline_config_from_dict, run_pipeline

HERE = Path(__file__).resolve().parent / "support"
TINY = os.environ.get("TEXTENV_EXAMPLE_TINY") == "1"

settings = yaml.safe_load((HERE / "pipeline.yaml").read_text(encoding="utf-8"))
if TINY:  # the toy word-level model and a few steps per stage
    settings.update(name="support-tiny", model="textenv/toy-gpt2")
    settings["sft"].update(max_steps=2, max_length=48)
    settings["preferences"].update(repeats=1, max_new_tokens=6)
    settings["reward_model"].update(epochs=1, max_length=40, train_layers=None)
    settings["rl"].update(budget_tokens=32, preset="tiny", train={"n_steps": 8, "eval_episodes": 2})
    settings["rl"]["env_kwargs"].update(max_prompt_tokens=32, max_new_tokens=4)
    settings["evaluation"].update(n_prompts=2, samples_per_prompt=1)

config = pipeline_config_from_dict(settings, base_dir=HERE)  # relative paths are read from examples/support/
result = run_pipeline(config, progress=not TINY)
print(f"\nran: {', '.join(result.ran) or 'nothing'}; reused: {', '.join(result.reused) or 'nothing'}")
print(result.report.read_text(encoding="utf-8"))
