"""TextVecEnv: finished episodes of one step are scored in one reward call; the process-wide KL board."""

from __future__ import annotations

import numpy as np
import pytest

from textenv.kl import send_logprobs
from textenv.sampler import LMSampler
from textenv.vector import TextVecEnv, make_vec_env


class CountingReward:
    """Scores = number of words; records the batch size of every call."""

    def __init__(self):
        self.calls: list[int] = []

    def __call__(self, prompts, completions, **meta):
        self.calls.append(len(prompts))
        return [float(len(c.split())) for c in completions]


def test_episodes_ending_in_the_same_step_are_scored_in_one_call():
    reward = CountingReward()
    vec = make_vec_env("textenv/Toy-v0", n_envs=4, seed=0, max_new_tokens=3, reward=reward)
    assert isinstance(vec, TextVecEnv)
    vec.reset()
    for _ in range(3):
        _, _, dones, infos = vec.step(np.array([3, 4, 5, 6]))
    assert dones.all()
    assert reward.calls == [4]
    assert [info["rm_score"] for info in infos] == [3.0] * 4
    assert all("episode" in info for info in infos)  # the Monitor wrapper still saw every step


def test_batched_and_single_scoring_give_the_same_rewards():
    batched = make_vec_env("textenv/Toy-v0", n_envs=2, seed=3, max_new_tokens=4)
    single = [make_vec_env("textenv/Toy-v0", n_envs=1, seed=3 + i, max_new_tokens=4) for i in range(2)]
    batched.reset()
    for s in single:
        s.reset()
    rng = np.random.default_rng(0)
    for _ in range(4):
        actions = rng.integers(70, size=2)
        _, r, _, _ = batched.step(actions)
        expected = [s.step(actions[i : i + 1])[1][0] for i, s in enumerate(single)]
        np.testing.assert_allclose(r, expected, atol=1e-6)


def test_a_message_sent_through_the_vec_env_reaches_every_sub_env():
    vec = make_vec_env("textenv/Toy-v0", n_envs=3, seed=1, max_new_tokens=2, unlogged_policy="error")
    sampler = LMSampler(vec.envs[0].unwrapped.model, temperature=1.5, seed=0)
    obs = vec.reset()
    for _ in range(4):
        actions, logprobs = sampler.act(obs)
        send_logprobs(vec, obs["input_ids"], actions, logprobs)
        obs, _, _, infos = vec.step(actions)
        assert {info["kl_source"] for info in infos} == {"policy"}
        for info, lp in zip(infos, logprobs, strict=True):
            assert info["logprob"] == pytest.approx(lp)


def test_make_vec_env_rejects_a_bad_count():
    from textenv.errors import ConfigError

    with pytest.raises(ConfigError, match="n_envs"):
        make_vec_env("textenv/Toy-v0", n_envs=0)


def test_the_parts_of_a_weighted_sum_reach_the_info():
    from rewards.combinators import WeightedSum

    reward = WeightedSum(
        {
            "length": {"reward": "length", "target": 2, "weight": 0.5},
            "kw": {"reward": "keyword", "keywords": ["good"], "weight": 1.0},
        }
    )
    vec = make_vec_env("textenv/Toy-v0", n_envs=2, seed=0, max_new_tokens=2, reward=reward)
    vec.reset()
    vec.step(np.array([3, 9]))
    _, _, dones, infos = vec.step(np.array([3, 9]))
    assert dones.all()
    for info in infos:
        assert set(info["rm_parts"]) >= {"length", "kw"}
        parts = info["rm_parts"]
        assert info["rm_score"] == pytest.approx(0.5 * parts["length"] + parts["kw"])


def test_a_reward_given_by_name_is_built_once_for_all_sub_envs():
    import rewards

    builds: list[dict] = []

    def factory(**kwargs):
        builds.append(kwargs)
        return CountingReward()

    rewards.register("test_vector_counted_builds", factory, overwrite=True)
    vec = make_vec_env("textenv/Toy-v0", n_envs=3, reward="test_vector_counted_builds", reward_kwargs={"unused": 1})
    assert builds == [{"unused": 1}]
    assert len({id(env.unwrapped.reward_fn) for env in vec.envs}) == 1
