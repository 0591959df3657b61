"""Running stages in order, skipping the ones already done with the same config and inputs.

Each stage writes into its own folder ``<run>/<stage>/``. Its **hash** covers the stage's config section,
the fingerprints of the files it reads (demonstrations, preference files, a labels database, prompt files,
local model folders: contents for files, names/sizes/times for folders) and the hashes of the stages whose
outputs it reads. A stage is **done** when its folder holds ``done.json`` with that hash and every output
it lists exists; ``done.json`` is written last, by an atomic rename, so a stage killed at any point has
none and runs again, while the stages before it are skipped.

A stage that starts wipes its folder first, unless it is *resumable* (the RL stage: its runs keep their own
checkpoints) and its folder was started with the same hash (``started.json``): then it continues where it
stopped. A changed hash invalidates the stage and, through the input hashes, every stage after it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from textenv_common.atomic import write_text_atomic

__all__ = ["DONE_FILE", "Stage", "StageContext", "StageRecord", "fingerprint", "run_stages", "stage_hash"]

DONE_FILE = "done.json"
STARTED_FILE = "started.json"
_FORMAT = 1  # bump to invalidate every stage written by an older layout


@dataclass(frozen=True)
class StageRecord:
    """What a finished stage wrote (``done.json``)."""

    stage: str
    hash: str
    outputs: dict[str, Any]
    """Name → path relative to the stage folder (or a list of such paths)."""
    metrics: dict[str, Any]
    wall_time_s: float
    finished_at: str

    def path(self, root: Path, key: str) -> Path:
        """The absolute path of output ``key``."""
        return (root / self.stage / str(self.outputs[key])).resolve()

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``done.json``."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class StageContext:
    """What a stage function gets: its folder, the run folder and the records of the stages before it."""

    folder: Path
    root: Path
    records: Mapping[str, StageRecord]
    progress: bool
    say: Callable[[str], None]


StageFn = Callable[[StageContext], tuple[dict[str, Any], dict[str, Any]]]


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline."""

    name: str
    spec: dict[str, Any]
    """The plain data that defines the stage's result (config section and input fingerprints)."""
    inputs: tuple[str, ...]
    """The stages whose outputs it reads."""
    run: StageFn
    """Does the work; returns (outputs, metrics)."""
    resumable: bool = False
    """Whether an interrupted attempt with the same hash may be continued instead of wiped."""


@dataclass
class RunLog:
    """What :func:`run_stages` did."""

    records: dict[str, StageRecord] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)


def fingerprint(spec: str | None, *, with_wal: bool = False) -> str | None:
    """A short identity of an input: file contents, a folder's listing, or the name itself (a hub id, builtin:...).

    Args:
        spec: A path or a name.
        with_wal: Include the SQLite write-ahead log next to a file (``<file>-wal``), where recent rows live.
    """
    if spec is None:
        return None
    path = Path(spec).expanduser()
    if path.is_file():
        digest = hashlib.sha256()
        files = [path] + ([Path(f"{path}-wal")] if with_wal and Path(f"{path}-wal").is_file() else [])
        for file in files:
            with file.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
        return f"file:{digest.hexdigest()[:16]}"
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            stat = file.stat()
            digest.update(f"{file.relative_to(path).as_posix()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        return f"dir:{digest.hexdigest()[:16]}"
    return spec


def stage_hash(stage: Stage, records: Mapping[str, StageRecord]) -> str:
    """The hash of a stage's spec and of its inputs' hashes."""
    payload = {
        "format": _FORMAT,
        "stage": stage.name,
        "spec": stage.spec,
        "inputs": {name: records[name].hash for name in stage.inputs},
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def read_record(folder: Path) -> StageRecord | None:
    """The ``done.json`` of a stage folder, or None when absent or unreadable."""
    try:
        data = json.loads((folder / DONE_FILE).read_text(encoding="utf-8"))
        return StageRecord(**data)
    except (OSError, ValueError, TypeError):
        return None


def _outputs_exist(folder: Path, outputs: Mapping[str, Any]) -> bool:
    paths: list[str] = []
    for value in outputs.values():
        paths.extend(value if isinstance(value, list) else [value])
    return all((folder / str(p)).exists() for p in paths)


def _prepare(folder: Path, stage: Stage, digest: str, forced: bool) -> None:
    started = None
    with contextlib.suppress(OSError, ValueError, AttributeError):  # no or a torn marker: not resumable
        started = json.loads((folder / STARTED_FILE).read_text(encoding="utf-8")).get("hash")
    if folder.exists() and (forced or not (stage.resumable and started == digest)):
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DONE_FILE).unlink(missing_ok=True)
    write_text_atomic(folder / STARTED_FILE, json.dumps({"stage": stage.name, "hash": digest}) + "\n", overwrite=True)


def run_stages(
    stages: Sequence[Stage],
    root: Path,
    *,
    force: Sequence[str] = (),
    progress: bool = True,
    say: Callable[[str], None] = print,
    log: RunLog | None = None,
) -> RunLog:
    """Run ``stages`` in order under ``root``, skipping each one that is done with the same hash.

    Args:
        stages: The stages, each after the ones it reads.
        root: The run folder.
        force: Names of stages to run again from scratch even if done (the stages after them rerun only if their
            inputs changed).
        progress: Passed on to the stages (progress bars).
        say: Where one-line status messages go.
        log: Filled in as stages finish (so a caller sees what ran even if a later stage raises).
    """
    log = log if log is not None else RunLog()
    for stage in stages:
        digest = stage_hash(stage, log.records)
        folder = root / stage.name
        done = read_record(folder)
        if (
            stage.name not in force
            and done is not None
            and done.hash == digest
            and _outputs_exist(folder, done.outputs)
        ):
            say(f"[{stage.name}] done earlier with the same config and inputs ({digest}); skipped")
            log.records[stage.name] = done
            log.reused.append(stage.name)
            continue
        say(f"[{stage.name}] running ({digest})")
        _prepare(folder, stage, digest, forced=stage.name in force)
        started = time.perf_counter()
        outputs, metrics = stage.run(StageContext(folder, root, dict(log.records), progress, say))
        record = StageRecord(
            stage=stage.name,
            hash=digest,
            outputs=outputs,
            metrics=metrics,
            wall_time_s=round(time.perf_counter() - started, 2),
            finished_at=datetime.now().astimezone().isoformat(timespec="seconds"),
        )
        # Last, and atomically: the stage counts as done only once everything above is on disk.
        write_text_atomic(
            folder / DONE_FILE, json.dumps(record.to_json(), indent=2, default=str) + "\n", overwrite=True
        )
        log.records[stage.name] = record
        log.ran.append(stage.name)
        say(f"[{stage.name}] done in {record.wall_time_s:.1f} s")
    return log
