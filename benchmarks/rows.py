"""The rows of the benchmark, each timed the same way: build, one warm-up run, then ``runs`` timed runs.

A *run* is one batch of episodes: every one of the ``batch`` envs (or sequences) completes one episode of
``new_tokens`` tokens, so its wall time is the time per episode and ``batch * new_tokens / seconds`` its rate in
generated tokens per second. Row C is the exception: its cost per step does not depend on the step (it
recomputes the fixed window every time), so a run covers a quarter of an episode to keep the suite short. The
process's CPU time is recorded next to the wall time: with one thread it is the work done, and it moves less
than wall time when other processes share the machine.

- ``A``: ``model.generate(do_sample=True, use_cache=True)``, the ceiling for rollouts;
- ``B``: textenv's vector env driven by ``LMPolicy``, reference model and KL on, the cheap reward;
- ``C``: the naive design of :mod:`benchmarks.naive` under SB3's PPO (one epoch, one minibatch);
- ``D_ppo1``: ``PPO(LMPolicy)`` with ``n_epochs=1`` and one minibatch per rollout, as E updates once per batch;
- ``D_ppo``: ``PPO(LMPolicy)`` with SB3's defaults (10 epochs, minibatches of 64 transitions);
- ``D_a2c``: ``A2C(LMPolicy)`` with AdamW, as ``agents.make_agent`` builds it;
- ``E``: TRL's ``GRPOTrainer`` (:mod:`benchmarks.grpo`);
- every D row runs ``learn`` with :class:`agents.callbacks.SkipDiscardedValues`, as ``agents.train`` does: a run's
  episodes all end with its rollout, so SB3's bootstrap values at its end are discarded and not computed;
- ``B_lora``, ``D_lora``, ``E_lora``: B, D_ppo1 and E with a LoRA adapter (peft's defaults for the model's
  architecture, ``r=16``, ``lora_alpha=32``, no dropout) as the only trained weights. textenv's reference is then the
  policy's own base weights, scored in the policy's rollout forward; TRL's is the same model with the adapter
  disabled, scored in a pass of its own;
- ``B_top``, ``D_top``: B and D_ppo1 training only the top blocks (``trainable_layers``: 4 on SmolLM2, as the
  ``demo`` preset, 1 on the GPT-2 configurations); the rest is the reference's, and the policy's rollout forward
  scores the reference too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from benchmarks.fixtures import distinct_words
from benchmarks.memory import MB, current_rss_mb, optimizer_bytes, parameter_bytes, peak_rss_mb, reset_peak_rss

__all__ = ["ROWS", "run_cell"]

ROWS = ("A", "B", "C", "D_ppo1", "D_ppo", "D_a2c", "E", "B_lora", "D_lora", "E_lora", "B_top", "D_top")
KL_COEF = 0.05
#: ``trainable_layers`` of the ``*_top`` rows, by number of transformer blocks (SmolLM2's 30: the demo preset's 4)
TOP_LAYERS = {2: 1, 6: 1, 30: 4}


def run_cell(spec: dict[str, Any]) -> dict[str, Any]:
    """Measure one row on one model, batch and completion length; see the module docstring."""
    import torch

    torch.set_num_threads(int(spec["threads"]))
    torch.manual_seed(0)
    peak_reset = reset_peak_rss()  # the peak of this row, not of the imports or of an earlier row
    baseline = current_rss_mb()
    with open(spec["prompts"], encoding="utf-8") as fh:
        prompts = json.load(fh)
    row = spec["row"]
    device = str(spec.get("device") or "cpu")
    args = (spec["folder"], prompts, int(spec["batch"]), int(spec["new_tokens"]), int(spec["prompt_tokens"]))
    runs = int(spec["runs"])
    result: dict[str, Any] = {}
    if row == "A":
        seconds, cpu, tokens = _repeat(_generate(*args, device=device), runs)
    elif row in ("B", "B_lora", "B_top"):
        seconds, cpu, tokens = _repeat(_rollout(*args, options=_options(row, spec["folder"]), device=device), runs)
    elif row == "C":
        seconds, cpu, tokens = _repeat(_naive_learn(*args), runs)
    elif row in ("D_ppo1", "D_ppo", "D_a2c", "D_lora", "D_top"):
        run, state = _learn(*args, row, device=device)
        seconds, cpu, tokens = _repeat(run, runs)
        result["memory"] = state()
    elif row in ("E", "E_lora"):
        from benchmarks.grpo import run_grpo

        folder, prompts, batch, new_tokens, _ = args
        out = run_grpo(folder, prompts, distinct_words, batch=batch, new_tokens=new_tokens, runs=runs,
                       kl_coef=KL_COEF, lora=row == "E_lora", device=device)  # fmt: skip
        seconds, cpu, tokens = out["seconds"], out["cpu_seconds"], out["tokens"]
        result["memory"] = out["memory"]
    else:
        raise ValueError(f"Unknown row {row!r}; use one of {ROWS}.")
    rates = [n / s for n, s in zip(tokens, seconds, strict=True)]
    cpu_rates = [n / s for n, s in zip(tokens, cpu, strict=True)]
    result.update(
        tokens_per_s=_median(rates),
        rates=rates,
        seconds=seconds,
        seconds_per_run=_median(seconds),
        cpu_tokens_per_s=_median(cpu_rates),
        cpu_seconds=cpu,
        cpu_seconds_per_run=_median(cpu),
        tokens_per_run=tokens[0],
        baseline_rss_mb=baseline,
        peak_rss_mb=max(peak_rss_mb(), baseline),  # the kernel's high-water mark is updated lazily
        peak_rss_is_per_row=peak_reset,
    )
    result["peak_above_baseline_mb"] = result["peak_rss_mb"] - baseline
    if "memory" in result:
        m = result["memory"]
        # The bound counts the gradients too (the decision on issue 14): SB3's PPO clips over all of them, so every
        # trainable parameter's gradient exists at once, at the peak, before the optimizer step frees them.
        m["budget"] = m["policy"] + m["trainable_gradients"] + m["optimizer"] + m["reference"]
        m["budget_mb"] = m["budget"] / MB
        m["ratio"] = result["peak_above_baseline_mb"] / m["budget_mb"]
    return result


def _options(row: str, folder: str) -> dict[str, Any]:
    """The policy options of a row: LoRA, the top blocks only, or full fine-tuning."""
    if row.endswith("_lora"):
        return {"lora": True}
    if row.endswith("_top"):
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(folder)
        blocks = config.num_hidden_layers  # GPT-2's n_layer under its common name
        return {"trainable_layers": TOP_LAYERS.get(blocks, max(1, blocks // 6))}
    return {}


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _repeat(run: Callable[[], int], runs: int) -> tuple[list[float], list[float], list[int]]:
    """Wall and CPU seconds and tokens of each of ``runs`` runs after a warm-up."""
    run()  # warm-up
    seconds, cpu, tokens = [], [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        n = run()
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        tokens.append(n)
    return seconds, cpu, tokens


def _generate(
    folder: str, prompts: list[str], batch: int, new_tokens: int, prompt_tokens: int, *, device: str = "cpu"
) -> Callable[[], int]:
    import torch

    from textenv.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(folder, device=device)
    enc = tok(prompts[:batch], return_tensors="pt", padding=True).to(device)

    def run() -> int:
        with torch.no_grad():
            model.generate(**enc, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=new_tokens,
                           min_new_tokens=new_tokens, use_cache=True, pad_token_id=tok.pad_token_id)  # fmt: skip
        return batch * new_tokens

    return run


def _env_kwargs(folder: str, prompts: list[str], new_tokens: int, prompt_tokens: int, device: str) -> dict[str, Any]:
    return {
        "device": device,
        "model": folder,
        "prompts": prompts,
        "reward": distinct_words,
        "max_prompt_tokens": prompt_tokens,
        "max_new_tokens": new_tokens,
        "kl_coef": KL_COEF,
    }


def _rollout(
    folder: str,
    prompts: list[str],
    batch: int,
    new_tokens: int,
    prompt_tokens: int,
    options: dict[str, Any],
    *,
    device: str = "cpu",
) -> Callable[[], int]:
    import torch
    from stable_baselines3 import PPO

    from agents import EpisodeRolloutBuffer, LMPolicy
    from textenv.vector import make_vec_env

    kwargs = _env_kwargs(folder, prompts, new_tokens, prompt_tokens, device)
    vec = make_vec_env("textenv/TextGen-v0", batch, seed=0, **kwargs)
    model = PPO(LMPolicy, vec, n_steps=new_tokens, batch_size=batch * new_tokens, device=device,
                rollout_buffer_class=EpisodeRolloutBuffer, policy_kwargs={"model": folder, **options})  # fmt: skip
    model.policy.set_training_mode(False)
    model.policy.connect(vec)
    state = {"obs": vec.reset()}

    def run() -> int:
        obs = state["obs"]
        with torch.no_grad():
            for _ in range(new_tokens):
                actions, _, _ = model.policy(model.policy.obs_to_tensor(obs)[0])
                obs, _, _, _ = vec.step(actions.cpu().numpy())
        state["obs"] = obs
        return batch * new_tokens

    return run


def _learn(
    folder: str, prompts: list[str], batch: int, new_tokens: int, prompt_tokens: int, row: str, *, device: str = "cpu"
) -> tuple[Callable[[], int], Callable[[], dict[str, Any]]]:
    from stable_baselines3 import A2C, PPO

    from agents import ConnectLogProbs, EpisodeRolloutBuffer, LMPolicy, SkipDiscardedValues
    from textenv.vector import make_vec_env

    kwargs = _env_kwargs(folder, prompts, new_tokens, prompt_tokens, device)
    vec = make_vec_env("textenv/TextGen-v0", batch, seed=0, **kwargs)
    common: dict[str, Any] = {"n_steps": new_tokens, "device": device, "rollout_buffer_class": EpisodeRolloutBuffer,
                              "seed": 0, "policy_kwargs": {"model": folder}}  # fmt: skip
    if row in ("D_ppo1", "D_lora", "D_top"):
        common["policy_kwargs"].update(_options(row, folder))
        model: Any = PPO(LMPolicy, vec, batch_size=batch * new_tokens, n_epochs=1, learning_rate=1e-4, **common)
    elif row == "D_ppo":
        model = PPO(LMPolicy, vec, batch_size=min(64, batch * new_tokens), **common)  # SB3's defaults otherwise
    else:
        model = A2C(LMPolicy, vec, use_rms_prop=False, normalize_advantage=True, learning_rate=1e-4, **common)
    tokens = batch * new_tokens

    def run() -> int:
        model.learn(tokens, reset_num_timesteps=False, callback=[ConnectLogProbs(), SkipDiscardedValues()])
        return tokens

    def state() -> dict[str, Any]:
        return {
            "policy": parameter_bytes(model.policy),
            "optimizer": optimizer_bytes(model.policy.optimizer),
            "reference": parameter_bytes(vec.envs[0].unwrapped.model),
            "gradients": sum(p.grad.numel() * p.grad.element_size() for p in model.policy.parameters()
                             if p.grad is not None),
            "trainable_gradients": sum(p.numel() * p.element_size() for p in model.policy.parameters()
                                       if p.requires_grad),
        }  # fmt: skip

    return run, state


def _naive_learn(folder: str, prompts: list[str], batch: int, new_tokens: int, prompt_tokens: int) -> Callable[[], int]:
    from stable_baselines3 import PPO

    from benchmarks.naive import NaivePolicy, make_naive_vec_env

    vec, board = make_naive_vec_env(folder, prompts, distinct_words, n_envs=batch, prompt_tokens=prompt_tokens,
                                    new_tokens=new_tokens)  # fmt: skip
    n_steps = max(1, new_tokens // 4)
    model = PPO(NaivePolicy, vec, n_steps=n_steps, batch_size=batch * n_steps, n_epochs=1, learning_rate=1e-4,
                device="cpu", seed=0, policy_kwargs={"model": folder, "board": board})  # fmt: skip
    tokens = batch * n_steps

    def run() -> int:
        model.learn(tokens, reset_num_timesteps=False)
        return tokens

    return run
