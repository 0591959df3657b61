"""The pipeline's report.md from hand-written stage records: every status, number and link lands in its cell."""

from __future__ import annotations

import re
from pathlib import Path

from agents.pipeline import pipeline_config_from_dict
from agents.pipeline.report import write_pipeline_report
from agents.pipeline.runner import RunLog, StageRecord


def _record(stage: str, outputs: dict, metrics: dict, wall_time_s: float) -> StageRecord:
    return StageRecord(stage, f"hash-{stage}", outputs, metrics, wall_time_s, "2026-01-01T00:00:00+00:00")


def _estimate(mean: float | None, half_width: float | None = None) -> dict[str, float | None]:
    return {"mean": mean, "ci95_half_width": half_width}


def _rows(text: str, header_start: str) -> dict[str, list[str]]:
    """The rows of the markdown table whose header starts with ``header_start``, by first cell, cells stripped."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows: dict[str, list[str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells
    return rows


def _log() -> RunLog:
    log = RunLog()
    log.records["preferences"] = _record(
        "preferences",
        {"preferences": "preferences.jsonl"},
        {"source": "simulate", "pairs": 10, "ratings": 0, "annotator_agreement": 0.8, "skipped_prompts": 2},
        3.04,
    )
    log.records["reward_model"] = _record(
        "reward_model",
        {"model": "model", "loss_curve": "model/loss_curve.png", "history": "model/history.csv"},
        {
            "train_pairs": 8,
            "steps": 3,
            "final_eval_accuracy": 0.75,
            "final_eval_accuracy_ci95": [0.3, 0.95],
            "eval_pairs": 4,
            "final_eval_loss": 0.5,
        },
        5.0,
    )
    log.records["rl"] = _record(
        "rl",
        {
            "report": "compare/report.md",
            "summary": "compare/summary.csv",
            "runs": ["compare/ppo/seed0"],
            "learning_curves": "compare/learning_curves.png",
        },
        {
            "algos": {
                "ppo": {
                    "seeds": [0, 1],
                    "reward_before": _estimate(0.1, 0.02),
                    "final_reward": _estimate(0.75, 0.635),
                    "final_kl": _estimate(2.925, None),
                    "eval_reward": _estimate(None),
                    "tokens_per_s": _estimate(1234.4, 10.26),
                }
            }
        },
        12.34,
    )
    base = {"rm_score": 0.2, "kl": 0.0, "perplexity": 150.0, "distinct_1": 0.5, "distinct_2": 0.75, "length": 4.0}
    log.records["evaluation"] = _record(
        "evaluation",
        {"report": "evaluation.md", "metrics": "metrics.json", "samples": "samples.jsonl"},
        {
            "prompts": 2,
            "samples_per_prompt": 3,
            "policies": {
                "start": {**{k: _estimate(v, 0.01) for k, v in base.items()}, "win_rate": _estimate(None)},
                "ppo": {
                    **{k: _estimate(v + 1, None) for k, v in base.items()},
                    "win_rate": _estimate(0.625, 0.2),
                    "gain": _estimate(1.0, 0.3),
                },
            },
        },
        1.0,
    )
    log.reused += ["preferences", "reward_model"]
    log.ran += ["rl", "evaluation"]
    return log


def test_each_stage_status_and_number_is_in_its_cell(tmp_path: Path) -> None:
    config = pipeline_config_from_dict({"name": "demo", "runs_dir": str(tmp_path), "model": "textenv/toy-gpt2"})
    path = write_pipeline_report(config, _log(), notes=["a note"], wall_time_s=20.0)
    assert path == tmp_path / "demo" / "report.md"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Pipeline report: demo\n")
    assert "**Stage wall time, summed:** 21.4 s (this invocation: 20.0 s)" in text  # 3.04 + 5.0 + 12.34 + 1.0
    assert "> **Note:** a note" in text

    stages = _rows(text, "| stage |")
    assert stages["sft"][1] == "not configured (RL starts from the model itself)"
    reused = "reused (done earlier, same config and inputs)"
    assert stages["preferences"][1:] == [reused, "3.0", "[preferences/](preferences/)"]
    assert stages["reward_model"][1:3] == [reused, "5.0"]
    assert stages["rl"][1:3] == ["ran now", "12.3"]
    assert stages["evaluation"][1:3] == ["ran now", "1.0"]

    assert (
        "10 pairs and 0 ratings from a simulated annotator: [preferences.jsonl](preferences/preferences.jsonl). "
        "The annotator preferred the completion with the higher reward in 80% of the pairs; 2 prompts gave two "
        "identical or empty completions and were skipped."
    ) in text
    assert (
        "8 training pairs, 3 steps; held-out pairwise accuracy 75.0% (95% CI 30.0% to 95.0%) on 4 pairs, "
        "held-out loss 0.500. Model: [reward_model/model](reward_model/model)."
    ) in text

    rl = _rows(text, "| algorithm |")
    # seeds, reward before, final reward, final KL (one seed: no interval), eval reward (none), tokens/s
    assert rl == {"`ppo`": ["`ppo`", "2", "0.100 ± 0.020", "0.750 ± 0.635", "2.925 (n=1)", "—", "1,234 ± 10.3"]}
    assert "runs (each with its trained LM in `policy/`): [compare/ppo/seed0](rl/compare/ppo/seed0)." in text
    assert "![learning curves](rl/compare/learning_curves.png)" in text

    evaluation = _rows(text, "| policy |")
    # RM score, paired gain (none for the start itself), KL, perplexity, distinct-1, distinct-2, length, win rate
    assert evaluation["`start`"][1:] == ["0.200 ± 0.010", "—", "0.000 ± 0.010", "150 ± 0.010", "0.500 ± 0.010",
                                         "0.750 ± 0.010", "4.000 ± 0.010", "—"]  # fmt: skip
    assert evaluation["`ppo`"][1:] == ["1.200 (n=1)", "1.000 ± 0.300", "1.000 (n=1)", "151 (n=1)", "1.500 (n=1)",
                                       "1.750 (n=1)", "5.000 (n=1)", "0.625 ± 0.200"]  # fmt: skip
    assert "2 prompts × 3 samples per policy" in text
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert "evaluation/evaluation.md" in links
    assert "evaluation/samples.jsonl" in links


def test_stages_not_run_yet_say_so(tmp_path: Path) -> None:
    config = pipeline_config_from_dict({"name": "demo", "runs_dir": str(tmp_path)})
    log = RunLog()
    log.records["preferences"] = _log().records["preferences"]
    log.ran.append("preferences")
    text = write_pipeline_report(config, log).read_text(encoding="utf-8")
    stages = _rows(text, "| stage |")
    assert stages["preferences"][1] == "ran now"
    for stage in ("reward_model", "rl", "evaluation"):
        assert stages[stage][1:] == ["not run", "—", "—"], stage
    assert "## 1. Preferences" in text
    assert "## 2." not in text
