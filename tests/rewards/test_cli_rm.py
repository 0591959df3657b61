"""Tests of ``textenv rm train``, ``textenv rm eval`` and ``textenv prefs simulate`` (agents.cli.rm)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

import rewards
from agents.cli.rm import add_commands
from rewards import PreferenceDataError, RewardModelError
from textenv.base_model import resolve_base_model
from textenv.errors import ModelLoadError

from .conftest import separable_pairs


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="textenv")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture
def prefs_file(tmp_path: Path) -> Path:
    path = tmp_path / "prefs.jsonl"
    rewards.write_jsonl(path, separable_pairs(48))
    return path


def test_train_then_eval(
    prefs_file: Path, tiny_lm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rm"
    argv = ["rm", "train", "--data", str(prefs_file), "--base", str(tiny_lm_dir), "--out", str(out)]
    assert (
        run(
            *argv,
            "--epochs",
            "2",
            "--lr",
            "1e-3",
            "--batch-size",
            "16",
            "--eval-fraction",
            "0.25",
            "--no-progress",
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "training a reward model on 48 pairs and 0 ratings" in printed
    assert "held-out pairwise accuracy" in printed
    info = rewards.RewardModelInfo.read(out)
    assert info.base == str(tiny_lm_dir)
    assert info.training["config"]["epochs"] == 2

    assert run("rm", "eval", "--data", str(prefs_file), "--model", str(out)) == 0
    assert "pairwise accuracy" in capsys.readouterr().out
    assert run("rm", "eval", "--data", str(prefs_file), "--model", str(out), "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 48
    assert result["ci_low"] <= result["accuracy"] <= result["ci_high"]

    with pytest.raises(RewardModelError, match="already exists"):
        run(*argv)


def test_bad_lines_stop_training_or_are_skipped(
    prefs_file: Path, tiny_lm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with prefs_file.open("a") as f:
        f.write('{"prompt": "broken\n')
    out = tmp_path / "rm"
    argv = [
        "rm",
        "train",
        "--data",
        str(prefs_file),
        "--base",
        str(tiny_lm_dir),
        "--out",
        str(out),
        "--no-progress",
    ]
    with pytest.raises(PreferenceDataError, match=rf"{prefs_file}:49: malformed JSON"):
        run(*argv)
    assert not out.exists()
    assert run(*argv, "--skip-bad-lines") == 0
    assert "skipped 1 bad records" in capsys.readouterr().out


def test_eval_needs_pairs(tiny_rm_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "ratings.jsonl"
    rewards.write_jsonl(path, [rewards.RatedCompletion("p", "c", {"fluency": 3})])
    with pytest.raises(PreferenceDataError, match="ratings only"):
        run("rm", "eval", "--data", str(path), "--model", str(tiny_rm_dir))


def test_simulate_writes_pairs_that_train(
    tiny_lm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(json.dumps({"prompt": p, "reference": "good fun"}) + "\n" for p in ("the movie", "a cat"))
    )
    out = tmp_path / "sim.jsonl"
    code = run(
        "prefs",
        "simulate",
        "--model",
        str(tiny_lm_dir),
        "--prompts",
        str(prompts),
        "--reward",
        "rouge",
        "--reward-kwargs",
        '{"rouge_type": "rouge1"}',
        "--out",
        str(out),
        "--repeats",
        "4",
        "--max-new-tokens",
        "6",
        "--temperature",
        "0",
        "--no-progress",
    )
    assert code == 0
    assert "pairs to" in capsys.readouterr().out
    data = rewards.load_preferences(out)
    assert 1 <= len(data.pairs) <= 8
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r["reward_chosen"] >= r["reward_rejected"] for r in records)


def test_simulate_cuts_completions_at_the_stop_strings(tiny_lm_dir: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ("the movie", "a cat", "my dog")))

    def simulate(out: Path, *extra: str) -> list[dict]:
        argv = ["prefs", "simulate", "--model", str(tiny_lm_dir), "--prompts", str(prompts), "--reward", "length"]
        argv += ["--reward-kwargs", '{"target": 3}']
        code = run(*argv, "--out", str(out), "--repeats", "4", "--max-new-tokens", "8", "--no-progress", *extra)
        assert code == 0
        return [json.loads(line) for line in out.read_text().splitlines()]

    def completions(records: list[dict]) -> list[str]:
        return [r[key] for r in records for key in ("chosen", "rejected")]

    whole = completions(simulate(tmp_path / "whole.jsonl"))
    assert any(" " in c.strip() for c in whole)  # several words: there is something to cut
    cut = completions(simulate(tmp_path / "cut.jsonl", "--stop", " ", "--stop", "never"))
    assert cut
    assert all(" " not in c for c in cut)


def test_resolve_base_model(tiny_lm_dir: Path) -> None:
    assert resolve_base_model(str(tiny_lm_dir)) == tiny_lm_dir
    toy = resolve_base_model("textenv/toy-gpt2")
    assert (toy / "config.json").is_file()
    with pytest.raises(ModelLoadError, match="No local model folder for 'nobody/nothing'"):
        resolve_base_model("nobody/nothing")


def test_bad_flags_are_config_errors_before_any_loading(tmp_path: Path) -> None:
    from textenv.errors import ConfigError

    argv = ["rm", "train", "--data", str(tmp_path / "missing.jsonl"), "--base", "x", "--out", str(tmp_path / "rm")]
    with pytest.raises(ConfigError, match="rm train: epochs must be an integer ≥ 1"):
        run(*argv, "--epochs", "0")
    with pytest.raises(ConfigError, match="--weights must be JSON"):
        run(*argv, "--weights", "{bad")
    with pytest.raises(ConfigError, match="--reward-kwargs must be JSON"):
        run(
            "prefs",
            "simulate",
            "--model",
            "m",
            "--prompts",
            "p",
            "--reward",
            "length",
            "--out",
            "o",
            "--reward-kwargs",
            "[",
        )
