"""Plug in your own reward: a plain function registered by name, or a trained reward model folder; train on it.

python examples/custom_reward.py                                          # your function, SmolLM2-135M
python examples/custom_reward.py runs/support/reward_model/model          # a reward model from the pipeline
TEXTENV_EXAMPLE_TINY=1 python examples/custom_reward.py                   # the toy model: seconds
"""

from __future__ import annotations

import os
import sys

import rewards
from agents.config import load_config
from agents.train import train

TINY = os.environ.get("TEXTENV_EXAMPLE_TINY") == "1"
POLITE = ("please", "thank", "thanks", "sorry", "glad", "happy", "good", "great")


def politeness(prompts, completions, **meta):
    """One point per polite word: any picklable callable (prompts, completions, **meta) -> scores works."""
    return [float(sum(word.strip(".,!?") in POLITE for word in text.lower().split())) for text in completions]


# By name, so that configs can use it too (third-party packages register through the "textenv.rewards"
# entry-point group instead). Passing the function itself as reward=politeness works as well.
rewards.register("politeness", lambda: politeness, overwrite=True)

if len(sys.argv) > 1:  # a reward model trained by `textenv rm train` or `textenv pipeline`
    reward: dict = {"reward": "learned", "reward_kwargs": {"path": sys.argv[1]}}
else:
    reward = {"reward": "politeness"}

config = load_config(
    preset="tiny" if TINY else "small",
    env="textenv/TextGen-v0",
    algo="ppo",
    budget_tokens=64 if TINY else 512,  # small: one rollout of 32 episodes × 16 tokens
    eval_episodes=4 if TINY else 8,
    eval_holdout=0,  # two prompts: train and evaluate on both (small holds every second prompt out)
    env_kwargs={
        "prompts": ["Customer: my parcel is late.\nAgent:", "Customer: the lid is broken.\nAgent:"],
        "max_prompt_tokens": 16,
        "max_new_tokens": 8 if TINY else 16,
        "stop_strings": ["\n"],
        **reward,
    },
)
result = train(config, "runs/custom-reward", progress=not TINY)
print(f"mean score before {result.before['rm_score']:+.3f}, after {result.after['rm_score']:+.3f}")
for sample in result.after["samples"][:2]:
    print(repr(sample["prompt"]), "->", repr(sample["completion"]))
