"""LMPolicy: exact action probabilities, cached == recomputed rollouts, one-pass episodes, the KL identity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, PPO

from agents.buffer import EpisodeRolloutBuffer
from agents.callbacks import ConnectLogProbs
from agents.policy import SEGMENT_KEY, LMPolicy
from textenv.errors import ConfigError
from textenv.kv_cache import WindowKVCache
from textenv.sampler import position_ids
from textenv.vector import make_vec_env

# The toy env's model is named: other tests of the process load other models with the same vocabulary size, so
# the policy could not tell which of them the env uses.
TOY = {"model": "textenv/toy-gpt2"}


def _ppo(vec, **kwargs):
    defaults = {"n_steps": 12, "batch_size": 12, "n_epochs": 1, "seed": 0, "device": "cpu"}
    defaults.update(kwargs)
    defaults["policy_kwargs"] = {**TOY, **defaults.get("policy_kwargs", {})}
    model = PPO(LMPolicy, vec, rollout_buffer_class=EpisodeRolloutBuffer, **defaults)
    model.policy.connect(model.get_env())  # the log-prob channel (ConnectLogProbs does this in learn)
    return model


@pytest.mark.parametrize(("temperature", "top_k"), [(1.0, None), (0.7, None), (1.3, 5)])
def test_action_probabilities_are_the_lm_softmax(temperature, top_k):
    vec = make_vec_env("textenv/Toy-v0", n_envs=2, seed=0)
    model = _ppo(vec, policy_kwargs={"temperature": temperature, "top_k": top_k})
    obs = vec.reset()
    tensors = model.policy.obs_to_tensor(obs)[0]
    with torch.no_grad():
        dist = model.policy.get_distribution(tensors)
        ids, mask = tensors["input_ids"], tensors["attention_mask"]
        logits = model.policy.lm(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)).logits[:, -1]
    expected = torch.softmax(logits / temperature, dim=-1)
    if top_k is not None:
        kth = torch.topk(expected, top_k, dim=-1).values[:, -1:]
        expected = torch.where(expected >= kth, expected, torch.zeros_like(expected))
        expected = expected / expected.sum(-1, keepdim=True)
    torch.testing.assert_close(dist.distribution.probs, expected, atol=1e-5, rtol=1e-4)
    # the same distribution as the bare, unpadded context of row 0
    row = ids[0][mask[0] == 1][None]
    with torch.no_grad():
        bare = model.policy.lm(input_ids=row).logits[0, -1]
    if top_k is None:
        torch.testing.assert_close(dist.distribution.probs[0], torch.softmax(bare / temperature, -1), atol=1e-5,
                                   rtol=1e-4)  # fmt: skip


@pytest.mark.fast_path
def test_cached_and_recomputed_rollouts_give_the_same_logprobs():
    vec = make_vec_env("textenv/Toy-v0", n_envs=3, seed=1, max_new_tokens=5)
    model = _ppo(vec)
    policy = model.policy
    obs = vec.reset()
    torch.manual_seed(0)
    for _ in range(17):  # crosses several episode ends, so rows are recomputed as well as extended
        tensors = policy.obs_to_tensor(obs)[0]
        with torch.no_grad():
            cached_logits, cached_hidden = policy.cache(policy.lm, tensors["input_ids"], tensors["attention_mask"])
            fresh_logits, fresh_hidden = WindowKVCache()(policy.lm, tensors["input_ids"], tensors["attention_mask"])
        torch.testing.assert_close(
            torch.log_softmax(cached_logits, -1), torch.log_softmax(fresh_logits, -1), atol=1e-5, rtol=0
        )
        torch.testing.assert_close(cached_hidden, fresh_hidden, atol=1e-4, rtol=1e-4)
        obs, *_ = vec.step(torch.distributions.Categorical(logits=cached_logits).sample().numpy())
    assert policy.cache.n_incremental > 0
    assert policy.cache.n_recomputed > 0


def test_one_pass_episode_evaluation_matches_the_rollout():
    vec = make_vec_env("textenv/Toy-v0", n_envs=3, seed=0, max_new_tokens=5)
    model = _ppo(vec, n_steps=13, batch_size=8, learning_rate=0.0)
    model.learn(39)
    for data in model.rollout_buffer.get(8):
        with torch.no_grad():
            values, logp, entropy = model.policy.evaluate_actions(data.observations, data.actions)
            per_window = {k: v for k, v in data.observations.items() if k != SEGMENT_KEY}
            _, logp2, entropy2 = model.policy.evaluate_actions(per_window, data.actions)
        torch.testing.assert_close(logp, data.old_log_prob, atol=1e-5, rtol=0)
        torch.testing.assert_close(values.flatten(), data.old_values, atol=1e-5, rtol=0)
        torch.testing.assert_close(logp, logp2, atol=1e-5, rtol=0)
        torch.testing.assert_close(entropy, entropy2, atol=1e-4, rtol=0)


def _subproc_vec_env(**kwargs):
    """Two toy envs in worker processes: the log-probs must cross a process boundary with the actions."""
    import gymnasium as gym
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import SubprocVecEnv

    def thunk():
        return Monitor(gym.make("textenv:textenv/Toy-v0", **kwargs))

    vec = SubprocVecEnv([thunk, thunk], start_method="forkserver")
    vec.seed(0)
    return vec


@pytest.mark.parametrize("where", ["this process", pytest.param("subprocesses", marks=pytest.mark.slow)])
def test_episode_return_under_ppo_rollouts_is_rm_score_minus_beta_sum_kl(where):
    kwargs = {"max_new_tokens": 4, "kl_coef": 0.3, "unlogged_policy": "error"}
    vec = make_vec_env("textenv/Toy-v0", n_envs=2, seed=0, **kwargs) if where == "this process" else (
        _subproc_vec_env(**kwargs))  # fmt: skip
    # The toy reward is 0 for almost every 4-token completion and the policy starts equal to the reference
    # (KL exactly 0), so the entropy bonus is what moves the policy away from the reference.
    model = _ppo(vec, n_steps=8, batch_size=8, learning_rate=1e-3, ent_coef=0.05)
    episodes = []

    from stable_baselines3.common.callbacks import BaseCallback

    class Collect(BaseCallback):
        def _on_step(self):
            for info in self.locals["infos"]:
                assert info["kl_source"] == "policy"
                if "episode" in info:
                    episodes.append(info)
            return True

    model.learn(32, callback=Collect())
    assert len(episodes) >= 6
    for info in episodes:
        assert info["episode"]["r"] == pytest.approx(info["rm_score"] - info["kl_coef"] * info["kl_sum"], abs=1e-5)
    assert any(abs(info["kl_sum"]) > 1e-4 for info in episodes)  # the policy moved away from the reference
    vec.close()


def test_an_unconnected_policy_refuses_to_roll_out_and_names_the_fix():
    import textenv.kl
    from textenv.errors import KLChannelError

    vec = make_vec_env("textenv/Toy-v0", n_envs=2, seed=0, max_new_tokens=4)
    model = PPO(LMPolicy, vec, n_steps=4, batch_size=8, seed=0, device="cpu", policy_kwargs=TOY)
    with pytest.raises(KLChannelError, match=r"callback=agents\.ConnectLogProbs\(\)"):
        model.learn(8)
    model.learn(8, callback=ConnectLogProbs())  # connected at training start: it runs
    assert not hasattr(textenv.kl, "post_logprobs")  # no process-wide board carries log-probs any more


def test_a_policy_whose_vocabulary_does_not_fit_the_env(tiny_gpt2_bpe_dir):
    vec = make_vec_env("textenv/Toy-v0", n_envs=1)
    with pytest.raises(ConfigError, match="vocabulary of 50257"):
        _ppo(vec, policy_kwargs={"model": str(tiny_gpt2_bpe_dir)})


def test_policy_options_are_validated():
    vec = make_vec_env("textenv/Toy-v0", n_envs=1)
    with pytest.raises(ConfigError, match="temperature"):
        _ppo(vec, policy_kwargs={"temperature": 0})
    with pytest.raises(ConfigError, match="top_k"):
        _ppo(vec, policy_kwargs={"top_k": 0})


def test_a2c_runs_with_the_same_policy_and_buffer():
    vec = make_vec_env("textenv/Toy-v0", n_envs=2, seed=0)
    model = A2C(LMPolicy, vec, n_steps=8, seed=0, device="cpu", rollout_buffer_class=EpisodeRolloutBuffer,
                use_rms_prop=False, policy_kwargs=TOY)  # fmt: skip
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(32, callback=ConnectLogProbs())
    after = list(model.policy.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_sb3_predict_works():
    vec = make_vec_env("textenv/Toy-v0", n_envs=2, seed=0)
    model = _ppo(vec)
    obs = vec.reset()
    actions, _ = model.predict(obs, deterministic=True)
    assert actions.shape == (2,)
    assert np.issubdtype(actions.dtype, np.integer)


def test_adam_runs_its_fused_kernel_unless_told_otherwise():
    vec = make_vec_env("textenv/Toy-v0", n_envs=1)
    assert _ppo(vec).policy.optimizer.defaults["fused"] is True
    chosen = _ppo(vec, policy_kwargs={"optimizer_kwargs": {"foreach": False}})
    assert not chosen.policy.optimizer.defaults["fused"]


@pytest.mark.parametrize("policy_kwargs", [{}, {"lora": {"r": 2}}], ids=["full", "lora"])
def test_gradients_and_stale_packed_weights_are_freed_and_rollouts_see_the_new_weights(policy_kwargs):
    from textenv import packed

    vec = make_vec_env("textenv/Toy-v0", n_envs=2, seed=0, max_new_tokens=4)
    model = _ppo(vec, policy_kwargs=policy_kwargs)
    model.learn(16)
    policy = model.policy
    assert all(p.grad is None for p in policy.parameters())  # freed right after each optimizer step
    trained = [p for p in policy.parameters() if p.requires_grad]
    frozen = [  # the frozen weights of linear layers: LoRA's base layers and the head
        m.weight
        for m in policy.lm.modules()
        if (isinstance(m, torch.nn.Linear) or type(m).__name__ == "Conv1D") and not m.weight.requires_grad
    ]
    obs = policy.obs_to_tensor(vec.reset())[0]
    with torch.no_grad():
        policy.set_training_mode(False)
        policy(obs)
    if packed.enabled():
        policy.set_training_mode(True)  # the update is about to change the trained weights: their copies go
        assert not {id(p) for p in trained} & set(packed._PACKED)
        assert all(id(p) in packed._PACKED for p in frozen)  # frozen (LoRA base) weights keep theirs
    with torch.no_grad():  # after an update, the rollout's logits are those of the new weights
        for p in trained:
            p.add_(0.01 * torch.randn_like(p))
        policy.set_training_mode(False)
        fast = policy._last_position(obs)[0]
    with torch.no_grad():
        ids, mask = obs["input_ids"].long(), obs["attention_mask"].long()
        out = policy.lm(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask))
    torch.testing.assert_close(fast, out.logits[:, -1].float(), atol=1e-4, rtol=1e-4)


@pytest.mark.fast_path
@pytest.mark.parametrize(
    "policy_kwargs", [{}, {"trainable_layers": 1}, {"lora": {"r": 4, "target_modules": "all-linear"}}],
    ids=["full", "top-layer", "lora"],
)  # fmt: skip
def test_skipping_discarded_bootstrap_values_changes_no_return_advantage_or_weight(policy_kwargs):
    from agents.callbacks import SkipDiscardedValues

    runs = []
    for callback in (None, SkipDiscardedValues()):
        # n_steps is twice the completion length: every rollout ends as every episode does
        vec = make_vec_env("textenv/Toy-v0", n_envs=3, seed=0, max_new_tokens=4, kl_coef=0.3)
        model = _ppo(vec, n_steps=8, batch_size=12, n_epochs=2, learning_rate=1e-2, ent_coef=0.05,
                     policy_kwargs=policy_kwargs)  # fmt: skip
        calls: list[int] = []
        model.policy.lm.register_forward_pre_hook(lambda module, args, calls=calls: calls.append(1))
        model.learn(3 * 8 * 3, callback=callback)
        buffer = model.rollout_buffer
        runs.append((buffer.returns.copy(), buffer.advantages.copy(), [p.detach().clone() for p in
                     model.policy.parameters()], len(calls)))  # fmt: skip
    (returns, advantages, weights, forwards), (s_returns, s_advantages, s_weights, s_forwards) = runs
    np.testing.assert_array_equal(s_returns, returns)
    np.testing.assert_array_equal(s_advantages, advantages)
    assert all(torch.equal(a, b) for a, b in zip(weights, s_weights, strict=True))
    assert s_forwards == forwards - 3  # one bootstrap pass fewer per rollout


def test_announced_values_are_skipped_only_for_the_announced_observations():
    vec = make_vec_env("textenv/Toy-v0", n_envs=2, seed=0, max_new_tokens=4)
    policy = _ppo(vec).policy
    obs = policy.obs_to_tensor(vec.reset())[0]
    with torch.no_grad():
        torch.nn.init.normal_(policy.value_head.weight)  # the head starts at zero: make the values tell
        values = policy.predict_values(obs)
        assert values.abs().min() > 0
        other = obs["input_ids"].clone()
        other[0, -1] += 1
        policy.discard_values(other.numpy(), np.array([True, True]))  # other observations: ignored
        torch.testing.assert_close(policy.predict_values(obs), values)
        policy.discard_values(obs["input_ids"].numpy(), np.array([True, True]))
        assert not policy.predict_values(obs).any()
        torch.testing.assert_close(policy.predict_values(obs), values)  # the announcement held for one call


_SAVE = """
import sys, numpy as np, torch
from stable_baselines3 import PPO
from agents import ConnectLogProbs, LMPolicy
from textenv.vector import make_vec_env
vec = make_vec_env("textenv/Toy-v0", n_envs=2, seed=0, model=sys.argv[1])
model = PPO(LMPolicy, vec, n_steps=4, batch_size=8, n_epochs=1, learning_rate=1e-2, seed=0, device="cpu")
model.learn(8, callback=ConnectLogProbs())  # the saved weights differ from the folder's
model.save(sys.argv[2])
obs = vec.reset()
with torch.no_grad():
    probs = model.policy.get_distribution(model.policy.obs_to_tensor(obs)[0]).distribution.probs.numpy()
np.savez(sys.argv[3], probs=probs, **obs)
"""

_LOAD = """
import sys, numpy as np, torch
from stable_baselines3 import PPO
model = PPO.load(sys.argv[1], device="cpu")
saved = dict(np.load(sys.argv[2]))
obs = {k: v for k, v in saved.items() if k != "probs"}
actions, _ = model.predict(obs, deterministic=True)
with torch.no_grad():
    probs = model.policy.get_distribution(model.policy.obs_to_tensor(obs)[0]).distribution.probs.numpy()
np.testing.assert_allclose(probs, saved["probs"], atol=1e-6)
assert (actions == saved["probs"].argmax(-1)).all(), actions
print("loaded", model.policy.model_name)
"""


@pytest.mark.slow  # fast: the in-process save/load tests
def test_ppo_load_in_a_fresh_process_rebuilds_the_model_from_the_saved_file(tiny_lm_dir, tmp_path):
    import shutil
    import subprocess
    import sys

    folder = shutil.copytree(tiny_lm_dir, tmp_path / "lm")
    archive, saved = tmp_path / "model.zip", tmp_path / "obs.npz"
    run = [sys.executable, "-c", _SAVE, str(folder), str(archive), str(saved)]
    subprocess.run(run, check=True, capture_output=True, text=True, timeout=300)
    shutil.rmtree(folder)  # the file alone must do: config and tokenizer travel in it, the weights always did
    done = subprocess.run([sys.executable, "-c", _LOAD, str(archive), str(saved)], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"loaded {folder}" in done.stdout


def test_a_policy_without_a_model_says_so_when_used_or_loaded_without_a_card():
    from gymnasium import spaces

    vocab = 12_345  # no model of this process has this many tokens
    obs_space = spaces.Dict({k: spaces.Box(0, vocab - 1, (8,), np.int64) for k in ("input_ids", "attention_mask")})
    policy = LMPolicy(obs_space, spaces.Discrete(vocab), lambda _: 1e-3)
    obs = {k: torch.zeros((1, 8), dtype=torch.long) for k in ("input_ids", "attention_mask")}
    with pytest.raises(ConfigError, match=r"policy_kwargs=.*PPO\.load"):
        policy.get_distribution(obs)
    with pytest.raises(ConfigError, match="holds no model card"):
        policy.load_state_dict({})


def test_normalised_observations_are_refused_naming_norm_obs_false():
    from stable_baselines3.common.vec_env import VecNormalize

    with pytest.raises(ConfigError, match=r"cannot be normalised.*norm_obs=False"):
        _ppo(VecNormalize(make_vec_env("textenv/Toy-v0", n_envs=2, seed=0))).learn(24)
    model = _ppo(VecNormalize(make_vec_env("textenv/Toy-v0", n_envs=2, seed=0), norm_obs=False))
    model.learn(24)  # rewards alone may be normalised
    assert model.num_timesteps >= 24
