"""LoRA and partial fine-tuning: what trains, what is shared with the env's reference, and that the KL stays exact."""

from __future__ import annotations

import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

from agents.buffer import EpisodeRolloutBuffer
from agents.model_card import CARD_KEY
from agents.policy import LMPolicy
from agents.trunk import transformer_blocks
from textenv.errors import ConfigError
from textenv.models import TOY_MODEL
from textenv.sampler import position_ids
from textenv.vector import make_vec_env


def _ppo(vec, policy_kwargs, **kwargs):
    # The toy reward is 0 for most short completions and π starts equal to π_ref: the entropy bonus moves it.
    defaults = {"n_steps": 8, "batch_size": 8, "n_epochs": 2, "seed": 0, "device": "cpu", "learning_rate": 3e-2,
                "ent_coef": 0.05}  # fmt: skip
    defaults.update(kwargs)
    # The model is named, not looked up among the models other tests left in the process (order independence).
    policy_kwargs = {"model": TOY_MODEL, **policy_kwargs}
    model = PPO(LMPolicy, vec, rollout_buffer_class=EpisodeRolloutBuffer, policy_kwargs=policy_kwargs, **defaults)
    model.policy.connect(model.get_env())  # the log-prob channel (ConnectLogProbs does this in learn)
    return model


def _logprobs(model, ids, mask):
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask))
    return torch.log_softmax(out.logits[:, -1].float(), -1)


class _Episodes(BaseCallback):
    def __init__(self):
        super().__init__()
        self.episodes = []

    def _on_step(self):
        self.episodes += [info for info in self.locals["infos"] if "episode" in info]
        return True


def test_lora_trains_only_the_adapter_and_the_reference_is_the_same_weights_without_it():
    vec = make_vec_env("textenv/Toy-v0", n_envs=2, seed=0, max_new_tokens=4, kl_coef=0.3, unlogged_policy="error")
    reference = vec.envs[0].unwrapped.model
    model = _ppo(vec, {"lora": {"r": 4, "target_modules": "all-linear"}})
    policy = model.policy
    ref_ids = {id(p) for p in reference.parameters()}
    base = [(n, p) for n, p in policy.lm.named_parameters() if "lora_" not in n]
    assert base
    assert all(id(p) in ref_ids for _, p in base)
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert trainable
    assert all("lora_" in n or n.startswith("value_head") for n in trainable)
    before = {n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}
    ref_before = [p.detach().clone() for p in reference.parameters()]

    callback = _Episodes()
    model.learn(48, callback=callback)

    changed = [n for n, p in policy.named_parameters() if p.requires_grad and not torch.equal(before[n], p)]
    assert sorted(changed) == sorted(before)  # every adapter weight (A and B) and the value head moved
    assert all(torch.equal(a, b) for a, b in zip(ref_before, reference.parameters(), strict=True))
    obs = policy.obs_to_tensor(vec.reset())[0]
    ids, mask = obs["input_ids"].long(), obs["attention_mask"].long()
    with_adapter = _logprobs(policy.lm, ids, mask)
    policy.lm.disable_adapters()
    try:
        torch.testing.assert_close(_logprobs(policy.lm, ids, mask), _logprobs(reference, ids, mask))
    finally:
        policy.lm.enable_adapters()
    assert not torch.allclose(with_adapter, _logprobs(reference, ids, mask), atol=1e-4)  # the adapter matters
    assert len(callback.episodes) >= 6
    for info in callback.episodes:  # the KL channel stays exact with an adapter
        assert info["episode"]["r"] == pytest.approx(info["rm_score"] - info["kl_coef"] * info["kl_sum"], abs=1e-5)
    assert any(abs(info["kl_sum"]) > 1e-4 for info in callback.episodes)


@pytest.mark.parametrize("lora", [None, {"r": 2}])
def test_trainable_layers_trains_the_top_blocks_and_shares_the_rest(lora):
    vec = make_vec_env("textenv/Toy-v0", n_envs=2, seed=0, max_new_tokens=4)
    reference = vec.envs[0].unwrapped.model
    model = _ppo(vec, {"trainable_layers": 1, "lora": lora})
    blocks = transformer_blocks(model.policy.lm)
    top = {id(p) for p in blocks[-1].parameters()}
    ref_ids = {id(p) for p in reference.parameters()}
    for name, p in model.policy.lm.named_parameters():
        if lora is None:
            assert p.requires_grad == (id(p) in top), name
            assert (id(p) in ref_ids) == (id(p) not in top), name  # frozen tensors are the reference's own
        else:
            assert p.requires_grad == ("lora_" in name), name
            assert not ("lora_" in name and ".h.0." in name), name  # adapters only in the top block
    before = {n: p.detach().clone() for n, p in model.policy.named_parameters() if p.requires_grad}
    model.learn(32)
    after = dict(model.policy.named_parameters())
    assert [n for n, p in before.items() if torch.equal(p, after[n])] == []


def test_a_lora_policy_saves_and_loads(tmp_path):
    vec = make_vec_env("textenv/Toy-v0", n_envs=2, seed=0, max_new_tokens=4)
    model = _ppo(vec, {"lora": True, "trainable_layers": 1})
    model.learn(16)
    model.save(tmp_path / "model.zip")
    loaded = PPO.load(tmp_path / "model.zip", env=vec, device="cpu")
    assert loaded.policy.lora is True
    assert loaded.policy.trainable_layers == 1
    saved = model.policy.state_dict()
    for name, value in loaded.policy.state_dict().items():
        if name == CARD_KEY:  # the model's config and tokenizer files (agents.model_card), not a tensor
            assert value == saved[name]
            continue
        torch.testing.assert_close(value, saved[name], rtol=0, atol=0)


def test_a_policy_sharing_weights_cannot_move_away_from_the_reference():
    vec = make_vec_env("textenv/Toy-v0", n_envs=1, seed=0)
    model = _ppo(vec, {"trainable_layers": 1})
    reference = vec.envs[0].unwrapped.model
    with pytest.raises(ConfigError, match="share_reference_weights"):
        model.policy.to(torch.float64)
    assert all(p.dtype == torch.float32 for p in reference.parameters())  # refused before anything moved
    vec = make_vec_env("textenv/Toy-v0", n_envs=1, seed=0)
    alone = _ppo(vec, {"trainable_layers": 1, "share_reference_weights": False})
    alone.policy.to(torch.float64)  # its own copy: free to move
    assert next(alone.policy.lm.parameters()).dtype == torch.float64


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lora": "yes"}, "lora must be"),
        ({"lora": {"no_such_field": 1}}, "Invalid LoRA settings"),
        ({"trainable_layers": 0}, "trainable_layers must be"),
        ({"trainable_layers": 99}, "exceeds the model's 2 transformer blocks"),
    ],
)
def test_bad_lora_and_layer_options(kwargs, match):
    vec = make_vec_env("textenv/Toy-v0", n_envs=1)
    with pytest.raises(ConfigError, match=match):
        _ppo(vec, kwargs)


def test_a_lora_policy_is_saved_as_a_plain_model_with_the_adapter_merged(tmp_path):
    from agents.checkpoint import save_policy
    from textenv.models import load_model_and_tokenizer

    vec = make_vec_env("textenv/Toy-v0", n_envs=2, seed=0, max_new_tokens=4)
    model = _ppo(vec, {"lora": {"r": 4, "target_modules": "all-linear"}})
    model.learn(32)
    save_policy(model, tmp_path / "policy")
    assert not (tmp_path / "policy" / "adapter_config.json").exists()
    loaded, _ = load_model_and_tokenizer(tmp_path / "policy")
    obs = model.policy.obs_to_tensor(vec.reset())[0]
    ids, mask = obs["input_ids"].long(), obs["attention_mask"].long()
    torch.testing.assert_close(
        _logprobs(loaded, ids, mask), _logprobs(model.policy.lm, ids, mask), atol=1e-4, rtol=1e-4
    )
    assert any("lora_" in n for n, _ in model.policy.lm.named_parameters())  # the policy keeps its adapter


def test_the_policy_state_dict_holds_each_weight_once():
    vec = make_vec_env("textenv/Toy-v0", n_envs=1, seed=0)
    model = _ppo(vec, {"trainable_layers": 1})
    names = list(model.policy.state_dict())
    assert all(n.startswith(("lm.", "value_head.")) or n == CARD_KEY for n in names), names
