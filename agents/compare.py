"""Compare algorithms fairly: the same env, seeds and token budget for each, then one report.

``compare`` trains every (algorithm, seed) pair into ``<out_dir>/<algo>/seed<seed>/`` (an ordinary run folder,
see :mod:`agents.train`) and writes ``report.md``, ``summary.csv`` and the plots of :mod:`agents.report` into
``<out_dir>``. When the config asks for one (``eval_samples`` > 0), every finished run and the starting policy
then go through the fixed, paired evaluation of :mod:`agents.evaluation` (written to ``<out_dir>/evaluation/``),
and the report's claims come from it. Runs go seed by seed (every algorithm on seed 0, then on seed 1, ...), so a
comparison stopped early still compares the algorithms on the same seeds.

Calling it again on the same folder picks up where it stopped: a run whose folder holds a finished
``result.json`` and the same resolved ``config.yaml`` is read back, not retrained; an interrupted run with the
same config resumes from its checkpoint; a run whose config changed is trained afresh. ``resume=False``
retrains everything.
"""

from __future__ import annotations

import csv
import difflib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from agents.config import ALGOS, TrainConfig, load_config
from agents.ray_runs import RayOptions
from agents.report import write_report
from agents.summary import SummaryRow, summarize
from textenv.errors import ConfigError
from textenv_common.checks import check_int

if TYPE_CHECKING:
    from agents.evaluation import EvaluationResult
    from agents.train import RunResult

__all__ = ["ComparisonResult", "check_algos", "check_budget", "check_seeds", "compare", "load_run"]

logger = logging.getLogger(__name__)

# Set by compare() itself; an override of one of these would make the comparison unfair or ambiguous.
_FIXED_FIELDS = ("env", "algo", "seed", "budget_tokens")


@dataclass
class ComparisonResult:
    """What :func:`compare` ran and wrote."""

    out_dir: Path
    """The comparison folder."""
    report: Path
    """``report.md``."""
    runs: list[RunResult]
    """Every finished run, seed by seed, algorithms in the order asked."""
    rows: list[SummaryRow]
    """The summary table: one row per algorithm (means and 95% CIs over seeds)."""
    reused: list[Path] = field(default_factory=list)
    """Run folders read back from an earlier call instead of retrained."""
    evaluation: EvaluationResult | None = None
    """The fixed, paired evaluation of every run (None when the config's ``eval_samples`` is 0)."""

    def by_algo(self) -> dict[str, list[RunResult]]:
        """The runs grouped by algorithm."""
        groups: dict[str, list[RunResult]] = {}
        for run in self.runs:
            groups.setdefault(run.config.algo, []).append(run)
        return groups


def check_algos(algos: Sequence[str]) -> list[str]:
    """The algorithm names as a list; a ConfigError for an unknown, repeated or missing one."""
    if isinstance(algos, str) or not isinstance(algos, Sequence):
        raise ConfigError(f"algos must be a list of algorithm names such as ['ppo', 'a2c']; got {algos!r}.")
    if not algos:
        raise ConfigError(f"algos is empty; give at least one of {', '.join(map(repr, ALGOS))}.")
    for algo in algos:
        if algo not in ALGOS:
            close = difflib.get_close_matches(str(algo).lower(), ALGOS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"Unknown algorithm {algo!r}; known: {', '.join(map(repr, ALGOS))}.{hint}")
    duplicates = sorted({a for a in algos if list(algos).count(a) > 1})
    if duplicates:
        raise ConfigError(f"algos lists {duplicates} more than once; give each algorithm once.")
    return list(algos)


def check_seeds(seeds: int | Sequence[int]) -> list[int]:
    """The seeds as a list (a count n means 0..n−1); a ConfigError for a bad count or seed."""
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ConfigError(f"seeds must be ≥ 1 (the number of seeds, run as 0..seeds−1); got {seeds}.")
        return list(range(int(seeds)))
    if isinstance(seeds, (str, bool)) or not isinstance(seeds, Sequence) or not seeds:
        raise ConfigError(f"seeds must be a count ≥ 1 or a non-empty list of integer seeds; got {seeds!r}.")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"every seed must be an integer ≥ 0; got {seed!r} in {list(seeds)}.")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds {list(seeds)} repeat a seed; a repeated seed only repeats a run.")
    return [int(s) for s in seeds]


def check_budget(budget_tokens: int) -> int:
    """The token budget as an int; a ConfigError unless it is an integer ≥ 1."""
    check_int("budget_tokens", budget_tokens, 1, error=ConfigError)
    return int(budget_tokens)


def _read_history(metrics: Path) -> list[dict[str, float]]:
    """The per-rollout rows of a run's ``metrics.csv`` (its ``time/*`` and ``rollout/*`` columns)."""
    history: list[dict[str, float]] = []
    if not metrics.exists():
        return history
    with metrics.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            # SB3's train/* columns are left out: RunResult.history holds the rollout side only.
            history.append({k: _to_float(v) for k, v in row.items() if k and k.startswith(("time/", "rollout/")) and v})
    return history


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def load_run(folder: str | Path, config: TrainConfig | None = None) -> RunResult:
    """Read a finished run back from its folder (``result.json``, ``metrics.csv``, ``config.yaml``).

    Args:
        folder: A run folder written by :func:`agents.train.train`.
        config: The run's config, if known; else read from ``config.yaml``.

    Raises:
        FileNotFoundError: The folder lacks ``result.json`` or ``config.yaml``.
    """
    from agents.train import RunResult

    out = Path(folder)
    summary = json.loads((out / "result.json").read_text(encoding="utf-8"))
    if config is None:
        config = TrainConfig(**yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8")))
    history = _read_history(out / "metrics.csv")

    def number(key: str) -> float:
        value = summary.get(key)
        return math.nan if value is None else float(value)

    return RunResult(
        out_dir=out,
        config=config,
        tokens=int(summary.get("tokens") or 0),
        wall_time_s=number("wall_time_s"),
        tokens_per_s=number("tokens_per_s"),
        before=summary.get("before") or {},
        after=summary.get("after") or {},
        history=history,
        interrupted=bool(summary.get("interrupted", False)),
    )


def _same_config(folder: Path, config: TrainConfig) -> bool:
    try:
        saved = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    # Through YAML both ways, so tuples, lists and float spellings compare as they were written.
    return bool(saved == yaml.safe_load(yaml.safe_dump(config.to_dict(), sort_keys=False)))


def _finished(folder: Path, config: TrainConfig) -> RunResult | None:
    """The run in ``folder`` if it finished with ``config``; else None."""
    if not (folder / "result.json").exists() or not (folder / "metrics.csv").exists():
        return None
    if not _same_config(folder, config):
        return None
    try:
        run = load_run(folder, config)
    except (OSError, ValueError, TypeError) as exc:  # a torn or foreign file: train again
        logger.warning("Cannot read the finished run in %s (%s); training it again.", folder, exc)
        return None
    if run.interrupted or run.tokens < config.budget_tokens:
        return None
    return run


def compare(
    env: str,
    algos: Sequence[str],
    seeds: int | Sequence[int],
    budget_tokens: int,
    *,
    preset: str | None = None,
    config: str | Path | None = None,
    out_dir: str | Path,
    overrides: Mapping[str, Any] | None = None,
    progress: bool = True,
    resume: bool = True,
    ray: RayOptions | None = None,
) -> ComparisonResult:
    """Train every algorithm on the same env, seeds and token budget, and write the comparison report.

    Args:
        env: Registered env id, e.g. ``"textenv/Toy-v0"``.
        algos: Algorithm names, each one of ``'ppo'``, ``'a2c'``.
        seeds: How many seeds (run as 0, 1, ..., seeds − 1), or the list of seeds.
        budget_tokens: Generated tokens per run.
        preset: A preset of :data:`agents.config.PRESETS` (e.g. ``"tiny"``).
        config: A YAML config file, applied over the preset.
        out_dir: The comparison folder; run ``<algo>/seed<seed>`` goes in ``out_dir/<algo>/seed<seed>``.
        overrides: Further :class:`~agents.config.TrainConfig` fields, the same for every run (not ``env``,
            ``algo``, ``seed`` or ``budget_tokens``, which the comparison sets).
        progress: Show a progress bar per run.
        resume: Reuse finished runs of the same config found in ``out_dir`` and resume interrupted ones.
        ray: Train the runs as tasks of a Ray cluster (:mod:`agents.ray_runs`) instead of one after another
            in this process; the report is the same.

    Returns:
        The runs, the summary rows and the path of ``report.md``.

    Raises:
        ConfigError: A bad algorithm, seed, budget or config field — raised before any training starts.
        KeyboardInterrupt: On Ctrl-C, after writing the report of the runs finished so far.
    """
    names = check_algos(algos)
    seed_list = check_seeds(seeds)
    budget = check_budget(budget_tokens)
    extra = dict(overrides or {})
    fixed = sorted(set(extra) & set(_FIXED_FIELDS))
    if fixed:
        raise ConfigError(
            f"overrides may not set {fixed}: compare() sets them for every run; pass them as its arguments."
        )
    # Every config is built (and validated) before the first run, so a typo fails now, not hours later.
    plan = [
        (
            load_config(config, preset, env=env, algo=algo, seed=seed, budget_tokens=budget, **extra),
            algo,
            seed,
        )
        for seed in seed_list
        for algo in names
    ]
    import agents.train as training  # torch and SB3: loaded once the inputs are known to be good

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    runs: list[RunResult] = []
    reused: list[Path] = []
    notes: list[str] = []
    report_kwargs: dict[str, Any] = {"env": env, "budget_tokens": budget, "seeds": seed_list}

    def finish(extra_notes: Sequence[str] = (), evaluation: EvaluationResult | None = None) -> Path:
        all_notes = list(notes)
        if reused:
            all_notes.append(
                f"{len(reused)} of {len(plan)} runs were finished by an earlier call with the same "
                "config and were read back, not retrained: "
                + ", ".join(p.relative_to(out).as_posix() for p in reused)
                + "."
            )
        return write_report(runs, out, notes=[*all_notes, *extra_notes], evaluation=evaluation, **report_kwargs)

    algo, seed = names[0], seed_list[0]
    try:
        if ray is not None:
            runs.extend(_run_on_ray(plan, out, resume, reused, notes, ray))
        for cfg, algo, seed in plan if ray is None else ():
            runs.append(_run_one(training, cfg, out / algo / f"seed{seed}", resume, progress, reused, notes))
    except KeyboardInterrupt:
        _write_partial(
            finish,
            f"Interrupted during {algo} seed {seed}: this report covers the {len(runs)} runs finished "
            f"before; {len(plan) - len(runs)} of {len(plan)} runs are missing. Run the comparison again "
            "to resume.",
        )
        raise
    except Exception as exc:
        _write_partial(
            finish,
            f"Stopped by an error during {algo} seed {seed} ({type(exc).__name__}: {exc}); this report "
            f"covers the {len(runs)} runs finished before.",
        )
        raise
    trained = time.perf_counter() - began
    evaluation = _evaluate(plan[0][0], runs, out, progress)
    total = time.perf_counter() - began
    timing = (
        f"This call took {total:.0f} s of wall time: {trained:.0f} s to train (and load) the runs, "
        f"{total - trained:.0f} s for the fixed evaluation."
    )
    report = finish([timing], evaluation=evaluation)
    return ComparisonResult(
        out_dir=out, report=report, runs=runs, rows=summarize(runs), reused=reused, evaluation=evaluation
    )


def _evaluate(config: TrainConfig, runs: Sequence[RunResult], out: Path, progress: bool) -> EvaluationResult | None:
    """The fixed, paired evaluation of ``runs`` that ``config`` asks for, written to ``out/evaluation``."""
    if not config.eval_samples:
        return None
    from agents.evaluation import evaluate_runs, evaluation_prompts, write_evaluation

    prompts = evaluation_prompts(config)
    say = (lambda line: print(f"evaluation: {line}", flush=True)) if progress else None
    result = evaluate_runs(runs, prompts, config.eval_samples, progress=say)
    write_evaluation(result, out / "evaluation")
    return result


def _run_one(
    training: ModuleType,
    cfg: TrainConfig,
    folder: Path,
    resume: bool,
    progress: bool,
    reused: list[Path],
    notes: list[str],
) -> RunResult:
    """Read back, resume or train the run of ``cfg`` in ``folder``; record what was done."""
    where = f"{cfg.algo} seed {cfg.seed}"
    if resume:
        done = _finished(folder, cfg)
        if done is not None:
            reused.append(folder)
            return done
        if (folder / "config.yaml").exists() and not _same_config(folder, cfg):
            notes.append(f"{where}: the config differs from the earlier run in its folder; retrained.")
            resume = False
        elif (folder / "checkpoint" / "model.zip").exists():
            notes.append(f"{where}: resumed from the checkpoint of an interrupted earlier run.")
        else:
            resume = False
    result: RunResult = training.train(cfg, folder, resume=resume, progress=progress)
    if resume:
        # A resumed run's history holds only the rollouts since the resume; metrics.csv holds them all.
        result = replace(result, history=_read_history(folder / "metrics.csv"))
    return result


def _run_on_ray(
    plan: Sequence[tuple[TrainConfig, str, int]],
    out: Path,
    resume: bool,
    reused: list[Path],
    notes: list[str],
    options: RayOptions,
) -> list[RunResult]:
    """The runs of ``plan`` in order: finished ones read back, the others trained as Ray tasks."""
    from agents.ray_runs import run_on_ray

    runs: list[RunResult | None] = []
    todo: list[tuple[int, TrainConfig, Path]] = []
    for cfg, algo, seed in plan:
        folder = out / algo / f"seed{seed}"
        done = _finished(folder, cfg) if resume else None
        if done is not None:
            reused.append(folder)
        else:
            where = f"{algo} seed {seed}"
            stale = (folder / "config.yaml").exists() and not _same_config(folder, cfg)
            if stale:
                notes.append(f"{where}: the config differs from the earlier run in its folder; retrained.")
            if stale or not resume:  # a task resumes from any checkpoint it finds: none of another config
                shutil.rmtree(folder, ignore_errors=True)
            elif (folder / "checkpoint" / "model.zip").exists():
                notes.append(f"{where}: resumed from the checkpoint of an interrupted earlier run.")
            todo.append((len(runs), cfg, folder))
        runs.append(done)
    trained = run_on_ray([(cfg, folder) for _, cfg, folder in todo], options)
    for (i, _, folder), result in zip(todo, trained, strict=True):
        runs[i] = replace(result, history=_read_history(folder / "metrics.csv"))  # all rollouts, resumed or not
    notes.append(
        f"Trained on Ray: {len(todo)} runs as tasks ({options.num_cpus:g} CPU, {options.num_gpus:g} GPU each)"
        + (f", run folders in {options.storage} while training" if options.storage else "")
        + "."
    )
    return [run for run in runs if run is not None]


def _write_partial(finish: Callable[[Sequence[str]], Path], note: str) -> None:
    """Write the report of the runs so far; a failure here is logged, never raised over the original error."""
    try:
        path = finish([note])
    except Exception:
        logger.exception("Could not write the partial comparison report.")
    else:
        logger.warning("%s Report: %s", note, path)
