"""Train one agent: build env and algorithm from a :class:`~agents.config.TrainConfig`, run, log, checkpoint.

A run writes ``<out>/``: ``config.yaml`` (the resolved config), ``metrics.csv`` and ``tb/`` (TensorBoard),
``samples.jsonl``, ``checkpoint/`` (resumable), ``result.json`` (before/after evaluation, wall time) and, once
the run finishes, ``policy/``: the trained LM and its tokenizer, saved with ``save_pretrained``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import yaml
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat

from agents.buffer import EpisodeRolloutBuffer
from agents.callbacks import (
    AtomicCSVOutput,
    ConnectLogProbs,
    ProgressCallback,
    RLHFMetricsCallback,
    SkipDiscardedValues,
)
from agents.checkpoint import load_checkpoint_state, restore_rng, save_checkpoint, save_policy
from agents.config import TrainConfig
from agents.policy import LMPolicy
from agents.run_folder import POLICY_FOLDER
from textenv.compat import set_rollout_state
from textenv.errors import ConfigError
from textenv.models import resolve_device
from textenv.prompts import Prompt
from textenv.vector import TextVecEnv, make_vec_env
from textenv_common.atomic import write_text_atomic

__all__ = ["RunResult", "evaluate", "make_agent", "train"]


@dataclass
class RunResult:
    """What a finished (or interrupted) run measured."""

    out_dir: Path
    config: TrainConfig
    tokens: int
    wall_time_s: float
    tokens_per_s: float
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    interrupted: bool = False


def run_device(config: TrainConfig) -> str:
    """The device a run uses (``config.device`` with ``"auto"`` resolved), checked against its precision."""
    device = str(resolve_device(config.device))
    if config.precision == "bf16" and not device.startswith("cuda"):
        raise ConfigError(
            f"precision='bf16' runs bfloat16 autocast on CUDA only; the run's device is {device!r}. "
            "Use precision='fp32' there, or device='cuda'."
        )
    return device


def env_kwargs(config: TrainConfig) -> dict[str, Any]:
    """The env overrides a config implies: its model (if set, also the env's reference) and its device.

    With ``eval_holdout``, the env's prompts are narrowed to the training share of :func:`split_prompts`.
    """
    kwargs = dict(config.env_kwargs)
    if config.model is not None:
        kwargs["model"] = config.model
    kwargs.setdefault("device", run_device(config))
    if config.eval_holdout:
        kwargs["prompts"] = split_prompts(config)[0]
    return kwargs


def split_prompts(config: TrainConfig) -> tuple[list[Prompt], list[Prompt]]:
    """The env's prompts as ``(training, evaluation)``.

    With ``eval_holdout = n`` ≥ 2, every n-th prompt (indices n−1, 2n−1, ...) is held out for the evaluation and
    the rest train; with 0 both are all the prompts. A fixed stride, not a random draw, so the split is the same
    for every seed and run.

    Raises:
        ConfigError: The holdout would leave no prompt for training or for evaluation.
    """
    from textenv.prompts import load_prompts

    spec = config.env_kwargs.get("prompts")
    if spec is None:
        spec = gym.spec(config.env).kwargs.get("prompts")
    field_name = config.env_kwargs.get("prompt_field", "prompt")
    prompts = list(load_prompts(spec, field=field_name))
    n = config.eval_holdout
    if not n:
        return prompts, prompts
    train = [p for i, p in enumerate(prompts) if i % n != n - 1]
    held = [p for i, p in enumerate(prompts) if i % n == n - 1]
    if not train or not held:
        raise ConfigError(
            f"eval_holdout={n} leaves {len(train)} training and {len(held)} evaluation prompts of the "
            f"{len(prompts)} in {spec!r}; use 0 (evaluate on the training prompts) or a holdout ≤ {len(prompts)}."
        )
    return train, held


def make_agent(config: TrainConfig, env: TextVecEnv | None = None) -> BaseAlgorithm:
    """SB3's PPO or A2C with :class:`LMPolicy` and :class:`EpisodeRolloutBuffer`, on the config's env."""
    if env is None:
        env = make_vec_env(config.env, config.n_envs, seed=config.seed, **env_kwargs(config))
    base = env.envs[0].unwrapped
    spec = getattr(base, "_model_spec", None)
    model_name = config.model or (spec[0] if spec else None)
    policy_kwargs = {
        "model": model_name,
        "temperature": config.temperature,
        "top_k": config.top_k,
        "lora": config.lora,
        "trainable_layers": config.trainable_layers,
        "precision": config.precision,
    }
    common: dict[str, Any] = {
        "learning_rate": config.learning_rate,
        "n_steps": config.n_steps,
        "gamma": config.gamma,
        "gae_lambda": config.gae_lambda,
        "ent_coef": config.ent_coef,
        "vf_coef": config.vf_coef,
        "max_grad_norm": config.max_grad_norm,
        "seed": config.seed,
        "policy_kwargs": policy_kwargs,
        "rollout_buffer_class": EpisodeRolloutBuffer,
        "device": run_device(config),
        "verbose": 0,
    }
    if config.algo == "ppo":
        return PPO(
            LMPolicy,
            env,
            batch_size=config.batch_size,
            n_epochs=config.n_epochs,
            clip_range=config.clip_range,
            **common,
        )
    if config.algo == "a2c":
        # AdamW rather than A2C's default RMSprop, as for every LM fine-tune; advantages normalised as in PPO.
        return A2C(LMPolicy, env, use_rms_prop=False, normalize_advantage=True, **common)
    raise ConfigError(f"Unknown algorithm {config.algo!r}; use 'ppo' or 'a2c'.")


def evaluate(
    model: BaseAlgorithm | LMPolicy,
    config: TrainConfig,
    n_episodes: int,
    *,
    prompts: Sequence[Prompt | str] | None = None,
) -> dict[str, Any]:
    """Sample completions with the current policy; their mean score and KL, and the samples themselves.

    Uses its own envs (seeded apart from training) and a forked torch RNG, so it does not disturb the run.

    Args:
        model: A PPO/A2C model with an :class:`LMPolicy`, or the policy itself.
        config: The run's config: its env, env overrides and seed.
        n_episodes: Episodes to sample, each from a prompt the env draws (ignored when ``prompts`` is given).
        prompts: Complete exactly these prompts (texts or :class:`~textenv.prompts.Prompt` records, whose meta
            reaches the reward), once each and in this order (repeat a prompt for several samples);
            ``samples[i]`` is then the completion of ``prompts[i]``.

    Returns:
        ``rm_score`` and ``kl`` (means over episodes) and ``samples``: per episode the ``prompt``,
        ``completion``, ``rm_score``, ``kl_sum``, ``n_tokens`` (completion tokens) and ``ref_logprob`` (their
        summed log-probability under the reference model, for perplexity).
    """
    policy: LMPolicy = model.policy if isinstance(model, BaseAlgorithm) else model  # type: ignore[assignment]
    queue = [p if isinstance(p, Prompt) else Prompt(p) for p in prompts] if prompts is not None else None
    n = len(queue) if queue is not None else n_episodes
    if n < 1:
        raise ConfigError(f"evaluate needs at least one episode; got {n}.")
    n_envs = min(n, 8)
    env = make_vec_env(config.env, n_envs, seed=config.seed + 100_000, monitor=False, **env_kwargs(config))
    episodes: list[dict[str, Any] | None] = [None] * n
    filled = 0
    ref_sums = np.zeros(n_envs)
    slots = list(range(n_envs))  # the episode each row is writing (-1: idle)
    policy.set_training_mode(False)
    with torch.random.fork_rng(), torch.no_grad(), policy.sending_to(env):
        torch.manual_seed(config.seed + 100_000)
        obs = env.reset()
        if queue is not None:
            for row in range(n_envs):
                _start(env, obs, row, queue[row])
        next_episode = n_envs
        while filled < n:
            actions, _, _ = policy(policy.obs_to_tensor(obs)[0])  # type: ignore[arg-type]
            obs, _, dones, infos = env.step(actions.cpu().numpy())
            for row, (done, info) in enumerate(zip(dones, infos, strict=True)):
                ref_sums[row] += info["ref_logprob"]
                if not done:
                    continue
                record = {k: info[k] for k in ("prompt", "completion", "rm_score", "kl_sum", "n_tokens")}
                record["ref_logprob"] = float(ref_sums[row])
                ref_sums[row] = 0.0
                if slots[row] >= 0:
                    episodes[slots[row]] = record
                    filled += 1
                if next_episode < n:
                    slots[row] = next_episode
                    if queue is not None:
                        _start(env, obs, row, queue[next_episode])
                    next_episode += 1
                else:
                    slots[row] = -1
    env.close()
    done_episodes = [e for e in episodes if e is not None]
    scores = np.array([e["rm_score"] for e in done_episodes])
    kls = np.array([e["kl_sum"] for e in done_episodes])
    return {"rm_score": float(scores.mean()), "kl": float(kls.mean()), "samples": done_episodes}


def _start(env: TextVecEnv, obs: Any, row: int, prompt: Prompt) -> None:
    """Begin an episode of ``prompt`` in sub-env ``row``, writing its first observation into ``obs``."""
    first, _ = env.envs[row].reset(options={"prompt": prompt.text, "meta": dict(prompt.meta)})
    for key, value in first.items():
        obs[key][row] = value


def train(config: TrainConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True) -> RunResult:
    """Train one agent, writing the run folder; resume from its checkpoint when ``resume`` and one exists.

    Ctrl-C saves a checkpoint and the results so far before re-raising ``KeyboardInterrupt``. An error (a
    reward returning NaN, say) stops the run and leaves the last checkpoint as it was.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint"
    elapsed_before = 0.0
    before: dict[str, Any] = {}
    if resume and (ckpt / "model.zip").exists():
        state, info = load_checkpoint_state(ckpt)
        env = TextVecEnv([_returning(e) for e in state["envs"]])
        algo_class = PPO if config.algo == "ppo" else A2C
        model: BaseAlgorithm = algo_class.load(ckpt / "model.zip", env=env, device=run_device(config))
        set_rollout_state(model, state.get("rollout", state))  # checkpoints before 0.1.1 kept it at the top
        restore_rng(state["rng"])
        elapsed_before = float(info.get("elapsed_s", 0.0))
        before = info.get("before", {})
        _drop_rows_after(out, model.num_timesteps)
    else:
        for stale in ("metrics.csv", "samples.jsonl"):
            (out / stale).unlink(missing_ok=True)
        model = make_agent(config)
        before = evaluate(model, config, config.eval_episodes)
    write_text_atomic(out / "config.yaml", yaml.safe_dump(_plain(config.to_dict()), sort_keys=False), overwrite=True)
    model.set_logger(Logger(str(out), [AtomicCSVOutput(out / "metrics.csv"), TensorBoardOutputFormat(str(out / "tb"))]))

    start = time.perf_counter()

    def checkpoint(rollouts: int | None = None) -> None:
        if rollouts is None or rollouts % config.checkpoint_every == 0:
            elapsed = elapsed_before + time.perf_counter() - start
            save_checkpoint(model, ckpt, {"elapsed_s": elapsed, "before": before})

    metrics = RLHFMetricsCallback(out / "samples.jsonl", config.sample_every, elapsed_offset=elapsed_before,
                                  before_rollout=checkpoint)  # fmt: skip
    callbacks: list[BaseCallback] = [ConnectLogProbs(), metrics, SkipDiscardedValues()]
    if progress:
        callbacks.append(ProgressCallback(config.budget_tokens, f"{config.algo} seed {config.seed}", metrics))
    interrupted = False
    try:
        if model.num_timesteps < config.budget_tokens:
            # SB3 adds the tokens already done to the target when reset_num_timesteps is False.
            model.learn(config.budget_tokens - model.num_timesteps, callback=CallbackList(callbacks),
                        log_interval=1, reset_num_timesteps=False)  # fmt: skip
    except KeyboardInterrupt:
        interrupted = True
        checkpoint()
    wall = elapsed_before + time.perf_counter() - start
    if not interrupted:
        checkpoint()
        save_policy(model, out / POLICY_FOLDER)
    after = evaluate(model, config, config.eval_episodes)
    tokens = int(model.num_timesteps)
    history = [_floats(row) for row in AtomicCSVOutput(out / "metrics.csv").rows]  # the whole run, resumed or not
    result = RunResult(out, config, tokens, wall, tokens / max(wall, 1e-9), before, after, history, interrupted)
    summary = {k: v for k, v in result.__dict__.items() if k not in ("out_dir", "config", "history")}
    write_text_atomic(out / "result.json", json.dumps(_finite(summary), indent=2, ensure_ascii=False), overwrite=True)
    if interrupted:
        raise KeyboardInterrupt
    return result


def _returning(env: gym.Env[Any, Any]) -> Callable[[], gym.Env[Any, Any]]:
    return lambda: env


def _drop_rows_after(out: Path, tokens: int) -> None:
    """Forget metrics and samples logged after the checkpoint, so a resumed run continues its curves."""
    metrics = AtomicCSVOutput(out / "metrics.csv")
    kept = [r for r in metrics.rows if float(r.get("time/total_tokens") or 0) <= tokens]
    if len(kept) != len(metrics.rows):
        metrics.rows = kept[:-1]
        if kept:
            metrics.write(kept[-1], {})
        else:
            (out / "metrics.csv").unlink(missing_ok=True)
    samples = out / "samples.jsonl"
    if samples.exists():
        lines = [ln for ln in samples.read_text(encoding="utf-8").splitlines() if ln.strip()]
        keep = [ln for ln in lines if _tokens_of(ln) <= tokens]
        write_text_atomic(samples, "".join(f"{ln}\n" for ln in keep), overwrite=True)


def _plain(value: Any) -> Any:
    """YAML-safe data: objects given in code (a reward callable, say) are recorded by their repr."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _floats(row: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in row.items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def _tokens_of(line: str) -> int:
    try:
        return int(json.loads(line)["tokens"])
    except (ValueError, KeyError, TypeError):
        return 1 << 62  # a torn last line: drop it


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
