"""Evaluation after RL: the starting policy and each tuned policy on the same prompts, judged the same way.

:func:`evaluate_runs` takes the finished runs of a comparison, loads each run's trained LM (exported with
:func:`agents.checkpoint.export_policy`), and samples ``samples_per_prompt`` completions of every evaluation
prompt with it, in the run's own env (so the reward model, the reference and the KL are exactly those of
training). The starting policy (the model the runs began from, which is also the reference) is sampled once
the same way: it is the *before* of every algorithm, since all of them start from it.

Metrics per policy (:data:`METRICS`), each as mean ± half-width of a 95% interval over prompts (the unit is
the prompt: its completions, over samples and seeds, are pooled first; Student's t interval):

- ``rm_score``: the reward model's score of a completion (without the KL penalty);
- ``kl``: Σ_t (log π − log π_ref) over the completion's tokens, in nats (0 for the starting policy);
- ``perplexity``: exp of the mean negative log-likelihood per token of the completions under the reference;
- ``distinct_1``, ``distinct_2``: unique word uni-/bigrams over all word uni-/bigrams (Li et al. 2016) of the
  completions of one prompt (its samples and seeds pooled), so it falls both when a completion repeats itself
  and when the samples of a prompt collapse onto one text (whereas over all prompts, different prompts would
  keep it high);
- ``length``: completion length in tokens;
- ``win_rate``: how often a tuned completion scores higher under the reward model than the starting policy's
  completion of the same prompt and sample index (ties count one half); 0.5 means no better.

:func:`write_evaluation` writes ``metrics.json``, ``samples.jsonl`` and ``evaluation.md`` atomically.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.io import atomic_write_text
from agents.report import Estimate
from agents.stats import mean_ci

if TYPE_CHECKING:
    from agents.config import TrainConfig
    from agents.policy import LMPolicy
    from agents.train import RunResult
    from textenv.prompts import Prompt

__all__ = [
    "METRICS",
    "EvaluationResult",
    "PolicyEvaluation",
    "distinct_n",
    "evaluate_runs",
    "load_policy",
    "summarize_policy",
    "write_evaluation",
]

#: The metrics of a policy, in table order, with their column titles.
METRICS: dict[str, str] = {
    "rm_score": "RM score",
    "kl": "KL (nats)",
    "perplexity": "perplexity under ref",
    "distinct_1": "distinct-1",
    "distinct_2": "distinct-2",
    "length": "length (tokens)",
    "win_rate": "win rate vs start",
}
Sample = dict[str, Any]
"""One scored completion: ``prompt``, ``completion``, ``rm_score``, ``kl_sum``, ``n_tokens``, ``ref_logprob``."""

BASE = "start"
"""The name of the starting policy's row."""


@dataclass(frozen=True)
class PolicyEvaluation:
    """One policy's metrics (see the module docstring), each with its 95% interval over prompts."""

    name: str
    """``"start"`` for the starting policy, else the algorithm."""
    seeds: tuple[int, ...]
    """The seeds whose tuned policies were pooled (empty for the starting policy)."""
    completions: int
    """Completions scored."""
    metrics: dict[str, Estimate] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluationResult:
    """The evaluation of a comparison: the starting policy first, then one row per algorithm."""

    policies: list[PolicyEvaluation]
    prompts: int
    samples_per_prompt: int
    samples: dict[str, list[dict[str, Any]]]
    """Every completion, by ``"start"`` or ``"<algo>/seed<seed>"``, in prompt order."""


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique word n-grams over all word n-grams of ``texts`` (lower-cased, split on whitespace); NaN if none."""
    grams: list[tuple[str, ...]] = []
    for text in texts:
        words = text.lower().split()
        grams.extend(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return len(set(grams)) / len(grams) if grams else math.nan


def _per_prompt(samples: Sequence[Sequence[dict[str, Any]]], value: Callable[[dict[str, Any]], float]) -> Estimate:
    """Mean over prompts of each prompt's mean ``value``, with its t interval."""
    return _over_prompts(samples, lambda group: float(np.mean([value(s) for s in group])))


def _over_prompts(groups: Sequence[Sequence[Sample]], value: Callable[[Sequence[Sample]], float]) -> Estimate:
    """Mean over prompts of ``value(prompt's samples)``, with its t interval (NaN values are left out)."""
    values = [v for v in (value(group) for group in groups if group) if math.isfinite(v)]
    if not values:
        return Estimate(math.nan, math.nan, 0)
    mean, half = mean_ci(values)
    return Estimate(mean, half, len(values))


def _perplexity(samples: Sequence[dict[str, Any]]) -> float:
    tokens = sum(int(s["n_tokens"]) for s in samples)
    return math.exp(-sum(float(s["ref_logprob"]) for s in samples) / tokens) if tokens else math.nan


def _distinct(n: int) -> Callable[[Sequence[dict[str, Any]]], float]:
    return lambda samples: distinct_n([s["completion"] for s in samples], n)


def summarize_policy(
    name: str,
    runs: dict[int, list[dict[str, Any]]],
    n_prompts: int,
    start: list[dict[str, Any]] | None = None,
) -> PolicyEvaluation:
    """The metrics of one policy from its samples.

    Args:
        name: The row's name.
        runs: The samples of each seed, in prompt order: ``n_prompts × samples_per_prompt`` each, sample ``i``
            of prompt ``i // samples_per_prompt``.
        n_prompts: How many prompts.
        start: The starting policy's samples in the same order, for the win rate; ``None`` for the start itself.
    """
    per_prompt: list[list[dict[str, Any]]] = [[] for _ in range(n_prompts)]
    wins: list[list[dict[str, Any]]] = [[] for _ in range(n_prompts)]
    for samples in runs.values():
        k = len(samples) // n_prompts
        for i, sample in enumerate(samples):
            per_prompt[i // k].append(sample)
            if start is not None:
                other = start[i]["rm_score"]
                win = 1.0 if sample["rm_score"] > other else 0.5 if sample["rm_score"] == other else 0.0
                wins[i // k].append({"win": win})
    metrics = {
        "rm_score": _per_prompt(per_prompt, lambda s: float(s["rm_score"])),
        "kl": _per_prompt(per_prompt, lambda s: float(s["kl_sum"])),
        "perplexity": _over_prompts(per_prompt, _perplexity),
        "distinct_1": _over_prompts(per_prompt, _distinct(1)),
        "distinct_2": _over_prompts(per_prompt, _distinct(2)),
        "length": _per_prompt(per_prompt, lambda s: float(s["n_tokens"])),
        "win_rate": _per_prompt(wins, lambda s: s["win"]) if start is not None else Estimate(math.nan, math.nan, 0),
    }
    seeds = tuple(sorted(runs)) if start is not None else ()
    return PolicyEvaluation(name, seeds, sum(len(s) for s in runs.values()), metrics)


def load_policy(model: str | Path | None, config: TrainConfig) -> LMPolicy:
    """An :class:`LMPolicy` over the LM in ``model`` (default: the config's starting model) for ``config``'s env.

    The policy samples at the run's temperature and top-k; its value head is fresh (evaluation does not use it).
    """
    from agents.policy import LMPolicy
    from agents.train import env_kwargs
    from textenv.registration import make

    env = make(config.env, **env_kwargs(config))
    try:
        spec = getattr(env.unwrapped, "_model_spec", None)
        name = str(model) if model is not None else (config.model or (spec[0] if spec else None))
        return LMPolicy(
            env.observation_space,  # type: ignore[arg-type]
            env.action_space,  # type: ignore[arg-type]
            lambda _: 0.0,
            model=name,
            temperature=config.temperature,
            top_k=config.top_k,
        )
    finally:
        env.close()


def evaluate_runs(
    runs: Sequence[RunResult],
    prompts: Sequence[Prompt],
    samples_per_prompt: int = 1,
    *,
    progress: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Sample and score the starting policy and every run's tuned policy on ``prompts`` (module docstring).

    Args:
        runs: Finished runs of one comparison (same env and starting model), e.g. ``compare(...).runs``.
        prompts: The evaluation prompts.
        samples_per_prompt: Completions per prompt and policy.
        progress: Called with a line of text before each policy is sampled.

    Raises:
        ValueError: No runs, no prompts, or ``samples_per_prompt`` < 1.
    """
    from agents.checkpoint import POLICY_FOLDER, export_policy
    from agents.train import evaluate

    if not runs:
        raise ValueError("evaluate_runs needs at least one finished run.")
    if not prompts:
        raise ValueError("evaluate_runs needs at least one prompt.")
    if isinstance(samples_per_prompt, bool) or not isinstance(samples_per_prompt, int) or samples_per_prompt < 1:
        raise ValueError(f"samples_per_prompt must be an integer ≥ 1; got {samples_per_prompt!r}.")
    say = progress or (lambda _: None)
    queue = [p for p in prompts for _ in range(samples_per_prompt)]
    first = runs[0].config
    say(f"sampling the starting policy on {len(prompts)} prompts × {samples_per_prompt}")
    start = evaluate(load_policy(None, first), first, len(queue), prompts=queue)["samples"]
    samples: dict[str, list[dict[str, Any]]] = {BASE: start}
    by_algo: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for run in runs:
        folder = Path(run.out_dir) / POLICY_FOLDER
        if not (folder / "config.json").is_file():
            export_policy(run.out_dir)
        say(f"sampling {run.config.algo} seed {run.config.seed}")
        got = evaluate(load_policy(folder, run.config), run.config, len(queue), prompts=queue)["samples"]
        samples[f"{run.config.algo}/seed{run.config.seed}"] = got
        by_algo.setdefault(run.config.algo, {})[run.config.seed] = got
    policies = [summarize_policy(BASE, {0: start}, len(prompts))]
    policies += [summarize_policy(algo, seeds, len(prompts), start) for algo, seeds in by_algo.items()]
    return EvaluationResult(policies, len(prompts), samples_per_prompt, samples)


def _as_json(estimate: Estimate) -> dict[str, Any]:
    def plain(x: float) -> float | None:
        return x if math.isfinite(x) else None

    return {"mean": plain(estimate.mean), "ci95_half_width": plain(estimate.half_width), "n": estimate.n}


def evaluation_table(result: EvaluationResult) -> list[str]:
    """The markdown table of ``result``: one row per policy, one column per metric."""
    header = ["policy", "seeds", "completions", *METRICS.values()]
    lines = ["| " + " | ".join(header) + " |", "|:---|" + "---:|" * (len(header) - 1)]
    for policy in result.policies:
        cells = [
            f"`{policy.name}`",
            ", ".join(map(str, policy.seeds)) or "—",
            str(policy.completions),
            *(policy.metrics[m].format() for m in METRICS),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_evaluation(result: EvaluationResult, out_dir: str | Path) -> Path:
    """Write ``metrics.json``, ``samples.jsonl`` and ``evaluation.md`` into ``out_dir``; the markdown's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = {
        "prompts": result.prompts,
        "samples_per_prompt": result.samples_per_prompt,
        "policies": {
            p.name: {
                "seeds": list(p.seeds),
                "completions": p.completions,
                **{k: _as_json(v) for k, v in p.metrics.items()},
            }
            for p in result.policies
        },
    }
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    lines = [
        json.dumps({"policy": name, "index": i, **sample}, ensure_ascii=False)
        for name, samples in result.samples.items()
        for i, sample in enumerate(samples)
    ]
    atomic_write_text(out / "samples.jsonl", "".join(f"{line}\n" for line in lines))
    text = [
        "# Evaluation after RL",
        "",
        f"{result.prompts} prompts × {result.samples_per_prompt} samples per policy; each tuned row pools its "
        "seeds. `start` is the policy every algorithm began from (the reference): the *before* of each row.",
        "",
        *evaluation_table(result),
        "",
        "Each cell is the mean over prompts ± the half-width of its 95% confidence interval (Student's t over "
        "prompts; a prompt's value pools its samples and seeds). See `agents/evaluation.py` for the definitions; "
        "every completion is in `samples.jsonl`.",
        "",
    ]
    path = out / "evaluation.md"
    atomic_write_text(path, "\n".join(text))
    return path
