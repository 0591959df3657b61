"""Register your own text env with Gymnasium's machinery, check it with textenv's validator, and roll it out.

python examples/register_env.py                            # with SmolLM2-135M
TEXTENV_EXAMPLE_TINY=1 python examples/register_env.py     # with the toy model
"""

from __future__ import annotations

import os

import gymnasium as gym

import textenv  # noqa: F401  (registers textenv's own ids; yours are registered below)
from textenv.testing import check_text_env

TINY = os.environ.get("TEXTENV_EXAMPLE_TINY") == "1"

gym.register(
    id="mylab/ShortPoem-v0",
    entry_point="textenv.env:TextGenEnv",  # every text env is a TextGenEnv with its own defaults
    kwargs={
        "model": "textenv/toy-gpt2" if TINY else "HuggingFaceTB/SmolLM2-135M-Instruct",
        "prompts": ["A short poem about the sea:\n", "A short poem about a city at night:\n", "A poem about tea:\n"],
        "reward": "length",  # any registered reward (rewards.names()) or your own callable
        "reward_kwargs": {"target": 12, "tolerance": 4},
        "max_prompt_tokens": 16,
        "max_new_tokens": 8 if TINY else 24,
        "stop_strings": ["\n\n"],
    },
    order_enforce=False,  # the env raises its own ResetNeededError, with the fix in the message
)

env = gym.make("mylab/ShortPoem-v0", render_mode="ansi")
report = check_text_env(env)  # Gymnasium's and SB3's check_env, determinism, pickle, deepcopy
for check in report.checks:
    print(f"ok  {check}")

obs, info = env.reset(seed=0)
done = False
while not done:
    obs, reward, done, truncated, info = env.step(env.action_space.sample())  # a random agent
print(env.render())
print(f"reward-model score {info['rm_score']:+.3f}, KL {info['kl_sum']:+.3f} nats, ended by {info['end_reason']}")
