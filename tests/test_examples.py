"""Every script in examples/ runs, on the toy model (TEXTENV_EXAMPLE_TINY=1), so the examples cannot rot."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py"))


def test_the_examples_are_the_four_user_tasks() -> None:
    assert SCRIPTS == ["compare_ppo_a2c.py", "custom_reward.py", "pipeline_own_data.py", "register_env.py"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs_on_the_toy_model(
    script: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TEXTENV_EXAMPLE_TINY", "1")
    monkeypatch.chdir(tmp_path)  # the scripts write their runs/ into the working folder
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / script)])
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    out = capsys.readouterr().out
    expected = {
        "compare_ppo_a2c.py": "report: runs/compare-example/report.md",
        "custom_reward.py": "mean score before",
        "pipeline_own_data.py": "# Pipeline report: support-tiny",
        "register_env.py": "ok  copy.deepcopy",
    }[script]
    assert expected in out
