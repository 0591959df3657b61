"""textenv/Summarize-v0: its prompts, and how it picks its reward."""

from __future__ import annotations

import gymnasium as gym
import pytest

import textenv  # noqa: F401  (registers the ids)
from rewards import LearnedReward, RougeReward
from textenv.errors import ConfigError
from textenv.prompts import load_prompts


def test_builtin_posts_end_in_tldr_and_carry_a_reference():
    source = load_prompts("builtin:tldr_posts")
    assert len(source) >= 30
    for prompt in source:
        assert prompt.text.endswith("\nTL;DR:")
        assert isinstance(prompt.meta["reference"], str)
        assert prompt.meta["reference"].strip()


def test_rouge_against_the_reference_by_default(tiny_gpt2_bpe_dir):
    env = gym.make("textenv/Summarize-v0", model=str(tiny_gpt2_bpe_dir), max_new_tokens=4)
    base = env.unwrapped
    assert isinstance(base.reward_fn.fn, RougeReward)
    assert base.stop_strings == ("\n",)
    prompt = base.prompts[0]
    scores = base.reward_fn([prompt.text], [prompt.meta["reference"]], reference=[prompt.meta["reference"]])
    assert scores[0] == pytest.approx(1.0)


def test_a_learned_reward_model_when_given(tiny_gpt2_bpe_dir, tmp_path):
    import rewards

    data = rewards.PreferenceData(
        pairs=tuple(rewards.PreferencePair(f"post {i}\nTL;DR:", " short", " long and rambling") for i in range(4))
    )
    rewards.train_reward_model(
        data, tiny_gpt2_bpe_dir, tmp_path / "rm", rewards.RewardModelTrainingConfig(eval_fraction=0, progress=False)
    )
    env = gym.make("textenv/Summarize-v0", model=str(tiny_gpt2_bpe_dir), reward_model=tmp_path / "rm")
    assert isinstance(env.unwrapped.reward_fn.fn, LearnedReward)


def test_no_reward_model_and_no_reference_is_a_clear_error(tiny_gpt2_bpe_dir):
    with pytest.raises(ConfigError, match=r"reward_model='path/to/rm'"):
        gym.make("textenv/Summarize-v0", model=str(tiny_gpt2_bpe_dir), prompts=["a long text\nTL;DR:"])


def test_reward_and_reward_model_together_are_refused(tiny_gpt2_bpe_dir):
    with pytest.raises(ConfigError, match="not both"):
        gym.make("textenv/Summarize-v0", model=str(tiny_gpt2_bpe_dir), reward="length", reward_model="rm")
