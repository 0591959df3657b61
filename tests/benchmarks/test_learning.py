"""benchmarks.learning: reading a finished demo's evaluation samples and training wall times back."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.learning import _demo_runs


def test_the_demo_is_read_back_by_policy_and_run(tmp_path: Path) -> None:
    (tmp_path / "evaluation").mkdir()
    records = [
        {"policy": "start", "index": 0, "rm_score": 0.1},
        {"policy": "start", "index": 1, "rm_score": 0.2},
        {"policy": "ppo/seed0", "index": 0, "rm_score": 0.5},
    ]
    (tmp_path / "evaluation" / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    for algo, wall in (("ppo", 95.5), ("a2c", 116.0)):
        (tmp_path / algo / "seed0").mkdir(parents=True)
        (tmp_path / algo / "seed0" / "result.json").write_text(json.dumps({"wall_time_s": wall}))
    found = _demo_runs(tmp_path)
    assert [s["rm_score"] for s in found["samples"]["start"]] == [0.1, 0.2]
    assert found["samples"]["ppo/seed0"] == [{"index": 0, "rm_score": 0.5}]
    assert found["walls"] == {"ppo/seed0": 95.5, "a2c/seed0": 116.0}
