"""Every registered id passes the shipped validator and runs under every vector env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

import textenv
from textenv.kl import send_logprobs
from textenv.sampler import LMSampler
from textenv.testing import check_text_env


@pytest.fixture
def id_kwargs(tiny_lm_dir, tiny_gpt2_bpe_dir):
    """Each registered id with the smallest overrides that make it run on a tiny model."""
    return {
        "textenv/Toy-v0": {},
        "textenv/Sentiment-v0": {"model": str(tiny_gpt2_bpe_dir), "max_new_tokens": 6},
        "textenv/TextGen-v0": {
            "model": str(tiny_lm_dir),
            "prompts": ["the movie was", "a good day"],
            "reward": "length",
            "reward_kwargs": {"target": 4},
            "max_new_tokens": 6,
        },
        "textenv/Summarize-v0": {"model": str(tiny_gpt2_bpe_dir), "max_new_tokens": 6},
    }


def test_the_table_holds_the_four_ids():
    from gymnasium.envs.registration import load_env_creator

    from textenv.env import TextGenEnv

    assert textenv.env_ids() == ["textenv/Sentiment-v0", "textenv/Summarize-v0", "textenv/TextGen-v0", "textenv/Toy-v0"]
    for env_id in textenv.env_ids():
        assert issubclass(load_env_creator(gym.spec(env_id).entry_point), TextGenEnv)


@pytest.mark.parametrize(
    "env_id", ["textenv/Toy-v0", "textenv/Sentiment-v0", "textenv/TextGen-v0", "textenv/Summarize-v0"]
)
def test_registered_ids_pass_check_text_env(env_id, id_kwargs):
    report = check_text_env(gym.make(env_id, **id_kwargs[env_id]))
    assert len(report.checks) == 5


def test_make_overrides_any_default():
    env = gym.make("textenv/Toy-v0", max_new_tokens=3, kl_coef=0.5)
    assert env.unwrapped.max_new_tokens == 3
    assert env.unwrapped.kl_controller.value == 0.5


def test_a_toy_episode_loads_no_second_model_and_feeds_one_new_token_per_step():
    # What keeps a toy episode cheap, asserted as behaviour rather than timed: a second env loads no model, and
    # the reference scores each step from its KV cache (one forward over the prompt, then one token per step).
    env = gym.make("textenv/Toy-v0")
    model = env.unwrapped.model
    assert gym.make("textenv/Toy-v0").unwrapped.model is model
    widths: list[int] = []
    hook = model.register_forward_pre_hook(
        lambda _module, _args, kwargs: widths.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    try:
        env.reset(seed=0)
        steps, done = 0, False
        while not done:
            _, _, done, _, info = env.step(env.action_space.sample())
            steps += 1
    finally:
        hook.remove()
    prompt_tokens = len(env.unwrapped.tokenizer(info["prompt"])["input_ids"])
    assert widths == [prompt_tokens] + [1] * (steps - 1)


def _drive(vec, sampler, steps):
    """Step a vector env with the sampler through the KL channel; return the kl sources seen."""
    sources = set()
    obs = vec.reset()
    obs = obs[0] if isinstance(obs, tuple) else obs
    for _ in range(steps):
        actions, logprobs = sampler.act(obs)
        send_logprobs(vec, obs["input_ids"], actions, logprobs)
        out = vec.step(actions)
        obs, infos = out[0], out[-1]
        if isinstance(infos, dict):  # gymnasium vector info: dict of arrays
            # (absent on a step that only auto-resets every sub-env: Gymnasium's next-step autoreset)
            if "kl_source" in infos:
                sources.update(infos["kl_source"][infos["_kl_source"]].tolist())
        else:
            sources.update(i["kl_source"] for i in infos)
    return sources


@pytest.mark.parametrize(
    "kind",
    ["sync", pytest.param("async", marks=pytest.mark.slow), "dummy", pytest.param("subproc", marks=pytest.mark.slow)],
)
def test_vector_envs_with_the_kl_channel(kind):
    n = 2
    # "textenv:" makes Gymnasium import textenv first, which a fresh worker process needs.
    fns = [lambda: gym.make("textenv:textenv/Toy-v0", max_new_tokens=3) for _ in range(n)]
    vec = {
        "sync": lambda: gym.vector.SyncVectorEnv(fns),
        # After torch has run threads in this process, a forked child can deadlock in OpenMP: use forkserver.
        "async": lambda: gym.vector.AsyncVectorEnv(fns, context="forkserver"),
        "dummy": lambda: DummyVecEnv(fns),
        "subproc": lambda: SubprocVecEnv(fns),
    }[kind]()
    try:
        model = gym.make("textenv/Toy-v0").unwrapped.model
        sources = _drive(vec, LMSampler(model, seed=0), steps=7)
        assert sources == {"policy"}
    finally:
        vec.close()


def test_dummy_vec_env_rewards_match_single_env():
    single = gym.make("textenv/Toy-v0", max_new_tokens=3)
    vec = DummyVecEnv([lambda: gym.make("textenv/Toy-v0", max_new_tokens=3)])
    vec.seed(5)
    obs = vec.reset()
    obs1, _ = single.reset(seed=5)
    assert (obs["input_ids"][0] == obs1["input_ids"]).all()
    for token in (4, 5, 6):
        obs, r, done, _ = vec.step(np.array([token]))
        _, r1, done1, _, _ = single.step(token)
        assert r[0] == pytest.approx(r1)
    assert done[0]
    assert done1


@pytest.mark.slow  # fast: the dummy vec env test of the same ids
def test_sb3_make_vec_env_with_subprocesses():
    from stable_baselines3.common.env_util import make_vec_env

    vec = make_vec_env("textenv:textenv/Toy-v0", n_envs=2, vec_env_cls=SubprocVecEnv)
    try:
        obs = vec.reset()
        assert obs["input_ids"].shape == (2, 16)
    finally:
        vec.close()


@pytest.mark.real_model
def test_sentiment_env_with_its_real_default_model_passes_the_validator(smollm2_dir):
    env = gym.make("textenv/Sentiment-v0", max_new_tokens=3)
    assert env.unwrapped.vocab_size == 49152
    check_text_env(env)


def test_every_registered_spec_serialises_and_its_round_trip_builds_the_same_env(id_kwargs):
    from gymnasium.envs.registration import EnvSpec

    for env_id in textenv.env_ids():
        spec = gym.spec(env_id)
        text = spec.to_json()  # raised for Toy-v0, whose table entry held a KeywordReward instance
        assert EnvSpec.from_json(text).to_json() == text
        # the registered defaults, overridden only where a tiny model is needed, through the round-tripped spec
        overrides = {k: v for k, v in id_kwargs[env_id].items() if k == "model" or env_id == "textenv/TextGen-v0"}
        envs = [gym.make(s, **overrides) for s in (spec, EnvSpec.from_json(text))]
        assert envs[0].unwrapped.reward_fn.__name__ == envs[1].unwrapped.reward_fn.__name__
        rollouts = []
        for env in envs:
            obs, _ = env.reset(seed=3)
            steps = [obs["input_ids"].copy()]
            for action in (5, 9, 11, 5, 7, 2):
                obs, reward, terminated, truncated, info = env.step(action)
                steps.append((obs["input_ids"].copy(), reward, terminated, info.get("completion")))
                if terminated or truncated:
                    break
            rollouts.append(steps)
        for a, b in zip(*rollouts, strict=True):
            assert repr(a) == repr(b), env_id


def test_the_toy_reward_is_overridden_by_reward_alone():
    env = gym.make("textenv/Toy-v0", reward="length", reward_kwargs={"target": 3})
    assert env.unwrapped.reward_fn.__name__ == "length"
    env = gym.make("textenv/Toy-v0", reward_kwargs={"mode": "count"})  # the default reward, one setting changed
    assert env.unwrapped.reward_fn.fn.mode == "count"
