"""Every bad input gets a typed error that names the bad value and the fix."""

from __future__ import annotations

import numpy as np
import pytest

import rewards
import textenv
from textenv.env import TextGenEnv
from textenv.errors import (
    ConfigError,
    InvalidActionError,
    PromptError,
    PromptSourceError,
    ResetNeededError,
    TextEnvError,
    TokenizerMismatchError,
    UnknownEnvError,
)
from textenv.models import load_model_and_tokenizer

PROMPTS = ["the movie was", "a good day"]


@pytest.fixture
def env(tiny_lm_dir):
    return TextGenEnv(tiny_lm_dir, PROMPTS, "length", reward_kwargs={"target": 3}, max_new_tokens=2)


@pytest.mark.parametrize(
    ("action", "match"),
    [
        (10_000, r"outside the vocabulary \[0, "),
        (-1, "outside the vocabulary"),
        (3.0, "integer token id"),
        (np.float32(3), "integer token id"),
        ("good", "integer token id"),
        (True, "integer token id"),
        (np.array([1, 2]), r"shape \(2,\)"),
        (None, "integer token id"),
    ],
)
def test_invalid_actions(env, action, match):
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match=match):
        env.step(action)


def test_valid_integer_kinds(env):
    env.reset(seed=0)
    obs, _, done, _, _ = env.step(np.int64(3))
    assert (obs["input_ids"][-1], obs["attention_mask"][-1], done) == (3, 1, False)  # the token, appended
    obs, _, done, _, info = env.step(np.array(4))
    assert obs["input_ids"][-2:].tolist() == [3, 4]
    assert done  # max_new_tokens=2
    assert info["completion"] == env.tokenizer.decode([3, 4])


def test_step_before_reset_and_after_the_end(env):
    with pytest.raises(ResetNeededError, match="before reset"):
        env.step(3)
    env.reset(seed=0)
    env.step(3)
    env.step(3)
    with pytest.raises(ResetNeededError, match="after the episode ended"):
        env.step(3)


def test_step_before_reset_through_gym_make(tiny_lm_dir):
    env = textenv.make(
        "textenv/TextGen-v0",
        model=str(tiny_lm_dir),
        prompts=PROMPTS,
        reward="length",
        reward_kwargs={"target": 2},
    )
    with pytest.raises(ResetNeededError):
        env.step(3)


@pytest.mark.parametrize("prompt", ["", "   "])
def test_empty_prompt_is_refused(env, prompt):
    with pytest.raises(PromptError, match="Empty prompt"):
        env.reset(options={"prompt": prompt})


def test_overlong_prompt_is_truncated_from_the_left_with_a_warning(tiny_lm_dir):
    env = TextGenEnv(tiny_lm_dir, PROMPTS, "length", reward_kwargs={"target": 3}, max_prompt_tokens=3)
    with pytest.warns(UserWarning, match="truncated from the left"):
        obs, info = env.reset(options={"prompt": "i like this book and it is very good"})
    assert info["prompt_tokens"] == 3
    kept = env.tokenizer.decode(obs["input_ids"][obs["attention_mask"] == 1])
    assert kept == "is very good"


def test_overlong_prompt_can_be_refused(tiny_lm_dir):
    env = TextGenEnv(
        tiny_lm_dir,
        PROMPTS,
        "length",
        reward_kwargs={"target": 3},
        max_prompt_tokens=3,
        prompt_truncation="error",
    )
    with pytest.raises(PromptError, match="max_prompt_tokens=3"):
        env.reset(options={"prompt": "i like this book and it is very good"})


def test_empty_prompt_source(tiny_lm_dir):
    with pytest.raises(PromptSourceError):
        TextGenEnv(tiny_lm_dir, [], "length", reward_kwargs={"target": 3})


def test_prompt_source_without_the_field(tiny_lm_dir, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"text": "the movie was"}\n')
    with pytest.raises(PromptSourceError, match="text"):
        TextGenEnv(tiny_lm_dir, str(path), "length", reward_kwargs={"target": 3})


def test_tokenizer_that_does_not_fit_the_model(tiny_lm_dir, tiny_gpt2_bpe_dir):
    model, _ = load_model_and_tokenizer(tiny_lm_dir)
    _, big_tokenizer = load_model_and_tokenizer(tiny_gpt2_bpe_dir)
    with pytest.raises(TokenizerMismatchError, match="50257"):
        TextGenEnv(model, PROMPTS, "length", tokenizer=big_tokenizer, reward_kwargs={"target": 3})


def test_unknown_env_id_suggests_the_close_one():
    with pytest.raises(UnknownEnvError, match="Did you mean: textenv/Toy-v0"):
        textenv.make("textenv/Toyy-v0")
    assert issubclass(UnknownEnvError, TextEnvError)


def test_unknown_reward_name(tiny_lm_dir):
    with pytest.raises(rewards.UnknownRewardError, match="length"):
        TextGenEnv(tiny_lm_dir, PROMPTS, "lenght")


def test_missing_prompts_or_reward(tiny_lm_dir):
    with pytest.raises(ConfigError, match="prompts and reward"):
        TextGenEnv(tiny_lm_dir)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kl_coef": -0.1}, "kl_coef"),
        ({"kl_coef": float("nan")}, "kl_coef"),
        ({"kl_coef": 0.1, "target_kl": -1}, "target_kl"),
        ({"kl_coef": 0.1, "target_kl": 1, "kl_horizon": 0}, "kl_horizon"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_prompt_tokens": 2.5}, "max_prompt_tokens"),
        ({"max_prompt_tokens": 100, "max_new_tokens": 100}, "positions"),
        ({"unlogged_policy": "guess"}, "unlogged_policy"),
        ({"stop_strings": "\n"}, "stop_strings"),
    ],
)
def test_config_errors(tiny_lm_dir, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TextGenEnv(tiny_lm_dir, PROMPTS, "length", reward_kwargs={"target": 3}, **kwargs)


def test_a_reward_returning_nan_is_named(tiny_lm_dir):
    def broken(prompts, completions, **meta):
        return [float("nan")] * len(prompts)

    env = TextGenEnv(tiny_lm_dir, PROMPTS, broken, max_new_tokens=1)
    env.reset(seed=0)
    with pytest.raises(rewards.InvalidRewardOutputError, match="broken"):
        env.step(3)


def test_an_unsupported_render_mode_warns_and_turns_rendering_off(tiny_lm_dir):
    with pytest.warns(UserWarning, match="rgb_array"):
        env = TextGenEnv(tiny_lm_dir, PROMPTS, "length", reward_kwargs={"target": 3}, render_mode="rgb_array")
    assert env.render_mode is None
