"""compare(): input checks, one real end-to-end comparison, reuse of finished runs, interruption."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import agents.train as training
from agents.compare import ComparisonResult, compare, load_run
from agents.config import TrainConfig
from textenv.errors import ConfigError

ENV = "textenv/Toy-v0"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# A fixed, paired evaluation on every 4th prompt (held out of training), 2 samples each.
OVERRIDES = {"eval_episodes": 4, "eval_samples": 2, "eval_holdout": 4}


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"algos": ["ppo", "dqn"]}, r"Unknown algorithm 'dqn'; known: 'ppo', 'a2c'"),
        ({"algos": ["PPO"]}, r"Did you mean 'ppo'\?"),
        ({"algos": ["ppo", "a2c", "ppo"]}, r"\['ppo'\] more than once"),
        ({"algos": []}, "algos is empty"),
        ({"algos": "ppo"}, "must be a list of algorithm names"),
        ({"seeds": 0}, r"seeds must be ≥ 1"),
        ({"seeds": -2}, r"seeds must be ≥ 1"),
        ({"seeds": []}, "non-empty list"),
        ({"seeds": [0, -1]}, r"integer ≥ 0; got -1"),
        ({"seeds": [1, 1]}, "repeat a seed"),
        ({"seeds": True}, "count ≥ 1 or a non-empty list"),
        ({"budget_tokens": 0}, r"budget_tokens must be an integer ≥ 1"),
        ({"budget_tokens": 1.5}, r"budget_tokens must be an integer ≥ 1"),
        ({"overrides": {"seed": 3}}, r"overrides may not set \['seed'\]"),
        ({"overrides": {"n_stepz": 3}}, r"Unknown config fields \['n_stepz'\]"),
        ({"overrides": {"n_steps": 0}}, "n_steps must be an integer"),
        ({"preset": "huge"}, "Unknown preset 'huge'"),
    ],
)
def test_bad_input_fails_before_any_training(kwargs: dict[str, Any], match: str, tmp_path: Path) -> None:
    args: dict[str, Any] = {"algos": ["ppo", "a2c"], "seeds": 2, "budget_tokens": 256, "preset": "tiny"}
    args.update(kwargs)
    out = tmp_path / "cmp"
    with pytest.raises(ConfigError, match=match):
        compare(ENV, args.pop("algos"), args.pop("seeds"), args.pop("budget_tokens"), out_dir=out, **args)
    assert not out.exists()


# ---------------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def comparison(tmp_path_factory: pytest.TempPathFactory) -> ComparisonResult:
    out = tmp_path_factory.mktemp("compare")
    # Runs on the suite's one torch thread (tests/conftest.py): the toy model's matrices are too small to split.
    return compare(ENV, ["ppo", "a2c"], seeds=2, budget_tokens=256, preset="tiny", out_dir=out,
                   overrides=OVERRIDES, progress=False)  # fmt: skip


def test_compare_trains_every_algorithm_on_every_seed_and_writes_the_report(
    comparison: ComparisonResult,
) -> None:
    out = comparison.out_dir
    assert comparison.report == out / "report.md"
    assert [(r.config.algo, r.config.seed) for r in comparison.runs] == [
        ("ppo", 0), ("a2c", 0), ("ppo", 1), ("a2c", 1)
    ]  # fmt: skip
    for run in comparison.runs:
        assert run.out_dir == out / run.config.algo / f"seed{run.config.seed}"
        assert run.config.env == ENV
        assert run.config.budget_tokens == 256
        assert run.config.eval_episodes == 4
        assert run.tokens >= 256
        assert (run.out_dir / "result.json").exists()
    assert comparison.reused == []
    assert [row.algo for row in comparison.rows] == ["ppo", "a2c"]
    assert all(row.final_reward.n == 2 for row in comparison.rows)
    assert set(comparison.by_algo()) == {"ppo", "a2c"}

    text = comparison.report.read_text(encoding="utf-8")
    assert "| `ppo` | 2 |" in text
    assert "| `a2c` | 2 |" in text
    assert "`textenv/Toy-v0`" in text
    assert "after `ppo`" in text
    assert "after `a2c`" in text
    for png in ("learning_curves.png", "reward_vs_kl.png"):
        assert (out / png).read_bytes().startswith(PNG_MAGIC)
    # The fixed, paired evaluation: held-out prompts × 2 samples for the start and every run, and its verdict.
    evaluation = comparison.evaluation
    assert evaluation is not None
    assert evaluation.samples_per_prompt == 2
    assert {k: v.shape for k, v in evaluation.gains.items()} == {
        "ppo": (2, evaluation.prompts), "a2c": (2, evaluation.prompts)
    }  # fmt: skip
    held = {s["prompt"] for s in evaluation.samples["start"]}
    trained_on = {json.loads(line)["prompt"] for line in (out / "ppo" / "seed0" / "samples.jsonl").open()}
    assert held
    assert not held & trained_on, "evaluation prompts leaked into training"
    assert "## Did it learn?" in text
    assert "ppo − a2c" in text
    assert ("is ahead of" in text) or ("cannot separate" in text)
    assert json.loads((out / "evaluation" / "metrics.json").read_text())["samples_per_prompt"] == 2
    with (out / "summary.csv").open(newline="", encoding="utf-8") as fh:
        assert len(list(csv.DictReader(fh))) == 4


def test_a_second_call_reuses_the_finished_runs(comparison: ComparisonResult, monkeypatch: Any) -> None:
    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a finished run with the same config was trained again")

    monkeypatch.setattr(training, "train", no_training)
    again = compare(ENV, ["ppo", "a2c"], seeds=[0, 1], budget_tokens=256, preset="tiny",
                    out_dir=comparison.out_dir, overrides=OVERRIDES, progress=False)  # fmt: skip
    assert again.reused == [r.out_dir for r in comparison.runs]
    assert "4 of 4 runs were finished by an earlier call" in again.report.read_text(encoding="utf-8")
    for old, new in zip(comparison.runs, again.runs, strict=True):
        assert new.config == old.config
        assert new.tokens == old.tokens
        assert new.after["rm_score"] == pytest.approx(old.after["rm_score"])
        assert len(new.history) == len(old.history)
        for key in ("time/total_tokens", "rollout/rm_score", "rollout/kl"):
            assert [row[key] for row in new.history] == pytest.approx([row[key] for row in old.history])
    assert again.rows == comparison.rows


def test_load_run_reads_the_config_from_the_folder(comparison: ComparisonResult) -> None:
    run = comparison.runs[1]
    loaded = load_run(run.out_dir)
    assert loaded.config == run.config
    assert loaded.wall_time_s == pytest.approx(run.wall_time_s)


# ---------------------------------------------------------------------------------- with a stand-in trainer


def fake_train(calls: list[dict[str, Any]], interrupt_at: int | None = None) -> Any:
    """A stand-in for agents.train.train: writes a plausible run folder; Ctrl-C on call ``interrupt_at``."""

    def train(config: TrainConfig, out_dir: Path, *, resume: bool = False, progress: bool = True) -> training.RunResult:
        calls.append({"algo": config.algo, "seed": config.seed, "resume": resume})
        if len(calls) == interrupt_at:
            raise KeyboardInterrupt
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        history = [{"time/total_tokens": 64.0 * i, "rollout/rm_score": 0.1 * i, "rollout/kl": 0.2 * i}
                   for i in range(1, 5)]  # fmt: skip
        sample = {"prompt": "the food was", "completion": "good", "rm_score": 0.5, "kl_sum": 0.1}
        before = {"rm_score": 0.0, "kl": 0.0, "samples": [sample]}
        after = {"rm_score": 0.4, "kl": 0.8, "samples": [sample]}
        return training.RunResult(out, config, 256, 1.0, 256.0, before, after, history)

    return train


def test_ctrl_c_writes_the_report_of_the_runs_so_far_and_reraises(tmp_path: Path, monkeypatch: Any) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(training, "train", fake_train(calls, interrupt_at=3))
    with pytest.raises(KeyboardInterrupt):
        compare(ENV, ["ppo", "a2c"], seeds=2, budget_tokens=256, preset="tiny", out_dir=tmp_path, progress=False)
    assert [(c["algo"], c["seed"]) for c in calls] == [("ppo", 0), ("a2c", 0), ("ppo", 1)]
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "Interrupted during ppo seed 1" in text
    assert "2 of 4 runs are missing" in text
    assert "| `ppo` | 1 |" in text
    assert "| `a2c` | 1 |" in text
    assert "**Seeds:** 0, 1" in text  # what was asked, not only what finished


def test_an_error_in_a_run_still_leaves_a_report(tmp_path: Path, monkeypatch: Any) -> None:
    def broken(config: TrainConfig, out_dir: Path, **kwargs: Any) -> None:
        raise RuntimeError("reward returned NaN")

    monkeypatch.setattr(training, "train", broken)
    with pytest.raises(RuntimeError, match="NaN"):
        compare(ENV, ["a2c"], seeds=1, budget_tokens=256, preset="tiny", out_dir=tmp_path, progress=False)
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "Stopped by an error during a2c seed 0 (RuntimeError: reward returned NaN)" in text
    assert "No run finished" in text


def test_interrupted_runs_resume_and_changed_configs_retrain(tmp_path: Path, monkeypatch: Any) -> None:
    from agents.config import load_config

    interrupted = tmp_path / "ppo" / "seed0"
    (interrupted / "checkpoint").mkdir(parents=True)
    (interrupted / "checkpoint" / "model.zip").write_bytes(b"")
    config = load_config(preset="tiny", env=ENV, algo="ppo", seed=0, budget_tokens=256)
    (interrupted / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    (interrupted / "result.json").write_text(json.dumps({"tokens": 128, "interrupted": True}))
    changed = tmp_path / "a2c" / "seed0"
    changed.mkdir(parents=True)
    other = config.replace(algo="a2c", learning_rate=0.5)
    (changed / "config.yaml").write_text(yaml.safe_dump(other.to_dict(), sort_keys=False))

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(training, "train", fake_train(calls))
    result = compare(ENV, ["ppo", "a2c"], seeds=1, budget_tokens=256, preset="tiny", out_dir=tmp_path, progress=False)
    assert calls == [{"algo": "ppo", "seed": 0, "resume": True}, {"algo": "a2c", "seed": 0, "resume": False}]
    text = result.report.read_text(encoding="utf-8")
    assert "ppo seed 0: resumed from the checkpoint" in text
    assert "a2c seed 0: the config differs" in text

    calls.clear()
    compare(ENV, ["ppo", "a2c"], seeds=1, budget_tokens=256, preset="tiny", out_dir=tmp_path, progress=False,
            resume=False)  # fmt: skip
    assert [c["resume"] for c in calls] == [False, False]
