"""Fixtures of the human-feedback tests: tasks, a label store, and the labeling server as a real process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from rewards.human import LabelStore, LabelTask, write_tasks

REPO = Path(__file__).resolve().parents[3]


def in_ci(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this is a CI run (``CI`` set to true, as GitHub Actions, GitLab CI and most others do)."""
    return environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def skip_unless_ci(reason: str, environ: Mapping[str, str] = os.environ) -> NoReturn:
    """Skip the test for ``reason`` on a developer's machine; fail it in CI, where a skip would hide it."""
    if in_ci(environ):
        pytest.fail(f"{reason}. CI=true: a test that cannot run fails here instead of skipping.", pytrace=False)
    pytest.skip(reason)


def browser_paths(chromium: str | None, chromedriver: str | None, environ: Mapping[str, str] = os.environ) -> None:
    """Check that Debian's chromium and chromium-driver exist at the given paths; skip, or fail in CI, if not."""
    missing = [name for name, path in (("chromium", chromium), ("chromedriver", chromedriver))
               if path is None or not Path(path).is_file()]  # fmt: skip
    if missing:
        skip_unless_ci(
            f"{' and '.join(missing)} not found (`make test` installs Debian's chromium and chromium-driver with "
            "apt-get; or run: apt-get install -y chromium chromium-driver)",
            environ,
        )


def make_tasks(n: int, prefix: str = "p") -> list[LabelTask]:
    """``n`` distinct tasks with short texts."""
    return [LabelTask(f"{prefix} prompt {i}", (f" first answer {i}", f" second answer {i}")) for i in range(n)]


@pytest.fixture
def store(tmp_path: Path) -> LabelStore:
    """A fresh label database holding six tasks."""
    db = LabelStore(tmp_path / "labels.sqlite")
    db.add_tasks(make_tasks(6))
    return db


def free_port() -> int:
    """A TCP port that was free a moment ago (the server binds it right after)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """``textenv label serve`` running as a subprocess."""

    process: subprocess.Popen[bytes]
    url: str
    db: Path
    log: Path

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, nothing is flushed by the server."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def run_server(
    tmp_path: Path, tasks: list[LabelTask], *extra: str, env: dict[str, str] | None = None, host: str = "127.0.0.1"
) -> Iterator[ServerProcess]:
    """Start ``textenv label serve --host host`` on a free port with ``tasks``; wait until it answers; stop it
    afterwards."""
    import httpx

    task_file = tmp_path / "tasks.jsonl"
    write_tasks(task_file, tasks)
    db, log, port = tmp_path / "labels.sqlite", tmp_path / "server.log", free_port()
    command = [sys.executable, "-m", "agents.cli", "label", "serve", "--tasks", str(task_file), "--db", str(db)]
    command += ["--host", host, "--port", str(port), *extra]
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    environ.update(env or {})
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT, env=environ)
    server = ServerProcess(process, f"http://{host}:{port}", db, log)
    headers = {"X-Textenv-Token": environ["TEXTENV_LABEL_TOKEN"]} if environ.get("TEXTENV_LABEL_TOKEN") else {}
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}:\n{server.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server.url}/api/health", headers=headers, timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer within 60 s:\n{server.output()}")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
