"""The benchmark command runs in quick mode, prints its table and writes JSON with every row; nothing is timed."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.rows import ROWS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict, Path]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(out.read_text()), out


@pytest.mark.slow  # the quick benchmark run (a minute); fast: tests/benchmarks/test_learning.py
def test_quick_run_prints_the_table_and_the_targets(quick_run):
    proc, _, _ = quick_run
    assert "| model | batch | new tokens | row |" in proc.stdout
    assert "| target (tiny, batch 2) | measured | bound | met |" in proc.stdout
    for row in ROWS:
        assert f"| tiny | 2 | 8 | {row} |" in proc.stdout


@pytest.mark.slow  # the quick benchmark run (a minute); fast: tests/benchmarks/test_learning.py
def test_quick_run_writes_every_row_with_its_rate_and_memory(quick_run):
    _, report, _ = quick_run
    cells = {(c["row"], c["new_tokens"]): c for c in report["cells"]}
    assert set(cells) == {(row, 8) for row in ROWS} | {("B", 16), ("B", 32), ("D_ppo1", 16), ("D_ppo1", 32)}
    for (row, _), cell in cells.items():
        if row in ("E", "E_lora") and importlib.util.find_spec("trl") is None:
            assert "trl" in cell["skipped"]
            continue
        assert "error" not in cell, cell.get("error")
        assert cell["tokens_per_s"] > 0
        assert len(cell["rates"]) == report["meta"]["runs"] == 1
        assert cell["peak_rss_mb"] >= cell["baseline_rss_mb"] > 0
    memory = cells[("D_ppo1", 8)]["memory"]
    # AdamW keeps two moments per parameter: the optimizer state is about twice the policy
    assert memory["optimizer"] == pytest.approx(2 * memory["policy"], rel=0.01)
    assert memory["reference"] < memory["policy"]  # the policy has the value head too
    names = {t["target"] for t in report["targets"]}
    assert {"B / A", "D_ppo1 / E", "D_ppo1 / C"} <= names
    assert report["meta"]["versions"]["torch"]


@pytest.mark.slow  # the quick benchmark run (a minute); fast: tests/benchmarks/test_learning.py
def test_a_results_file_is_rendered_again(quick_run):
    proc, _, path = quick_run
    again = subprocess.run([sys.executable, "-m", "benchmarks.run", "--render", str(path)], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "| model | batch | new tokens | A | B | C | D_ppo1 | D_ppo | D_a2c | E |" in again.stdout
    assert again.stdout.strip() in proc.stdout


def test_an_unknown_row_is_refused():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--rows", "Z"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2
    assert "invalid choice: 'Z'" in proc.stderr
