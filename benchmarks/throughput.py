"""Throughput of textenv against raw generation, on randomly initialised GPT-2 configurations.

    python benchmarks/throughput.py [--configs tiny small] [--batch 8] [--runs 3] [--threads 2] [--json out.json]

Rows, in tokens per second of generated completion (median of ``--runs`` after a warm-up):
- ``A generate``: ``model.generate(do_sample=True, use_cache=True)``, the ceiling for rollouts;
- ``B rollout``: ``make_vec_env`` driven by ``LMPolicy`` (KV-cached), reference model and KL on, a cheap reward;
- ``D ppo`` / ``D a2c``: ``.learn()`` end to end (PPO with ``n_epochs=1``), rollouts plus updates.
Configurations (issue 5): tiny = n_layer 2, n_head 2, n_embd 128, vocab 4096, 256 positions; small = n_layer 6,
n_head 8, n_embd 512, vocab 16384, 512 positions; 32-token prompts, 32 new tokens.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

CONFIGS = {
    "tiny": {"n_layer": 2, "n_head": 2, "n_embd": 128, "vocab_size": 4096, "n_positions": 256},
    "small": {"n_layer": 6, "n_head": 8, "n_embd": 512, "vocab_size": 16384, "n_positions": 512},
}
PROMPT_TOKENS = 32
NEW_TOKENS = 32


def build_model(name: str, root: Path) -> tuple[Path, list[str]]:
    """A random GPT-2 of the named configuration with a word-level tokenizer of the same size; prompts."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    cfg = CONFIGS[name]
    words = ["<pad>", "<eos>", "<unk>"] + [f"w{i}" for i in range(cfg["vocab_size"] - 3)]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(**cfg, bos_token_id=1, eos_token_id=1, pad_token_id=0))
    folder = root / name
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    rng = np.random.default_rng(0)
    prompts = [" ".join(f"w{i}" for i in rng.integers(0, cfg["vocab_size"] - 3, PROMPT_TOKENS)) for _ in range(64)]
    return folder, prompts


def never_ends(prompts: Any, completions: Any, **meta: Any) -> list[float]:
    """A cheap reward: the number of words."""
    return [float(len(c.split())) for c in completions]


def env_kwargs(folder: Path, prompts: list[str], new_tokens: int) -> dict[str, Any]:
    return {
        "model": str(folder),
        "prompts": prompts,
        "reward": never_ends,
        "max_prompt_tokens": PROMPT_TOKENS,
        "max_new_tokens": new_tokens,
        "kl_coef": 0.05,
    }


def bench_generate(folder: Path, prompts: list[str], batch: int, new_tokens: int) -> float:
    from textenv.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(folder)
    enc = tok(prompts[:batch], return_tensors="pt", padding=True)
    eos = model.config.eos_token_id
    start = time.perf_counter()
    with torch.no_grad():
        model.generate(**enc, do_sample=True, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                       use_cache=True, pad_token_id=0, eos_token_id=eos)  # fmt: skip
    return batch * new_tokens / (time.perf_counter() - start)


def bench_rollout(folder: Path, prompts: list[str], batch: int, new_tokens: int) -> float:
    from stable_baselines3 import PPO

    from agents import EpisodeRolloutBuffer, LMPolicy
    from textenv.vector import make_vec_env

    vec = make_vec_env("textenv/TextGen-v0", batch, seed=0, **env_kwargs(folder, prompts, new_tokens))
    model = PPO(LMPolicy, vec, n_steps=new_tokens, batch_size=batch * new_tokens, device="cpu",
                rollout_buffer_class=EpisodeRolloutBuffer)  # fmt: skip
    obs = vec.reset()
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(new_tokens):
            actions, _, _ = model.policy(model.policy.obs_to_tensor(obs)[0])
            obs, _, _, _ = vec.step(actions.numpy())
    return batch * new_tokens / (time.perf_counter() - start)


def bench_learn(folder: Path, prompts: list[str], batch: int, new_tokens: int, algo: str) -> float:
    from stable_baselines3 import A2C, PPO

    from agents import EpisodeRolloutBuffer, LMPolicy
    from textenv.vector import make_vec_env

    vec = make_vec_env("textenv/TextGen-v0", batch, seed=0, **env_kwargs(folder, prompts, new_tokens))
    common = {"n_steps": new_tokens, "device": "cpu", "rollout_buffer_class": EpisodeRolloutBuffer, "seed": 0}
    if algo == "ppo":
        model = PPO(LMPolicy, vec, batch_size=batch * new_tokens, n_epochs=1, learning_rate=1e-4, **common)
    else:
        model = A2C(LMPolicy, vec, use_rms_prop=False, learning_rate=1e-4, **common)
    tokens = 2 * batch * new_tokens
    start = time.perf_counter()
    model.learn(tokens)
    return tokens / (time.perf_counter() - start)


def median_of(fn: Any, runs: int) -> float:
    fn()  # warm-up
    return statistics.median(fn() for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["tiny", "small"], choices=sorted(CONFIGS))
    parser.add_argument("--batch", type=int, nargs="+", default=[8])
    parser.add_argument("--new-tokens", type=int, default=NEW_TOKENS)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            folder, prompts = build_model(name, Path(tmp))
            for batch in args.batch:
                row: dict[str, Any] = {"config": name, "batch": batch, "new_tokens": args.new_tokens}
                setting = (folder, prompts, batch, args.new_tokens)
                row["A_generate"] = median_of(lambda s=setting: bench_generate(*s), args.runs)
                row["B_rollout"] = median_of(lambda s=setting: bench_rollout(*s), args.runs)
                for algo in ("ppo", "a2c"):
                    row[f"D_{algo}"] = median_of(lambda s=setting, a=algo: bench_learn(*s, a), args.runs)
                row["B_over_A"] = row["B_rollout"] / row["A_generate"]
                results.append(row)
                print(
                    f"{name:6s} batch {batch:3d}: A generate {row['A_generate']:8.1f} tok/s | B rollout "
                    f"{row['B_rollout']:8.1f} ({row['B_over_A']:.2f}×A) | D ppo {row['D_ppo']:7.1f} | "
                    f"D a2c {row['D_a2c']:7.1f}",
                    flush=True,
                )
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.platform()}, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
        "runs": args.runs,
    }
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    main()
