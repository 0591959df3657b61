"""A policy built on the env's reference weights scores π_ref in its own rollout forward, exactly."""

from __future__ import annotations

import pytest
import torch
from stable_baselines3 import PPO

from agents.buffer import EpisodeRolloutBuffer
from agents.policy import LMPolicy
from textenv.models import TOY_MODEL
from textenv.reference import BatchedReference, ReferenceScorer, batched_reference
from textenv.sampler import position_ids
from textenv.vector import make_vec_env

pytestmark = pytest.mark.fast_path  # the KV cache and fused reference themselves


def _ppo(vec, policy_kwargs):
    # The toy reward is 0 for most short completions and π starts equal to π_ref: the entropy bonus moves it.
    # The model is named (the toy env's unless given), not looked up among the models other tests left behind.
    policy_kwargs = {"model": TOY_MODEL, **policy_kwargs}
    model = PPO(LMPolicy, vec, n_steps=8, batch_size=8, n_epochs=2, seed=0, device="cpu", learning_rate=3e-2,
                ent_coef=0.05, rollout_buffer_class=EpisodeRolloutBuffer, policy_kwargs=policy_kwargs)  # fmt: skip
    model.policy.connect(model.get_env())  # the log-prob channel (ConnectLogProbs does this in learn)
    return model


def _reference_logprobs(model, obs, actions):
    ids, mask = obs["input_ids"].long(), obs["attention_mask"].long()
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask))
    return torch.log_softmax(out.logits[:, -1].float(), -1).gather(1, actions.long()[:, None]).squeeze(1)


@pytest.mark.parametrize(
    "policy_kwargs",
    [
        {"lora": {"r": 4, "target_modules": "all-linear"}},
        {"trainable_layers": 1},
        {"trainable_layers": 1, "lora": True},
    ],
    ids=["lora", "top-layer", "lora-top-layer"],
)
def test_the_env_gets_the_reference_logprobs_of_its_own_weights_from_the_policys_forward(monkeypatch, policy_kwargs):
    vec = make_vec_env("textenv/Toy-v0", n_envs=3, seed=0, max_new_tokens=5, kl_coef=0.3, unlogged_policy="error")
    reference = vec.envs[0].unwrapped.model
    model = _ppo(vec, policy_kwargs)
    policy = model.policy
    fused = policy._fused[0]
    assert fused is not None
    assert fused.reference is reference
    model.learn(24)  # the trained weights move, so π and π_ref differ

    def refuse(*args, **kwargs):
        raise AssertionError("the env scored π_ref itself")

    monkeypatch.setattr(BatchedReference, "logprobs", refuse)
    monkeypatch.setattr(ReferenceScorer, "next_logprobs", refuse)
    policy.set_training_mode(False)
    obs = vec.reset()
    kls = []
    for _ in range(2 * 5):  # two episodes per env: the cache serves steps and restarts rows
        tensors = policy.obs_to_tensor(obs)[0]
        with torch.no_grad():
            actions, _, log_prob = policy(tensors)
        expected = _reference_logprobs(reference, tensors, actions)
        obs, _, _, infos = vec.step(actions.numpy())
        torch.testing.assert_close(torch.tensor([i["ref_logprob"] for i in infos]).float(), expected, atol=1e-4, rtol=0)
        torch.testing.assert_close(torch.tensor([i["logprob"] for i in infos]).float(), log_prob, atol=1e-5, rtol=0)
        kls += [i["kl"] for i in infos]
    assert max(abs(k) for k in kls) > 1e-3  # the trained weights matter
    assert fused.cache.n_incremental > 0


@pytest.mark.parametrize(
    "policy_kwargs",
    [
        {},
        {"trainable_layers": 1, "share_reference_weights": False},
        {"lora": {"r": 2}, "share_reference_weights": False},
    ],
    ids=["full", "top-layer-own-weights", "lora-own-weights"],
)
def test_other_policies_leave_the_reference_to_the_env(policy_kwargs):
    vec = make_vec_env("textenv/Toy-v0", n_envs=2, seed=0, max_new_tokens=3)
    model = _ppo(vec, policy_kwargs)
    assert model.policy._fused[0] is None
    scorer = batched_reference(vec.envs[0].unwrapped.model).cache
    before = scorer.n_incremental + scorer.n_recomputed
    model.learn(8)
    assert scorer.n_incremental + scorer.n_recomputed > before


@pytest.mark.parametrize("policy_kwargs", [{"trainable_layers": 2}, {"lora": True}], ids=["top-layers", "lora"])
def test_the_fused_reference_is_exact_on_the_real_model(smollm2_dir, monkeypatch, policy_kwargs):
    """SmolLM2 is a Llama: RMSNorm, rotary positions and grouped key/value heads go through the row split too."""
    vec = make_vec_env("textenv/TextGen-v0", n_envs=2, seed=0, model=str(smollm2_dir), max_new_tokens=4,
                       prompts=["The film was", "My favourite meal is"], reward="length",
                       reward_kwargs={"target": 3})  # fmt: skip
    reference = vec.envs[0].unwrapped.model
    model = _ppo(vec, {"model": str(smollm2_dir), **policy_kwargs})
    policy = model.policy
    assert policy._fused[0] is not None
    with torch.no_grad():  # move the trained weights off the reference's, as training would
        for p in policy.parameters():
            if p.requires_grad:
                p.add_(0.02 * torch.randn_like(p))
    monkeypatch.setattr(BatchedReference, "logprobs", lambda *a, **k: pytest.fail("the env scored π_ref itself"))
    policy.set_training_mode(False)
    obs = vec.reset()
    for _ in range(4):
        tensors = policy.obs_to_tensor(obs)[0]
        with torch.no_grad():
            actions, _, _ = policy(tensors)
        expected = _reference_logprobs(reference, tensors, actions)
        obs, _, _, infos = vec.step(actions.numpy())
        # 30 layers of float32 sums in another order (as in the KV cache's real-model test)
        got = torch.tensor([i["ref_logprob"] for i in infos]).float()
        torch.testing.assert_close(got, expected, atol=5e-4, rtol=0)
        assert max(abs(i["kl"]) for i in infos) > 1e-4


@pytest.mark.parametrize(
    "policy_kwargs", [{"trainable_layers": 1}, {"lora": {"r": 4, "target_modules": "all-linear"}}], ids=["top", "lora"]
)
def test_the_fused_cache_matches_full_passes_when_rows_restart_at_different_steps(policy_kwargs):
    """Rows that restart while others continue are recomputed alone: in the top-blocks set-up the upper layers'
    caches hold each window twice (policy and reference), and those rows must land in both copies."""
    import numpy as np

    vec = make_vec_env("textenv/Toy-v0", n_envs=3, seed=0, max_new_tokens=5)
    reference = vec.envs[0].unwrapped.model
    policy = _ppo(vec, policy_kwargs).policy
    with torch.no_grad():
        for p in policy.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    fused = policy._fused[0]
    width, pad, rng = 10, 0, np.random.default_rng(0)
    contexts = [list(rng.integers(3, 60, size=n)) for n in (1, 3, 6)]
    for _ in range(3 * width):
        ids = torch.full((3, width), pad)
        mask = torch.zeros((3, width), dtype=torch.long)
        for i, context in enumerate(contexts):
            ids[i, width - len(context) :], mask[i, width - len(context) :] = torch.tensor(context), 1
        logits, _, ref_logits = fused(ids, mask)
        with torch.no_grad():
            plain = policy.lm(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)).logits[:, -1]
            ref = reference(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)).logits[:, -1]
        torch.testing.assert_close(logits, plain.float(), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(ref_logits, ref.float(), atol=1e-4, rtol=1e-4)
        for context in contexts:
            if len(context) == width - 1:  # a new episode in this row only
                context[:] = list(rng.integers(3, 60, size=int(rng.integers(1, 5))))
            else:
                context.append(int(rng.integers(3, 60)))
    assert fused.cache.n_incremental > width
    assert fused.cache.n_recomputed > 3
