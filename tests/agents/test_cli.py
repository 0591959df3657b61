"""The `textenv` console script: env commands, train and compare, typed errors as exit code 2."""

from __future__ import annotations

import dataclasses
import json

import pytest

from agents.cli import DEMO, build_parser, main


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "textenv/Toy-v0" in out
    assert "sentiment" in out


def test_check_and_rollout_on_the_toy_env(capsys):
    assert main(["check", "--env", "textenv/Toy-v0"]) == 0
    assert "ok  copy.deepcopy" in capsys.readouterr().out
    assert main(["rollout", "--env", "textenv/Toy-v0", "--episodes", "2"]) == 0
    out = capsys.readouterr().out
    assert "reward model" in out
    assert "KL" in out


@pytest.mark.slow  # fast: test_compare_writes_a_report (CLI) and tests/agents/test_train.py (resume)
def test_train_then_resume(tmp_path, capsys, monkeypatch):
    import agents.train

    out = tmp_path / "run"
    args = ["train", "--env", "textenv/Toy-v0", "--algo", "a2c", "--preset", "tiny", "--budget-tokens", "64",
            "--seed", "1", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert "reward-model score" in capsys.readouterr().out
    assert json.loads((out / "result.json").read_text())["tokens"] == 64

    def no_fresh_agent(*args, **kwargs):
        raise AssertionError("--resume built a fresh agent instead of loading the checkpoint")

    monkeypatch.setattr(agents.train, "make_agent", no_fresh_agent)
    assert main([a if a != "64" else "128" for a in args] + ["--resume"]) == 0
    assert json.loads((out / "result.json").read_text())["tokens"] == 128


def test_compare_writes_a_report(tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", "--env", "textenv/Toy-v0", "--algos", "ppo", "a2c", "--seeds", "1", "--budget-tokens",
                 "64", "--preset", "tiny", "--out", str(out), "--no-progress"])  # fmt: skip
    assert code == 0
    assert (out / "report.md").exists()
    assert str(out / "report.md") in capsys.readouterr().out


def test_typed_errors_exit_with_2(capsys):
    assert main(["train", "--env", "textenv/Toy-v0", "--algo", "dqn", "--no-progress"]) == 2
    assert "algo must be one of" in capsys.readouterr().err
    assert main(["check", "--env", "textenv/Toyy-v0"]) == 2
    assert "Did you mean" in capsys.readouterr().err


def test_the_demo_is_the_sentiment_comparison():
    args = build_parser().parse_args(["demo"])
    assert args.env == DEMO["env"] == "textenv/Sentiment-v0"
    assert args.algos == ["ppo", "a2c"]


def _compare_budget(monkeypatch, argv):
    """The budget `textenv compare` hands to agents.compare.compare for ``argv`` (nothing is trained)."""
    import agents.compare

    seen = {}

    def fake_compare(env, algos, seeds, budget_tokens, **kwargs):
        seen["budget_tokens"] = budget_tokens

    monkeypatch.setattr(agents.compare, "compare", fake_compare)
    assert main(["compare", *argv, "--no-progress"]) == 0
    return seen["budget_tokens"]


def test_compare_takes_the_budget_of_the_preset_or_config(monkeypatch, tmp_path, capsys):
    from agents.config import PRESETS, TrainConfig

    out = ["--out", str(tmp_path / "cmp")]
    assert _compare_budget(monkeypatch, ["--preset", "tiny", *out]) == PRESETS["tiny"]["budget_tokens"]
    config = tmp_path / "c.yaml"
    config.write_text("budget_tokens: 96\n")
    assert _compare_budget(monkeypatch, ["--preset", "tiny", "--config", str(config), *out]) == 96
    assert _compare_budget(monkeypatch, ["--preset", "tiny", "--budget-tokens", "32", *out]) == 32
    assert _compare_budget(monkeypatch, out) == TrainConfig().budget_tokens


_SECTIONS = {"sft", "preferences", "reward_model", "rl", "evaluation"}


def _config_commands():
    from agents.pipeline import PipelineConfig
    from agents.sft import SFTConfig
    from rewards import RewardModelTrainingConfig

    return [(["sft"], SFTConfig, set()), (["rm", "train"], RewardModelTrainingConfig, set()),
            (["pipeline"], PipelineConfig, _SECTIONS)]  # fmt: skip


def test_help_lists_every_field_of_the_commands_dataclass(capsys):
    for command, cls, skip in _config_commands():
        with pytest.raises(SystemExit):
            build_parser().parse_args([*command, "--help"])
        shown = capsys.readouterr().out
        for f in dataclasses.fields(cls):
            if f.name not in skip:
                flag = "--" + f.name.replace("_", "-")
                assert f"{flag} " in shown or f"{flag}," in shown, (command, f.name)
                assert f"{cls.__name__}.{f.name}" in shown, (command, f.name)


def test_old_flag_spellings_still_set_the_same_fields():
    from agents.cli.pipeline import pipeline_overrides
    from agents.cli.rm import training_config
    from agents.cli.sft import sft_config

    sft = ["sft", "--data", "d.jsonl", "--base", "b", "--out", "o"]
    config = sft_config(build_parser().parse_args([*sft, "--lr", "1e-4", "--lora", "--no-progress", "--epochs", "2"]))
    assert (config.learning_rate, config.lora, config.progress, config.epochs) == (1e-4, True, False, 2.0)
    assert sft_config(build_parser().parse_args(sft)).progress  # a switch left out keeps the dataclass default
    config = sft_config(build_parser().parse_args([*sft, "--warmup-ratio", "0.1", "--lora-target-modules", "[c_attn]"]))
    assert (config.warmup_ratio, config.lora_target_modules) == (0.1, ["c_attn"])

    rm = ["rm", "train", "--data", "p.jsonl", "--base", "b", "--out", "o"]
    args = build_parser().parse_args([*rm, "--lr", "1e-3", "--use-margin", "--no-progress", "--weights", '{"a": 2}'])
    config = training_config(args)
    assert (config.learning_rate, config.use_margin, config.progress) == (1e-3, True, False)
    assert dict(config.dimension_weights) == {"a": 2}
    config = training_config(build_parser().parse_args([*rm, "--max-grad-norm", "0.5", "--eval-every", "none"]))
    assert (config.max_grad_norm, config.eval_every) == (0.5, None)

    args = build_parser().parse_args(
        ["pipeline", "--config", "p.yaml", "--name", "n", "--runs-dir", "r", "--device", "cpu"]
    )
    assert pipeline_overrides(args) == {"name": "n", "runs_dir": "r", "device": "cpu"}
