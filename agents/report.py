"""The comparison report: did each algorithm learn, which is ahead, learning curves, fluency, samples.

:func:`write_report` turns finished runs (:class:`agents.train.RunResult`) and, when there is one, the
comparison's fixed, paired evaluation (:class:`agents.evaluation.EvaluationResult`) into ``report.md``,
``summary.csv`` (one row per run), ``learning_curves.png`` and ``reward_vs_kl.png`` in one folder. Every file
is written atomically.

The claims of the report come from the fixed evaluation only (DESIGN §10): each algorithm's gain ``after −
before`` on the same prompts with the same sampling variates, its 95% interval paired over prompts and pooled
over seeds; the difference of two algorithms' gains with a bootstrap interval over seeds and prompts; one
sentence saying which is ahead or that the budget cannot separate them; and the fluency guards (KL per
episode, perplexity under the reference, distinct-n), before and after.

The training curves describe how a run got there and are never the *before* or *after* of a claim. The numbers
per run are defined once, in :func:`run_metrics`:

- **curve start** and **curve end**: the mean reward-model score (without the KL penalty) of the completions
  sampled during training over the first and the last 25% of the run's rollouts (at least one rollout each).
- **final KL**: the mean summed KL(π‖π_ref) per episode, in nats, over the last 25% of the rollouts.
- **curve gain / KL**: (curve end − curve start) / max(final KL, 0.01): both ends are training-rollout means,
  and the floor keeps a run that barely moved (or whose sampled KL estimate came out at or below zero) from
  being divided by a near-zero number.
- **tokens/s** and **wall time**: generated tokens over the wall time of training (evaluations excluded).

Each is shown per algorithm as mean ± half-width of the 95% Student's t interval over seeds.

matplotlib is imported only when the plots are drawn, so importing this module is cheap; without matplotlib
the report is written without plots and says so.
"""

from __future__ import annotations

import csv
import io
import math
import os
import platform
import re
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.stats import interpolate_curves, mean_ci, t_critical
from textenv_common.atomic import atomic_file, write_text_atomic
from textenv_common.formatting import format_number

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from agents.evaluation import EvaluationResult
    from agents.train import RunResult

__all__ = ["Estimate", "RunMetrics", "SummaryRow", "run_metrics", "summarize", "verdict", "write_report"]

#: Share of a run's rollouts, at its end, that the final reward and KL average over.
FINAL_WINDOW = 0.25
#: Floor of the KL in the reward-gain-per-KL ratio (nats): a run that barely moved, or whose sampled KL estimate
#: came out at or below zero, is divided by this instead of by a near-zero number.
KL_FLOOR = 0.01
CONFIDENCE = 0.95

_X = "time/total_tokens"
_REWARD = "rollout/rm_score"
_KL = "rollout/kl"
_MAX_GRID = 200
_N_SAMPLE_PROMPTS = 3


@dataclass(frozen=True)
class RunMetrics:
    """The numbers of one run that the report compares (see the module docstring for definitions)."""

    algo: str
    seed: int
    tokens: int
    reward_before: float
    curve_start: float
    final_reward: float
    final_kl: float
    reward_per_kl: float
    eval_reward: float
    eval_kl: float
    tokens_per_s: float
    wall_time_s: float
    rollouts: int
    out_dir: str


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with the half-width of its confidence interval (NaN when n = 1)."""

    mean: float
    half_width: float
    n: int

    def format(self, digits: int = 3) -> str:
        """``mean ± half_width``, ``mean (n=1)``, or ``—`` when no seed has a finite value."""
        if self.n == 0 or not math.isfinite(self.mean):
            return "—"
        if self.n == 1 or not math.isfinite(self.half_width):
            return f"{format_number(self.mean, digits)} (n=1)"
        return f"{format_number(self.mean, digits)} ± {format_number(self.half_width, digits)}"


@dataclass(frozen=True)
class SummaryRow:
    """One algorithm's line of the summary table: each metric as mean ± 95% CI over its seeds."""

    algo: str
    seeds: tuple[int, ...]
    reward_before: Estimate
    curve_start: Estimate
    final_reward: Estimate
    final_kl: Estimate
    reward_per_kl: Estimate
    eval_reward: Estimate
    tokens_per_s: Estimate
    wall_time_s: Estimate


def _final_window(history: Sequence[Mapping[str, float]], key: str, *, first: bool = False) -> float:
    """Mean of ``key`` over the last (or ``first``) :data:`FINAL_WINDOW` of the rollouts (rows lacking it are
    skipped)."""
    if not history:
        return math.nan
    n = max(1, math.ceil(len(history) * FINAL_WINDOW))
    window = history[:n] if first else history[-n:]
    values = [float(row[key]) for row in window if row.get(key) is not None]
    values = [v for v in values if math.isfinite(v)]
    return float(np.mean(values)) if values else math.nan


def _float(mapping: Mapping[str, Any], key: str) -> float:
    value = mapping.get(key)
    return math.nan if value is None else float(value)


def run_metrics(result: RunResult) -> RunMetrics:
    """The report's numbers for one run."""
    final_reward = _final_window(result.history, _REWARD)
    curve_start = _final_window(result.history, _REWARD, first=True)
    final_kl = _final_window(result.history, _KL)
    before = _float(result.before, "rm_score")
    return RunMetrics(
        algo=result.config.algo,
        seed=int(result.config.seed),
        tokens=int(result.tokens),
        reward_before=before,
        curve_start=curve_start,
        final_reward=final_reward,
        final_kl=final_kl,
        reward_per_kl=(final_reward - curve_start) / max(final_kl, KL_FLOOR),
        eval_reward=_float(result.after, "rm_score"),
        eval_kl=_float(result.after, "kl"),
        tokens_per_s=float(result.tokens_per_s),
        wall_time_s=float(result.wall_time_s),
        rollouts=len(result.history),
        out_dir=str(result.out_dir),
    )


def _estimate(values: Iterable[float]) -> Estimate:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return Estimate(math.nan, math.nan, 0)
    mean, half = mean_ci(finite, CONFIDENCE)
    return Estimate(mean, half, len(finite))


def _group(results: Sequence[RunResult]) -> dict[str, list[RunResult]]:
    """Runs by algorithm, in order of first appearance."""
    groups: dict[str, list[RunResult]] = {}
    for result in results:
        groups.setdefault(result.config.algo, []).append(result)
    return groups


def summarize(results: Sequence[RunResult]) -> list[SummaryRow]:
    """One :class:`SummaryRow` per algorithm, in order of first appearance."""
    rows = []
    for algo, runs in _group(results).items():
        metrics = [run_metrics(r) for r in runs]

        def est(name: str, metrics: list[RunMetrics] = metrics) -> Estimate:
            return _estimate(getattr(m, name) for m in metrics)

        rows.append(
            SummaryRow(
                algo=algo,
                seeds=tuple(m.seed for m in metrics),
                reward_before=est("reward_before"),
                curve_start=est("curve_start"),
                final_reward=est("final_reward"),
                final_kl=est("final_kl"),
                reward_per_kl=est("reward_per_kl"),
                eval_reward=est("eval_reward"),
                tokens_per_s=est("tokens_per_s"),
                wall_time_s=est("wall_time_s"),
            )
        )
    return rows


# ---------------------------------------------------------------------------------------------- markdown


def _cell(text: str) -> str:
    """Plain text made safe for one markdown table cell: no row break, no column break."""
    return re.sub(r"\s*[\r\n]+\s*", " ", text).replace("|", r"\|")


def _code(text: str, *, in_table: bool = False) -> str:
    """``text`` as an inline code span that shows it verbatim (backticks, newlines and pipes included).

    Newlines become ``↵`` (a code span cannot hold a line break); in a table ``|`` is escaped, which GFM
    undoes inside code spans too.
    """
    if not text:
        return "*(empty)*"
    text = text.replace("\r\n", "↵").replace("\n", "↵").replace("\r", "↵")
    if in_table:
        text = text.replace("|", r"\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    # CommonMark strips one space at each end when both are present; pad when the text begins or ends with
    # a backtick or a space, so what is shown is exactly the text.
    if text[0] in "` " or text[-1] in "` ":
        text = f" {text} "
    return f"{fence}{text}{fence}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str | None = None) -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def _machine() -> str:
    import torch  # already imported by any process that trained; only its thread count and version are read

    threads = torch.get_num_threads()
    return (
        f"{platform.platform()} ({platform.machine() or 'unknown arch'}), {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({threads} thread{'s' if threads != 1 else ''}), "
        f"Python {sys.version.split()[0]}"
    )


def _samples_section(groups: Mapping[str, list[RunResult]]) -> list[str]:
    """A few prompts of the first common seed: the completion before training, then after, per algorithm."""
    lines = ["## Samples", ""]
    seed_sets = [{r.config.seed for r in runs} for runs in groups.values()]
    common = sorted(set.intersection(*seed_sets)) if seed_sets else []
    if not common:
        return [*lines, "No seed was run by every algorithm; see each run's `samples.jsonl`.", ""]
    seed = common[0]
    runs = {algo: next(r for r in rs if r.config.seed == seed) for algo, rs in groups.items()}
    first = next(iter(runs.values()))
    before: list[dict[str, Any]] = list(first.before.get("samples", []))
    prompts: list[str] = []
    for sample in before:
        if sample["prompt"] not in prompts:
            prompts.append(sample["prompt"])
    prompts = prompts[:_N_SAMPLE_PROMPTS]
    lines += [
        f"Seed {seed}, evaluation prompts (the same for every algorithm). *Before* is the untrained policy "
        f"(`{first.config.algo}`'s; every algorithm starts from the same model). More samples from training "
        "are in each run's `samples.jsonl`.",
        "",
    ]
    if not prompts:
        return [*lines, "The runs recorded no evaluation samples.", ""]

    def find(samples: Iterable[Mapping[str, Any]], prompt: str) -> Mapping[str, Any] | None:
        return next((s for s in samples if s.get("prompt") == prompt), None)

    for i, prompt in enumerate(prompts, 1):
        lines += [f"**Prompt {i}:** {_code(prompt)}", ""]
        rows: list[list[str]] = []
        entries: list[tuple[str, Mapping[str, Any] | None]] = [("before", find(before, prompt))]
        entries += [(f"after `{algo}`", find(r.after.get("samples", []), prompt)) for algo, r in runs.items()]
        for label, found in entries:
            if found is None:
                rows.append([label, "*(prompt not in this run's evaluation)*", "—", "—"])
                continue
            rows.append(
                [
                    label,
                    _code(str(found.get("completion", "")), in_table=True),
                    format_number(_float(found, "rm_score")),
                    format_number(_float(found, "kl_sum")),
                ]
            )
        lines += [*_table(["policy", "completion", "RM score", "KL (nats)"], rows, "llrr"), ""]
    return lines


# ---------------------------------------------------------------------------------------------- plots


def _grid(histories: Sequence[Sequence[Mapping[str, float]]]) -> np.ndarray:
    xs = sorted({float(row[_X]) for h in histories for row in h if row.get(_X) is not None})
    if len(xs) > _MAX_GRID:
        return np.linspace(xs[0], xs[-1], _MAX_GRID)
    return np.array(xs)


def _save_png(fig: Figure, path: Path) -> None:
    with atomic_file(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png", dpi=120)


def _smooth(history: Sequence[Mapping[str, float]], key: str) -> list[dict[str, float]]:
    """``history`` with ``key`` replaced by its centred moving average over a window of about 1/8 of the rollouts
    (at least 1, odd), shrunk at the ends; rows lacking ``key`` are dropped."""
    rows = [r for r in history if r.get(key) is not None and math.isfinite(float(r[key])) and r.get(_X) is not None]
    if not rows:
        return []
    values = np.array([float(r[key]) for r in rows])
    half = max(0, len(values) // 16)
    kernel = np.ones(2 * half + 1)
    sums = np.convolve(values, kernel, mode="same")
    counts = np.convolve(np.ones_like(values), kernel, mode="same")
    return [{_X: float(r[_X]), key: float(v)} for r, v in zip(rows, sums / counts, strict=True)]


def _curves(runs: Sequence[RunResult]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Common token grid, smoothed rewards and KLs of shape (seeds, grid)."""
    histories = [r.history for r in runs]
    grid = _grid(histories)
    return (
        grid,
        interpolate_curves([_smooth(h, _REWARD) for h in histories], _X, _REWARD, grid),
        interpolate_curves([_smooth(h, _KL) for h in histories], _X, _KL, grid),
    )


def _band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds (rows) and its 95% t interval, per column; the interval is NaN where < 2 seeds reach."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # columns that no seed, or one seed, reaches
        n = np.sum(np.isfinite(values), axis=0)
        mean = np.nanmean(values, axis=0)
        sem = np.nanstd(values, axis=0, ddof=1) / np.sqrt(n)
    t = np.array([t_critical(int(k) - 1, CONFIDENCE) if k > 1 else np.nan for k in n])
    return mean, mean - t * sem, mean + t * sem


def _plot(groups: Mapping[str, list[RunResult]], out: Path) -> list[str]:
    """Write both PNGs; the names of the files written."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curves = {algo: _curves(runs) for algo, runs in groups.items()}
    colors = {algo: f"C{i}" for i, algo in enumerate(groups)}

    # Figure + Agg canvas rather than pyplot: no global backend switch and no figure registry to leak into.
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharex=True)
    for algo, (grid, reward, kl) in curves.items():
        for ax, values in zip(axes, (reward, kl), strict=True):
            defined = ~np.all(np.isnan(values), axis=0)
            if not defined.any():
                continue
            x = grid[defined]
            mean, low, high = _band(values[:, defined])
            ax.plot(x, mean, color=colors[algo], label=f"{algo} (n={len(values)})")
            if len(values) > 1:
                ax.fill_between(x, low, high, color=colors[algo], alpha=0.2)
    axes[0].set(title="Reward-model score", xlabel="generated tokens", ylabel="mean RM score per episode")
    axes[1].set(title="KL to the reference", xlabel="generated tokens", ylabel="mean Σ KL per episode (nats)")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle("Training curves, smoothed over rollouts: mean over seeds, band = 95% CI over seeds")
    _save_png(fig, out / "learning_curves.png")

    fig = Figure(figsize=(6.5, 5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for algo, (_, reward, kl) in curves.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "Mean of empty slice" where no seed reached
            mean_kl, mean_reward = np.nanmean(kl, axis=0), np.nanmean(reward, axis=0)
        ok = np.isfinite(mean_kl) & np.isfinite(mean_reward)
        if ok.any():
            ax.plot(mean_kl[ok], mean_reward[ok], color=colors[algo], marker=".", label=f"{algo} (mean)")
            ax.plot(mean_kl[ok][0], mean_reward[ok][0], color=colors[algo], marker="o", fillstyle="none")
        finals = [(m.final_kl, m.final_reward) for m in map(run_metrics, groups[algo])]
        finals = [(k, r) for k, r in finals if math.isfinite(k) and math.isfinite(r)]
        if finals:
            final_kl, final_reward = zip(*finals, strict=True)
            ax.scatter(final_kl, final_reward, color=colors[algo], marker="*", s=90, zorder=3,
                       label=f"{algo} final, per seed")  # fmt: skip
    ax.set(title="Reward against KL (o = first rollout)", xlabel="mean Σ KL per episode (nats)",
           ylabel="mean RM score per episode")  # fmt: skip
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    _save_png(fig, out / "reward_vs_kl.png")
    return ["learning_curves.png", "reward_vs_kl.png"]


# ---------------------------------------------------------------------------------------------- report


def _write_summary_csv(metrics: Sequence[RunMetrics], path: Path) -> None:
    """One row per run; run folders relative to the report's folder, missing numbers as empty cells."""
    buffer = io.StringIO()
    fields = list(RunMetrics.__dataclass_fields__)
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for m in metrics:
        m = replace(m, out_dir=_relative(m.out_dir, path.parent))
        writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(m).items()})
    write_text_atomic(path, buffer.getvalue(), overwrite=True)


def write_report(
    results: Sequence[RunResult],
    out_dir: str | Path,
    *,
    notes: Sequence[str] = (),
    env: str | None = None,
    budget_tokens: int | None = None,
    seeds: Sequence[int] | None = None,
    evaluation: EvaluationResult | None = None,
) -> Path:
    """Write ``report.md``, ``summary.csv`` and the PNG plots of ``results`` into ``out_dir``.

    Args:
        results: Finished runs, any number of algorithms and seeds (grouped by ``config.algo``).
        out_dir: The folder to write into (created if missing).
        notes: Lines shown under the header (an interruption, runs reused from an earlier call, ...).
        env, budget_tokens, seeds: What the comparison was asked to run; by default read off the runs' configs
            (give them when ``results`` may be empty or partial).
        evaluation: The comparison's fixed, paired evaluation (:func:`agents.evaluation.evaluate_runs`), the
            source of every claim of the report; without it the report shows the training side only.

    Returns:
        The path of ``report.md``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups = _group(results)
    metrics = [run_metrics(r) for runs in groups.values() for r in sorted(runs, key=lambda r: r.config.seed)]
    envs = [env] if env is not None else sorted({r.config.env for r in results})
    budgets = [budget_tokens] if budget_tokens is not None else sorted({r.config.budget_tokens for r in results})
    seed_list = list(seeds) if seeds is not None else sorted({r.config.seed for r in results})

    def listing(values: Sequence[object]) -> str:
        return ", ".join(_code(str(v)) for v in values) if values else "—"

    lines = [
        "# Comparison report",
        "",
        f"- **Env:** {listing(envs)}",
        f"- **Algorithms:** {listing(list(groups))}",
        f"- **Token budget per run:** {', '.join(f'{b:,}' for b in budgets) if budgets else '—'}",
        f"- **Seeds:** {', '.join(map(str, seed_list)) if seed_list else '—'}",
        f"- **Date:** {datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- **Machine:** {_cell(_machine())}",
        "",
    ]
    if notes:
        lines += [*(f"> **Note:** {_cell(note)}  " for note in notes), ""]

    if not results:
        lines += ["No run finished, so there is nothing to compare yet.", ""]
        _write_summary_csv(metrics, out / "summary.csv")
        report = out / "report.md"
        write_text_atomic(report, "\n".join(lines), overwrite=True)
        return report

    if evaluation is not None:
        lines += _learning_section(evaluation)
    else:
        lines += [
            "## Did it learn?",
            "",
            "This comparison ran without a fixed evaluation (`eval_samples: 0`), so it makes no claim about "
            "gains: the curves below are training-rollout means. Set `eval_samples` (and `eval_holdout`) to get one.",
            "",
        ]

    header = ["algorithm", "seeds", "curve start", "curve end", "final KL (nats)", "curve gain / KL",
              "tokens/s", "wall time (s)"]  # fmt: skip
    rows = [
        [
            _code(row.algo, in_table=True),
            str(len(row.seeds)),
            row.curve_start.format(),
            row.final_reward.format(),
            row.final_kl.format(),
            row.reward_per_kl.format(),
            row.tokens_per_s.format(1),
            row.wall_time_s.format(1),
        ]
        for row in summarize(results)
    ]
    lines += ["## Training", "", *_table(header, rows), ""]
    lines += [
        f"Each cell is the mean over seeds ± the half-width of its {CONFIDENCE:.0%} confidence interval "
        '(Student\'s t with n − 1 degrees of freedom; "n=1" where one seed leaves no spread to estimate). '
        "These are training-rollout means: they show the course of training, not its result (see above).",
        "",
        "- **curve start**, **curve end**: mean reward-model score of the episodes sampled during training over "
        f"the first and the last {FINAL_WINDOW:.0%} of the run's rollouts (at least one each), without the KL "
        "penalty.",
        "- **final KL**: mean summed KL(π‖π_ref) per episode, in nats, over the last rollouts.",
        f"- **curve gain / KL**: (curve end − curve start) / max(final KL, {KL_FLOOR:g}): reward bought per nat "
        "of divergence from the reference; higher is better.",
        "- **tokens/s**, **wall time**: generated tokens per second of training, and the training time; "
        "evaluations are not counted.",
        "",
    ]

    lines += ["## Runs", ""]
    run_rows = [
        [
            _code(m.algo, in_table=True),
            str(m.seed),
            f"{m.tokens:,}",
            str(m.rollouts),
            format_number(m.curve_start),
            format_number(m.final_reward),
            format_number(m.final_kl),
            format_number(m.tokens_per_s, 1),
            format_number(m.wall_time_s, 1),
            _code(_relative(m.out_dir, out), in_table=True),
        ]
        for m in metrics
    ]
    header = ["algorithm", "seed", "tokens", "rollouts", "curve start", "curve end", "final KL",
              "tokens/s", "wall time (s)", "folder"]  # fmt: skip
    lines += [*_table(header, run_rows, "lrrrrrrrrl"), "", "The same numbers are in `summary.csv`.", ""]
    _write_summary_csv(metrics, out / "summary.csv")

    lines += ["## Plots", ""]
    try:
        _plot(groups, out)
    except ImportError:
        lines += ["Plots need matplotlib: `pip install matplotlib`, then run the comparison again.", ""]
    else:
        lines += [
            "Training curves: reward-model score and KL of the training rollouts against generated tokens, each "
            "run smoothed by a centred moving average over about 1/8 of its rollouts, then the mean over seeds "
            "on a common token grid, shaded over its 95% t interval across seeds.",
            "",
            "![learning curves](learning_curves.png)",
            "",
            "Reward against KL: each algorithm's mean trajectory over training (o = first rollout), and each "
            "seed's final reward and KL (★). Up and to the left is better.",
            "",
            "![reward against KL](reward_vs_kl.png)",
            "",
        ]

    lines += _samples_section(groups)
    report = out / "report.md"
    write_text_atomic(report, "\n".join(lines), overwrite=True)
    return report


def _signed(value: float, digits: int = 3) -> str:
    return f"{value:+.{digits}f}" if math.isfinite(value) else "—"


def _ci(estimate: Estimate, digits: int = 3) -> str:
    """``+0.312 [+0.250, +0.374]``: a mean with its interval's ends."""
    if estimate.n == 0 or not math.isfinite(estimate.mean):
        return "—"
    if not math.isfinite(estimate.half_width):
        return f"{_signed(estimate.mean, digits)} (n=1)"
    low, high = estimate.mean - estimate.half_width, estimate.mean + estimate.half_width
    return f"{_signed(estimate.mean, digits)} [{_signed(low, digits)}, {_signed(high, digits)}]"


def verdict(evaluation: EvaluationResult) -> tuple[str, list[Any]]:
    """One plain sentence on which algorithm is ahead at this budget, and the pairwise differences behind it."""
    from agents.evaluation import gain_difference

    algos = list(evaluation.gains)
    diffs = [
        gain_difference(evaluation.gains[a], evaluation.gains[b], (a, b))
        for i, a in enumerate(algos)
        for b in algos[i + 1 :]
    ]
    if not diffs:
        return "Only one algorithm ran, so there is nothing to separate.", diffs
    sentences = []
    for d in diffs:
        ahead, behind = (d.a, d.b) if d.mean > 0 else (d.b, d.a)
        if d.excludes_zero():
            sentences.append(
                f"At this budget {ahead} is ahead of {behind}: its gain is larger by {abs(d.mean):.3f} "
                f"(95% CI of {d.a} − {d.b}: [{d.low:+.3f}, {d.high:+.3f}])."
            )
        else:
            sentences.append(
                f"This budget cannot separate {d.a} from {d.b}: the 95% CI of {d.a} − {d.b}, "
                f"[{d.low:+.3f}, {d.high:+.3f}], contains 0."
            )
    return " ".join(sentences), diffs


def _learning_section(evaluation: EvaluationResult) -> list[str]:
    """Gains with CIs, the pairwise difference, the verdict and the fluency guards."""
    start = evaluation.policy("start")
    k = evaluation.samples_per_prompt
    lines = [
        "## Did it learn?",
        "",
        f"Fixed, paired evaluation: {evaluation.prompts} evaluation prompts × {k} samples, the same prompts and "
        "sampling variates for the starting policy (*before*) and every tuned policy (*after*); "
        f"{evaluation.prompts * k} completions per policy and seed.",
        "",
    ]
    sentence, diffs = verdict(evaluation)
    lines += [f"**{sentence}**", ""]
    header = ["algorithm", "seeds", "RM before", "RM after", "gain [95% CI]", "gain per seed", "win rate vs start"]
    rows = []
    for algo, matrix in evaluation.gains.items():
        p = evaluation.policy(algo)
        rows.append(
            [
                _code(algo, in_table=True),
                ", ".join(map(str, p.seeds)),
                format_number(start.metrics["rm_score"].mean),
                format_number(p.metrics["rm_score"].mean),
                _ci(p.metrics["gain"]),
                ", ".join(_signed(float(g)) for g in matrix.mean(axis=1)),
                format_number(p.metrics["win_rate"].mean),
            ]
        )
    lines += [*_table(header, rows, "llrrrrr"), ""]
    for d in diffs:
        lines += [
            f"- **{d.a} − {d.b}**: {d.mean:+.3f}, 95% CI [{d.low:+.3f}, {d.high:+.3f}] (percentile bootstrap, "
            f"{d.resamples:,} resamples of the prompts and, per algorithm, of the seeds).",
        ]
    lines += [
        "- **gain**: per evaluation prompt, the mean RM score of the tuned completions (pooled over samples and "
        "seeds) less the starting policy's; the interval is Student's t over prompts of these paired differences. "
        "**gain per seed** shows the spread that training adds.",
        "",
        "### Fluency guards",
        "",
    ]
    header = ["policy", "KL per episode (nats)", "perplexity under ref", "distinct-1", "distinct-2", "length"]
    names = ["kl", "perplexity", "distinct_1", "distinct_2", "length"]
    rows = [[_code(p.name, in_table=True), *(p.metrics[m].format() for m in names)] for p in evaluation.policies]
    lines += [*_table(header, rows), ""]
    ppl0 = start.metrics["perplexity"].mean
    for p in evaluation.policies[1:]:
        ratio = p.metrics["perplexity"].mean / ppl0 if ppl0 else math.nan
        lines.append(
            f"- `{p.name}`: KL {format_number(p.metrics['kl'].mean)} nats per episode; perplexity under the reference "
            f"{format_number(ratio, 2)}× the starting policy's."
        )
    lines += [
        "",
        "Mean over prompts ± 95% t half-width. The starting policy *is* the reference, so its KL is 0; a tuned "
        "policy that buys reward by leaving fluent text shows a high KL, a perplexity far above the start's, or "
        "distinct-n falling (its samples of a prompt collapsing onto one text).",
        "",
    ]
    return lines


def _relative(path: str, base: Path) -> str:
    try:
        return Path(path).resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path)
