"""The stage runner: hashes, skipping done stages, atomic completion, resuming after a crash (no models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.pipeline.runner import DONE_FILE, Stage, StageContext, fingerprint, read_record, run_stages, stage_hash


class Work:
    """Stage functions that count their calls, write one output file, and can be told to crash."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.crash: set[str] = set()

    def stage(self, name: str, spec: dict | None = None, inputs: tuple[str, ...] = (), resumable: bool = False):
        def run(ctx: StageContext):
            self.calls.append(name)
            (ctx.folder / "partial.txt").write_text("half done")
            if name in self.crash:
                raise KeyboardInterrupt  # Ctrl-C in the middle of the stage (test_sigkill.py kills for real)
            upstream = {n: ctx.records[n].path(ctx.root, "out").read_text() for n in inputs}
            (ctx.folder / "out.txt").write_text(json.dumps({"name": name, "upstream": upstream}))
            return {"out": "out.txt"}, {"calls": len(self.calls)}

        return Stage(name, spec or {}, inputs, run, resumable)

    def plan(self, b_spec: dict | None = None) -> list[Stage]:
        return [self.stage("a"), self.stage("b", b_spec, ("a",)), self.stage("c", {}, ("b",))]


def _quiet(_: str) -> None:
    pass


def test_a_second_run_skips_every_done_stage(tmp_path: Path) -> None:
    work = Work()
    log = run_stages(work.plan(), tmp_path, say=_quiet)
    assert work.calls == ["a", "b", "c"]
    assert log.ran == ["a", "b", "c"]
    again = run_stages(work.plan(), tmp_path, say=_quiet)
    assert work.calls == ["a", "b", "c"]
    assert again.reused == ["a", "b", "c"]
    assert json.loads((tmp_path / "c" / "out.txt").read_text())["upstream"]["b"]


def test_a_changed_config_reruns_that_stage_and_the_ones_after_it(tmp_path: Path) -> None:
    work = Work()
    run_stages(work.plan(), tmp_path, say=_quiet)
    work.calls.clear()
    log = run_stages(work.plan(b_spec={"lr": 2}), tmp_path, say=_quiet)
    assert work.calls == ["b", "c"]
    assert log.reused == ["a"]


def test_a_stage_interrupted_midway_is_not_done_and_only_it_reruns(tmp_path: Path) -> None:
    work = Work()
    work.crash = {"b"}
    with pytest.raises(KeyboardInterrupt):
        run_stages(work.plan(), tmp_path, say=_quiet)
    assert read_record(tmp_path / "a") is not None
    assert not (tmp_path / "b" / DONE_FILE).exists()
    assert not (tmp_path / "c").exists()
    a_done = (tmp_path / "a" / DONE_FILE).stat().st_mtime_ns
    work.crash, work.calls = set(), []
    log = run_stages(work.plan(), tmp_path, say=_quiet)
    assert work.calls == ["b", "c"]
    assert log.reused == ["a"]
    assert (tmp_path / "a" / DONE_FILE).stat().st_mtime_ns == a_done


def test_a_restarted_stage_starts_from_a_clean_folder_unless_resumable(tmp_path: Path) -> None:
    seen: list[bool] = []

    def look(ctx: StageContext):
        seen.append((ctx.folder / "partial.txt").exists())
        (ctx.folder / "partial.txt").write_text("x")
        if len(seen) == 1:
            raise KeyboardInterrupt
        (ctx.folder / "out.txt").write_text("done")
        return {"out": "out.txt"}, {}

    for resumable in (False, True):
        seen.clear()
        stage = Stage(f"s{resumable}", {}, (), look, resumable)
        with pytest.raises(KeyboardInterrupt):
            run_stages([stage], tmp_path, say=_quiet)
        run_stages([stage], tmp_path, say=_quiet)
        assert seen == [False, resumable]
        run_stages([stage], tmp_path, say=_quiet, force=[stage.name])  # forced: from scratch, even if resumable
        assert seen == [False, resumable, False]


def test_a_resumable_stage_is_wiped_when_its_config_changed(tmp_path: Path) -> None:
    def crash(ctx: StageContext):
        (ctx.folder / "partial.txt").write_text("x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_stages([Stage("s", {"v": 1}, (), crash, True)], tmp_path, say=_quiet)

    def check(ctx: StageContext):
        assert not (ctx.folder / "partial.txt").exists()
        (ctx.folder / "out.txt").write_text("done")
        return {"out": "out.txt"}, {}

    run_stages([Stage("s", {"v": 2}, (), check, True)], tmp_path, say=_quiet)


def test_a_missing_output_or_force_reruns_a_done_stage(tmp_path: Path) -> None:
    work = Work()
    run_stages(work.plan(), tmp_path, say=_quiet)
    (tmp_path / "c" / "out.txt").unlink()
    work.calls.clear()
    run_stages(work.plan(), tmp_path, say=_quiet)
    assert work.calls == ["c"]
    work.calls.clear()
    run_stages(work.plan(), tmp_path, say=_quiet, force=["a"])
    assert work.calls == ["a"]  # a's result hash is its config's: b and c keep theirs


def test_hashes_follow_spec_inputs_and_file_contents(tmp_path: Path) -> None:
    data = tmp_path / "demos.jsonl"
    data.write_text('{"prompt": "a", "response": "b"}\n')
    first = fingerprint(str(data))
    assert first is not None
    assert first.startswith("file:")
    data.write_text('{"prompt": "a", "response": "c"}\n')
    assert fingerprint(str(data)) != first
    assert fingerprint("textenv/toy-gpt2") == "textenv/toy-gpt2"
    assert fingerprint(str(tmp_path)).startswith("dir:")
    noop = Stage("s", {"x": 1}, (), lambda ctx: ({}, {}))
    assert stage_hash(noop, {}) == stage_hash(Stage("s", {"x": 1}, (), lambda ctx: ({}, {})), {})
    assert stage_hash(noop, {}) != stage_hash(Stage("s", {"x": 2}, (), lambda ctx: ({}, {})), {})
