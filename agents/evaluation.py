"""Evaluation after RL: the starting policy and each tuned policy on the same prompts, judged the same way.

:func:`evaluate_runs` takes the finished runs of a comparison, loads each run's trained LM (exported with
:func:`agents.checkpoint.export_policy`), and samples ``samples_per_prompt`` completions of every evaluation
prompt with it, in the run's own env (so the reward model, the reference and the KL are exactly those of
training). The starting policy (the model the runs began from, which is also the reference) is sampled once
the same way: it is the *before* of every algorithm, since all of them start from it.

The evaluation is paired (DESIGN §10): every policy completes the same prompts in the same order, and the
``i``-th completion of every policy draws its tokens with the same uniform variates (inverse-CDF sampling,
:meth:`agents.policy.LMPolicy.sample_with`, seeded by ``seed`` and ``i`` alone, whatever the batch layout).
These common random numbers make a tuned completion differ from the starting policy's only where the two
distributions differ, so the gain ``after − before`` per prompt carries much less sampling noise than two
independent draws would.

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
- ``gain``: the RM score's gain over the starting policy, ``after − before`` per prompt (the prompt's
  tuned completions over samples and seeds, less its starting completions), with the t interval over prompts
  of those paired differences; :func:`gain_difference` compares two algorithms' gains;
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

from agents.markdown import table
from agents.stats import mean_ci
from agents.summary import Estimate
from textenv_common.atomic import write_text_atomic
from textenv_common.checks import check_int

if TYPE_CHECKING:
    from agents.config import TrainConfig
    from agents.policy import LMPolicy
    from agents.train import RunResult
    from textenv.prompts import Prompt

__all__ = [
    "METRICS",
    "EvaluationResult",
    "GainDifference",
    "PolicyEvaluation",
    "distinct_n",
    "evaluate_runs",
    "evaluation_prompts",
    "gain_difference",
    "gain_matrix",
    "load_policy",
    "sample_paired",
    "summarize_policy",
    "write_evaluation",
]

#: The metrics of a policy, in table order, with their column titles.
METRICS: dict[str, str] = {
    "rm_score": "RM score",
    "gain": "RM gain vs start (paired)",
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
    gains: dict[str, np.ndarray] = field(default_factory=dict)
    """Per algorithm, its :func:`gain_matrix` (seeds × prompts, seeds in sorted order)."""

    def policy(self, name: str) -> PolicyEvaluation:
        """The row of ``name`` (``"start"`` or an algorithm)."""
        return next(p for p in self.policies if p.name == name)


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
        "gain": _paired_gain(runs, start, n_prompts) if start is not None else Estimate(math.nan, math.nan, 0),
        "kl": _per_prompt(per_prompt, lambda s: float(s["kl_sum"])),
        "perplexity": _over_prompts(per_prompt, _perplexity),
        "distinct_1": _over_prompts(per_prompt, _distinct(1)),
        "distinct_2": _over_prompts(per_prompt, _distinct(2)),
        "length": _per_prompt(per_prompt, lambda s: float(s["n_tokens"])),
        "win_rate": _per_prompt(wins, lambda s: s["win"]) if start is not None else Estimate(math.nan, math.nan, 0),
    }
    seeds = tuple(sorted(runs)) if start is not None else ()
    return PolicyEvaluation(name, seeds, sum(len(s) for s in runs.values()), metrics)


def gain_matrix(runs: dict[int, list[Sample]], start: Sequence[Sample], n_prompts: int) -> np.ndarray:
    """Per seed and prompt, the mean RM score of the tuned completions less the starting policy's: ``(seeds, P)``.

    ``runs`` and ``start`` are in prompt order (``k`` samples of prompt 0, then of prompt 1, ...), as
    :func:`evaluate_runs` samples them; seeds are in sorted order.
    """

    def by_prompt(samples: Sequence[Sample]) -> np.ndarray:
        scores = np.array([float(s["rm_score"]) for s in samples])
        if scores.size % n_prompts:
            raise ValueError(f"{scores.size} samples do not split evenly over {n_prompts} prompts.")
        return scores.reshape(n_prompts, -1).mean(axis=1)

    before = by_prompt(start)
    return np.stack([by_prompt(runs[seed]) - before for seed in sorted(runs)])


def _paired_gain(runs: dict[int, list[Sample]], start: Sequence[Sample], n_prompts: int) -> Estimate:
    """The mean gain over prompts with its t interval, each prompt's gain pooled over the seeds."""
    per_prompt = gain_matrix(runs, start, n_prompts).mean(axis=0)
    mean, half = mean_ci(per_prompt)
    return Estimate(mean, half, int(per_prompt.size))


@dataclass(frozen=True)
class GainDifference:
    """``gain(a) − gain(b)`` with a percentile bootstrap interval over seeds and prompts."""

    a: str
    b: str
    mean: float
    low: float
    high: float
    confidence: float
    resamples: int

    def excludes_zero(self) -> bool:
        """Whether the interval lies wholly on one side of 0."""
        return self.low > 0 or self.high < 0


def gain_difference(
    a: np.ndarray,
    b: np.ndarray,
    names: tuple[str, str] = ("a", "b"),
    *,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> GainDifference:
    """Compare two algorithms' gains (:func:`gain_matrix` of each, on the same prompts).

    Two-level percentile bootstrap: each resample draws the prompts with replacement (the same draw for both
    algorithms, since they completed the same prompts) and, independently for each algorithm, its seeds with
    replacement; the statistic is the difference of the two mean gains. Resampling seeds carries the run-to-run
    spread of training into the interval, which an interval over prompts alone would leave out. (Written with
    numpy because ``scipy.stats.bootstrap`` resamples one level only.)

    Raises:
        ValueError: The matrices do not cover the same number of prompts.
    """
    a, b = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"gain matrices cover different prompt counts: {a.shape[1]} and {b.shape[1]}.")
    rng = np.random.default_rng(seed)
    n_prompts = a.shape[1]
    prompts = rng.integers(0, n_prompts, size=(resamples, n_prompts))

    def resampled_means(g: np.ndarray) -> np.ndarray:
        seeds = rng.integers(0, g.shape[0], size=(resamples, g.shape[0]))
        rows = g[seeds]  # (resamples, seeds, prompts)
        return np.take_along_axis(rows, prompts[:, None, :], axis=2).mean(axis=(1, 2))

    diffs = resampled_means(a) - resampled_means(b)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return GainDifference(names[0], names[1], float(a.mean() - b.mean()), float(low), float(high), confidence,
                          resamples)  # fmt: skip


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


def evaluation_prompts(config: TrainConfig) -> list[Prompt]:
    """The prompts of ``config``'s fixed evaluation: those its training leaves out (:attr:`eval_holdout`), else all.

    See :func:`agents.train.env_kwargs`, which gives training the complement.
    """
    from agents.train import split_prompts

    return split_prompts(config)[1]


def sample_paired(
    policy: LMPolicy,
    config: TrainConfig,
    queue: Sequence[Prompt],
    *,
    seed: int = 0,
    rows: int = 64,
) -> list[Sample]:
    """Complete ``queue[i]`` for every ``i`` with ``policy`` in ``config``'s env, with common random numbers.

    Episode ``i`` draws its ``t``-th token with the variate ``U[i, t]`` of a generator seeded by ``(seed, i)``
    alone, so any policy given the same ``queue`` and ``seed`` sees the same variates, whatever ``rows`` is.

    Args:
        policy: The policy to sample (it is put in evaluation mode).
        config: Its env and env overrides.
        queue: The prompts, one completion each; repeat a prompt for several samples.
        seed: Seed of the variates and of the evaluation envs.
        rows: Sub-envs stepped together (speed only; the samples do not depend on it).

    Returns:
        Per episode, in ``queue`` order: ``prompt``, ``completion``, ``rm_score``, ``kl_sum``, ``n_tokens``,
        ``ref_logprob`` (the completion's summed log-probability under the reference, for perplexity).
    """
    import torch

    from agents.train import env_kwargs
    from textenv.vector import make_vec_env

    n = len(queue)
    if n < 1:
        raise ValueError("sample_paired needs at least one prompt.")
    n_rows = min(n, rows)
    env = make_vec_env(config.env, n_rows, seed=seed, monitor=False, **env_kwargs(config))
    horizon = int(getattr(env.envs[0].unwrapped, "max_new_tokens", 256))
    variates = np.stack([np.random.default_rng([seed, i]).random(horizon) for i in range(n)])
    episodes: list[Sample | None] = [None] * n
    slots = list(range(n_rows))  # the episode each row is writing (-1: idle)
    steps = [0] * n_rows
    ref_sums = np.zeros(n_rows)
    policy.set_training_mode(False)
    try:
        with torch.no_grad(), policy.sending_to(env):
            obs = env.reset()
            for row in range(n_rows):
                _begin(env, obs, row, queue[row])
            next_episode = n_rows
            while any(slot >= 0 for slot in slots):
                u = [
                    variates[slot, min(step, horizon - 1)] if slot >= 0 else 0.5
                    for slot, step in zip(slots, steps, strict=True)
                ]
                actions = policy.sample_with(policy.obs_to_tensor(obs)[0], torch.tensor(u, dtype=torch.float64))  # type: ignore[arg-type]
                obs, _, dones, infos = env.step(actions.cpu().numpy())
                for row, (done, info) in enumerate(zip(dones, infos, strict=True)):
                    steps[row] += 1
                    ref_sums[row] += info["ref_logprob"]
                    if not done:
                        continue
                    if slots[row] >= 0:
                        record = {k: info[k] for k in ("prompt", "completion", "rm_score", "kl_sum", "n_tokens")}
                        record["ref_logprob"] = float(ref_sums[row])
                        episodes[slots[row]] = record
                    ref_sums[row], steps[row] = 0.0, 0
                    slots[row] = next_episode if next_episode < n else -1
                    if next_episode < n:
                        _begin(env, obs, row, queue[next_episode])
                        next_episode += 1
    finally:
        env.close()
    return [e for e in episodes if e is not None]


def _begin(env: Any, obs: Any, row: int, prompt: Prompt) -> None:
    """Start an episode of ``prompt`` in sub-env ``row``, writing its first observation into ``obs``."""
    first, _ = env.envs[row].reset(options={"prompt": prompt.text, "meta": dict(prompt.meta)})
    for key, value in first.items():
        obs[key][row] = value


def evaluate_runs(
    runs: Sequence[RunResult],
    prompts: Sequence[Prompt],
    samples_per_prompt: int = 1,
    *,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Sample and score the starting policy and every run's tuned policy on ``prompts`` (module docstring).

    Every policy completes each prompt ``samples_per_prompt`` times with the same variates (common random
    numbers, :func:`sample_paired`), so the starting policy is the paired *before* of every run.

    Args:
        runs: Finished runs of one comparison (same env and starting model), e.g. ``compare(...).runs``.
        prompts: The evaluation prompts.
        samples_per_prompt: Completions per prompt and policy.
        seed: Seed of the sampling variates, the same for every policy.
        progress: Called with a line of text before each policy is sampled.

    Raises:
        ValueError: No runs, no prompts, or ``samples_per_prompt`` < 1.
    """
    from agents.checkpoint import export_policy
    from agents.run_folder import POLICY_FOLDER

    if not runs:
        raise ValueError("evaluate_runs needs at least one finished run.")
    if not prompts:
        raise ValueError("evaluate_runs needs at least one prompt.")
    check_int("samples_per_prompt", samples_per_prompt, 1)
    say = progress or (lambda _: None)
    queue = [p for p in prompts for _ in range(samples_per_prompt)]
    first = runs[0].config
    say(f"sampling the starting policy on {len(prompts)} prompts × {samples_per_prompt}")
    start = sample_paired(load_policy(None, first), first, queue, seed=seed)
    samples: dict[str, list[dict[str, Any]]] = {BASE: start}
    by_algo: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for run in runs:
        folder = Path(run.out_dir) / POLICY_FOLDER
        if not (folder / "config.json").is_file():
            export_policy(run.out_dir)
        say(f"sampling {run.config.algo} seed {run.config.seed}")
        got = sample_paired(load_policy(folder, run.config), run.config, queue, seed=seed)
        samples[f"{run.config.algo}/seed{run.config.seed}"] = got
        by_algo.setdefault(run.config.algo, {})[run.config.seed] = got
    policies = [summarize_policy(BASE, {0: start}, len(prompts))]
    policies += [summarize_policy(algo, seeds, len(prompts), start) for algo, seeds in by_algo.items()]
    gains = {algo: gain_matrix(seeds, start, len(prompts)) for algo, seeds in by_algo.items()}
    return EvaluationResult(policies, len(prompts), samples_per_prompt, samples, gains)


def _as_json(estimate: Estimate) -> dict[str, Any]:
    def plain(x: float) -> float | None:
        return x if math.isfinite(x) else None

    return {"mean": plain(estimate.mean), "ci95_half_width": plain(estimate.half_width), "n": estimate.n}


def evaluation_table(result: EvaluationResult) -> list[str]:
    """The markdown table of ``result``: one row per policy, one column per metric."""
    header = ["policy", "seeds", "completions", *METRICS.values()]
    rows = [
        [
            f"`{policy.name}`",
            ", ".join(map(str, policy.seeds)) or "—",
            str(policy.completions),
            *(policy.metrics[m].format() for m in METRICS),
        ]
        for policy in result.policies
    ]
    return table(header, rows)


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
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n", overwrite=True)
    lines = [
        json.dumps({"policy": name, "index": i, **sample}, ensure_ascii=False)
        for name, samples in result.samples.items()
        for i, sample in enumerate(samples)
    ]
    write_text_atomic(out / "samples.jsonl", "".join(f"{line}\n" for line in lines), overwrite=True)
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
    write_text_atomic(path, "\n".join(text), overwrite=True)
    return path
