"""RayVecEnv: the same rollouts as TextVecEnv, one batched reward actor, the log-prob channel, and dead actors.

The tests that need Ray share one local cluster on loopback (started and stopped by this module) and are
skipped when Ray is not installed.
"""

from __future__ import annotations

import socket
import sys

import numpy as np
import pytest

from textenv.errors import MissingExtraError, RayAddressError, RayWorkerLostError, ScoreMissingError
from textenv.kl import LogProbMessage, send_logprobs
from textenv.vector import make_vec_env

# Fractions of a CPU, so that the env actors and the reward actor fit the two CPUs of the test cluster.
SMALL = {"num_cpus": 0.25, "reward_num_cpus": 0.25}
SETTINGS = {"max_new_tokens": 3, "unlogged_policy": "error"}


@pytest.fixture(scope="module")
def ray():
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    # The workers must unpickle the reward defined in this test module, which they cannot import.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


class WordsAndBatch:
    """Number of words, plus 100 × the number of completions scored in the same call."""

    def __call__(self, prompts, completions, **meta):
        return [len(c.split()) + 100.0 * len(completions) for c in completions]


@pytest.fixture(scope="module")
def remote(ray):
    """Three sub-envs in two actors (two in one, one in the other); one cluster start serves several tests."""
    from textenv.ray_vec_env import RayVecEnv

    vec = RayVecEnv("textenv/Toy-v0", 3, envs_per_actor=2, reward=WordsAndBatch(), **SMALL, **SETTINGS)
    yield vec
    vec.close()


def _logprob_message(obs, actions, rng, masks):
    """A message as an agent sends it; with the masks, the envs score π_ref for all rows in one batched forward."""
    logprobs = -rng.uniform(0.1, 4.0, size=len(actions))
    mask = obs["attention_mask"].copy() if masks else None
    return LogProbMessage(obs["input_ids"].copy(), np.asarray(actions), logprobs, mask)


def _same_infos(ray_infos, local_infos, exact):
    keys = ("rm_score", "kl", "logprob", "ref_logprob", "kl_sum", "kl_source", "completion", "end_reason",
            "TimeLimit.truncated", "n_tokens")  # fmt: skip
    for got, want in zip(ray_infos, local_infos, strict=True):
        expected = {k: want.get(k) for k in keys}
        if not exact:  # π_ref from a batched forward over other rows: the same up to float32 rounding
            expected.update({k: pytest.approx(want[k], abs=1e-5) for k in ("kl", "ref_logprob", "kl_sum") if k in want})
        assert {k: got.get(k) for k in keys} == expected
        assert ("terminal_observation" in got) == ("terminal_observation" in want)
        if "terminal_observation" in want:
            for key, value in want["terminal_observation"].items():
                np.testing.assert_array_equal(got["terminal_observation"][key], value)
        if "episode" in want:  # Monitor's return and length ("t" is a wall-clock time)
            r = want["episode"]["r"] if exact else pytest.approx(want["episode"]["r"], abs=1e-5)
            assert (got["episode"]["r"], got["episode"]["l"]) == (r, want["episode"]["l"])


def test_rollouts_equal_text_vec_env_for_the_same_seeds_actions_and_logprobs(remote):
    # Five steps with messages as textenv.kl.send_logprobs builds them (no masks: each env scores π_ref alone),
    # then five with masks (one batched π_ref forward per actor, over its own rows; all rows in TextVecEnv).
    local = make_vec_env("textenv/Toy-v0", 3, seed=7, reward=WordsAndBatch(), **SETTINGS)
    assert len(remote.actors) == 2
    assert remote.observation_space == local.observation_space
    assert remote.action_space == local.action_space
    remote.seed(7)
    obs_r, obs_l = remote.reset(), local.reset()
    assert remote.reset_infos == local.reset_infos
    rng = np.random.default_rng(0)
    n_done = 0
    for t in range(10):
        for key in obs_l:
            np.testing.assert_array_equal(obs_r[key], obs_l[key])
        actions = rng.integers(1, 70, size=3)  # 1 is the EOS token: some episodes end early
        masks = t >= 5
        message = _logprob_message(obs_l, actions, rng, masks)
        if t % 2:  # every way into the channel: the method, textenv.kl.send_logprobs, and env_method (which it uses)
            remote.send_logprobs(message)
        elif not masks:
            send_logprobs(remote, message.input_ids, message.actions, message.logprobs)
        else:
            remote.env_method("record_policy_logprobs", message)
        local.env_method("record_policy_logprobs", message)
        obs_r, rew_r, done_r, info_r = remote.step(actions)
        obs_l, rew_l, done_l, info_l = local.step(actions)
        np.testing.assert_allclose(rew_r, rew_l, rtol=0, atol=0 if not masks else 1e-6)
        np.testing.assert_array_equal(done_r, done_l)
        _same_infos(info_r, info_l, exact=not masks)
        assert remote.reset_infos == local.reset_infos
        assert {info["kl_source"] for info in info_r} == {"policy"}
        # One reward call scored the episodes that ended in this step, whichever actor holds them.
        assert [info["rm_score"] // 100 for info in info_r if "rm_score" in info] == [done_r.sum()] * done_r.sum()
        n_done += int(done_l.sum())
    assert n_done >= 6  # episodes ended, were scored and reset


def test_ppo_with_lm_policy_learns_on_a_ray_vec_env(remote):
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    from agents.buffer import EpisodeRolloutBuffer
    from agents.callbacks import ConnectLogProbs
    from agents.policy import LMPolicy

    episodes = []

    class Collect(BaseCallback):
        def _on_step(self):
            for info in self.locals["infos"]:
                assert info["kl_source"] == "policy"
                if "episode" in info:
                    episodes.append(info)
            return True

    model = PPO(LMPolicy, remote, n_steps=8, batch_size=8, n_epochs=1, seed=0, device="cpu",
                learning_rate=1e-3, ent_coef=0.05, rollout_buffer_class=EpisodeRolloutBuffer,
                policy_kwargs={"model": "textenv/toy-gpt2"})  # fmt: skip
    model.learn(
        72, callback=[ConnectLogProbs(), Collect()]
    )  # log π travel with the actions to the actors  # three rollouts: the first is taken with the reference itself
    assert len(episodes) >= 6
    for info in episodes:
        assert info["episode"]["r"] == pytest.approx(info["rm_score"] - info["kl_coef"] * info["kl_sum"], abs=1e-5)
    assert any(abs(info["kl_sum"]) > 1e-4 for info in episodes)  # the policy moved away from the reference


def test_get_attr_env_method_and_env_is_wrapped_reach_the_sub_envs(remote):
    from stable_baselines3.common.monitor import Monitor

    remote.reset()
    assert remote.get_attr("max_new_tokens") == [3, 3, 3]
    remote.set_attr("tag", "x", indices=[2])
    assert remote.get_attr("tag", indices=[2]) == ["x"]
    assert remote.env_method("reset", indices=[2], options={"prompt": "the cat"})[0][1]["prompt"] == "the cat"
    assert remote.env_is_wrapped(Monitor) == [True, True, True]
    # An episode stepped around RayVecEnv.step has no score from the reward actor: the env refuses.
    remote.env_method("set_wrapper_attr", "unlogged_policy", "uniform", indices=[0])
    assert remote.get_attr("unlogged_policy") == ["uniform", "error", "error"]
    remote.env_method("step", 3, indices=[0])
    remote.env_method("step", 3, indices=[0])
    with pytest.raises(ScoreMissingError, match="without its score"):
        remote.env_method("step", 3, indices=[0])


@pytest.mark.slow  # fast: the other RayVecEnv tests (same actors, no kill)
def test_killed_actors_are_replaced_and_their_episodes_end_as_truncated(ray):
    from textenv.kl import AdaptiveKLController
    from textenv.ray_vec_env import RayVecEnv

    # An adaptive β too: the driver's controller follows every finished episode, in sub-env order.
    beta = {"kl_coef": 0.5, "target_kl": 0.01, "kl_horizon": 4.0}
    vec = RayVecEnv("textenv/Toy-v0", 2, seed=3, max_new_tokens=4, max_restarts=2, **beta, **SMALL)
    expected = AdaptiveKLController(0.5, 0.01, 4.0)

    def step(actions):
        before = vec.kl_controller.value
        obs, rewards, dones, infos = vec.step(np.array(actions))
        for i in range(2):
            if dones[i] and "kl_sum" in infos[i]:
                expected.update(infos[i]["kl_sum"], 1)
                assert vec.reset_infos[i]["kl_coef"] == before  # a new episode takes the β sent with its step
        assert vec.kl_controller.value == expected.value
        return obs, rewards, dones, infos

    try:
        obs = vec.reset()
        obs, _, _, _ = step([3, 4])
        dead = vec.actors[0]
        ray.kill(dead)  # between two steps
        with pytest.warns(UserWarning, match=r"actor of sub-envs \[0\] died"):
            new_obs, rewards, dones, infos = step([5, 6])
        assert vec.actors[0] is not dead
        assert (dones[0], rewards[0]) == (True, 0.0)
        assert (infos[0]["worker_lost"], infos[0]["TimeLimit.truncated"]) == (True, True)
        np.testing.assert_array_equal(infos[0]["terminal_observation"]["input_ids"], obs["input_ids"][0])
        assert new_obs["completion_start"][0, 0] == vec.observation_space["completion_start"].high[0]  # a new episode
        # The other actor's sub-env stepped as usual, and the replaced one goes on from its new episode.
        assert (dones[1], infos[1]["n_tokens"], "worker_lost" in infos[1]) == (False, 2, False)
        _, _, dones, infos = step([5, 6])
        assert (infos[0]["n_tokens"], "worker_lost" in infos[0]) == (1, False)
        assert infos[1]["n_tokens"] == 3

        vec.step_async(np.array([7, 8]))
        ray.kill(vec.actors[1])  # during a step: after its actions went out, before its results came back
        with pytest.warns(UserWarning, match=r"actor of sub-envs \[1\] died"):
            _, _, dones, infos = vec.step_wait()
        assert (infos[0]["n_tokens"], dones[1], infos[1]["worker_lost"]) == (2, True, True)

        ray.kill(vec.reward_actor)
        step([3, 4])
        with pytest.warns(UserWarning, match="reward actor died"):
            _, _, dones, infos = step([3, 4])  # sub-env 0's episode ends and is scored
        assert (dones[0], "rm_score" in infos[0]) == (True, True)
        for _ in range(4):
            step([3, 4])
        assert expected.value != 0.5  # β moved

        ray.kill(vec.actors[0])
        with pytest.warns(UserWarning, match="replaced it \\(2/2\\)"):
            step([3, 4])
        ray.kill(vec.actors[0])
        with pytest.raises(RayWorkerLostError, match="max_restarts=2"):
            vec.step(np.array([3, 4]))
    finally:
        vec.close()


def test_bad_addresses_give_typed_errors_with_the_fix():
    pytest.importorskip("ray")
    from textenv.ray_vec_env import connect

    with pytest.raises(RayAddressError, match="'not an address' is not a Ray address"):
        connect("not an address")
    with pytest.raises(RayAddressError, match="65536"):
        connect("127.0.0.1:65536")
    with socket.socket() as sock:  # a loopback port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(RayAddressError, match=rf"Nothing answers at .*127.0.0.1:{port}.*ray start --head"):
        connect(f"127.0.0.1:{port}")


def test_missing_ray_names_the_extra(monkeypatch):
    from textenv.ray_vec_env import RayVecEnv

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'textenv\[ray\]'"):
        RayVecEnv("textenv/Toy-v0", 1)


def test_the_env_actors_placeholder_reward_refuses_to_score():
    from textenv.ray_vec_env import _ScoredByRewardActor
    from textenv.registration import make

    env = make("textenv/Toy-v0", reward=_ScoredByRewardActor(), max_new_tokens=1)
    env.reset(seed=0)
    with pytest.raises(ScoreMissingError, match="reward actor"):
        env.step(3)
    env.reset(seed=0)
    env.unwrapped.provide_score(0.5)
    assert env.step(3)[4]["rm_score"] == 0.5


def test_the_reward_actor_resolves_the_reward_as_the_env_does():
    from textenv.ray_vec_env import _build_reward
    from textenv.registration import make

    toy = _build_reward("textenv/Toy-v0", {}, None)
    assert toy.name == make("textenv/Toy-v0").unwrapped.reward_fn.name
    assert toy(["p"], ["good great"])[0] == pytest.approx(1.0)
    assert _build_reward("textenv/Toy-v0", {"reward": "length", "reward_kwargs": {"target": 2}}, None).name == "length"
    # textenv/Summarize-v0 picks its reward itself: ROUGE against the builtin prompts' references.
    summarize = _build_reward("textenv/Summarize-v0", {"model": "textenv/toy-gpt2", "max_prompt_tokens": 24,
                                                       "max_new_tokens": 8}, None)  # fmt: skip
    assert "rouge" in summarize.name


def test_bad_arguments_fail_before_any_actor_starts():
    from textenv.errors import ConfigError, UnknownEnvError
    from textenv.ray_vec_env import RayVecEnv

    with pytest.raises(ConfigError, match="n_envs must be an integer ≥ 1; got 0"):
        RayVecEnv("textenv/Toy-v0", 0)
    with pytest.raises(ConfigError, match="envs_per_actor"):
        RayVecEnv("textenv/Toy-v0", 2, envs_per_actor=True)
    with pytest.raises(ConfigError, match="reward_num_gpus must be a number ≥ 0; got -1"):
        RayVecEnv("textenv/Toy-v0", 2, reward_num_gpus=-1)
    with pytest.raises(UnknownEnvError, match="Did you mean: textenv/Toy-v0"):
        RayVecEnv("textenv/Toyy-v0", 2)
