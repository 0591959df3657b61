"""One flag moves a run: ``device`` reaches the policy, the env's reference and model-based rewards, checkpoints
load onto it, and "auto" picks CUDA only where a GPU is visible. (On this CPU-only suite the devices are
the CPU; what is checked is the plumbing.)"""

from __future__ import annotations

import contextlib

import pytest
import torch

import rewards
from agents.cli import build_parser
from agents.config import TrainConfig, load_config
from agents.train import env_kwargs, make_agent, run_device, train
from textenv.errors import ConfigError
from textenv.models import resolve_device
from textenv.vector import make_vec_env


def test_auto_is_cuda_only_where_a_gpu_is_visible(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert run_device(TrainConfig(device="auto")) == "cuda"  # resolved, not allocated
    assert env_kwargs(TrainConfig(device="auto"))["device"] == "cuda"


@pytest.mark.parametrize(("fields", "match"), [
    ({"device": "gpu"}, r"device must be 'auto'.*got 'gpu'"),
    ({"device": "cuda:x"}, "device must be"),
    ({"precision": "fp16"}, r"precision must be one of \('fp32', 'bf16'\); got 'fp16'"),
])  # fmt: skip
def test_bad_device_or_precision_is_a_typed_error(fields, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**fields)


def test_bf16_is_refused_off_cuda_with_the_fix():
    with pytest.raises(ConfigError, match=r"bf16.*CUDA only.*'cpu'.*precision='fp32'"):
        run_device(TrainConfig(device="cpu", precision="bf16"))


def test_every_model_and_tensor_of_a_run_sits_on_the_configured_device(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # auto -> cpu, as on a CPU-only machine
    config = load_config(None, "tiny", budget_tokens=64, device="auto", checkpoint_every=1)
    model = make_agent(config)
    assert model.device == torch.device("cpu")
    env = model.get_env().envs[0].unwrapped
    assert env.device == "cpu"
    assert {p.device for p in model.policy.parameters()} == {torch.device("cpu")}
    assert {p.device for p in env.model.parameters()} == {torch.device("cpu")}

    loaded_on = []
    from stable_baselines3 import PPO

    original = PPO.load.__func__

    def spy(cls, path, *args, **kwargs):
        loaded_on.append(kwargs.get("device"))
        return original(cls, path, *args, **kwargs)

    monkeypatch.setattr(PPO, "load", classmethod(spy))
    train(config, tmp_path / "run", progress=False)
    train(config.replace(budget_tokens=128), tmp_path / "run", resume=True, progress=False)
    assert loaded_on == ["cpu"]  # the checkpoint was loaded onto the run's device, not a hard-coded one


def test_a_reward_given_by_name_that_takes_a_device_runs_on_the_env_s_device(monkeypatch):
    seen = []

    def factory(device: str = "unset"):
        seen.append(device)
        return lambda prompts, completions, **meta: [0.0] * len(prompts)

    monkeypatch.setitem(rewards.registry._registry, "test-device-reward", factory)
    assert rewards.accepts("test-device-reward", "device")
    assert not rewards.accepts("length", "device")
    assert not rewards.accepts("no-such-reward", "device")
    make_vec_env("textenv/Toy-v0", 1, reward="test-device-reward", device="cpu")
    make_vec_env("textenv/Toy-v0", 1, reward="test-device-reward", reward_kwargs={"device": "meta"}, device="cpu")
    assert seen == ["cpu", "meta"]  # the env's device, unless reward_kwargs says otherwise


def test_the_policy_autocasts_only_on_cuda():
    policy = make_agent(load_config(None, "tiny", device="cpu")).policy
    policy.precision = "bf16"
    assert isinstance(policy._autocast(), contextlib.nullcontext)  # the CPU keeps float32


@pytest.mark.parametrize("command", [
    ["train", "--device", "cpu", "--precision", "fp32"],
    ["compare", "--device", "cuda:1"],
    ["demo", "--device", "cpu", "--model", "some/model"],
    ["sft", "--data", "d.jsonl", "--base", "b", "--out", "o", "--device", "cpu"],
    ["rm", "train", "--data", "d.jsonl", "--base", "b", "--out", "o", "--device", "cpu"],
    ["pipeline", "--config", "p.yaml", "--device", "cpu"],
])  # fmt: skip
def test_every_training_command_takes_device(command):
    args = build_parser().parse_args(command)
    assert args.device in ("cpu", "cuda:1")


def test_the_reward_model_trainer_refuses_a_bad_device():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        rewards.RewardModelTrainingConfig(device="tpu")
