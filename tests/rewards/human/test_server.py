"""The labeling app through FastAPI's TestClient: the page, the API, validation, limits, token and host checks."""

from __future__ import annotations

import threading
from importlib import resources

import pytest

pytest.importorskip("fastapi", reason='the labeling page needs the "label" extra')
from fastapi.testclient import TestClient

from rewards.errors import LabelingError
from rewards.human import LabelStore, cohen_kappa, compute_stats
from rewards.human.server import MAX_JSON_DEPTH, TOKEN_HEADER, check_token, create_app

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


def test_the_page_isolates_the_direction_of_user_and_model_text() -> None:
    static = resources.files("rewards.human") / "static"
    page, style, script = ((static / name).read_text() for name in ("index.html", "page.css", "page.js"))
    for element in ('<div id="prompt" class="text" dir="auto">', '<div id="text-a" class="text" dir="auto">',
                    '<div id="text-b" class="text" dir="auto">', '<input id="annotator" dir="auto"',
                    '<textarea id="note" dir="auto"'):  # fmt: skip
        assert element in page
    assert "unicode-bidi: plaintext" in style.split(".text {")[1].split("}")[0]
    assert 'createElement("bdi")' in script  # server details (which may quote user text) sit in a <bdi>


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
    check_token("127.0.0.2", None)
    check_token("[::1]", None)
    with pytest.raises(LabelingError, match="needs a token"):
        check_token("0.0.0.0", None)
    with pytest.raises(LabelingError, match="needs a token"):
        check_token("192.168.1.5", None)
    with pytest.raises(LabelingError, match="at least 16"):
        check_token("0.0.0.0", "short")
    check_token("0.0.0.0", TOKEN)


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1:8000", 200),
        ("127.0.0.2:8000", 200),  # the whole loopback range, as the token rule treats it
        ("127.255.255.254", 200),
        ("localhost:8000", 200),
        ("LOCALHOST", 200),
        ("[::1]:8000", 200),
        ("evil.example:8000", 400),
        ("127.0.0.1.evil.example", 400),
        ("[::2]:8000", 400),
        ("10.0.0.1:8000", 400),
        ("", 400),
    ],
)
def test_a_loopback_server_answers_loopback_host_names_only(store: LabelStore, host: str, status: int) -> None:
    client = TestClient(create_app(store, loopback_only=True))
    response = client.get("/api/health", headers={"host": host})
    assert response.status_code == status, response.text
    assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(
    "body",
    [
        '{"annotator": NaN, "task_id": "t", "shown": "12", "choice": "A"}',
        '{"annotator": "alice", "task_id": "t", "shown": "12", "choice": Infinity}',
        '{"annotator": "alice", "task_id": "t", "shown": "12", "choice": "A", "ratings_a": {"coherence": -Infinity}}',
        "[" * 965 + "]" * 965,
        '{"a": ' * 964 + "1" + "}" * 964,
        "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1),
        "[" * 30_000 + "]" * 30_000,
        '{"annotator": "alice"',
        b'{"annotator": "\xff"}',
    ],
    ids=["nan", "infinity", "-infinity", "array-965", "object-964", "one-too-deep", "array-30000", "cut", "latin1"],
)
def test_non_standard_or_deeply_nested_json_is_refused_with_a_4xx(store: LabelStore, body: str | bytes) -> None:
    client = TestClient(create_app(store), raise_server_exceptions=False)
    response = client.post("/api/labels", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert "not JSON this server reads" in response.json()["detail"]
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert store.labels(include_undone=True) == []


def test_validation_errors_name_the_field_and_never_echo_the_input(client: TestClient) -> None:
    task = client.get("/api/next", params={"annotator": "alice"}).json()["task"]
    body = {"annotator": "alice", "task_id": task["id"], "shown": task["shown"], "choice": "ECHO-ME" * 50,
            "ratings_a": {**FULL, "fluency": 9.5}}  # fmt: skip
    response = client.post("/api/labels", json=body)
    assert response.status_code == 422
    assert "ECHO-ME" not in response.text
    assert {tuple(error["loc"]) for error in response.json()["detail"]} >= {("body", "choice")}
    assert all(set(error) == {"loc", "msg", "type"} for error in response.json()["detail"])


def test_a_second_label_of_a_task_is_refused_with_409_and_one_undo_brings_it_back(
    client: TestClient, store: LabelStore
) -> None:
    task = client.get("/api/next", params={"annotator": "alice"}).json()["task"]
    body = {"annotator": "alice", "task_id": task["id"], "shown": task["shown"], "choice": "A"}
    assert client.post("/api/labels", json=body).status_code == 200
    again = client.post("/api/labels", json={**body, "choice": "B"})  # e.g. a second tab still showing it
    assert again.status_code == 409
    assert f"'alice' has already labeled task '{task['id']}'" in again.json()["detail"]
    assert "undo it first" in again.json()["detail"]
    assert again.headers["x-content-type-options"] == "nosniff"
    undone = client.post("/api/undo", json={"annotator": "alice"}).json()
    assert undone["undone"] == task["id"]
    assert undone["task"]["id"] == task["id"]  # the task is back
    assert store.labels() == []  # and no older label of it counts again


def test_a_right_header_token_with_a_wrong_query_token_is_refused_and_sets_no_cookie(store: LabelStore) -> None:
    client = TestClient(create_app(store, token=TOKEN))
    mixed = client.get("/", params={"token": "bogus"}, headers={TOKEN_HEADER: TOKEN})
    assert mixed.status_code == 401
    assert "set-cookie" not in mixed.headers
    assert client.get("/api/health", params={"token": TOKEN}, headers={TOKEN_HEADER: TOKEN + "x"}).status_code == 401
    # a stale cookie (an earlier token) is replaced by the right query token, with the server's token
    client.cookies.set("textenv_token", "an-old-token-from-yesterday")
    assert client.get("/api/health").status_code == 401
    page = client.get("/", params={"token": TOKEN})
    assert page.status_code == 200
    assert page.headers["set-cookie"].startswith(f"textenv_token={TOKEN};")
    assert client.get("/api/health").status_code == 200


def test_every_response_carries_the_security_headers(store: LabelStore, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(store, token=TOKEN, loopback_only=True)
    client = TestClient(app, base_url="http://127.0.0.1:8000", raise_server_exceptions=False)
    auth = {TOKEN_HEADER: TOKEN, "content-type": "application/json"}
    responses = {
        400: client.get("/api/health", headers={"host": "evil.example"}),
        401: client.get("/api/health"),
        403: client.post("/api/undo", json={"annotator": "a"}, headers={**auth, "origin": "http://evil.example"}),
        404: client.get("/nothing-here", headers=auth),
        413: client.post("/api/undo", content=b"[" + b" " * 70_000 + b"]", headers=auth),
        415: client.post("/api/undo", content=b"{}", headers={TOKEN_HEADER: TOKEN, "content-type": "text/plain"}),
        422: client.post("/api/undo", json={"annotator": ""}, headers=auth),
    }

    def broken() -> int:
        raise RuntimeError("the disk went away")

    monkeypatch.setattr(store, "count_tasks", broken)
    responses[500] = client.get("/api/health", headers=auth)
    assert "the disk went away" not in responses[500].text
    for status, response in responses.items():
        assert response.status_code == status, (status, response.text)
        assert response.headers["content-security-policy"].startswith("default-src 'none'"), status
        assert response.headers["x-frame-options"] == "DENY", status
        assert response.headers["x-content-type-options"] == "nosniff", status
        assert response.headers["cache-control"] == "no-store", status


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 200),  # not a browser (curl, scripts): nothing to check
        ({"origin": "http://testserver", "sec-fetch-site": "same-origin"}, 200),  # the page itself
        ({"sec-fetch-site": "none"}, 200),
        ({"origin": "http://evil.example"}, 403),
        ({"origin": "http://testserver.evil.example"}, 403),
        ({"origin": "http://testserver:8001"}, 403),  # another app on another port of this machine
        ({"origin": "null"}, 403),  # a sandboxed frame, a file: page
        ({"sec-fetch-site": "cross-site"}, 403),
        ({"sec-fetch-site": "same-site"}, 403),
        ({"origin": "http://testserver", "sec-fetch-site": "cross-site"}, 403),
    ],
)
def test_cross_site_state_changes_are_refused(
    client: TestClient, store: LabelStore, headers: dict, status: int
) -> None:
    task = client.get("/api/next", params={"annotator": "alice"}, headers=headers).json()["task"]  # reads are fine
    body = {"annotator": "alice", "task_id": task["id"], "shown": task["shown"], "choice": "A"}
    response = client.post("/api/labels", json=body, headers=headers)
    assert response.status_code == status, response.text
    assert len(store.labels()) == (status == 200)
    if status == 403:
        assert "cross-site request refused" in response.json()["detail"]


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
