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
of at least 16 characters; every loopback address (127.0.0.0/8, ::1, ``localhost``) counts as loopback, for
the token rule and the host check alike. With a token, every request (page, script, API) must carry it: in the
``X-Textenv-Token`` header, the ``token`` query parameter, or the cookie that the page's first request sets
(HttpOnly, SameSite=Strict). A header or query token must be right wherever one is given (a wrong one is
refused even next to a right one); the cookie is read only when neither is given, and it is set to the
server's token only when the query token was right. Tokens are compared in constant time and never logged
(the access log is off, and the page removes the token from the address bar). When bound to a loopback
address, requests must name a loopback host (``Host:`` header), which stops DNS-rebinding pages from reaching
the API.

Against cross-site requests there are two layers: POST bodies must be JSON (a cross-site form cannot post one,
and a cross-site script cannot send one without a CORS preflight, which is never granted), and a
state-changing request whose ``Sec-Fetch-Site`` is not ``same-origin`` (or ``none``) or whose ``Origin`` names
another host than its ``Host:`` is refused (403). Behind a reverse proxy, pass the original ``Host:`` on.

Bodies are at most ``max_body_bytes`` (413), must be standard JSON (no ``NaN`` or ``Infinity``) nested at most
``MAX_JSON_DEPTH`` levels (400), and are then validated by the pydantic models (422; the errors name the field,
never echo the input). A second label of a task by the same annotator is refused with 409 (undo it first).
Every response, errors included, carries the security headers: a Content-Security-Policy that allows only the
page's own script and style, ``X-Frame-Options: DENY``, ``nosniff``, ``no-referrer`` and ``no-store``. The page
inserts every text with ``textContent`` (a completion holding ``<script>`` shows as text), and isolates the
direction of every user-provided text (``dir="auto"``, ``<bdi>``), so bidi controls in a completion cannot
reorder the text around it.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from importlib import resources
from typing import Any, Literal

from rewards.errors import LabelConflictError, LabelingError, MissingDependencyError
from rewards.human.store import Choice, LabelStore, check_annotator
from rewards.human.tasks import LabelTask, display_order

try:
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from pydantic import BaseModel, ConfigDict, Field, StrictInt
    from starlette.datastructures import MutableHeaders
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingDependencyError(
        f"The labeling page needs FastAPI and uvicorn ({exc.name} is missing). Install them with: "
        'pip install "textenv[label]"'
    ) from exc

__all__ = ["MAX_JSON_DEPTH", "MIN_TOKEN_LENGTH", "TOKEN_HEADER", "create_app", "is_loopback", "serve"]

logger = logging.getLogger(__name__)

TOKEN_HEADER = "X-Textenv-Token"
TOKEN_COOKIE = "textenv_token"
MIN_TOKEN_LENGTH = 16
MAX_JSON_DEPTH = 16
"""Deepest nesting of arrays and objects a request body may have (the API's bodies need 2)."""
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
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


class _SecurityHeaders:
    """ASGI middleware: add the security headers to every response, whichever layer wrote it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in _SECURITY_HEADERS.items():
                    headers.setdefault(key, value)
            await send(message)

        await self.app(scope, receive, send_secured)


class _LoopbackHost:
    """ASGI middleware: answer 400 to a request whose ``Host:`` header names no loopback host."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if not is_loopback(_host_name(host)):
                detail = f"Invalid host header {host[:100]!r}: this server answers only loopback host names"
                await JSONResponse({"detail": detail}, status_code=400)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _BodyGuard:
    """ASGI middleware: answer 413 to a request body over ``limit`` bytes, and 400 to a JSON body that is not
    standard JSON or is nested deeper than ``MAX_JSON_DEPTH``, before the app sees it."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
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
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if scope["method"] not in _SAFE_METHODS and content_type == b"application/json":
            problem = _json_problem(body)
            if problem is not None:
                await JSONResponse({"detail": problem}, status_code=400)(scope, receive, send)
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


def _json_problem(body: bytes) -> str | None:
    """Why ``body`` is not a JSON document this server accepts, or ``None`` if it is one.

    Refused: text that is not JSON, the non-standard constants ``NaN``, ``Infinity`` and ``-Infinity`` (which
    Python's parser accepts but no JSON encoder can write back), and nesting deeper than ``MAX_JSON_DEPTH``.
    """

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not a JSON number (RFC 8259); send a finite number or leave the field out")

    try:
        value = json.loads(body, parse_constant=refuse)
    except RecursionError:
        return f"the body is not JSON this server reads: nested deeper than {MAX_JSON_DEPTH} levels"
    except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError and refuse() alike
        return f"the body is not JSON this server reads: {str(exc)[:200]}"
    level, depth = [value], 0
    while level:
        level = [item for node in level if isinstance(node, (dict, list))
                 for item in (node.values() if isinstance(node, dict) else node)]  # fmt: skip
        depth += 1
        if depth > MAX_JSON_DEPTH:
            return f"the body is not JSON this server reads: nested deeper than {MAX_JSON_DEPTH} levels"
    return None


def _host_name(host: str) -> str:
    """The host part of a ``Host:`` header: ``127.0.0.2:8000`` -> ``127.0.0.2``, ``[::1]:8000`` -> ``::1``."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _cross_site(request: Request) -> str | None:
    """Why a state-changing ``request`` looks cross-site, or ``None`` (see the module docstring)."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site.lower() not in ("same-origin", "none"):
        return f"Sec-Fetch-Site is {fetch_site[:40]!r}"
    origin = request.headers.get("origin")
    if origin is not None:
        netloc = origin.split("://", 1)[1] if "://" in origin else ""
        if netloc.lower() != request.headers.get("host", "").lower():
            return f"Origin {origin[:100]!r} is not this server ({request.headers.get('host', '')[:100]!r})"
    return None


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
    loopback_only: bool = False,
) -> FastAPI:
    """The labeling app over ``store`` (see the module docstring).

    Args:
        store: The label database (its tasks are the ones served).
        token: The secret every request must carry; ``None``: no token (a loopback bind only).
        shuffle: Show each annotator the completions in the order ``display_order`` draws (else always
            completion 1 as A), so that position bias is measurable and does not leak into the labels.
        max_body_bytes: Largest request body accepted.
        loopback_only: Answer only requests whose ``Host:`` header names a loopback host (127.0.0.0/8,
            ``::1``, ``localhost``); ``serve`` sets it when it binds a loopback address.

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
            explicit = [t for t in (request.headers.get(TOKEN_HEADER), from_query) if t is not None]
            given = explicit or [request.cookies.get(TOKEN_COOKIE) or ""]
            # every token given must be right; compare_digest on each, so the time says nothing about which
            if not all([secrets.compare_digest(t.encode(), expected) for t in given]):
                return JSONResponse(
                    {"detail": "missing or wrong token: open the page as http://HOST:PORT/?token=YOUR_TOKEN"},
                    status_code=401,
                )
        if request.method not in _SAFE_METHODS:
            if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
                return JSONResponse({"detail": f"{request.method} bodies must be application/json"}, status_code=415)
            why = _cross_site(request)
            if why is not None:
                return JSONResponse({"detail": f"cross-site request refused: {why}"}, status_code=403)
        response = await call_next(request)
        if token is not None and from_query is not None:  # checked above: it is the right token
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict", path="/")
        return response

    @app.exception_handler(LabelConflictError)
    async def conflict(request: Request, exc: LabelConflictError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(LabelingError)
    async def bad_label(request: Request, exc: LabelingError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes each error's input, which JSON cannot always encode (a NaN, deep
        # nesting) and which the client sent anyway: name the field and the rule, never the value.
        errors = [{"loc": [str(part) for part in error.get("loc", ())], "msg": str(error.get("msg", "")),
                   "type": str(error.get("type", ""))} for error in exc.errors()]  # fmt: skip
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        # Runs in Starlette's outermost layer, outside _SecurityHeaders, hence _secure here.
        logger.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return _secure(JSONResponse({"detail": "internal server error; the server's log has the details"}, 500))

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

    # add_middleware wraps what is there: the last one added runs first on the way in
    app.add_middleware(_BodyGuard, limit=max_body_bytes)
    if loopback_only:
        app.add_middleware(_LoopbackHost)
    app.add_middleware(_SecurityHeaders)
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
    app = create_app(store, token=token, shuffle=shuffle, loopback_only=is_loopback(host))
    shown = f"[{host}]" if ":" in host else host
    where = f"http://{shown}:{port}/" + ("?token=<your token>" if token else "")
    print(f"labeling {store.count_tasks()} tasks from {store.path}: open {where}", flush=True)
    # access_log=False: an access log line would hold the query string, hence the token.
    uvicorn.run(app, host=host, port=port, access_log=False, log_level=log_level)
