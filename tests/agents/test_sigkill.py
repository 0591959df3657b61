"""Real kills: a training run and the pipeline are SIGKILLed in a subprocess, then run again.

A SIGKILL runs no ``finally`` block and no exit handler, unlike the ``KeyboardInterrupt`` that other tests
raise: what is on disk at that moment is all the next run gets. The child (``sigkill_child.py``) runs the
``textenv`` command line and stops at a chosen point, tells this process through a pipe, and is killed there,
so the point of the kill is known without guessing at timing.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents.cli import main
from agents.config import TrainConfig
from agents.pipeline.runner import DONE_FILE

CHILD = Path(__file__).with_name("sigkill_child.py")

# slow: processes killed and rerun; fast: the Ctrl-C resume tests of test_train.py and test_pipeline.py
pytestmark = [
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX-only"),
    pytest.mark.slow,
]


def run_and_kill(args: list[str], point: str, log: Path) -> None:
    """Run ``textenv args`` in a child process until it reaches ``point``, then SIGKILL it."""
    read_fd, write_fd = os.pipe()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with log.open("wb") as sink:
        child = subprocess.Popen(
            [sys.executable, str(CHILD), str(write_fd), point, *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd,),
            env=env,
        )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            message = pipe.readline()  # b"" if the child exits without reaching the point
        if message != b"ready\n":
            child.wait()
            pytest.fail(f"the child exited ({child.returncode}) before {point}:\n{log.read_text(errors='replace')}")
        child.send_signal(signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def watch_rollouts(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """Record, per algorithm, the token count at which each rollout starts in this process."""
    from agents.callbacks import RLHFMetricsCallback

    starts: dict[str, list[int]] = {}
    on_rollout_start = RLHFMetricsCallback._on_rollout_start

    def recorded(self: RLHFMetricsCallback) -> None:
        starts.setdefault(type(self.model).__name__.lower(), []).append(self.num_timesteps)
        on_rollout_start(self)

    monkeypatch.setattr(RLHFMetricsCallback, "_on_rollout_start", recorded)
    return starts


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def assert_same_run(run: Path, reference: Path) -> None:
    """The rollout curves and the final evaluation of two run folders agree."""
    rows, expected = read_rows(run / "metrics.csv"), read_rows(reference / "metrics.csv")
    assert [float(r["time/total_tokens"]) for r in rows] == [float(r["time/total_tokens"]) for r in expected]
    for key in ("rollout/rm_score", "rollout/kl", "rollout/return"):
        assert [float(r[key]) for r in rows] == pytest.approx([float(r[key]) for r in expected], abs=1e-5), key
    after = json.loads((run / "result.json").read_text())["after"]
    after_expected = json.loads((reference / "result.json").read_text())["after"]
    assert after["rm_score"] == pytest.approx(after_expected["rm_score"], abs=1e-6)
    assert after["kl"] == pytest.approx(after_expected["kl"], abs=1e-5)
    assert [s["completion"] for s in after["samples"]] == [s["completion"] for s in after_expected["samples"]]


def test_a_training_run_killed_mid_rollout_resumes_from_its_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 64 tokens per rollout (4 envs × 16 steps), a checkpoint every 2 rollouts: killed at 224 tokens, in the
    # middle of rollout 4, the run has a checkpoint at 128 and a metrics row (192) logged after it.
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"checkpoint_every": 2, "eval_episodes": 4, "sample_every": 1}))
    args = ["train", "--env", "textenv/Toy-v0", "--algo", "ppo", "--preset", "tiny", "--config", str(config),
            "--budget-tokens", "320", "--no-progress"]  # fmt: skip
    killed = tmp_path / "killed"
    run_and_kill([*args, "--out", str(killed)], "rl:ppo:224", tmp_path / "child.log")
    assert json.loads((killed / "checkpoint" / "checkpoint.json").read_text())["num_timesteps"] == 128
    assert [float(r["time/total_tokens"]) for r in read_rows(killed / "metrics.csv")] == [64, 128, 192]
    assert not (killed / "result.json").exists()

    starts = watch_rollouts(monkeypatch)
    assert main([*args, "--out", str(killed), "--resume"]) == 0
    assert starts == {"ppo": [128, 192, 256]}  # from the checkpoint: the two rollouts before it are not redone
    assert json.loads((killed / "result.json").read_text())["tokens"] == 320

    starts.clear()
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    assert starts == {"ppo": [0, 64, 128, 192, 256]}
    assert_same_run(killed, tmp_path / "whole")
    samples = [json.loads(line)["tokens"] for line in (killed / "samples.jsonl").read_text().splitlines()]
    whole = [json.loads(line)["tokens"] for line in (tmp_path / "whole" / "samples.jsonl").read_text().splitlines()]
    assert samples == whole  # the samples logged after the checkpoint were dropped, not kept twice


def _pipeline_config(tmp_path: Path) -> dict[str, Any]:
    demos = tmp_path / "demos.jsonl"
    pairs = [("the movie was", " very good and fun"), ("the book is", " great and i love it"),
             ("the day was", " nice and happy"), ("the game was", " the best")]  # fmt: skip
    demos.write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in pairs))
    return {
        "name": "killed",
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
        "reward_model": {"epochs": 1, "batch_size": 4, "learning_rate": 1e-3, "max_length": 24},
        # 16 tokens per rollout (4 envs × 4 steps), 4 rollouts per run, a checkpoint every 2 rollouts.
        "rl": {
            "algos": ["ppo", "a2c"],
            "seeds": 1,
            "budget_tokens": 64,
            "preset": "tiny",
            "train": {"eval_episodes": 2, "n_steps": 4, "checkpoint_every": 2},
            "env_kwargs": {"max_new_tokens": 4},
        },
        "evaluation": {"n_prompts": 2, "samples_per_prompt": 1},
    }


def test_the_pipeline_killed_in_two_stages_reuses_what_was_done_and_resumes_the_killed_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = tmp_path / "pipeline.yaml"
    config_file.write_text(yaml.safe_dump(_pipeline_config(tmp_path)))
    root = tmp_path / "runs" / "killed"
    args = ["pipeline", "--config", str(config_file), "--no-progress"]

    # Killed while the reward model trains: the stages before it are done, it is not.
    run_and_kill(args, "reward_model", tmp_path / "first.log")
    for stage in ("sft", "preferences"):
        assert (root / stage / DONE_FILE).exists(), stage
    assert (root / "reward_model").is_dir()
    assert not (root / "reward_model" / DONE_FILE).exists()
    assert not (root / "rl").exists()
    done = {s: (root / s / DONE_FILE).read_text() for s in ("sft", "preferences")}

    # Run again, killed in the middle of A2C's third rollout (after PPO's run finished): 40 tokens, with A2C's
    # checkpoint at 32.
    run_and_kill(args, "rl:a2c:40", tmp_path / "second.log")
    second = (tmp_path / "second.log").read_text(errors="replace")
    assert "[sft] done earlier" in second
    assert "[preferences] done earlier" in second
    assert "[reward_model] running" in second
    assert {s: (root / s / DONE_FILE).read_text() for s in done} == done
    assert (root / "reward_model" / DONE_FILE).exists()
    assert not (root / "rl" / DONE_FILE).exists()
    ppo, a2c = root / "rl" / "compare" / "ppo" / "seed0", root / "rl" / "compare" / "a2c" / "seed0"
    assert json.loads((ppo / "result.json").read_text())["tokens"] == 64
    ppo_result = (ppo / "result.json").read_text()
    assert json.loads((a2c / "checkpoint" / "checkpoint.json").read_text())["num_timesteps"] == 32
    assert not (a2c / "result.json").exists()
    done["reward_model"] = (root / "reward_model" / DONE_FILE).read_text()

    # Run to the end in this process: every done stage is reused, PPO's run is read back, A2C's resumes.
    starts = watch_rollouts(monkeypatch)
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "ran rl, evaluation (reused: sft, preferences, reward_model)" in out
    assert {s: (root / s / DONE_FILE).read_text() for s in done} == done
    assert starts == {"a2c": [32, 48]}  # no PPO rollout at all, and A2C's first two are not redone
    assert (ppo / "result.json").read_text() == ppo_result
    assert (root / "evaluation" / DONE_FILE).exists()

    # The resumed run's numbers are those of the same run trained without a kill.
    config = TrainConfig(**yaml.safe_load((a2c / "config.yaml").read_text()))
    from agents.train import train

    train(config, tmp_path / "a2c-whole", progress=False)
    assert_same_run(a2c, tmp_path / "a2c-whole")
