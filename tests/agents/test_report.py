"""The comparison report from synthetic runs: table, definitions, plots, samples, CSV; no training."""

from __future__ import annotations

import csv
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agents.config import load_config
from agents.report import Estimate, run_metrics, summarize, write_report
from agents.train import RunResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_run(
    algo: str,
    seed: int,
    rewards: list[float],
    kls: list[float],
    *,
    before: float = 0.1,
    completions: dict[str, str] | None = None,
    root: Path = Path("runs"),
) -> RunResult:
    """A finished run as train() returns it, with one history row per rollout of 64 tokens."""
    config = load_config(preset="tiny", env="textenv/Toy-v0", algo=algo, seed=seed, budget_tokens=64 * len(rewards))
    history = [
        {
            "time/total_tokens": 64.0 * (i + 1),
            "time/elapsed_s": 0.5 * (i + 1),
            "rollout/rm_score": r,
            "rollout/kl": k,
        }
        for i, (r, k) in enumerate(zip(rewards, kls, strict=True))
    ]
    prompts = ["the food was", "the day was", "the city is", "i read this book and it"]
    completions = completions or {}

    def samples(tag: str, score: float) -> list[dict[str, Any]]:
        return [
            {
                "prompt": p,
                "completion": completions.get(p, f"{tag} {algo} {p}"),
                "rm_score": score,
                "kl_sum": 0.5,
            }
            for p in prompts
        ]

    return RunResult(
        out_dir=root / algo / f"seed{seed}",
        config=config,
        tokens=64 * len(rewards),
        wall_time_s=2.0 + seed,
        tokens_per_s=64 * len(rewards) / (2.0 + seed),
        before={"rm_score": before, "kl": 0.0, "samples": samples("before", before)},
        after={"rm_score": rewards[-1], "kl": kls[-1], "samples": samples("after", rewards[-1])},
        history=history,
    )


def cells(line: str) -> list[str]:
    """A markdown table row's cells, split on unescaped pipes (as GFM does)."""
    return re.split(r"(?<!\\)\|", line.strip().strip("|"))


def tables(text: str) -> list[list[str]]:
    """Every markdown table of ``text`` as its list of lines."""
    found: list[list[str]] = []
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append(current)
            current = []
    if current:
        found.append(current)
    return found


@pytest.fixture
def runs(tmp_path: Path) -> list[RunResult]:
    rising = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    return [
        make_run("ppo", 0, rising, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5], root=tmp_path),
        make_run("ppo", 1, [r + 0.1 for r in rising], [0.0, 0.4, 0.8, 1.2, 1.6, 2.0, 2.4, 2.8], root=tmp_path),
        make_run("a2c", 0, [0.1] * 8, [0.0, 0.1, 0.1, 0.2, 0.2, 0.2, 0.3, 0.3], root=tmp_path),
        make_run("a2c", 1, [0.1] * 8, [0.0, 0.1, 0.1, 0.2, 0.2, 0.2, 0.3, 0.3], root=tmp_path),
    ]


def test_run_metrics_use_the_last_quarter_of_rollouts(runs: list[RunResult]) -> None:
    m = run_metrics(runs[0])
    assert m.final_reward == pytest.approx(0.75)  # rollouts 7 and 8 of 8
    assert m.final_kl == pytest.approx(3.25)
    assert m.curve_start == pytest.approx(0.15)  # rollouts 1 and 2: training means at both ends
    assert m.reward_per_kl == pytest.approx((0.75 - 0.15) / 3.25)
    assert m.eval_reward == pytest.approx(0.8)
    assert (m.algo, m.seed, m.tokens, m.rollouts) == ("ppo", 0, 512, 8)


def test_run_metrics_floor_the_kl_and_survive_an_empty_history(tmp_path: Path) -> None:
    still = make_run("a2c", 0, [0.1, 0.3], [0.0, 0.0], before=0.1, root=tmp_path)
    assert run_metrics(still).reward_per_kl == pytest.approx(0.2 / 0.01)
    below_zero = make_run("a2c", 0, [0.1, 0.3], [0.0, -0.05], root=tmp_path)  # a sampled KL estimate can be < 0
    assert run_metrics(below_zero).reward_per_kl == pytest.approx(0.2 / 0.01)
    still.history = []
    assert math.isnan(run_metrics(still).final_reward)


def test_summary_rows_are_means_with_t_intervals(runs: list[RunResult]) -> None:
    rows = summarize(runs)
    assert [r.algo for r in rows] == ["ppo", "a2c"]
    ppo = rows[0]
    assert ppo.seeds == (0, 1)
    assert ppo.final_reward.mean == pytest.approx(0.8)
    assert ppo.final_reward.half_width == pytest.approx(12.7062 * 0.05, rel=1e-4)  # s = 0.0707, n = 2
    assert rows[1].final_reward.half_width == pytest.approx(0.0)
    one = summarize(runs[:1])[0]
    assert one.final_reward.format() == "0.750 (n=1)"
    assert Estimate(math.nan, math.nan, 0).format() == "—"


def test_report_has_header_table_definitions_plots_and_samples(runs: list[RunResult], tmp_path: Path) -> None:
    report = write_report(runs, tmp_path, notes=["a note | with a pipe"])
    assert report == tmp_path / "report.md"
    text = report.read_text(encoding="utf-8")
    for needle in ("`textenv/Toy-v0`", "**Token budget per run:** 512", "**Seeds:** 0, 1", "**Date:**",
                   "CPUs", "torch", "a note \\| with a pipe", "## Training", "**curve start**, **curve end**",
                   "## Did it learn?", "makes no claim about gains",
                   "last 25% of the run's rollouts", "95% confidence interval", "## Samples"):  # fmt: skip
        assert needle in text, needle
    summary = tables(text)[0]
    assert summary[0].startswith("| algorithm |")
    rows = {cells(line)[0].strip(): cells(line) for line in summary[2:]}
    assert set(rows) == {"`ppo`", "`a2c`"}
    assert rows["`ppo`"][3].strip() == "0.800 ± 0.635"  # final reward, mean ± 95% CI
    column = {name.strip(): i for i, name in enumerate(cells(summary[0]))}
    t = 12.7062  # t(0.975) with one degree of freedom: two seeds

    def mean_ci(a: float, b: float) -> str:
        return f"{(a + b) / 2:.3f} ± {t * abs(a - b) / 2:.3f}"  # s/√n = |a − b|/2 for two values

    # final KL: the mean of the last quarter of the rollouts (2 of 8); curve gain / KL: (curve end − curve start) / KL,
    # both ends the mean of a quarter of the rollouts (2 of 8)
    kl = {"ppo": (3.25, 2.6), "a2c": (0.3, 0.3)}
    gain = {"ppo": (0.75 - 0.15, 0.85 - 0.25), "a2c": (0.0, 0.0)}
    for algo in ("ppo", "a2c"):
        row = rows[f"`{algo}`"]
        assert row[column["final KL (nats)"]].strip() == mean_ci(*kl[algo]), algo
        per_kl = [g / k for g, k in zip(gain[algo], kl[algo], strict=True)]
        assert row[column["curve gain / KL"]].strip() == mean_ci(*per_kl), algo
    assert "(n=1)" not in text
    for png in ("learning_curves.png", "reward_vs_kl.png"):
        data = (tmp_path / png).read_bytes()
        assert data.startswith(PNG_MAGIC), png
        assert len(data) > 5000
        assert f"]({png})" in text
    assert "`before ppo the food was`" in text
    assert "`after a2c the food was`" in text
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")], "temp files left behind"


def test_summary_csv_has_one_row_per_run(runs: list[RunResult], tmp_path: Path) -> None:
    write_report(runs, tmp_path)
    with (tmp_path / "summary.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["algo"], r["seed"]) for r in rows] == [("ppo", "0"), ("ppo", "1"), ("a2c", "0"), ("a2c", "1")]
    assert float(rows[0]["final_reward"]) == pytest.approx(0.75)
    assert rows[0]["out_dir"] == "ppo/seed0"  # relative to the report, so the folder can move


def test_pipes_newlines_and_backticks_in_completions_keep_the_tables_whole(tmp_path: Path) -> None:
    nasty = {
        "the food was": "a | b || c",
        "the day was": "line one\nline two\r\n| row?",
        "the city is": "`tick` and ``two``",
    }
    runs = [make_run(algo, 0, [0.1, 0.2], [0.0, 0.1], completions=nasty, root=tmp_path) for algo in ("ppo", "a2c")]
    text = write_report(runs, tmp_path).read_text(encoding="utf-8")
    found = tables(text)
    assert len(found) == 2 + 3  # summary, runs, one per sample prompt
    for table in found:
        widths = {len(cells(line)) for line in table}
        assert len(widths) == 1, table
    assert r"`a \| b \|\| c`" in text
    assert r"`line one↵line two↵\| row?`" in text
    assert "``` `tick` and ``two`` ```" in text  # a fence longer than any run of backticks inside


def test_one_seed_shows_n1_and_an_empty_comparison_still_writes_a_report(tmp_path: Path) -> None:
    text = write_report([make_run("ppo", 3, [0.1, 0.2], [0.0, 0.1], root=tmp_path)], tmp_path).read_text()
    assert "(n=1)" in text
    assert "**Seeds:** 3" in text
    empty = write_report([], tmp_path / "none", env="textenv/Toy-v0", budget_tokens=256, seeds=[0, 1],
                         notes=["Interrupted before the first run finished."])  # fmt: skip
    text = empty.read_text()
    assert "No run finished" in text
    assert "**Token budget per run:** 256" in text
    assert "Interrupted before the first run finished." in text
    assert (tmp_path / "none" / "summary.csv").read_text().startswith("algo,seed,")


def test_rollouts_without_finished_episodes_and_uneven_runs_still_plot(tmp_path: Path) -> None:
    short = make_run("ppo", 0, [0.1, 0.2], [0.0, 0.1], root=tmp_path)
    long = make_run("ppo", 1, [0.1, 0.2, 0.3, 0.4], [0.0, 0.1, 0.2, 0.3], root=tmp_path)
    del long.history[1]["rollout/rm_score"]  # no episode ended in that rollout
    write_report([short, long], tmp_path)
    assert (tmp_path / "learning_curves.png").read_bytes().startswith(PNG_MAGIC)


def test_importing_the_report_module_is_cheap() -> None:
    code = "import sys, agents.report; print(sorted(m for m in ('matplotlib', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_paired_evaluation_gives_gains_their_difference_and_one_sentence(
    runs: list[RunResult], tmp_path: Path
) -> None:
    import numpy as np

    from agents.evaluation import EvaluationResult, gain_matrix, summarize_policy

    def sample(score: float, kl: float = 0.0) -> dict[str, Any]:
        return {"prompt": "p", "completion": "a b c", "rm_score": score, "kl_sum": kl, "n_tokens": 3,
                "ref_logprob": -3.0}  # fmt: skip

    n_prompts = 6
    rng = np.random.default_rng(1)
    start = [sample(float(s)) for s in rng.normal(0.0, 0.3, n_prompts)]
    ppo = {seed: [sample(s["rm_score"] + 0.5 + 0.01 * seed, 1.5) for s in start] for seed in (0, 1)}
    a2c = {seed: [sample(s["rm_score"] + 0.02 * (i % 2) - 0.01, 0.2) for i, s in enumerate(start)] for seed in (0, 1)}
    evaluation = EvaluationResult(
        [summarize_policy("start", {0: start}, n_prompts), summarize_policy("ppo", ppo, n_prompts, start),
         summarize_policy("a2c", a2c, n_prompts, start)],
        n_prompts,
        1,
        {"start": start},
        {"ppo": gain_matrix(ppo, start, n_prompts), "a2c": gain_matrix(a2c, start, n_prompts)},
    )  # fmt: skip
    text = write_report(runs, tmp_path, evaluation=evaluation).read_text(encoding="utf-8")
    assert "**At this budget ppo is ahead of a2c" in text
    assert "- **ppo − a2c**: +0.505, 95% CI [" in text
    gains = {cells(line)[0].strip(): cells(line) for line in tables(text)[0][2:]}
    assert gains["`ppo`"][4].strip().startswith("+0.505 [+0.50")  # the gain with its paired interval
    assert gains["`ppo`"][5].strip() == "+0.500, +0.510"  # per seed
    assert "`ppo`: KL 1.500 nats per episode; perplexity under the reference 1.00× the starting policy's." in text
    tied = EvaluationResult(evaluation.policies, n_prompts, 1, {}, {"ppo": evaluation.gains["a2c"],
                            "a2c": evaluation.gains["a2c"]})  # fmt: skip
    text = write_report(runs, tmp_path, evaluation=tied).read_text(encoding="utf-8")
    assert "**This budget cannot separate ppo from a2c" in text
