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
per run and per algorithm are defined in :mod:`agents.summary` (re-exported here: :func:`run_metrics`,
:func:`summarize`, :class:`Estimate`, ...); the plots are drawn by :mod:`agents.plots`. This module assembles
the Markdown.

matplotlib is imported only when the plots are drawn, so importing this module is cheap; without matplotlib
the report is written without plots and says so.
"""

from __future__ import annotations

import csv
import io
import math
import os
import platform
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.markdown import code_span, table, table_cell
from agents.plots import write_plots
from agents.summary import (
    CONFIDENCE,
    FINAL_WINDOW,
    KL_FLOOR,
    Estimate,
    RunMetrics,
    SummaryRow,
    group_by_algo,
    metric_value,
    run_metrics,
    summarize,
)
from agents.verdict import learning_section, verdict
from textenv_common.atomic import write_text_atomic
from textenv_common.formatting import format_number

if TYPE_CHECKING:
    from agents.evaluation import EvaluationResult
    from agents.train import RunResult

__all__ = [
    "CONFIDENCE",
    "FINAL_WINDOW",
    "KL_FLOOR",
    "Estimate",
    "RunMetrics",
    "SummaryRow",
    "run_metrics",
    "summarize",
    "verdict",
    "write_report",
]

#: Prompts shown in the report's samples section.
_N_SAMPLE_PROMPTS = 3


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
        lines += [f"**Prompt {i}:** {code_span(prompt)}", ""]
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
                    code_span(str(found.get("completion", "")), in_table=True),
                    format_number(metric_value(found, "rm_score")),
                    format_number(metric_value(found, "kl_sum")),
                ]
            )
        lines += [*table(["policy", "completion", "RM score", "KL (nats)"], rows, "llrr"), ""]
    return lines


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
    groups = group_by_algo(results)
    metrics = [run_metrics(r) for runs in groups.values() for r in sorted(runs, key=lambda r: r.config.seed)]
    envs = [env] if env is not None else sorted({r.config.env for r in results})
    budgets = [budget_tokens] if budget_tokens is not None else sorted({r.config.budget_tokens for r in results})
    seed_list = list(seeds) if seeds is not None else sorted({r.config.seed for r in results})

    def listing(values: Sequence[object]) -> str:
        return ", ".join(code_span(str(v)) for v in values) if values else "—"

    lines = [
        "# Comparison report",
        "",
        f"- **Env:** {listing(envs)}",
        f"- **Algorithms:** {listing(list(groups))}",
        f"- **Token budget per run:** {', '.join(f'{b:,}' for b in budgets) if budgets else '—'}",
        f"- **Seeds:** {', '.join(map(str, seed_list)) if seed_list else '—'}",
        f"- **Date:** {datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- **Machine:** {table_cell(_machine())}",
        "",
    ]
    if notes:
        lines += [*(f"> **Note:** {table_cell(note)}  " for note in notes), ""]

    if not results:
        lines += ["No run finished, so there is nothing to compare yet.", ""]
        _write_summary_csv(metrics, out / "summary.csv")
        report = out / "report.md"
        write_text_atomic(report, "\n".join(lines), overwrite=True)
        return report

    if evaluation is not None:
        lines += learning_section(evaluation)
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
            code_span(row.algo, in_table=True),
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
    lines += ["## Training", "", *table(header, rows), ""]
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
            code_span(m.algo, in_table=True),
            str(m.seed),
            f"{m.tokens:,}",
            str(m.rollouts),
            format_number(m.curve_start),
            format_number(m.final_reward),
            format_number(m.final_kl),
            format_number(m.tokens_per_s, 1),
            format_number(m.wall_time_s, 1),
            code_span(_relative(m.out_dir, out), in_table=True),
        ]
        for m in metrics
    ]
    header = ["algorithm", "seed", "tokens", "rollouts", "curve start", "curve end", "final KL",
              "tokens/s", "wall time (s)", "folder"]  # fmt: skip
    lines += [*table(header, run_rows, "lrrrrrrrrl"), "", "The same numbers are in `summary.csv`.", ""]
    _write_summary_csv(metrics, out / "summary.csv")

    lines += ["## Plots", ""]
    try:
        write_plots(groups, out)
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


def _relative(path: str, base: Path) -> str:
    try:
        return Path(path).resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path)
