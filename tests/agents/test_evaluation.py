"""Evaluation after RL: the metrics by hand, sampling fixed prompts in order, exporting a run's policy."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.checkpoint import export_policy, save_checkpoint
from agents.config import load_config
from agents.evaluation import distinct_n, load_policy, summarize_policy
from agents.train import evaluate, make_agent
from textenv.models import load_model_and_tokenizer
from textenv.prompts import Prompt


def test_distinct_n_counts_unique_word_ngrams() -> None:
    assert distinct_n(["good good good"], 1) == pytest.approx(1 / 3)
    assert distinct_n(["a b", "a c"], 1) == pytest.approx(3 / 4)
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert math.isnan(distinct_n(["one"], 2))


def _sample(prompt: str, completion: str, score: float, kl: float = 0.0, tokens: int = 2, ref: float = -2.0):
    return {"prompt": prompt, "completion": completion, "rm_score": score, "kl_sum": kl, "n_tokens": tokens,
            "ref_logprob": ref}  # fmt: skip


def test_metrics_pool_samples_and_seeds_per_prompt_and_compare_with_the_start() -> None:
    # Two prompts × two samples; samples i and i+1 belong to prompt i // 2.
    start = [_sample("p", "a b", 0.0), _sample("p", "a b", 1.0), _sample("q", "c d", 0.0), _sample("q", "e f", 0.0)]
    seed0 = [
        _sample("p", "x y", 1.0, kl=1.0),
        _sample("p", "x y", 1.0),
        _sample("q", "z z", -1.0),
        _sample("q", "w", 0.0),
    ]
    seed1 = [_sample("p", "x", 2.0, tokens=1, ref=-1.0), _sample("p", "y", 0.5), _sample("q", "v", 3.0),
             _sample("q", "u", 0.0)]  # fmt: skip
    start_eval = summarize_policy("start", {0: start}, 2)
    assert start_eval.metrics["rm_score"].mean == pytest.approx((0.5 + 0.0) / 2)
    assert math.isnan(start_eval.metrics["win_rate"].mean)
    tuned = summarize_policy("ppo", {0: seed0, 1: seed1}, 2, start)
    assert tuned.seeds == (0, 1)
    assert tuned.completions == 8
    m = tuned.metrics
    assert m["rm_score"].mean == pytest.approx(((1 + 1 + 2 + 0.5) / 4 + (-1 + 0 + 3 + 0) / 4) / 2)
    assert m["kl"].mean == pytest.approx((1.0 / 4 + 0.0) / 2)
    # Win rate against the start's sample of the same prompt and index; a tie counts one half.
    p_wins = [1.0, 0.5, 1.0, 0.0]  # seed0: 1>0, 1=1; seed1: 2>0, 0.5<1
    q_wins = [0.0, 0.5, 1.0, 0.5]
    assert m["win_rate"].mean == pytest.approx((np.mean(p_wins) + np.mean(q_wins)) / 2)
    assert m["win_rate"].n == 2
    # Perplexity: exp of the prompt's token-weighted mean negative log-likelihood under the reference.
    p_ppl = math.exp((2 + 2 + 1 + 2) / (2 + 2 + 1 + 2))
    assert m["perplexity"].mean == pytest.approx(p_ppl)  # both prompts have 1 nat per token
    assert m["length"].mean == pytest.approx(((2 + 2 + 1 + 2) / 4 + 2.0) / 2)
    assert m["distinct_1"].mean == pytest.approx((distinct_n(["x y", "x y", "x", "y"], 1)
                                                  + distinct_n(["z z", "w", "v", "u"], 1)) / 2)  # fmt: skip
    assert math.isfinite(m["rm_score"].half_width)


def test_evaluate_completes_the_given_prompts_in_order() -> None:
    config = load_config(preset="tiny", env="textenv/Toy-v0", seed=3)
    model = make_agent(config)
    prompts = [Prompt(t) for t in ("the movie was", "i see the dog", "the book is")] * 3 + ["a day"]  # or plain text
    result = evaluate(model, config, 0, prompts=prompts)
    samples = result["samples"]
    assert [s["prompt"] for s in samples] == [getattr(p, "text", p) for p in prompts]
    for s in samples:
        assert 1 <= s["n_tokens"] <= 8
        assert s["ref_logprob"] < 0
        assert abs(s["kl_sum"]) < 1e-4  # the untrained policy is the reference
    again = evaluate(model, config, 0, prompts=prompts)["samples"]
    assert [s["completion"] for s in again] == [s["completion"] for s in samples]


def test_an_exported_policy_is_the_trained_lm(tmp_path: Path) -> None:
    config = load_config(preset="tiny", env="textenv/Toy-v0")
    model = make_agent(config)
    with torch.no_grad():
        next(model.policy.lm.parameters()).add_(0.5)  # as if trained
    save_checkpoint(model, tmp_path / "checkpoint", {})
    (tmp_path / "config.yaml").write_text("algo: ppo\n")
    folder = export_policy(tmp_path)
    assert folder == tmp_path / "policy"
    loaded, _ = load_model_and_tokenizer(folder)
    for (name, a), (_, b) in zip(loaded.named_parameters(), model.policy.lm.named_parameters(), strict=True):
        assert torch.equal(a, b), name
    policy = load_policy(folder, config)
    assert torch.equal(next(policy.lm.parameters()), next(model.policy.lm.parameters()))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        export_policy(tmp_path / "nothing")
