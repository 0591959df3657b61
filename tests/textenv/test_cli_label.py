"""``textenv label ...``: tasks from a model or a finished run, the terminal labeler, export, stats, and the whole
README path from a model to labels to a reward model to an env that uses it."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

import rewards
from agents.cli import main
from agents.run_folder import run_source
from rewards.human import LabelStore, load_tasks
from textenv.errors import ConfigError
from textenv.pairs import cut_at_stop


@pytest.fixture
def prompt_file(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.jsonl"
    lines = ["the movie was", "i like the", "the food is very", "my cat and", "we play the game"]
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in lines), encoding="utf-8")
    return path


def _tasks(tiny_lm_dir: Path, prompt_file: Path, out: Path, *extra: str) -> list:
    argv = ["label", "tasks", "--model", str(tiny_lm_dir), "--prompts", str(prompt_file), "--out", str(out)]
    assert main([*argv, "--max-new-tokens", "6", "--repeats", "2", "--no-progress", *extra]) == 0
    return load_tasks(out)


def test_tasks_from_a_model_are_reproducible(tiny_lm_dir: Path, prompt_file: Path, tmp_path: Path) -> None:
    first = _tasks(tiny_lm_dir, prompt_file, tmp_path / "a.jsonl")
    again = _tasks(tiny_lm_dir, prompt_file, tmp_path / "b.jsonl")
    assert [t.id for t in first] == [t.id for t in again]
    assert len(first) >= 8
    assert {t.prompt for t in first} <= {r["prompt"] for r in map(json.loads, prompt_file.read_text().splitlines())}
    other_seed = _tasks(tiny_lm_dir, prompt_file, tmp_path / "c.jsonl", "--seed", "1")
    assert [t.id for t in other_seed] != [t.id for t in first]
    assert main(["label", "tasks", "--model", str(tiny_lm_dir), "--out", str(tmp_path / "x.jsonl")]) == 2


def test_cut_at_stop() -> None:
    assert cut_at_stop("one\ntwo. three", ["\n", "."]) == "one"
    assert cut_at_stop("one two", ["."]) == "one two"
    assert cut_at_stop("a.b", ["", "."]) == "a"


def _fake_run(tmp_path: Path, tiny_lm_dir: Path, *, policy: bool = True) -> Path:
    """A run folder as `textenv train` leaves it, as far as sampling goes: config.yaml and policy/."""
    run = tmp_path / "run"
    run.mkdir()
    config = {"env": "textenv/Toy-v0", "temperature": 1.5, "env_kwargs": {"max_new_tokens": 4}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    if policy:
        shutil.copytree(tiny_lm_dir, run / "policy")
    return run


def test_tasks_from_a_finished_run_use_its_policy_prompts_and_settings(tiny_lm_dir: Path, tmp_path: Path) -> None:
    run = _fake_run(tmp_path, tiny_lm_dir)
    source = run_source(run)
    assert source.model == run / "policy"
    assert source.prompts == "builtin:toy"
    assert (source.max_new_tokens, source.temperature, source.env) == (4, 1.5, "textenv/Toy-v0")
    out = tmp_path / "tasks.jsonl"
    assert main(["label", "tasks", "--from-run", str(run), "--out", str(out), "--no-progress"]) == 0
    tasks = load_tasks(out)
    from textenv.prompts import load_prompts

    assert tasks
    assert {t.prompt for t in tasks} <= set(load_prompts("builtin:toy").texts)
    # what a 4-token completion of the toy word-level model looks like: at most 4 words
    assert max(len(c.split()) for t in tasks for c in t.completions) <= 4


def test_a_run_without_a_policy_or_config_is_refused(tiny_lm_dir: Path, tmp_path: Path) -> None:
    run = _fake_run(tmp_path, tiny_lm_dir, policy=False)
    with pytest.raises(ConfigError, match=r"has no trained policy .*textenv train --resume"):
        run_source(run)
    with pytest.raises(ConfigError, match="not a run folder"):
        run_source(tmp_path)


def test_serve_and_cli_need_tasks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["label", "cli", "--db", str(tmp_path / "l.sqlite"), "--annotator", "bob"]) == 2
    assert "holds no tasks" in capsys.readouterr().err
    assert not (tmp_path / "l.sqlite").exists()
    assert main(["label", "export", "--db", str(tmp_path / "missing.sqlite"), "--out", str(tmp_path / "o")]) == 2
    assert "no label database" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["serve", "cli"])
def test_a_refused_task_file_leaves_no_database_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "completions": ["a"]}\n', encoding="utf-8")  # one completion, not two
    clash = tmp_path / "clash.jsonl"  # valid records, but one id for two different tasks
    clash.write_text(
        "".join(json.dumps({"id": "t", "prompt": p, "completions": ["a", "b"]}) + "\n" for p in ("p", "q")),
        encoding="utf-8",
    )
    db = tmp_path / "labels.sqlite"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    for tasks, message in ((bad, "two"), (clash, "ids must be unique"), (empty, "holds no tasks")):
        extra = ["--annotator", "bob"] if command == "cli" else []
        assert main(["label", command, "--db", str(db), "--tasks", str(tasks), *extra]) == 2
        assert message in capsys.readouterr().err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "clash.jsonl", "empty.jsonl"]


def test_from_a_model_to_labels_to_a_reward_model_to_an_env(
    tiny_lm_dir: Path,
    prompt_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tasks = _tasks(tiny_lm_dir, prompt_file, tmp_path / "tasks.jsonl")
    db = tmp_path / "labels.sqlite"
    # a person in the terminal: A for every task, with ratings on the first
    script = "a\n4 3 5 4\n\n" + "a\n\n\n" * (len(tasks) - 1)
    monkeypatch.setattr("sys.stdin", io.StringIO(script))
    argv = ["label", "cli", "--db", str(db), "--annotator", "alice", "--tasks", str(tmp_path / "tasks.jsonl")]
    assert main([*argv, "--ratings"]) == 0
    assert f"All {len(tasks)} tasks are labeled" in capsys.readouterr().out
    assert main(["label", "stats", "--db", str(db), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["labels"] == len(tasks)
    assert stats["share_a"] == 1.0
    assert stats["ratings"] == 1
    prefs = tmp_path / "prefs.jsonl"
    assert main(["label", "export", "--db", str(db), "--out", str(prefs)]) == 0
    assert f"wrote {len(tasks)} pairs and 1 ratings" in capsys.readouterr().out
    assert len(LabelStore(db).labels()) == len(tasks)

    rm = tmp_path / "rm"
    train = ["rm", "train", "--data", str(prefs), "--base", str(tiny_lm_dir), "--out", str(rm)]
    assert main([*train, "--epochs", "1", "--batch-size", "8", "--eval-fraction", "0.2", "--no-progress"]) == 0
    env = gym.make(
        "textenv/TextGen-v0",
        model=str(tiny_lm_dir),
        prompts=str(prompt_file),
        reward="learned",
        reward_kwargs={"path": str(rm)},
        max_new_tokens=4,
    )
    env.reset(seed=0)
    done, info = False, {}
    while not done:
        _, _, done, _, info = env.step(env.action_space.sample())
    expected = rewards.make("learned", path=str(rm))([info["prompt"]], [info["completion"]])[0]
    assert np.isfinite(info["rm_score"])
    assert info["rm_score"] == pytest.approx(expected, abs=1e-5)
