"""TextGenEnv: spaces, episode ends, the KL channel and the return identity, rendering, pickling."""

from __future__ import annotations

import copy
import math
import pickle
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

import textenv
from textenv.env import TextGenEnv
from textenv.kl import send_logprobs
from textenv.models import load_model_and_tokenizer
from textenv.sampler import LMSampler, position_ids

PROMPTS = ["the movie was", "i like this book very", "the day"]


@pytest.fixture
def env(tiny_lm_dir):
    return TextGenEnv(tiny_lm_dir, PROMPTS, "length", reward_kwargs={"target": 3}, max_new_tokens=6)


def test_import_textenv_does_not_import_torch():
    code = "import sys, textenv, gymnasium as gym; gym.spec('textenv/Toy-v0'); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_observation_is_left_padded_window(env):
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    W = env.window
    assert env.max_prompt_tokens + env.max_new_tokens == W
    n_prompt = info["prompt_tokens"]
    assert obs["attention_mask"].tolist() == [0] * (W - n_prompt) + [1] * n_prompt
    assert (obs["input_ids"][: W - n_prompt] == env.pad_token_id).all()
    assert obs["completion_start"].tolist() == [W]
    obs, *_ = env.step(5)
    assert obs["input_ids"][-1] == 5
    assert obs["completion_start"].tolist() == [W - 1]
    assert obs["attention_mask"].sum() == n_prompt + 1


def test_action_space_is_the_model_vocabulary(env):
    assert env.action_space == gym.spaces.Discrete(env.model.config.vocab_size)


def test_episode_ends_after_max_new_tokens(env):
    env.reset(seed=1)
    for t in range(6):
        _, _, terminated, truncated, info = env.step(7)
        assert not truncated
        assert terminated == (t == 5)
    assert info["end_reason"] == "length"
    assert info["n_tokens"] == 6


def test_episode_ends_on_eos_and_the_completion_excludes_it(env):
    env.reset(seed=0)
    word = env.tokenizer.convert_tokens_to_ids("good")
    env.step(word)
    _, _, terminated, _, info = env.step(env.tokenizer.eos_token_id)
    assert terminated
    assert info["end_reason"] == "eos"
    assert info["completion"] == "good"


def test_episode_ends_on_a_stop_string_cut_from_the_completion(tiny_lm_dir):
    env = TextGenEnv(tiny_lm_dir, PROMPTS, "length", reward_kwargs={"target": 3}, stop_strings=["happy"])
    env.reset(seed=0)
    ids = env.tokenizer.convert_tokens_to_ids(["good", "happy", "day"])
    env.step(ids[0])
    _, _, terminated, _, info = env.step(ids[1])
    assert terminated
    assert info["end_reason"] == "stop"
    assert info["completion"].strip() == "good"


def test_reset_with_a_given_prompt_and_seeded_sampling(env):
    _, info = env.reset(options={"prompt": "a good day"})
    assert info["prompt"] == "a good day"
    first = [env.reset(seed=s)[1]["prompt"] for s in range(5)]
    again = [env.reset(seed=s)[1]["prompt"] for s in range(5)]
    assert first == again


def test_render_modes(tiny_lm_dir, capsys):
    env = TextGenEnv(tiny_lm_dir, PROMPTS, "length", reward_kwargs={"target": 3}, render_mode="ansi")
    env.reset(options={"prompt": "the movie was"})
    env.step(env.tokenizer.convert_tokens_to_ids("good"))
    text = env.render()
    assert "the movie was" in text
    assert "good" in text
    assert "tokens 1/" in text
    human = TextGenEnv(tiny_lm_dir, PROMPTS, "length", reward_kwargs={"target": 3}, render_mode="human")
    human.reset(options={"prompt": "a good day"})
    assert "a good day" in capsys.readouterr().out


def _reference_logprobs(model, prompt_ids, completion_ids):
    """log π_ref of each completion token, from one full forward pass (independent of the env's KV cache)."""
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
    n = len(prompt_ids)
    return np.array([logp[n - 1 + t, tok].item() for t, tok in enumerate(completion_ids)])


@pytest.mark.parametrize("target_kl", [None, 0.5])
def test_return_equals_rm_score_minus_beta_sum_kl_under_a_torch_policy(tiny_lm_dir, target_kl):
    env = TextGenEnv(
        tiny_lm_dir,
        PROMPTS,
        "length",
        reward_kwargs={"target": 4},
        kl_coef=0.3,
        target_kl=target_kl,
        kl_horizon=10,
        max_new_tokens=8,
        unlogged_policy="error",
    )
    # The policy: a perturbed copy of the reference model, so that the KL is far from zero.
    policy_model, _ = load_model_and_tokenizer(tiny_lm_dir)
    with torch.no_grad():
        for p in policy_model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    sampler = LMSampler(policy_model, temperature=1.0, seed=0)
    ref_model, _ = load_model_and_tokenizer(tiny_lm_dir)
    for episode in range(3):
        obs, _ = env.reset(seed=episode)
        beta = env.kl_controller.value
        total, logps, done = 0.0, [], False
        while not done:
            actions, logprobs = sampler.act(obs)
            send_logprobs(env, obs["input_ids"], actions, logprobs)
            obs, reward, done, _, info = env.step(actions[0])
            assert info["kl_source"] == "policy"
            total += reward
            logps.append(logprobs[0])
        ref = _reference_logprobs(ref_model, env._prompt_ids, env.completion_ids)
        rm_score = env.reward_fn([info["prompt"]], [info["completion"]])[0]
        kl = np.array(logps) - ref
        assert abs(kl.sum()) > 1e-3
        assert info["kl_coef"] == pytest.approx(beta)
        assert total == pytest.approx(rm_score - beta * kl.sum(), abs=1e-5)
        assert info["rm_score"] == pytest.approx(rm_score)
        assert info["kl_sum"] == pytest.approx(kl.sum(), abs=1e-5)
    if target_kl is not None:
        assert env.kl_controller.value != pytest.approx(0.3)


def test_policy_logprobs_match_the_lm_softmax(tiny_lm_dir):
    env = TextGenEnv(tiny_lm_dir, PROMPTS, "length", reward_kwargs={"target": 3})
    obs, _ = env.reset(seed=0)
    model = env.model
    sampler = LMSampler(model, temperature=0.7)
    context = torch.tensor([env._prompt_ids])
    with torch.no_grad():
        expected = torch.log_softmax(model(context).logits[0, -1] / 0.7, dim=-1)
    assert torch.allclose(sampler.logprobs(obs)[0], expected, atol=1e-5)
    # the padded, position-shifted window gives the same next-token distribution as the bare context
    assert position_ids(torch.tensor([[0, 0, 1, 1]])).tolist() == [[0, 0, 0, 1]]


def test_unlogged_policy_modes(tiny_lm_dir):
    kwargs = {"reward_kwargs": {"target": 3}, "kl_coef": 0.5}
    uniform = TextGenEnv(tiny_lm_dir, PROMPTS, "length", **kwargs)
    uniform.reset(seed=0)
    _, reward, _, _, info = uniform.step(4)
    assert info["kl_source"] == "uniform"
    assert info["logprob"] == pytest.approx(-math.log(uniform.vocab_size))
    assert reward == pytest.approx(-0.5 * (info["logprob"] - info["ref_logprob"]))

    zero = TextGenEnv(tiny_lm_dir, PROMPTS, "length", unlogged_policy="zero", **kwargs)
    zero.reset(seed=0)
    _, reward, _, _, info = zero.step(4)
    assert (reward, info["kl"], info["kl_source"]) == (0.0, 0.0, "none")

    strict = TextGenEnv(tiny_lm_dir, PROMPTS, "length", unlogged_policy="error", **kwargs)
    strict.reset(seed=0)
    with pytest.raises(textenv.errors.KLChannelError, match="send_logprobs"):
        strict.step(4)


def test_a_message_for_another_window_is_not_used(env):
    obs, _ = env.reset(seed=0)
    other = obs["input_ids"].copy()
    other[-1] = (other[-1] + 1) % env.vocab_size
    send_logprobs(env, other, [4], [-0.1])
    with pytest.warns(UserWarning, match="no row matches"):
        _, _, _, _, info = env.step(4)
    assert info["kl_source"] == "uniform"


def test_reference_cache_gives_the_same_logprobs_as_a_full_pass(tiny_lm_dir):
    env = TextGenEnv(tiny_lm_dir, PROMPTS, "length", reward_kwargs={"target": 3}, max_new_tokens=8)
    env.reset(seed=3)
    refs = [env.step(t)[4]["ref_logprob"] for t in (5, 9, 11, 13, 17, 19, 23, 29)]
    expected = _reference_logprobs(env.model, env._prompt_ids, env.completion_ids)
    np.testing.assert_allclose(refs, expected, atol=1e-5)


def test_pickle_and_deepcopy_mid_episode_continue_identically(env):
    env.reset(seed=2)
    env.step(3)
    clones = [pickle.loads(pickle.dumps(env)), copy.deepcopy(env)]
    expected = env.step(6)
    for clone in clones:
        got = clone.step(6)
        assert got[1] == pytest.approx(expected[1], abs=1e-6)
        assert (got[0]["input_ids"] == expected[0]["input_ids"]).all()
        assert got[4]["ref_logprob"] == pytest.approx(expected[4]["ref_logprob"], abs=1e-5)


def test_models_loaded_by_name_are_shared_between_envs(tiny_lm_dir):
    a = TextGenEnv(tiny_lm_dir, PROMPTS, "length", reward_kwargs={"target": 3})
    b = TextGenEnv(tiny_lm_dir, PROMPTS, "length", reward_kwargs={"target": 5})
    assert a.model is b.model
    assert not any(p.requires_grad for p in a.model.parameters())


def test_a_loaded_model_is_copied_and_frozen(tiny_lm_dir):
    model, tok = load_model_and_tokenizer(tiny_lm_dir)
    model.requires_grad_(True)
    env = TextGenEnv(model, PROMPTS, "length", tokenizer=tok, reward_kwargs={"target": 3})
    assert env.model is not model
    assert not any(p.requires_grad for p in env.model.parameters())
    assert all(p.requires_grad for p in model.parameters())


def test_reward_meta_comes_from_the_prompt_record(tiny_lm_dir):
    seen = {}

    def reward(prompts, completions, **meta):
        seen.update(meta)
        return [1.0] * len(prompts)

    env = TextGenEnv(tiny_lm_dir, [{"prompt": "a good day", "reference": "good day"}], reward, max_new_tokens=1)
    env.reset(seed=0)
    _, _, done, _, info = env.step(4)
    assert done
    assert seen == {"reference": ["good day"]}
    assert info["rm_score"] == 1.0


def test_reference_logprobs_from_the_agent_are_used_only_for_the_envs_own_model(env):
    from textenv.kl import send_logprobs

    obs, _ = env.reset(seed=0)
    send_logprobs(env, obs["input_ids"], [4], [-0.5], obs["attention_mask"], ref_logprobs=[-7.0], reference=object())
    _, _, _, _, info = env.step(4)
    assert info["ref_logprob"] != pytest.approx(-7.0)  # another model's values: the env scored π_ref itself
    obs = env.unwrapped._observation()
    send_logprobs(env, obs["input_ids"], [5], [-0.5], obs["attention_mask"], ref_logprobs=[-7.0], reference=env.model)
    _, _, _, _, info = env.step(5)
    assert info["ref_logprob"] == pytest.approx(-7.0)
    assert info["kl"] == pytest.approx(-0.5 + 7.0)
    with pytest.raises(textenv.errors.ConfigError, match="reference"):
        send_logprobs(env, obs["input_ids"], [5], [-0.5], ref_logprobs=[-7.0])
    with pytest.raises(textenv.errors.ConfigError, match="one value per row"):
        send_logprobs(env, obs["input_ids"], [5], [-0.5], ref_logprobs=[-7.0, -1.0], reference=env.model)


def test_episodes_cut_by_time_limit_are_unscored_and_say_so_once():
    import warnings

    from textenv.errors import UnscoredEpisodeWarning

    env = gym.make("textenv/Toy-v0", max_episode_steps=3, target_kl=0.1, kl_horizon=100)  # max_new_tokens is 8
    eos = env.unwrapped.tokenizer.eos_token_id
    action = next(a for a in range(env.action_space.n) if a != eos)
    beta = env.unwrapped.kl_controller.value
    env.reset(seed=0)
    for _ in range(3):
        _, _, terminated, truncated, info = env.step(action)
    assert truncated
    assert not terminated
    assert "rm_score" not in info  # TimeLimit cut the completion before the env could score it
    assert env.unwrapped.kl_controller.value == beta  # and the adaptive controller never saw it
    with pytest.warns(UnscoredEpisodeWarning, match=r"max_episode_steps ≥ max_new_tokens"):
        env.reset(seed=1)
    for _ in range(3):
        env.step(action)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnscoredEpisodeWarning)
        env.reset(seed=2)  # once per env
        full = gym.make("textenv/Toy-v0", max_episode_steps=8)
        full.reset(seed=0)
        terminated = truncated = False
        while not (terminated or truncated):
            _, _, terminated, truncated, info = full.step(action)
        assert terminated
        assert "rm_score" in info
        full.reset(seed=1)
