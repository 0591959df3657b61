"""``textenv sweep``: search :class:`~agents.config.TrainConfig` fields with Ray Tune, scored by the fixed evaluation.

A sweep file names the run every trial starts from (env, algorithm, preset, seed, budget, fixed fields), the
fields to search and how, and the scheduler. Each trial trains its config in chunks of ``grace_tokens`` (resuming
from its own checkpoint), and after each chunk samples the fixed, paired evaluation of :mod:`agents.evaluation`
(the same prompts and sampling variates as the starting policy, sampled once on the driver) and reports the RM
score's **gain** over the starting policy to Tune. With ``scheduler: asha`` (the default), ASHA stops trials whose
gain trails at its rungs, so most of the budget goes to the promising ones.

A sweep file (YAML)::

    env: textenv/Sentiment-v0
    algo: ppo
    preset: demo
    budget_tokens: 2048
    train: {eval_holdout: 2}          # fixed TrainConfig fields
    search:                           # TrainConfig fields: grid, choice, uniform, loguniform or randint
      learning_rate: {loguniform: [1.0e-4, 1.0e-3]}
      n_epochs: {choice: [1, 2, 4]}
    num_samples: 8
    grace_tokens: 512                 # ASHA's grace period, and the reporting interval
    eval_prompts: 24
    eval_samples: 4

:func:`run_sweep` writes ``best.yaml`` (the best trial's whole config, loadable with ``textenv train --config``) and
``trials.md`` (every trial: its values, the tokens it reached, its last gain and KL, and whether ASHA stopped it),
both atomically, and Tune's own files under ``tune/``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agents.config import PRESETS, TrainConfig, load_config
from agents.io import read_yaml_mapping
from textenv.errors import ConfigError
from textenv_common.atomic import write_text_atomic
from textenv_common.checks import check_int

__all__ = ["SEARCH_KINDS", "SweepConfig", "SweepResult", "load_sweep_config", "run_sweep"]

#: How a searched field's values are drawn (Ray Tune's search-space functions of the same names).
SEARCH_KINDS = ("grid", "choice", "uniform", "loguniform", "randint")
_SET_BY_SWEEP = ("env", "algo", "seed", "budget_tokens")


@dataclass(frozen=True)
class SweepConfig:
    """A sweep: the run each trial starts from, the searched fields and the scheduler (see the module docstring)."""

    env: str = "textenv/Toy-v0"
    """Registered env id."""
    algo: str = "ppo"
    """'ppo' or 'a2c'."""
    preset: str | None = None
    """A preset of :data:`agents.config.PRESETS` under the fixed and searched fields."""
    seed: int = 0
    """Seed of every trial's run (the trials differ in their searched values only)."""
    budget_tokens: int = 1024
    """Tokens a trial that ASHA never stops trains for."""
    train: dict[str, Any] = field(default_factory=dict)
    """Fixed TrainConfig fields of every trial."""
    search: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Searched TrainConfig fields: ``{field: {kind: values}}``, kind one of :data:`SEARCH_KINDS`."""
    num_samples: int = 4
    """Trials drawn (with ``grid``, each grid point is run this many times)."""
    scheduler: str = "asha"
    """'asha' (stop trailing trials early) or 'fifo' (run every trial to the budget)."""
    grace_tokens: int | None = None
    """Tokens between two reports of a trial, and ASHA's grace period; default: a quarter of the budget."""
    reduction_factor: int = 2
    """ASHA's reduction factor."""
    eval_prompts: int | None = 16
    """The first this-many prompts of the fixed evaluation (None: all of them)."""
    eval_samples: int = 2
    """Completions per evaluation prompt and policy."""
    num_cpus: float = 1.0
    """CPUs a trial reserves."""
    num_gpus: float = 0.0
    """GPUs a trial reserves."""
    search_seed: int = 0
    """Seed of the drawn values."""

    def __post_init__(self) -> None:
        if not isinstance(self.search, dict) or not self.search:
            raise ConfigError("A sweep needs a `search` section: {field: {kind: values}}, e.g. learning_rate.")
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        for name, spec in self.search.items():
            if name not in known or name in _SET_BY_SWEEP:
                raise ConfigError(
                    f"search field {name!r} is not a TrainConfig field the sweep may vary; choose among "
                    f"{sorted(known - set(_SET_BY_SWEEP))}."
                )
            if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in SEARCH_KINDS:
                raise ConfigError(
                    f"search.{name} must be one of {{kind: values}} with kind in {SEARCH_KINDS}; got {spec!r}."
                )
            kind, values = next(iter(spec.items()))
            if not isinstance(values, list) or not values or (kind not in ("grid", "choice") and len(values) != 2):
                raise ConfigError(
                    f"search.{name}.{kind} needs a list of values ([low, high] for {kind}); got {values!r}."
                )
        if self.scheduler not in ("asha", "fifo"):
            raise ConfigError(f"scheduler must be 'asha' or 'fifo'; got {self.scheduler!r}.")
        for name in ("num_samples", "eval_samples", "reduction_factor"):
            check_int(name, getattr(self, name), 1, error=ConfigError)
        if self.preset is not None and self.preset not in PRESETS:
            raise ConfigError(f"Unknown preset {self.preset!r}; known: {sorted(PRESETS)}.")
        if self.grace > self.budget_tokens:
            raise ConfigError(f"grace_tokens {self.grace} exceeds budget_tokens {self.budget_tokens}.")
        self.trial_config({})  # the fixed part is a valid TrainConfig (a typo fails now, not in a worker)

    @property
    def grace(self) -> int:
        """Tokens between reports (ASHA's grace period)."""
        if self.grace_tokens is None:
            return max(1, self.budget_tokens // 4)
        check_int("grace_tokens", self.grace_tokens, 1, error=ConfigError)
        return self.grace_tokens

    def trial_config(self, values: Mapping[str, Any], budget_tokens: int | None = None) -> TrainConfig:
        """The TrainConfig of a trial with the searched ``values``."""
        fixed = {k: v for k, v in self.train.items() if k not in values}
        return load_config(
            None,
            self.preset,
            env=self.env,
            algo=self.algo,
            seed=self.seed,
            budget_tokens=budget_tokens or self.budget_tokens,
            **fixed,
            **dict(values),
        )


@dataclass
class SweepResult:
    """What :func:`run_sweep` found and wrote."""

    best: TrainConfig
    best_gain: float
    trials: list[dict[str, Any]]
    best_yaml: Path
    table: Path


def load_sweep_config(path: str | Path) -> SweepConfig:
    """Read a sweep file; unknown keys are an error naming them."""
    file = Path(path).expanduser()
    data = read_yaml_mapping(path, "Sweep file")
    known = {f.name for f in dataclasses.fields(SweepConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"Unknown sweep fields {unknown}; known: {sorted(known)}.")
    try:
        return SweepConfig(**data)
    except TypeError as exc:
        raise ConfigError(f"Sweep file {file}: {exc}") from None


def _space(search: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    from ray import tune

    kinds = {"grid": tune.grid_search, "choice": tune.choice}
    space: dict[str, Any] = {}
    for name, spec in search.items():
        kind, values = next(iter(spec.items()))
        if kind in kinds:
            space[name] = kinds[kind](list(values))
        else:
            space[name] = {"uniform": tune.uniform, "loguniform": tune.loguniform, "randint": tune.randint}[kind](
                *values
            )
    return space


def _gain(after: Sequence[dict[str, Any]], start: Sequence[dict[str, Any]], n_prompts: int) -> float:
    from agents.evaluation import gain_matrix

    return float(gain_matrix({0: list(after)}, start, n_prompts).mean())


def _trial(values: dict[str, Any], *, sweep: SweepConfig, start: list[dict[str, Any]], n_prompts: int) -> None:
    """One Tune trial: train in chunks, report the paired gain after each."""
    from ray import tune

    from agents.evaluation import load_policy, sample_paired
    from agents.run_folder import POLICY_FOLDER
    from agents.train import train

    folder = Path(tune.get_context().get_trial_dir()) / "run"
    queue = _queue(sweep)
    tokens = 0
    while tokens < sweep.budget_tokens:
        tokens = min(tokens + sweep.grace, sweep.budget_tokens)
        config = sweep.trial_config(values, budget_tokens=tokens)
        resume = (folder / "checkpoint" / "model.zip").exists()  # a restarted trial resumes too
        train(config, folder, resume=resume, progress=False)
        after = sample_paired(load_policy(folder / POLICY_FOLDER, config), config, queue, seed=0)
        kl = sum(float(s["kl_sum"]) for s in after) / len(after)
        tune.report({"gain": _gain(after, start, n_prompts), "kl": kl, "tokens": tokens})


def _queue(sweep: SweepConfig) -> list[Any]:
    from agents.evaluation import evaluation_prompts

    prompts = evaluation_prompts(sweep.trial_config({}))
    if sweep.eval_prompts is not None:
        prompts = prompts[: sweep.eval_prompts]
    return [p for p in prompts for _ in range(sweep.eval_samples)]


def run_sweep(
    sweep: SweepConfig, out_dir: str | Path, *, address: str | None = None, max_failures: int = 2
) -> SweepResult:
    """Run the sweep on a Ray cluster (``address``: as :func:`textenv.ray_vec_env.connect`); see the module docstring.

    Raises:
        MissingExtraError: Ray (with Tune) is not installed.
        RayAddressError: No cluster answers at ``address``.
        RuntimeError: No trial reported a gain.
    """
    from agents.evaluation import load_policy, sample_paired
    from textenv.errors import MissingExtraError
    from textenv.ray_vec_env import connect

    try:
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
        from ray.tune.search import BasicVariantGenerator
    except ImportError as exc:
        raise MissingExtraError(f"textenv sweep needs Ray Tune: pip install 'textenv[ray]' ({exc}).") from exc
    connect(address, **({} if address else {"include_dashboard": False}))
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    queue = _queue(sweep)
    n_prompts = len(queue) // sweep.eval_samples
    first = sweep.trial_config({})
    start = sample_paired(load_policy(None, first), first, queue, seed=0)  # the common "before" of every trial
    scheduler = (
        ASHAScheduler(
            time_attr="tokens",
            max_t=sweep.budget_tokens,
            grace_period=sweep.grace,
            reduction_factor=sweep.reduction_factor,
        )
        if sweep.scheduler == "asha"
        else FIFOScheduler()
    )
    trainable = tune.with_resources(
        tune.with_parameters(_trial, sweep=sweep, start=start, n_prompts=n_prompts),
        {"cpu": sweep.num_cpus, "gpu": sweep.num_gpus},
    )
    from ray.tune import FailureConfig, RunConfig, TuneConfig, Tuner

    tuner = Tuner(
        trainable,
        param_space=_space(sweep.search),
        tune_config=TuneConfig(
            metric="gain",
            mode="max",
            scheduler=scheduler,
            num_samples=sweep.num_samples,
            search_alg=BasicVariantGenerator(random_state=sweep.search_seed),
        ),
        run_config=RunConfig(
            name="tune", storage_path=str(out), verbose=0, failure_config=FailureConfig(max_failures=max_failures)
        ),
    )
    grid = tuner.fit()
    trials: list[dict[str, Any]] = []
    for i in range(len(grid)):
        result = grid[i]
        metrics = result.metrics or {}
        trials.append({
            "values": {k: (result.config or {}).get(k) for k in sweep.search},
            "tokens": metrics.get("tokens"),
            "gain": metrics.get("gain"),
            "kl": metrics.get("kl"),
            "error": None if result.error is None else f"{type(result.error).__name__}: {result.error}",
        })  # fmt: skip
    scored = [t for t in trials if isinstance(t["gain"], (int, float)) and math.isfinite(t["gain"])]
    if not scored:
        raise RuntimeError(f"No trial of the sweep reported a gain; see {out / 'tune'}.")
    # The best among the trials that reached the whole budget (ASHA's survivors), else the best reported.
    full = [t for t in scored if t["tokens"] == sweep.budget_tokens] or scored
    best_trial = max(full, key=lambda t: t["gain"])
    best = sweep.trial_config(best_trial["values"])
    best_yaml = out / "best.yaml"
    write_text_atomic(best_yaml, yaml.safe_dump(best.to_dict(), sort_keys=False), overwrite=True)
    table = out / "trials.md"
    write_text_atomic(table, _table(sweep, trials, best_trial), overwrite=True)
    return SweepResult(best, float(best_trial["gain"]), trials, best_yaml, table)


def _table(sweep: SweepConfig, trials: list[dict[str, Any]], best: dict[str, Any]) -> str:
    names = list(sweep.search)
    lines = [
        f"# Sweep: {sweep.algo} on `{sweep.env}`",
        "",
        f"{len(trials)} trials, scheduler {sweep.scheduler}, budget {sweep.budget_tokens} tokens, a report every "
        f"{sweep.grace} tokens. **gain**: the fixed evaluation's RM-score gain over the starting policy "
        f"(paired: the same {sweep.eval_samples} sampling variates per prompt), at the trial's last report.",
        "",
        "| trial | " + " | ".join(names) + " | tokens | gain | KL (nats) | status |",
        "|---|" + "---|" * len(names) + "---|---|---|---|",
    ]
    for i, trial in sorted(enumerate(trials), key=lambda it: -(it[1]["gain"] if it[1]["gain"] is not None else -1e9)):
        status = "best" if trial is best else ("error" if trial["error"] else (
            "full budget" if trial["tokens"] == sweep.budget_tokens else "stopped early"))  # fmt: skip
        cells = [str(i)] + [f"{trial['values'][n]:.4g}" if isinstance(trial["values"][n], float)
                            else str(trial["values"][n]) for n in names]  # fmt: skip
        gain = "—" if trial["gain"] is None else f"{trial['gain']:+.3f}"
        kl = "—" if trial["kl"] is None else f"{trial['kl']:.2f}"
        lines.append("| " + " | ".join([*cells, str(trial["tokens"] or 0), gain, kl, status]) + " |")
    return "\n".join(lines) + "\n"
