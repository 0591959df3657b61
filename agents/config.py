"""The training configuration: one frozen dataclass, filled from defaults, presets, a YAML file and flags."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from textenv.errors import ConfigError
from textenv_common.checks import check_int

__all__ = ["ALGOS", "PRECISIONS", "PRESETS", "TrainConfig", "load_config"]

#: The algorithms textenv trains, by CLI name.
ALGOS = ("ppo", "a2c")
#: The precisions a run may train in (see ``TrainConfig.precision``).
PRECISIONS = ("fp32", "bf16")
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


@dataclass(frozen=True)
class TrainConfig:
    """How to train one agent on one env (every field has a CLI flag and a YAML key of the same name)."""

    env: str = "textenv/Toy-v0"
    """Registered env id."""
    algo: str = "ppo"
    """'ppo' or 'a2c' (stable-baselines3's own)."""
    seed: int = 0
    """Seed of the envs, the policy's sampling and SB3."""
    budget_tokens: int = 2048
    """Training budget in generated tokens (= env steps over all sub-envs)."""
    n_envs: int = 4
    """Sub-envs, i.e. rows of each rollout batch."""
    n_steps: int = 32
    """Steps per sub-env per rollout (the rollout holds n_envs·n_steps tokens)."""
    batch_size: int = 64
    """PPO minibatch size in tokens (whole episodes are kept together)."""
    n_epochs: int = 4
    """PPO epochs per rollout."""
    learning_rate: float = 1e-4
    """Optimizer learning rate of policy and value head."""
    gamma: float = 1.0
    """Discount: 1 because the reward model pays at the episode's end."""
    gae_lambda: float = 0.95
    """GAE λ."""
    clip_range: float = 0.2
    """PPO clip range."""
    ent_coef: float = 0.0
    """Entropy bonus (the KL penalty already keeps the policy from collapsing)."""
    vf_coef: float = 0.5
    """Value-loss weight."""
    max_grad_norm: float = 1.0
    """Gradient clipping."""
    temperature: float = 1.0
    """Sampling temperature of the policy."""
    top_k: int | None = None
    """Sample only among the top-k tokens."""
    model: str | None = None
    """Model to fine-tune (and the env's reference); default: the env's own default."""
    trainable_layers: int | None = None
    """Train only the top N transformer blocks (the rest is shared with the reference); None: all."""
    lora: bool | dict[str, Any] | None = None
    """Train a LoRA adapter (true, or peft.LoraConfig fields) on the frozen model; the reference is the
    same weights with the adapter disabled."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Overrides of the env's defaults (max_new_tokens, kl_coef, target_kl, ...)."""
    sample_every: int = 4
    """Write a few completions to samples.jsonl every this many rollouts."""
    checkpoint_every: int = 4
    """Write a checkpoint every this many rollouts (and at the end, and on Ctrl-C)."""
    eval_episodes: int = 8
    """Episodes sampled before and after training for the run's own quick check (``result.json``)."""
    eval_samples: int = 0
    """Completions per evaluation prompt in a comparison's fixed, paired evaluation (0: none); see
    :mod:`agents.evaluation`."""
    eval_holdout: int = 0
    """Hold every n-th prompt of the env's set out of training for the fixed evaluation (0: evaluate on the
    training prompts)."""
    device: str = "auto"
    """Where the policy, the env's reference model and model-based rewards run: 'auto' (CUDA when a GPU is
    visible, else the CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'."""
    precision: str = "fp32"
    """'fp32', or 'bf16': bfloat16 autocast of the LM's forwards on CUDA, with float32 master weights."""

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ConfigError(f"algo must be one of {ALGOS}; got {self.algo!r}.")
        for name in ("budget_tokens", "n_envs", "n_steps", "batch_size", "n_epochs", "sample_every",
                     "checkpoint_every", "eval_episodes"):  # fmt: skip
            check_int(name, getattr(self, name), 1, error=ConfigError)
        for name in ("eval_samples", "eval_holdout"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < 0
                or (name == "eval_holdout" and value == 1)
            ):
                raise ConfigError(
                    f"{name} must be 0 or an integer ≥ {2 if name == 'eval_holdout' else 1}; got {value!r}."
                )
        if self.n_steps * self.n_envs < 2:
            raise ConfigError(
                f"n_steps·n_envs = {self.n_steps * self.n_envs} < 2: a rollout needs at least 2 tokens "
                "(advantage normalisation needs two); raise n_steps or n_envs."
            )
        for name in ("learning_rate", "gamma", "gae_lambda", "clip_range", "ent_coef", "vf_coef",
                     "max_grad_norm", "temperature"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number; got {value!r}.")
            if value < 0 or (name in ("learning_rate", "temperature", "clip_range") and value == 0):
                raise ConfigError(f"{name} must be {'>' if name != 'ent_coef' else '≥'} 0; got {value!r}.")
        if not 0 < self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise ConfigError(f"gamma must be in (0, 1] and gae_lambda in [0, 1]; got {self.gamma}, {self.gae_lambda}.")
        check_int("trainable_layers", self.trainable_layers, 1, error=ConfigError, optional=True)
        if self.lora is not None and not isinstance(self.lora, (bool, dict)):
            raise ConfigError(
                f"lora must be true, false, null or a mapping of peft.LoraConfig fields; got {self.lora!r}."
            )
        if not isinstance(self.device, str) or not _DEVICE.fullmatch(self.device.strip().lower()):
            raise ConfigError(
                f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; got {self.device!r}. On a machine "
                "without a GPU use 'cpu' (or 'auto')."
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"precision must be one of {PRECISIONS}; got {self.precision!r} ('bf16' needs a CUDA device)."
            )
        if not isinstance(self.env_kwargs, dict):
            raise ConfigError(f"env_kwargs must be a mapping; got {type(self.env_kwargs).__name__}.")
        beta = self.env_kwargs.get("kl_coef", 0.0)
        if isinstance(beta, (int, float)) and beta < 0:
            raise ConfigError(f"env_kwargs.kl_coef (β) must be ≥ 0; got {beta!r}.")

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for YAML."""
        return dataclasses.asdict(self)


#: Named sets of overrides. "tiny" runs on the toy word-level model in well under a minute; "small" is the demo's
#: recipe for 16-token completions (twice the demo's tokens for as many episodes; README, "Getting learning", has
#: its measured gain, KL and time); "demo" is the main job's (``textenv demo``): textenv/Sentiment-v0 on
#: SmolLM2-135M within minutes on 2 cores — the top 4 of 30 blocks train (the rest is shared with the reference),
#: completions are 8 tokens of a review sentence cut before its verdict, and a comparison ends with the fixed,
#: paired evaluation on the held-out half of the prompts (README, "Getting learning", has its measured gain, KL
#: and time). A preset may hold per-algorithm settings under the algorithm's name (A2C makes one gradient step
#: per rollout, so it gets fewer rows per rollout, hence more steps, than PPO, which makes n_epochs passes over
#: minibatches).
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "model": "textenv/toy-gpt2",
        "n_envs": 4,
        "n_steps": 16,
        "batch_size": 32,
        "n_epochs": 4,
        "learning_rate": 3e-3,
        "budget_tokens": 2048,
        "env_kwargs": {"max_new_tokens": 8, "max_prompt_tokens": 24},
        "a2c": {"n_steps": 8, "learning_rate": 1e-2},
    },
    "small": {
        # The demo's recipe (below) for 16-token completions: the same 256 episodes per run (4096 tokens), rollouts
        # of 32 whole episodes for PPO and 8 for A2C, PPO minibatches of 8 episodes (128 tokens), the top 4 blocks.
        "n_envs": 32,
        "n_steps": 16,
        "batch_size": 128,
        "n_epochs": 2,
        "learning_rate": 3e-4,
        "trainable_layers": 4,
        "budget_tokens": 4096,
        "eval_episodes": 8,
        "sample_every": 2,
        "checkpoint_every": 8,
        # The fixed, paired evaluation: the 24 held-out prompts of review_verdicts × 8 samples = 192 per policy.
        "eval_samples": 8,
        "eval_holdout": 2,
        "env_kwargs": {"max_new_tokens": 16, "prompts": "builtin:review_verdicts"},
        # checkpoint_every counts rollouts: 4× PPO's count for A2C's 4× shorter ones keeps a checkpoint per 4096
        # tokens (a checkpoint writes the whole model, ~0.6 GB, 1.5-2 s on the shared 2-core machine).
        "a2c": {"n_envs": 8, "learning_rate": 3e-4, "checkpoint_every": 32},
    },
    "demo": {
        # 32 rows per rollout: a rollout is 32 whole episodes of 8 tokens, batched in one forward per step.
        "n_envs": 32,
        "n_steps": 8,
        "batch_size": 64,
        "n_epochs": 2,
        "learning_rate": 3e-4,
        "trainable_layers": 4,
        "budget_tokens": 2048,
        "eval_episodes": 8,
        "sample_every": 2,
        "checkpoint_every": 8,
        # The fixed, paired evaluation: the 24 held-out prompts of review_verdicts × 8 samples = 192 per policy.
        "eval_samples": 8,
        "eval_holdout": 2,
        "env_kwargs": {"max_new_tokens": 8, "prompts": "builtin:review_verdicts"},
        # A2C makes one gradient step per rollout: 8 rows give it 4× the steps of 32 at the same budget. Its
        # rollouts are 4× shorter, so 4× checkpoint_every keeps one checkpoint per 2048 tokens, as for PPO (each
        # writes the whole model, ~0.6 GB: 1.5-2 s on the shared 2-core machine, 4 of them cost ~5% of a run).
        "a2c": {"n_envs": 8, "learning_rate": 3e-4, "checkpoint_every": 32},
    },
}


def load_config(path: str | Path | None = None, preset: str | None = None, **overrides: Any) -> TrainConfig:
    """Build a :class:`TrainConfig` from defaults, then a preset, then a YAML file, then ``overrides``.

    Unknown keys are an error that names the key and lists the known ones.
    """
    data: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"Unknown preset {preset!r}; known: {sorted(PRESETS)}.")
        algo = overrides.get("algo") or "ppo"
        data.update({k: v for k, v in PRESETS[preset].items() if k not in ALGOS})
        data.update(PRESETS[preset].get(algo, {}))
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError as exc:
            raise ConfigError(f"Config file {path} does not exist.") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"Config file {path} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"Config file {path} must hold a mapping of field: value.")
        data.update(loaded)
    data.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"Unknown config fields {unknown}; known fields: {sorted(known)}.")
    if "env_kwargs" in data and preset is not None and path is not None:
        data["env_kwargs"] = {**PRESETS[preset].get("env_kwargs", {}), **data["env_kwargs"]}
    try:
        return TrainConfig(**data)
    except TypeError as exc:
        raise ConfigError(str(exc)) from exc
