"""The pipeline: config errors, the labels-database source, and one end-to-end run on the toy model with a Ctrl-C.

The end-to-end test runs every stage on the toy model (a few steps each), interrupts the RL stage between its
two runs with ``KeyboardInterrupt`` (Ctrl-C, which runs the cleanup a SIGKILL skips: ``test_sigkill.py`` kills
a real process), and runs again: the stages before RL are reused, RL resumes (its finished run is read back),
and the evaluation and the report come out complete.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import agents.compare
from agents.cli import main
from agents.errors import ConfigError, PipelineError
from agents.evaluation import METRICS
from agents.pipeline import load_pipeline_config, pipeline_config_from_dict, run_pipeline
from agents.pipeline.runner import DONE_FILE
from agents.pipeline.stages import export_db_preferences
from textenv.models import load_model_and_tokenizer

DEMOS = [
    {"prompt": "the movie was", "response": " very good and fun"},
    {"prompt": "the book is", "response": " great and i love it"},
    {"prompt": "the day was", "response": " nice and happy"},
    {"instruction": "say a good thing", "output": "the food is great"},
    {"prompt": "the game was", "response": " the best"},
    {"prompt": "the music is", "response": " very nice"},
    {"prompt": "a friend is", "response": " good and fun"},
    {"prompt": "the city is", "response": " great"},
]


def _config(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    demos = tmp_path / "demos.jsonl"
    demos.write_text("".join(json.dumps(d) + "\n" for d in DEMOS))
    config: dict[str, Any] = {
        "name": "toy",
        "model": "textenv/toy-gpt2",
        "prompts": "builtin:toy",
        "runs_dir": str(tmp_path / "runs"),
        "sft": {"data": str(demos), "epochs": 1, "batch_size": 4, "learning_rate": 1e-3, "eval_fraction": 0.25},
        "preferences": {
            "reward": "keyword",
            "reward_kwargs": {"keywords": ["good", "great", "happy", "love", "best", "nice", "fun"], "mode": "count"},
            "temperature": 0.1,
            "limit": 12,
            "max_new_tokens": 6,
        },
        "reward_model": {"epochs": 1, "batch_size": 16, "learning_rate": 1e-3, "max_length": 24},
        "rl": {
            "algos": ["ppo", "a2c"],
            "seeds": 1,
            "budget_tokens": 32,
            "preset": "tiny",
            "train": {"eval_episodes": 2, "n_steps": 8},
            "env_kwargs": {"max_new_tokens": 4},
        },
        "evaluation": {"n_prompts": 2, "samples_per_prompt": 1},
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


# ---------------------------------------------------------------------------------------------- config errors


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"nmae": "x"}, r"Unknown pipeline field 'nmae'\. Did you mean 'name'\?"),
        ({"name": "a/b"}, "plain folder name"),
        ({"preferences": {"source": "simulated"}}, r"source must be one of .* Did you mean 'simulate'\?"),
        ({"preferences": {"source": "file"}}, r"preferences\.path must be a non-empty string"),
        ({"preferences": {"source": "file", "path": "nowhere.jsonl"}}, "is not a file"),
        ({"preferences": {"source": "db", "db": "nowhere.sqlite"}}, "is not a file"),
        ({"preferences": {"repeat": 2}}, r"Unknown field 'repeat' in preferences\. Did you mean 'repeats'\?"),
        ({"preferences": {"top_p": 1.5}}, r"top_p must be in \(0, 1\]"),
        ({"reward_model": {"epochs": 0}}, r"reward_model: epochs must be an integer ≥ 1"),
        ({"rl": {"algos": ["ppo", "dqn"]}}, "Unknown algorithm 'dqn'"),
        ({"rl": {"preset": "huge"}}, "Unknown preset 'huge'"),
        ({"rl": {"train": {"model": "x"}}}, r"train may not set \['model'\]"),
        ({"rl": {"env_kwargs": {"reward": "length"}}}, r"env_kwargs may not set \['reward'\]"),
        ({"rl": {"train": {"n_stepz": 3}}}, r"Unknown config fields \['n_stepz'\]"),
        ({"rl": {"seeds": 0}}, r"seeds must be ≥ 1"),
        ({"sft": {"epochs": 1}}, "sft needs data"),
        ({"sft": {"data": "d.jsonl", "batch_size": 0}}, r"sft\.batch_size must be an integer ≥ 1"),
        ({"evaluation": {"samples_per_prompt": 0}}, r"evaluation\.samples_per_prompt must be an integer ≥ 1"),
        ({"evaluation": "all"}, "evaluation must be a mapping"),
    ],
)
def test_bad_config_is_a_config_error_naming_the_field(tmp_path: Path, changes: dict[str, Any], match: str) -> None:
    config = _config(tmp_path)
    for key, value in changes.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) and key in config else value
    if "sft" in changes and "data" not in changes["sft"]:
        config["sft"] = changes["sft"]
    with pytest.raises(ConfigError, match=match):
        pipeline_config_from_dict(config)


def test_a_config_file_needs_a_name_and_valid_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    for text, match in (("", "is empty"), ("model: x\n", "needs a name"), ("a: [\n", "not valid YAML")):
        bad.write_text(text)
        with pytest.raises(ConfigError, match=match):
            load_pipeline_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_pipeline_config(tmp_path / "missing.yaml")


def test_relative_input_paths_resolve_against_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "demos.jsonl").write_text(json.dumps(DEMOS[0]) + "\n")
    (folder / "pipeline.yaml").write_text(yaml.safe_dump({"name": "x", "sft": {"data": "demos.jsonl"}}))
    monkeypatch.chdir(tmp_path)
    config = load_pipeline_config(Path("project") / "pipeline.yaml", runs_dir=str(tmp_path / "runs"))
    assert config.sft is not None
    assert config.sft.data == str((folder / "demos.jsonl").resolve())
    assert config.root == tmp_path / "runs" / "x"


def test_the_cli_reports_a_bad_config_with_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "rl": {"algos": ["ppo"], "budget": 3}}))
    assert main(["pipeline", "--config", str(path)]) == 2
    assert "Unknown field 'budget' in rl. Did you mean 'budget_tokens'?" in capsys.readouterr().err


def test_forcing_an_unknown_stage_is_refused(tmp_path: Path) -> None:
    config = pipeline_config_from_dict(_config(tmp_path))
    with pytest.raises(ConfigError, match=r"Unknown stages \['rm'\]"):
        run_pipeline(config, force=["rm"])


# ------------------------------------------------------------------------------------------ labels database


def test_the_db_source_exports_the_labeling_store(tmp_path: Path) -> None:
    from rewards import load_preferences
    from rewards.human import LabelStore, LabelTask

    db = tmp_path / "labels.sqlite"
    store = LabelStore(db)
    tasks = [LabelTask("the movie was", (" great fun", " dull")), LabelTask("the book is", (" bad", " lovely"))]
    store.add_tasks(tasks)
    with pytest.raises(PipelineError, match="no label to export yet"):
        export_db_preferences(db, tmp_path / "empty.jsonl")
    store.add_label(tasks[0].id, "alice", "1", "12")
    store.add_label(tasks[1].id, "alice", "2", "21")
    out = tmp_path / "prefs.jsonl"
    export_db_preferences(db, out)
    pairs = {(p.prompt, p.chosen, p.rejected) for p in load_preferences(out).pairs}
    assert pairs == {("the movie was", " great fun", " dull"), ("the book is", " lovely", " bad")}


# ---------------------------------------------------------------------------------------------- end to end


def _links(report: Path) -> list[str]:
    return re.findall(r"\]\(([^)]+)\)", report.read_text(encoding="utf-8"))


def test_the_pipeline_runs_end_to_end_and_resumes_after_ctrl_c(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = tmp_path / "pipeline.yaml"
    config_file.write_text(yaml.safe_dump(_config(tmp_path)))
    config = load_pipeline_config(config_file)
    root = config.root
    real_run_one = agents.compare._run_one
    started: list[str] = []

    def killed_during_the_second_run(training: Any, cfg: Any, *args: Any) -> Any:
        started.append(cfg.algo)
        if len(started) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the RL stage trains its second run
        return real_run_one(training, cfg, *args)

    monkeypatch.setattr(agents.compare, "_run_one", killed_during_the_second_run)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(config, progress=False, say=lambda _: None)
    for stage in ("sft", "preferences", "reward_model"):
        assert (root / stage / DONE_FILE).exists()
    assert not (root / "rl" / DONE_FILE).exists()
    assert "Stopped by KeyboardInterrupt" in (root / "report.md").read_text()
    done_times = {s: (root / s / DONE_FILE).stat().st_mtime_ns for s in ("sft", "preferences", "reward_model")}
    ppo_result = root / "rl" / "compare" / "ppo" / "seed0" / "result.json"
    ppo_time = ppo_result.stat().st_mtime_ns

    monkeypatch.setattr(agents.compare, "_run_one", real_run_one)
    capsys.readouterr()
    assert main(["pipeline", "--config", str(config_file), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "ran rl, evaluation (reused: sft, preferences, reward_model)" in out
    assert "[rl] running" in out
    result = run_pipeline(config, progress=False, say=lambda _: None)  # reads every stage back
    assert result.ran == []
    assert {s: (root / s / DONE_FILE).stat().st_mtime_ns for s in done_times} == done_times
    assert ppo_result.stat().st_mtime_ns == ppo_time  # the finished run of the killed attempt was read back

    # Every stage's artifacts exist and the report links them.
    for link in _links(result.report):
        assert (root / link).exists(), link
    for run in result.records["rl"].outputs["runs"]:
        model, _ = load_model_and_tokenizer(root / "rl" / run / "policy")
        assert model.config.vocab_size == 70
    sft = result.records["sft"].metrics
    assert sft["eval_loss"] < sft["eval_loss_before"]
    assert result.records["preferences"].metrics["pairs"] > 0
    assert "final_eval_accuracy" in result.records["reward_model"].metrics
    policies = json.loads((root / "evaluation" / "metrics.json").read_text())["policies"]
    assert list(policies) == ["start", "ppo", "a2c"]
    for name, metrics in policies.items():
        for metric in METRICS:
            if metric in ("win_rate", "gain") and name == "start":  # measured against the start
                assert metrics[metric]["mean"] is None
            else:
                assert math.isfinite(metrics[metric]["mean"]), (name, metric)
    assert abs(policies["start"]["kl"]["mean"]) < 1e-4  # the starting policy is the reference
    assert "| `ppo` |" in result.report.read_text()

    # A changed evaluation setting reruns the evaluation only.
    changed = pipeline_config_from_dict(_config(tmp_path, evaluation={"samples_per_prompt": 2}))
    assert run_pipeline(changed, progress=False, say=lambda _: None).ran == ["evaluation"]
