"""``textenv label serve`` as a real process: labels survive SIGKILL, two annotators at once, no token in the logs."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason='the labeling page needs the "label" extra')
pytest.importorskip("uvicorn", reason='the labeling page needs the "label" extra')
import httpx

from agents.cli import main
from rewards.human import LabelStore, compute_stats

from .conftest import make_tasks, run_server

TOKEN = "s3cret-token-that-must-not-leak"


def _label(client: httpx.Client, annotator: str, choice: str) -> dict:
    task = client.get("/api/next", params={"annotator": annotator}).json()["task"]
    body = {"annotator": annotator, "task_id": task["id"], "shown": task["shown"], "choice": choice}
    response = client.post("/api/labels", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_labels_acknowledged_before_a_sigkill_are_all_on_disk(tmp_path: Path) -> None:
    with run_server(tmp_path, make_tasks(12)) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            acknowledged = [_label(client, "alice", choice)["label_id"] for choice in "AB" * 5]
            client.post("/api/undo", json={"annotator": "alice"}).raise_for_status()
        server.kill()  # right after the last response: no shutdown, no flush, no checkpoint
        assert server.process.returncode == -9
    store = LabelStore(server.db)  # reopening recovers from the write-ahead log
    history = store.labels(include_undone=True, latest_only=False)
    assert [label.id for label in history] == acknowledged
    assert [label.undone_at is not None for label in history] == [False] * 9 + [True]
    assert store.progress("alice") == (9, 12)


def test_two_annotators_over_http_at_once_and_stats_report_kappa(tmp_path: Path, capsys) -> None:
    choices = {"alice": "AABBAABBTA", "bob": "ABBBAABTTA"}

    def annotate(annotator: str, url: str) -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            for letter in choices[annotator]:
                _label(client, annotator, {"T": "tie"}.get(letter, letter))

    with run_server(tmp_path, make_tasks(10)) as server:
        threads = [threading.Thread(target=annotate, args=(name, server.url)) for name in choices]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    stats = compute_stats(LabelStore(server.db))
    assert stats.per_annotator == {"alice": 10, "bob": 10}
    assert stats.agreement[0].shared_tasks == 10
    assert main(["label", "stats", "--db", str(server.db)]) == 0
    printed = capsys.readouterr().out
    assert "agreement alice / bob: Cohen's kappa" in printed
    assert "on 10 shared tasks" in printed


def test_a_token_server_checks_every_request_and_never_logs_the_token(tmp_path: Path) -> None:
    # off the loopback, a token is required before anything starts
    assert main(["label", "serve", "--db", str(tmp_path / "x.sqlite"), "--host", "0.0.0.0"]) == 2
    assert not (tmp_path / "x.sqlite").exists()
    env = {"TEXTENV_LABEL_TOKEN": TOKEN}
    with run_server(tmp_path, make_tasks(3), env=env) as server:
        assert httpx.get(f"{server.url}/api/health").status_code == 401
        assert httpx.get(f"{server.url}/?token=wrong-token-wrong-token").status_code == 401
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/", params={"token": TOKEN}).status_code == 200  # sets the cookie
            _label(client, "alice", "A")
        server.process.terminate()
        server.process.wait(timeout=10)
        log = server.output()
    assert "open http://127.0.0.1:" in log
    assert "?token=<your token>" in log
    assert TOKEN not in log


def test_any_loopback_address_serves_without_a_token(tmp_path: Path) -> None:
    # run_server waits for a 200 from http://127.0.0.2:PORT/api/health
    with run_server(tmp_path, make_tasks(2), host="127.0.0.2") as server, httpx.Client(base_url=server.url) as client:
        assert _label(client, "alice", "A")["progress"]["labeled"] == 1
        assert client.get("/api/health", headers={"host": "evil.example"}).status_code == 400
