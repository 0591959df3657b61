"""compare on Ray: each (algo, seed) run is a Ray task; a killed worker's run is retried from its checkpoint, and
the report's numbers equal the sequential comparison's. One local cluster on loopback for the module."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from agents.cli import build_parser, ray_options
from agents.compare import compare
from agents.ray_runs import RayOptions
from textenv.errors import ConfigError, RayAddressError

ray = pytest.importorskip("ray")

# Each run reserves both CPUs of the test cluster, so the runs train one after another and the test knows
# which worker to kill.
SETTINGS = {"env": "textenv/Toy-v0", "algos": ["ppo", "a2c"], "seeds": [0], "preset": "tiny"}
OVERRIDES = {"checkpoint_every": 1, "eval_episodes": 2, "device": "cpu"}
BUDGET = 384


@pytest.fixture(scope="module")
def cluster():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _numbers(result):
    """Every number of the comparison's runs, flat: tokens, final evaluation and the training curve."""
    numbers = {}
    for run in result.runs:
        key = (run.config.algo, run.config.seed)
        numbers.update({(*key, "tokens"): run.tokens, (*key, "rm_score"): run.after["rm_score"],
                        (*key, "kl"): run.after["kl"]})  # fmt: skip
        for i, row in enumerate(run.history):
            numbers[(*key, "curve", i)] = row["rollout/rm_score"]
    return numbers


def _tensorboard_first_steps(folder: Path) -> list[int]:
    """The first logged step of each TensorBoard file of a run (one file per process that trained it)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    firsts = []
    for path in sorted((folder / "tb").glob("events.out.tfevents.*")):
        steps = [event.step for event in EventFileLoader(str(path)).Load() if event.HasField("summary")]
        if steps:
            firsts.append(min(steps))
    return firsts


def _kill_the_worker_after_its_first_checkpoint(checkpoint: Path) -> int:
    """SIGKILL the process running a training task once ``checkpoint`` exists; its pid."""
    import psutil

    deadline = time.monotonic() + 300  # a wait for the run to get going, not a measurement
    while not (checkpoint / "model.zip").exists():
        assert time.monotonic() < deadline, "the run never wrote its first checkpoint"
        time.sleep(0.05)
    # The local cluster's processes descend from this test process (another cluster on the machine is not ours).
    workers = [p for p in psutil.Process().children(recursive=True) if "ray::_train_run" in " ".join(p.cmdline())]
    assert len(workers) == 1, workers
    os.kill(workers[0].pid, signal.SIGKILL)
    return workers[0].pid


@pytest.mark.slow  # fast: test_a_storage_folder_holds_the_runs... (Ray runs), tests/agents/test_compare.py (resume)
def test_a_killed_worker_s_run_resumes_and_the_report_equals_the_sequential_one(cluster, tmp_path, torch_threads):
    import threading

    with torch_threads(2):  # as the Ray tasks run (Ray gives a task of 2 CPUs 2 threads): the same float sums
        sequential = compare(**SETTINGS, budget_tokens=BUDGET, out_dir=tmp_path / "sequential", overrides=OVERRIDES,
                             progress=False)  # fmt: skip
    killed: list[int] = []
    killer = threading.Thread(
        target=lambda: killed.append(_kill_the_worker_after_its_first_checkpoint(tmp_path / "ray/ppo/seed0/checkpoint"))
    )
    killer.start()
    on_ray = compare(**SETTINGS, budget_tokens=BUDGET, out_dir=tmp_path / "ray", overrides=OVERRIDES, progress=False,
                     ray=RayOptions(num_cpus=2, max_retries=2))  # fmt: skip
    killer.join()
    assert killed, "no worker was killed"
    # Tokens, scores and curves are equal; the KL estimate (a sum of log-prob differences) to float32 rounding.
    assert _numbers(on_ray) == pytest.approx(_numbers(sequential), rel=1e-5)
    # Two processes trained the PPO run: the killed one from token 0, the retry from its checkpoint on, not again.
    firsts = _tensorboard_first_steps(tmp_path / "ray/ppo/seed0")
    assert len(firsts) == 2
    assert firsts[1] > firsts[0]
    assert (
        _tensorboard_first_steps(tmp_path / "ray/a2c/seed0")
        == _tensorboard_first_steps(tmp_path / "sequential/a2c/seed0")[:1]
    )
    assert "Trained on Ray" in on_ray.report.read_text(encoding="utf-8")
    summary = json.loads((tmp_path / "ray/ppo/seed0/result.json").read_text())
    assert summary["tokens"] == BUDGET


def test_a_storage_folder_holds_the_runs_while_they_train_and_the_comparison_gets_them(cluster, tmp_path):
    result = compare(env="textenv/Toy-v0", algos=["ppo"], seeds=[1], preset="tiny", budget_tokens=128,
                     out_dir=tmp_path / "out", overrides=OVERRIDES, progress=False,
                     ray=RayOptions(num_cpus=1, storage=str(tmp_path / "shared")))  # fmt: skip
    assert (tmp_path / "shared/ppo/seed1/result.json").is_file()
    assert (tmp_path / "out/ppo/seed1/result.json").is_file()
    assert result.runs[0].out_dir == tmp_path / "out/ppo/seed1"
    assert result.runs[0].tokens == 128


def test_ray_flags_and_bad_settings():
    args = build_parser().parse_args(["compare", "--ray", "--ray-cpus", "2", "--storage", "/shared/runs"])
    assert ray_options(args) == RayOptions(address=None, storage="/shared/runs", num_cpus=2.0, num_gpus=0.0)
    args = build_parser().parse_args(["demo", "--ray", "auto"])
    assert ray_options(args).address == "auto"
    assert ray_options(build_parser().parse_args(["compare"])) is None
    args = build_parser().parse_args(["pipeline", "--config", "p.yaml", "--ray", "ray://head:10001", "--ray-gpus", "1"])
    assert ray_options(args) == RayOptions(address="ray://head:10001", num_gpus=1.0)
    with pytest.raises(ConfigError, match="--storage applies to runs on Ray"):
        ray_options(build_parser().parse_args(["compare", "--storage", "x"]))
    with pytest.raises(ConfigError, match="num_cpus > 0 or num_gpus > 0"):
        RayOptions(num_cpus=0)
    with pytest.raises(ConfigError, match="max_retries"):
        RayOptions(max_retries=-1)


def test_a_bad_address_fails_before_any_run_with_the_fix(tmp_path):
    with pytest.raises(RayAddressError, match="not a Ray address"):
        compare(env="textenv/Toy-v0", algos=["ppo"], seeds=[0], preset="tiny", budget_tokens=64,
                out_dir=tmp_path, progress=False, ray=RayOptions(address="no-port-here"))  # fmt: skip
