"""textenv sweep: Ray Tune trials scored by the fixed evaluation's paired gain; best.yaml and trials.md."""

from __future__ import annotations

import pytest
import yaml

from agents.config import load_config
from agents.sweep import SweepConfig, load_sweep_config, run_sweep
from textenv.errors import ConfigError

ray = pytest.importorskip("ray")
pytest.importorskip("ray.tune")


@pytest.fixture(scope="module")
def cluster():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow  # fast: test_the_example_sweep_file_loads and the Ray runs of test_ray_compare.py
def test_a_grid_sweep_writes_the_best_config_and_every_trial(cluster, tmp_path):
    sweep = SweepConfig(env="textenv/Toy-v0", algo="ppo", preset="tiny", budget_tokens=128, grace_tokens=64,
                        train={"eval_episodes": 1, "device": "cpu"},
                        search={"learning_rate": {"grid": [1e-5, 3e-3]}}, num_samples=1, scheduler="fifo",
                        eval_prompts=4, eval_samples=2)  # fmt: skip
    result = run_sweep(sweep, tmp_path)
    assert len(result.trials) == 2
    assert {t["values"]["learning_rate"] for t in result.trials} == {1e-5, 3e-3}
    assert all(t["tokens"] == 128 and t["error"] is None for t in result.trials)
    best = max(result.trials, key=lambda t: t["gain"])
    assert result.best_gain == best["gain"]
    assert result.best.learning_rate == best["values"]["learning_rate"]
    # best.yaml is a whole TrainConfig that `textenv train --config` reads back
    assert load_config(result.best_yaml) == result.best
    assert yaml.safe_load(result.best_yaml.read_text())["budget_tokens"] == 128
    table = result.table.read_text(encoding="utf-8")
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| trial")]
    assert len(rows) == 2
    assert "best" in rows[0]
    assert f"{best['gain']:+.3f}" in rows[0]


@pytest.mark.parametrize(("fields", "match"), [
    ({"search": {}}, "needs a `search` section"),
    ({"search": {"seed": {"choice": [0, 1]}}}, "not a TrainConfig field the sweep may vary"),
    ({"search": {"learning_rate": {"normal": [0, 1]}}}, r"kind in \('grid', 'choice'"),
    ({"search": {"learning_rate": {"uniform": [0.1]}}}, r"\[low, high\]"),
    ({"search": {"learning_rate": {"choice": [0.1]}}, "scheduler": "hyperband"}, "scheduler must be"),
    ({"search": {"learning_rate": {"choice": [0.1]}}, "train": {"n_stepz": 4}}, "Unknown config fields"),
    ({"search": {"learning_rate": {"choice": [0.1]}}, "grace_tokens": 4096}, "exceeds budget_tokens"),
])  # fmt: skip
def test_bad_sweeps_are_refused_before_any_trial(fields, match):
    with pytest.raises(ConfigError, match=match):
        SweepConfig(**fields)


def test_the_example_sweep_file_loads(tmp_path):
    sweep = load_sweep_config("examples/sweep.yaml")
    assert sweep.scheduler == "asha"
    assert set(sweep.search) == {"learning_rate", "n_epochs"}
    (tmp_path / "bad.yaml").write_text("search: {learning_rate: {choice: [0.1]}}\nbudget: 3\n")
    with pytest.raises(ConfigError, match=r"Unknown sweep fields \['budget'\]"):
        load_sweep_config(tmp_path / "bad.yaml")
