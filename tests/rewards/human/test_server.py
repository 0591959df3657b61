"""The labeling app through FastAPI's TestClient: the page, the API, validation, limits, token and host checks."""

from __future__ import annotations

import threading
from importlib import resources

import pytest

pytest.importorskip("fastapi", reason='the labeling page needs the "label" extra')
from fastapi.testclient import TestClient

from rewards.errors import LabelingError
from rewards.human import LabelStore, cohen_kappa, compute_stats
from rewards.human.server import TOKEN_HEADER, check_token, create_app

FULL = {"coherence": 4, "creativity": 2, "relevance": 5, "fluency": 3}
TOKEN = "correct-horse-battery-staple"


@pytest.fixture
def client(store: LabelStore) -> TestClient:
    return TestClient(create_app(store))


def _label(client: TestClient, annotator: str, choice: str, **extra: object) -> dict:
    task = client.get("/api/next", params={"annotator": annotator}).json()["task"]
    body = {"annotator": annotator, "task_id": task["id"], "shown": task["shown"], "choice": choice, **extra}
    response = client.post("/api/labels", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_page_and_its_script_are_served_with_a_strict_policy(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script src="page.js"' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    script = client.get("/page.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert client.get("/page.css").status_code == 200
    assert client.get("/docs").status_code == 404  # no interactive docs to expose


def test_the_page_never_inserts_text_as_html() -> None:
    script = (resources.files("rewards.human") / "static" / "page.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script
    assert "textContent" in script


def test_label_flow_maps_the_shown_order_back_to_the_completions(client: TestClient, store: LabelStore) -> None:
    state = client.get("/api/next", params={"annotator": "alice"}).json()
    assert state["progress"] == {"labeled": 0, "total": 6}
    assert state["can_undo"] is False
    task = state["task"]
    original = store.task(task["id"])
    assert original is not None
    shown = task["shown"]
    assert (task["a"], task["b"]) == tuple(original.completions[int(i) - 1] for i in shown)
    body = {"annotator": "alice", "task_id": task["id"], "shown": shown, "choice": "B", "ratings_a": FULL,
            "note": "B reads better"}  # fmt: skip
    saved = client.post("/api/labels", json=body).json()
    assert saved["saved"] is True
    assert saved["progress"]["labeled"] == 1
    assert saved["can_undo"] is True
    assert saved["task"]["id"] != task["id"]
    (label,) = store.labels()
    assert label.choice == shown[1]  # B is the completion shown second
    assert (label.ratings_1 if shown[0] == "1" else label.ratings_2) == FULL  # A's ratings, on the right one
    assert label.note == "B reads better"
    assert label.source == "web"
    assert label.shown == shown
    undone = client.post("/api/undo", json={"annotator": "alice"}).json()
    assert undone["undone"] == task["id"]
    assert undone["task"]["id"] == task["id"]
    assert client.post("/api/undo", json={"annotator": "alice"}).json()["undone"] is None


def test_unshuffled_pages_show_completion_1_as_a(store: LabelStore) -> None:
    client = TestClient(create_app(store, shuffle=False))
    tasks = [client.get("/api/next", params={"annotator": f"user{i}"}).json()["task"] for i in range(8)]
    assert {t["shown"] for t in tasks} == {"12"}


def test_when_all_tasks_are_labeled_there_is_no_next_task(client: TestClient) -> None:
    for _ in range(6):
        state = _label(client, "alice", "skip")
    assert state["task"] is None
    assert state["progress"] == {"labeled": 6, "total": 6}


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"choice": "C"}, 422),
        ({"choice": None}, 422),
        ({"shown": "ab"}, 422),
        ({"ratings_a": {"coherence": 4}}, 422),  # all four or none
        ({"ratings_a": {**FULL, "fluency": 6}}, 422),
        ({"ratings_a": {**FULL, "fluency": "3"}}, 422),  # strict integers
        ({"ratings_b": {**FULL, "style": 3}}, 422),
        ({"note": "x" * 2001}, 422),
        ({"annotator": "<script>"}, 422),
        ({"annotator": ""}, 422),
        ({"surprise": 1}, 422),  # unknown fields are refused
        ({"task_id": "no-such-task"}, 404),
    ],
)
def test_bad_labels_are_refused_and_not_stored(
    client: TestClient, store: LabelStore, change: dict, status: int
) -> None:
    task = client.get("/api/next", params={"annotator": "alice"}).json()["task"]
    body = {"annotator": "alice", "task_id": task["id"], "shown": task["shown"], "choice": "A", **change}
    response = client.post("/api/labels", json=body)
    assert response.status_code == status, response.text
    assert store.labels(include_undone=True) == []


def test_bodies_must_be_small_json(client: TestClient, store: LabelStore) -> None:
    big = client.post("/api/labels", content=b"{" + b" " * 70_000 + b"}", headers={"content-type": "application/json"})
    assert big.status_code == 413

    def chunks():
        for _ in range(20):
            yield b" " * 5000

    chunked = client.post("/api/labels", content=chunks(), headers={"content-type": "application/json"})
    assert chunked.status_code == 413
    form = client.post("/api/labels", content=b'{"annotator": "a"}', headers={"content-type": "text/plain"})
    assert form.status_code == 415  # what a cross-site form could send
    assert client.get("/api/next", params={"annotator": "x" * 65}).status_code == 422
    assert store.labels(include_undone=True) == []


def test_with_a_token_every_request_must_carry_it(store: LabelStore) -> None:
    client = TestClient(create_app(store, token=TOKEN))
    for path in ("/", "/page.js", "/api/health", "/api/next?annotator=alice"):
        denied = client.get(path)
        assert denied.status_code == 401, path
        assert TOKEN not in denied.text
    assert client.get("/api/health", headers={TOKEN_HEADER: TOKEN + "x"}).status_code == 401
    assert client.get("/api/health", params={"token": "wrong"}).status_code == 401
    assert client.post("/api/undo", json={"annotator": "alice"}).status_code == 401
    assert client.get("/api/health", headers={TOKEN_HEADER: TOKEN}).status_code == 200
    page = client.get("/", params={"token": TOKEN})  # the address the user opens
    assert page.status_code == 200
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    # the cookie now authenticates the page's own requests, as in the browser
    assert client.get("/page.js").status_code == 200
    assert _label(client, "alice", "A")["saved"] is True


def test_token_and_host_rules() -> None:
    check_token("127.0.0.1", None)
    check_token("localhost", None)
    check_token("::1", None)
    with pytest.raises(LabelingError, match="needs a token"):
        check_token("0.0.0.0", None)
    with pytest.raises(LabelingError, match="needs a token"):
        check_token("192.168.1.5", None)
    with pytest.raises(LabelingError, match="at least 16"):
        check_token("0.0.0.0", "short")
    check_token("0.0.0.0", TOKEN)


def test_a_loopback_server_refuses_foreign_host_names(store: LabelStore) -> None:
    app = create_app(store, allowed_hosts=["127.0.0.1", "localhost"])
    assert TestClient(app, base_url="http://127.0.0.1:8000").get("/api/health").status_code == 200
    assert TestClient(app, base_url="http://evil.example:8000").get("/api/health").status_code == 400


def test_two_annotators_at_once_keep_both_labels_and_get_a_kappa(client: TestClient, store: LabelStore) -> None:
    def annotate(annotator: str, choices: list[str]) -> None:
        for choice in choices:
            _label(client, annotator, choice)

    threads = [
        threading.Thread(target=annotate, args=("alice", ["A", "B", "A", "tie", "A", "B"])),
        threading.Thread(target=annotate, args=("bob", ["A", "B", "B", "tie", "A", "B"])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert compute_stats(store).per_annotator == {"alice": 6, "bob": 6}
    (agreement,) = compute_stats(store).agreement
    assert agreement.shared_tasks == 6
    choice = {(label.annotator, label.task_id): label.choice for label in store.labels()}
    ids = [task.id for task in store.tasks()]
    expected = cohen_kappa([choice["alice", i] for i in ids], [choice["bob", i] for i in ids])
    assert agreement.kappa == pytest.approx(expected)
