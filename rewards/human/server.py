"""The labeling page: a FastAPI app that serves one static HTML/JS page and a small JSON API over a ``LabelStore``.

Needs the ``label`` extra (``pip install "textenv[label]"``: FastAPI and uvicorn). Start it with
``textenv label serve`` or ``serve(store)``; build the app alone with ``create_app(store)`` (tests use
FastAPI's ``TestClient`` on it).

**API** (JSON; every body is validated by a pydantic model that forbids unknown fields):

- ``GET /api/next?annotator=ID``: the annotator's next task (its prompt and the completions as ``a`` and ``b``,
  in the order ``shown`` that ``display_order`` draws), progress, and whether there is a label to undo;
- ``POST /api/labels``: ``{"annotator", "task_id", "shown", "choice": "A"|"B"|"tie"|"skip", "ratings_a",
  "ratings_b", "note"}``. The response comes after the label is committed to disk, and carries the next task;
- ``POST /api/undo``: ``{"annotator"}``: undoes the annotator's latest label; its task comes back next;
- ``GET /api/health``.

**Security.** ``serve`` binds 127.0.0.1 unless told otherwise, and refuses any other address without a token
of at least 16 characters. With a token, every request (page, script, API) must carry it: in the
``X-Textenv-Token`` header, the ``token`` query parameter, or the cookie that the page's first request sets
(HttpOnly, SameSite=Strict); it is compared in constant time, and never logged (the access log is off, and
the page removes it from the address bar). When bound to a loopback address, requests must name a loopback
host (``Host:`` header), which stops DNS-rebinding pages from reaching the API. POST bodies must be JSON
(a cross-site form cannot post one) and at most ``max_body_bytes``. The page inserts every text with
``textContent`` (a completion holding ``<script>`` shows as text), and a Content-Security-Policy allows only
the page's own script and style.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from importlib import resources
from typing import Any, Literal

from rewards.errors import LabelingError, MissingDependencyError
from rewards.human.store import Choice, LabelStore, check_annotator
from rewards.human.tasks import LabelTask, display_order

try:
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import JSONResponse, Response
    from pydantic import BaseModel, ConfigDict, Field, StrictInt
    from starlette.middleware.trustedhost import TrustedHostMiddleware
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingDependencyError(
        f"The labeling page needs FastAPI and uvicorn ({exc.name} is missing). Install them with: "
        'pip install "textenv[label]"'
    ) from exc

__all__ = ["MIN_TOKEN_LENGTH", "TOKEN_HEADER", "create_app", "is_loopback", "serve"]

logger = logging.getLogger(__name__)

TOKEN_HEADER = "X-Textenv-Token"
TOKEN_COOKIE = "textenv_token"
MIN_TOKEN_LENGTH = 16
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
_STATIC = {"/": ("index.html", "text/html"), "/page.js": ("page.js", "text/javascript"),
           "/page.css": ("page.css", "text/css")}  # fmt: skip
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Ratings(BaseModel):
    """1–5 ratings of one completion on the four dimensions (all four, or leave the whole object out)."""

    model_config = ConfigDict(extra="forbid")
    coherence: StrictInt = Field(ge=1, le=5)
    creativity: StrictInt = Field(ge=1, le=5)
    relevance: StrictInt = Field(ge=1, le=5)
    fluency: StrictInt = Field(ge=1, le=5)


class LabelIn(BaseModel):
    """A label as the page posts it; ``choice`` and the ratings refer to the completions as shown (A, B)."""

    model_config = ConfigDict(extra="forbid")
    annotator: str = Field(min_length=1, max_length=64)
    task_id: str = Field(min_length=1, max_length=200)
    shown: Literal["12", "21"]
    choice: Literal["A", "B", "tie", "skip"]
    ratings_a: Ratings | None = None
    ratings_b: Ratings | None = None
    note: str = Field(default="", max_length=2000)


class UndoIn(BaseModel):
    """Undo the annotator's latest label."""

    model_config = ConfigDict(extra="forbid")
    annotator: str = Field(min_length=1, max_length=64)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_token(host: str, token: str | None) -> None:
    """Raise ``LabelingError`` unless ``token`` is acceptable for binding ``host`` (see the module docstring)."""
    hint = 'generate one with: python -c "import secrets; print(secrets.token_urlsafe(24))"'
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise LabelingError(f"the token is {len(token)} characters long; use at least {MIN_TOKEN_LENGTH} ({hint})")
    if token is None and not is_loopback(host):
        raise LabelingError(
            f"binding the labeling page to {host!r} makes it reachable from other machines, so it needs a token: "
            f"pass --token (or set TEXTENV_LABEL_TOKEN; {hint}), or bind 127.0.0.1 and use an SSH tunnel"
        )


class _BodyLimit:
    """ASGI middleware: answer 413 to a request body over ``limit`` bytes, before the app sees it."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _too_large(self.limit, scope, receive, send)
            return
        body, more = b"", True
        while more:  # read the whole (small) body first, so a chunked upload is capped too
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await _too_large(self.limit, scope, receive, send)
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
    response = JSONResponse({"detail": f"request body over {limit} bytes"}, status_code=413)
    await response(scope, receive, send)


def _task_json(task: LabelTask, annotator: str, shuffle: bool) -> dict[str, Any]:
    shown = display_order(annotator, task.id) if shuffle else "12"
    first, second = (task.completions[int(i) - 1] for i in shown)
    return {"id": task.id, "prompt": task.prompt, "a": first, "b": second, "shown": shown}


def create_app(
    store: LabelStore,
    *,
    token: str | None = None,
    shuffle: bool = True,
    max_body_bytes: int = 64 * 1024,
    allowed_hosts: Sequence[str] | None = None,
) -> FastAPI:
    """The labeling app over ``store`` (see the module docstring).

    Args:
        store: The label database (its tasks are the ones served).
        token: The secret every request must carry; ``None``: no token (a loopback bind only).
        shuffle: Show each annotator the completions in the order ``display_order`` draws (else always
            completion 1 as A), so that position bias is measurable and does not leak into the labels.
        max_body_bytes: Largest request body accepted.
        allowed_hosts: Host names the ``Host:`` header may name (``None``: any).

    Raises:
        LabelingError: If ``token`` is shorter than 16 characters.
    """
    if token is not None:
        check_token("127.0.0.1", token)
    expected = token.encode() if token is not None else None
    app = FastAPI(title="textenv labeling", docs_url=None, redoc_url=None, openapi_url=None)
    static = {path: ((resources.files("rewards.human") / "static" / name).read_bytes(), kind)
              for path, (name, kind) in _STATIC.items()}  # fmt: skip

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        from_query = request.query_params.get("token")
        if expected is not None:
            given = request.headers.get(TOKEN_HEADER) or from_query or request.cookies.get(TOKEN_COOKIE) or ""
            if not secrets.compare_digest(given.encode(), expected):
                response: Response = JSONResponse(
                    {"detail": "missing or wrong token: open the page as http://HOST:PORT/?token=YOUR_TOKEN"},
                    status_code=401,
                )
                return _secure(response)
        if request.method == "POST" and request.headers.get("content-type", "").split(";")[0].strip() != (
            "application/json"
        ):
            return _secure(JSONResponse({"detail": "POST bodies must be application/json"}, status_code=415))
        response = await call_next(request)
        if expected is not None and from_query is not None:
            response.set_cookie(TOKEN_COOKIE, from_query, httponly=True, samesite="strict", path="/")
        return _secure(response)

    @app.exception_handler(LabelingError)
    async def bad_label(request: Request, exc: LabelingError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    def page(path: str) -> Callable[[], Response]:
        content, kind = static[path]
        return lambda: Response(content, media_type=kind)

    for path in static:
        app.add_api_route(path, page(path), methods=["GET"], include_in_schema=False)

    def next_state(annotator: str) -> dict[str, Any]:
        task = store.next_task(annotator)
        labeled, total = store.progress(annotator)
        return {
            "task": None if task is None else _task_json(task, annotator, shuffle),
            "progress": {"labeled": labeled, "total": total},
            "can_undo": labeled > 0,
        }

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "tasks": store.count_tasks()}

    @app.get("/api/next")
    def next_task(annotator: str) -> dict[str, Any]:
        return next_state(check_annotator(annotator))

    @app.post("/api/labels")
    def add_label(body: LabelIn) -> dict[str, Any]:
        annotator = check_annotator(body.annotator)
        if store.task(body.task_id) is None:
            raise HTTPException(404, f"no task has the id {body.task_id!r}; reload the page")
        by_letter = {"A": body.shown[0], "B": body.shown[1]}
        choice: Choice = by_letter.get(body.choice, body.choice)  # type: ignore[assignment]
        ratings: list[dict[str, int] | None] = [None, None]
        for letter, rated in (("A", body.ratings_a), ("B", body.ratings_b)):
            ratings[int(by_letter[letter]) - 1] = None if rated is None else rated.model_dump()
        label = store.add_label(
            body.task_id,
            annotator,
            choice,
            body.shown,
            ratings=ratings,
            note=body.note,
            source="web",
        )
        logger.info("saved label %d: task %s, %s by %s", label.id, label.task_id, label.choice, annotator)
        return {"saved": True, "label_id": label.id, **next_state(annotator)}

    @app.post("/api/undo")
    def undo(body: UndoIn) -> dict[str, Any]:
        annotator = check_annotator(body.annotator)
        label = store.undo(annotator)
        return {"undone": None if label is None else label.task_id, **next_state(annotator)}

    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.add_middleware(_BodyLimit, limit=max_body_bytes)
    return app


def _secure(response: Response) -> Response:
    for key, value in _SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)
    return response


def serve(
    store: LabelStore,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    shuffle: bool = True,
    log_level: str = "info",
) -> None:
    """Run the labeling page under uvicorn until Ctrl-C.

    Raises:
        LabelingError: If ``host`` is not a loopback address and no token is given, or the token is short.
    """
    import uvicorn

    check_token(host, token)
    allowed = list(LOOPBACK_HOSTS) if is_loopback(host) else None
    app = create_app(store, token=token, shuffle=shuffle, allowed_hosts=allowed)
    shown = f"[{host}]" if ":" in host else host
    where = f"http://{shown}:{port}/" + ("?token=<your token>" if token else "")
    print(f"labeling {store.count_tasks()} tasks from {store.path}: open {where}", flush=True)
    # access_log=False: an access log line would hold the query string, hence the token.
    uvicorn.run(app, host=host, port=port, access_log=False, log_level=log_level)
