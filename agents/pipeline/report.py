"""The pipeline's ``report.md``: every stage's status, wall time, key metrics and links to its artifacts."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from agents.markdown import table
from agents.pipeline.config import PipelineConfig
from agents.pipeline.runner import RunLog, StageRecord
from textenv_common.atomic import write_text_atomic
from textenv_common.formatting import format_number

__all__ = ["write_pipeline_report"]

_STAGES = ("sft", "preferences", "reward_model", "rl", "evaluation")
_TITLES = {
    "sft": "Supervised fine-tuning",
    "preferences": "Preferences",
    "reward_model": "Reward model",
    "rl": "RL: PPO and A2C against the reward model",
    "evaluation": "Evaluation after RL",
}


def _ci(estimate: Mapping[str, Any] | None, digits: int = 3) -> str:
    if not estimate or estimate.get("mean") is None:
        return "—"
    half = estimate.get("ci95_half_width")
    if half is None:
        return f"{format_number(estimate['mean'], digits)} (n=1)"
    return f"{format_number(estimate['mean'], digits)} ± {format_number(half, digits)}"


def _link(record: StageRecord, key: str, label: str | None = None) -> str:
    path = f"{record.stage}/{record.outputs[key]}"
    return f"[{label or key}]({path})"


def _image(record: StageRecord, key: str, alt: str) -> list[str]:
    if key not in record.outputs:
        return []
    return [f"![{alt}]({record.stage}/{record.outputs[key]})", ""]


def _sft(record: StageRecord) -> list[str]:
    m = record.metrics
    return [
        f"{m['demonstrations']} demonstrations ({m['train_demos']} for training, {m['eval_demos']} held out), "
        f"{m['steps']} steps. Held-out loss on the response tokens: {format_number(m['eval_loss_before'])} before, "
        f"{format_number(m['eval_loss'])} after. Model: {_link(record, 'model', 'sft/model')}, metrics: "
        f"{_link(record, 'info', 'sft.json')}.",
        "",
        *_image(record, "loss_curve", "SFT loss curve"),
    ]


def _preferences(record: StageRecord) -> list[str]:
    m = record.metrics
    where = {
        "simulate": "a simulated annotator",
        "file": f"the file `{m.get('file')}`",
        "db": f"the labels database `{m.get('db')}`",
    }
    lines = [f"{m['pairs']} pairs and {m['ratings']} ratings from {where.get(m['source'], m['source'])}: "
             f"{_link(record, 'preferences', 'preferences.jsonl')}."]  # fmt: skip
    if m.get("annotator_agreement") is not None:
        lines[0] += (
            f" The annotator preferred the completion with the higher reward in {m['annotator_agreement']:.0%} of "
            f"the pairs; {m['skipped_prompts']} prompts gave two identical or empty completions and were skipped."
        )
    return [*lines, ""]


def _reward_model(record: StageRecord) -> list[str]:
    m = record.metrics
    acc = m.get("final_eval_accuracy")
    text = f"{m.get('train_pairs', 0)} training pairs, {m.get('steps')} steps"
    if acc is not None:
        low, high = m.get("final_eval_accuracy_ci95", [math.nan, math.nan])
        text += f"; held-out pairwise accuracy {acc:.1%} (95% CI {low:.1%} to {high:.1%}) on {m['eval_pairs']} pairs"
    if m.get("final_eval_loss") is not None:
        text += f", held-out loss {format_number(m['final_eval_loss'])}"
    text += f". Model: {_link(record, 'model', 'reward_model/model')}."
    return [text, "", *_image(record, "loss_curve", "reward model loss curve")]


def _rl(record: StageRecord) -> list[str]:
    algos: Mapping[str, Mapping[str, Any]] = record.metrics.get("algos", {})
    header = ["algorithm", "seeds", "reward before", "final reward", "final KL (nats)", "eval reward", "tokens/s"]
    rows = []
    for algo, m in algos.items():
        rows.append([f"`{algo}`", str(len(m["seeds"])), _ci(m["reward_before"]), _ci(m["final_reward"]),
                     _ci(m["final_kl"]), _ci(m["eval_reward"]), _ci(m["tokens_per_s"], 1)])  # fmt: skip
    runs = ", ".join(f"[{p}](rl/{p})" for p in record.outputs.get("runs", []))
    return [
        *table(header, rows),
        "",
        f"Mean ± 95% CI over seeds. The full comparison: {_link(record, 'report', 'rl/compare/report.md')}; "
        f"runs (each with its trained LM in `policy/`): {runs}.",
        "",
        *_image(record, "learning_curves", "learning curves"),
    ]


def _evaluation(record: StageRecord) -> list[str]:
    from agents.evaluation import METRICS

    m = record.metrics
    header = ["policy", *METRICS.values()]
    rows = [[f"`{name}`", *(_ci(metrics.get(k)) for k in METRICS)] for name, metrics in m["policies"].items()]
    return [
        f"{m['prompts']} prompts × {m['samples_per_prompt']} samples per policy; `start` is the policy every "
        "algorithm began from (before), the other rows are the tuned policies (after, seeds pooled). Mean over "
        "prompts ± 95% CI.",
        "",
        *table(header, rows),
        "",
        f"Details: {_link(record, 'report', 'evaluation/evaluation.md')}, "
        f"{_link(record, 'samples', 'every completion')}.",
        "",
    ]


_SECTIONS = {"sft": _sft, "preferences": _preferences, "reward_model": _reward_model, "rl": _rl,
             "evaluation": _evaluation}  # fmt: skip


def write_pipeline_report(
    config: PipelineConfig, log: RunLog, *, notes: Sequence[str] = (), wall_time_s: float | None = None
) -> Path:
    """Write ``<run>/report.md`` from the stage records in ``log``; returns its path."""
    root = config.root
    records = log.records
    total = sum(r.wall_time_s for r in records.values())
    lines = [
        f"# Pipeline report: {config.name}",
        "",
        f"- **Model:** `{config.model}`; **prompts:** `{config.prompts}`",
        "- **Config:** [pipeline.yaml](pipeline.yaml) (resolved)",
        f"- **Date:** {datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- **Stage wall time, summed:** {total:,.1f} s"
        + (f" (this invocation: {wall_time_s:,.1f} s)" if wall_time_s is not None else ""),
        "",
    ]
    lines += [f"> **Note:** {note}  " for note in notes]
    if notes:
        lines.append("")
    lines += ["## Stages", "", "| stage | status | wall time (s) | folder |", "|:---|:---|---:|:---|"]
    for name in _STAGES:
        if name == "sft" and config.sft is None:
            lines.append("| sft | not configured (RL starts from the model itself) | — | — |")
            continue
        record = records.get(name)
        if record is None:
            lines.append(f"| {name} | not run | — | — |")
            continue
        status = "ran now" if name in log.ran else "reused (done earlier, same config and inputs)"
        lines.append(f"| {name} | {status} | {record.wall_time_s:,.1f} | [{name}/]({name}/) |")
    lines.append("")
    for i, name in enumerate((n for n in _STAGES if n in records), 1):
        lines += [f"## {i}. {_TITLES[name]}", "", *_SECTIONS[name](records[name])]
    path = root / "report.md"
    write_text_atomic(path, "\n".join(lines), overwrite=True)
    return path
