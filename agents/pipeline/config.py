"""The pipeline's configuration: one frozen dataclass per stage, filled from a YAML file.

A ``pipeline.yaml`` holds a few top-level fields and one mapping per stage; every field is optional except
``name`` (and ``sft.data`` when an ``sft`` section is present)::

    name: sentiment                     # runs/<name>/
    model: HuggingFaceTB/SmolLM2-135M-Instruct
    prompts: builtin:review_openings    # for sampling preferences, RL and evaluation
    sft: {data: demos.jsonl, epochs: 1} # optional; omit to start RL from `model` itself
    preferences: {source: simulate, reward: sentiment, limit: 32, repeats: 2}
    reward_model: {epochs: 2, learning_rate: 1.0e-4}
    rl: {algos: [ppo, a2c], seeds: 2, budget_tokens: 512, preset: small}
    evaluation: {n_prompts: 16, samples_per_prompt: 2}

Unknown keys, wrong types and values out of range raise :class:`~textenv.errors.ConfigError` naming the
section and field (with the closest known field when it looks like a typo), before any stage runs.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from agents.compare import check_algos, check_budget, check_seeds
from agents.config import ALGOS, PRESETS, TrainConfig, load_config
from agents.errors import ConfigError
from agents.io import read_yaml_mapping
from agents.sft.train import SFTConfig
from textenv_common.checks import check_int

__all__ = [
    "PREFERENCE_SOURCES",
    "EvaluationStage",
    "PipelineConfig",
    "PreferencesStage",
    "RLStage",
    "RewardModelStage",
    "SFTStage",
    "load_pipeline_config",
]

#: Where preference data comes from.
PREFERENCE_SOURCES = ("simulate", "file", "db")

# TrainConfig fields that the pipeline sets itself (each has its own field in the rl section, or comes from an
# earlier stage).
_RL_OWNED = ("env", "algo", "seed", "budget_tokens", "model", "env_kwargs", "device")
# Env arguments that the pipeline sets itself: the reward is the trained reward model; the prompts are the
# pipeline's.
_ENV_OWNED = ("reward", "reward_kwargs", "reward_model", "model", "prompts")

_T = TypeVar("_T")


def _fill(cls: type[_T], section: str, data: Any, **extra: Any) -> _T:
    """``cls(**data, **extra)``, with unknown keys and type errors reported by section and field."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{section} must be a mapping of field: value; got {type(data).__name__} {data!r:.60}.")
    known = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"Unknown field {key!r} in {section}.{hint} Known fields: {', '.join(known)}.")
    try:
        return cls(**{**dict(data), **extra})
    except (TypeError, ValueError) as exc:  # ConfigError is a ValueError
        message = str(exc)
        raise ConfigError(message if message.startswith(f"{section}.") else f"{section}: {message}") from None


def _check_str(section: str, name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{section}.{name} must be a non-empty string; got {value!r}.")


def _check_number(section: str, name: str, value: Any, low: float, *, strict: bool = False) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or value < low or (strict and value == low):
        raise ConfigError(f"{section}.{name} must be a number {'>' if strict else '≥'} {low}; got {value!r}.")


@dataclass(frozen=True)
class SFTStage:
    """Supervised fine-tuning of ``model`` on demonstrations (optional stage)."""

    data: str
    """JSONL of ``{"prompt", "response"}`` or ``{"instruction", "input", "output"}`` records."""
    config: SFTConfig = field(default_factory=SFTConfig)
    """Hyperparameters: every other key of the ``sft`` section (see :class:`agents.sft.SFTConfig`)."""

    def __post_init__(self) -> None:
        _check_str("sft", "data", self.data)


@dataclass(frozen=True)
class PreferencesStage:
    """Where the preference pairs come from: a simulated annotator, a JSONL file, or the labels database."""

    source: str = "simulate"
    """'simulate' (two samples per prompt, judged by ``reward`` plus Bradley–Terry noise), 'file' or 'db'."""
    path: str | None = None
    """source 'file': a JSONL of pairs and/or ratings (the formats ``textenv rm train`` reads)."""
    db: str | None = None
    """source 'db': the SQLite database of the labeling page, exported with ``rewards.human``."""
    reward: str = "sentiment"
    """source 'simulate': the annotator's taste, a registered reward name."""
    reward_kwargs: dict[str, Any] = field(default_factory=dict)
    """source 'simulate': the reward's arguments."""
    temperature: float = 1.0
    """source 'simulate': Bradley–Terry noise of the annotator (0: always the higher reward)."""
    limit: int | None = None
    """source 'simulate': use only the first this-many prompts."""
    repeats: int = 1
    """source 'simulate': pairs per prompt."""
    max_new_tokens: int = 24
    """source 'simulate': length limit of the sampled completions."""
    sample_temperature: float = 1.0
    """source 'simulate': sampling temperature of the model."""
    top_p: float = 1.0
    """source 'simulate': nucleus sampling threshold."""
    stop_strings: list[str] = field(default_factory=list)
    """source 'simulate': cut each sampled completion at the first of these (give the RL env's stop strings)."""
    batch_size: int = 8
    """source 'simulate': prompts per generate call."""
    seed: int = 0
    """source 'simulate': seed of the sampling and of the annotator's noise."""

    def __post_init__(self) -> None:
        if self.source not in PREFERENCE_SOURCES:
            close = difflib.get_close_matches(str(self.source), PREFERENCE_SOURCES, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            known = ", ".join(map(repr, PREFERENCE_SOURCES))
            raise ConfigError(f"source must be one of {known}; got {self.source!r}.{hint}")
        if self.source == "file":
            _check_str("preferences", "path", self.path)
            if not Path(str(self.path)).expanduser().is_file():
                raise ConfigError(f"path {self.path!r} is not a file; give the JSONL of preference pairs to train on.")
        if self.source == "db":
            _check_str("preferences", "db", self.db)
            if not Path(str(self.db)).expanduser().is_file():
                raise ConfigError(f"db {self.db!r} is not a file; give the labels database of the labeling page.")
        _check_str("preferences", "reward", self.reward)
        if not isinstance(self.reward_kwargs, dict):
            raise ConfigError(f"reward_kwargs must be a mapping; got {self.reward_kwargs!r}.")
        stops = self.stop_strings
        if not isinstance(stops, list) or not all(isinstance(x, str) and x for x in stops):
            raise ConfigError(f"stop_strings must be a list of non-empty strings; got {stops!r}.")
        check_int("preferences.limit", self.limit, 1, error=ConfigError, optional=True)
        for name in ("repeats", "max_new_tokens", "batch_size"):
            check_int(f"preferences.{name}", getattr(self, name), 1, error=ConfigError)
        check_int("preferences.seed", self.seed, 0, error=ConfigError)
        _check_number("preferences", "temperature", self.temperature, 0)
        _check_number("preferences", "sample_temperature", self.sample_temperature, 0, strict=True)
        _check_number("preferences", "top_p", self.top_p, 0, strict=True)
        if self.top_p > 1:
            raise ConfigError(f"top_p must be in (0, 1]; got {self.top_p}.")


@dataclass(frozen=True)
class RewardModelStage:
    """Training the reward model on the preferences (Bradley–Terry on pairs, regression on ratings)."""

    base: str | None = None
    """Model to start the reward model from; default: the RL starting model (the SFT model if there is one)."""
    epochs: int = 2
    batch_size: int = 8
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    max_length: int = 256
    eval_fraction: float = 0.2
    eval_every: int | None = None
    patience: int = 2
    use_margin: bool = False
    train_layers: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        _check_str("reward_model", "base", self.base, optional=True)
        self.training_config(progress=False)  # its own checks, raised as ConfigError by _fill

    def training_config(self, progress: bool = True, device: str = "auto") -> Any:
        """The :class:`rewards.RewardModelTrainingConfig` of these settings."""
        from rewards import RewardModelTrainingConfig

        fields = {k: v for k, v in dataclasses.asdict(self).items() if k != "base"}
        return RewardModelTrainingConfig(**fields, progress=progress, device=device)


@dataclass(frozen=True)
class RLStage:
    """PPO and A2C (or one of them) against the trained reward model, compared on the same seeds and budget."""

    env: str = "textenv/TextGen-v0"
    """Registered env id; its reward is replaced by the trained reward model, its prompts by the pipeline's."""
    algos: list[str] = field(default_factory=lambda: list(ALGOS))
    seeds: int | list[int] = 2
    """A count (seeds 0..n−1) or a list of seeds."""
    budget_tokens: int = 512
    """Generated tokens per run."""
    preset: str | None = None
    """A training preset of :data:`agents.config.PRESETS` ('tiny', 'small')."""
    train: dict[str, Any] = field(default_factory=dict)
    """Further :class:`agents.config.TrainConfig` fields, the same for every run (e.g. learning_rate, n_steps)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Env overrides (max_new_tokens, kl_coef, target_kl, stop_strings, ...), over the preset's."""

    def __post_init__(self) -> None:
        _check_str("rl", "env", self.env)
        if self.preset is not None and self.preset not in PRESETS:
            raise ConfigError(f"Unknown preset {self.preset!r}; known: {sorted(PRESETS)}.")
        for name, owned in (("train", _RL_OWNED), ("env_kwargs", _ENV_OWNED)):
            value = getattr(self, name)
            if not isinstance(value, dict):
                raise ConfigError(f"{name} must be a mapping; got {value!r}.")
            taken = sorted(set(value) & set(owned))
            if taken:
                raise ConfigError(
                    f"{name} may not set {taken}: the pipeline sets them (rl.env, rl.algos, rl.seeds, "
                    "rl.budget_tokens, the top-level model and prompts, and the trained reward model)."
                )
        object.__setattr__(self, "algos", check_algos(self.algos))
        check_seeds(self.seeds)
        check_budget(self.budget_tokens)
        for algo in self.algos:  # every run's config is valid, so a typo fails now, not after the reward model
            self.train_config(algo, 0, "model", {})

    def merged_env_kwargs(self, extra: Mapping[str, Any]) -> dict[str, Any]:
        """The preset's env overrides, then this section's, then ``extra`` (set by the pipeline)."""
        preset = PRESETS[self.preset].get("env_kwargs", {}) if self.preset else {}
        return {**preset, **self.env_kwargs, **extra}

    def train_config(self, algo: str, seed: int, model: str, extra_env: Mapping[str, Any]) -> TrainConfig:
        """The :class:`TrainConfig` of one run."""
        return load_config(
            None,
            self.preset,
            env=self.env,
            algo=algo,
            seed=seed,
            budget_tokens=self.budget_tokens,
            model=model,
            env_kwargs=self.merged_env_kwargs(extra_env),
            **self.train,
        )


@dataclass(frozen=True)
class EvaluationStage:
    """Sampling the starting and the tuned policies on fixed prompts (see :mod:`agents.evaluation`)."""

    prompts: str | None = None
    """Evaluation prompts; default: the pipeline's prompts."""
    n_prompts: int | None = 16
    """Use the first this-many prompts (None: all)."""
    samples_per_prompt: int = 2
    """Completions per prompt and policy."""

    def __post_init__(self) -> None:
        _check_str("evaluation", "prompts", self.prompts, optional=True)
        check_int("evaluation.n_prompts", self.n_prompts, 1, error=ConfigError, optional=True)
        check_int("evaluation.samples_per_prompt", self.samples_per_prompt, 1, error=ConfigError)


@dataclass(frozen=True)
class PipelineConfig:
    """The whole pipeline: where it writes, which model and prompts, and each stage's settings."""

    name: str
    """The run's name: it writes into ``<runs_dir>/<name>/``."""
    model: str = "HuggingFaceTB/SmolLM2-135M-Instruct"
    """The pretrained model: a hub id, a local folder, or ``textenv/toy-gpt2``."""
    prompts: str = "builtin:review_openings"
    """Prompts for sampling preferences, RL and evaluation: builtin:NAME, a .jsonl/.csv file or a datasets folder."""
    prompt_field: str = "prompt"
    """The prompt field of the prompt records."""
    runs_dir: str = "runs"
    """Parent folder of the run folder."""
    device: str = "auto"
    """Where every stage trains and samples: 'auto' (CUDA when a GPU is visible), 'cpu', 'cuda[:n]' or 'mps'.
    Not part of any stage's hash: a stage done on one device is reused on another."""
    sft: SFTStage | None = None
    preferences: PreferencesStage = field(default_factory=PreferencesStage)
    reward_model: RewardModelStage = field(default_factory=RewardModelStage)
    rl: RLStage = field(default_factory=RLStage)
    evaluation: EvaluationStage = field(default_factory=EvaluationStage)

    def __post_init__(self) -> None:
        _check_str("pipeline", "name", self.name)
        if any(part in self.name for part in ("/", "\\")) or self.name in (".", ".."):
            raise ConfigError(f"name {self.name!r} must be a plain folder name (no slashes).")
        for name in ("model", "prompts", "prompt_field", "runs_dir", "device"):
            _check_str("pipeline", name, getattr(self, name))
        TrainConfig(device=self.device)  # the same check as a run's device

    @property
    def root(self) -> Path:
        """The run folder, ``<runs_dir>/<name>``."""
        return Path(self.runs_dir).expanduser() / self.name

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for YAML (the SFT hyperparameters flattened into the ``sft`` section as in the file)."""
        data = dataclasses.asdict(self)
        if self.sft is not None:
            data["sft"] = {"data": self.sft.data, **self.sft.config.to_dict()}
        return data


def pipeline_config_from_dict(
    data: Mapping[str, Any], base_dir: str | os.PathLike[str] | None = None
) -> PipelineConfig:
    """Build a :class:`PipelineConfig` from plain data (a parsed YAML file).

    Args:
        data: The mapping.
        base_dir: Relative paths of input files (sft.data, preferences.path and db, and file prompts) are
            resolved against this folder (the YAML file's folder), so a config works from any directory.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"A pipeline config must be a mapping of field: value; got {type(data).__name__}.")
    data = dict(data)
    top = [f.name for f in dataclasses.fields(PipelineConfig)]
    for key in data:
        if key not in top:
            close = difflib.get_close_matches(str(key), top, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"Unknown pipeline field {key!r}.{hint} Known fields: {', '.join(top)}.")
    if "name" not in data:
        raise ConfigError("The pipeline config needs a name (the run folder runs/<name>/), e.g. name: my-run.")

    def here(path: Any) -> Any:
        if base_dir is None or not isinstance(path, str) or path.startswith("builtin:") or Path(path).is_absolute():
            return path
        candidate = (Path(base_dir) / path).resolve()  # absolute, so the runs' configs work from anywhere
        return str(candidate) if candidate.exists() else path

    for key in ("prompts",):
        if key in data:
            data[key] = here(data[key])

    def section(name: str) -> dict[str, Any]:
        value = data.pop(name, None)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name} must be a mapping of field: value; got {type(value).__name__} {value!r:.60}.")
        return dict(value)

    sections: dict[str, Any] = {}
    if data.get("sft") is not None:
        sft = section("sft")
        if "data" not in sft:
            raise ConfigError("sft needs data: the demonstrations JSONL (or remove the sft section to skip SFT).")
        demos = here(sft.pop("data"))
        sections["sft"] = SFTStage(data=demos, config=_fill(SFTConfig, "sft", sft))
    data.pop("sft", None)
    prefs = section("preferences")
    for key in ("path", "db"):
        if key in prefs:
            prefs[key] = here(prefs[key])
    sections["preferences"] = _fill(PreferencesStage, "preferences", prefs)
    sections["reward_model"] = _fill(RewardModelStage, "reward_model", section("reward_model"))
    sections["rl"] = _fill(RLStage, "rl", section("rl"))
    evaluation = section("evaluation")
    if "prompts" in evaluation:
        evaluation["prompts"] = here(evaluation["prompts"])
    sections["evaluation"] = _fill(EvaluationStage, "evaluation", evaluation)
    return _fill(PipelineConfig, "pipeline", data, **sections)


def load_pipeline_config(path: str | os.PathLike[str], **overrides: Any) -> PipelineConfig:
    """Read a ``pipeline.yaml``; ``overrides`` replace top-level fields (``name``, ``runs_dir``, ...) when not None.

    Raises:
        ConfigError: The file is missing, not YAML, or holds a bad field (named with its section).
    """
    file = Path(path).expanduser()
    loaded = read_yaml_mapping(path, "Pipeline config", empty_hint="it needs at least name: <run name>")
    loaded.update({k: v for k, v in overrides.items() if v is not None})
    return pipeline_config_from_dict(loaded, base_dir=file.parent)
