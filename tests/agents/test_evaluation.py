"""Evaluation after RL: the metrics by hand, sampling fixed prompts in order, exporting a run's policy."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.checkpoint import export_policy, save_checkpoint
from agents.config import load_config
from agents.evaluation import (
    distinct_n,
    evaluation_prompts,
    gain_difference,
    gain_matrix,
    load_policy,
    sample_paired,
    summarize_policy,
)
from agents.train import env_kwargs, evaluate, make_agent, split_prompts
from textenv.errors import ConfigError
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


@pytest.mark.slow  # fast: test_evaluate_completes_the_given_prompts_in_order
def test_paired_sampling_gives_the_same_completions_whatever_the_batch_layout() -> None:
    config = load_config(preset="tiny", env="textenv/Toy-v0", seed=3)
    policy = make_agent(config).policy
    queue = [Prompt(t) for t in ("the movie was", "i see the dog", "the book is")] * 2
    one_row = sample_paired(policy, config, queue, seed=7, rows=1)  # type: ignore[arg-type]
    three_rows = sample_paired(policy, config, queue, seed=7, rows=3)  # type: ignore[arg-type]
    assert [s["prompt"] for s in one_row] == [p.text for p in queue]
    assert [s["completion"] for s in three_rows] == [s["completion"] for s in one_row]
    other_seed = sample_paired(policy, config, queue, seed=8, rows=3)  # type: ignore[arg-type]
    assert [s["completion"] for s in other_seed] != [s["completion"] for s in one_row]
    # The same policy against itself under common random numbers: every paired gain is exactly 0.
    gains = gain_matrix({0: three_rows}, one_row, 3)
    assert gains.shape == (1, 3)
    assert np.all(gains == 0)


def test_gain_matrix_and_the_bootstrap_difference_by_hand() -> None:
    start = [_sample("p", "a", 0.0), _sample("p", "b", 1.0), _sample("q", "c", 0.0), _sample("q", "d", 0.0)]
    seed1 = [_sample("p", "x", 1.0), _sample("p", "y", 1.0), _sample("q", "z", 1.0), _sample("q", "w", 0.0)]
    seed0 = [_sample("p", "x", 0.5), _sample("p", "y", 0.5), _sample("q", "z", 0.0), _sample("q", "w", 0.0)]
    tuned = {1: seed1, 0: seed0}
    g = gain_matrix(tuned, start, 2)
    np.testing.assert_allclose(g, [[0.0, 0.0], [0.5, 0.5]])  # seed 0 first, then seed 1
    row = summarize_policy("ppo", tuned, 2, start)
    assert row.metrics["gain"].mean == pytest.approx(0.25)
    assert row.metrics["gain"].half_width == pytest.approx(0.0)
    same = gain_difference(g, g, ("ppo", "a2c"), resamples=2000)
    assert same.mean == 0.0
    assert same.low <= 0.0 <= same.high
    assert not same.excludes_zero()
    shifted = gain_difference(g + 1.0, g, ("ppo", "a2c"), resamples=2000)
    assert shifted.mean == pytest.approx(1.0)
    assert shifted.low > 0.0
    assert shifted.excludes_zero()
    rng = np.random.default_rng(0)
    noisy = gain_difference(rng.normal(0.3, 0.2, (3, 24)), rng.normal(0.0, 0.2, (3, 24)), resamples=4000)
    assert noisy.low < noisy.mean < noisy.high
    assert noisy.excludes_zero()
    with pytest.raises(ValueError, match="different prompt counts"):
        gain_difference(g, np.zeros((2, 3)))


def test_the_holdout_splits_the_prompts_into_disjoint_training_and_evaluation_sets() -> None:
    config = load_config(preset="tiny", env="textenv/Toy-v0", eval_holdout=3)
    train, held = split_prompts(config)
    everything, same = split_prompts(config.replace(eval_holdout=0))
    assert everything == same
    assert len(train) + len(held) == len(everything)
    assert held == everything[2::3]
    assert not {p.text for p in train} & {p.text for p in held}
    assert evaluation_prompts(config) == held
    assert env_kwargs(config)["prompts"] == train
    with pytest.raises(ConfigError, match="leaves"):
        split_prompts(config.replace(eval_holdout=len(everything) + 1))
    with pytest.raises(ConfigError, match="eval_holdout must be 0 or an integer ≥ 2"):
        config.replace(eval_holdout=1)


def test_the_main_job_evaluates_at_least_192_completions_per_policy_on_held_out_prompts() -> None:
    from agents.cli import DEMO

    config = load_config(preset=DEMO["preset"], env=DEMO["env"])
    train, held = split_prompts(config)
    assert len(held) * config.eval_samples >= 192
    assert not {p.text for p in train} & {p.text for p in held}
    assert DEMO["seeds"] >= 3
