"""The local HTTP API (JSON) a queue system calls, and that `hcp window` uses.

    POST /api/v1/windows/<W>/start   {"ticket": "A017", "item": "事项编码", "staff": "S01"}
    POST /api/v1/windows/<W>/finish  {}
    GET  /api/v1/windows/<W>         -> {"state": "idle|serving|prompting|rated|not-rated", ...}
    GET  /api/v1/health              -> {"ok": true, "broker": true, "broker_error": null, ...}

Every call needs `Authorization: Bearer <token>` with a token from [api.tokens] in hall.toml.
Bound to 127.0.0.1 unless hall.toml says otherwise. The routes, their models and the bearer scheme
are the OpenAPI document a vendor integrates with: served at /openapi.json, committed as
docs/window-openapi.json (`hcp daemon openapi`). Served by daemon/hall/listener.py.
"""
from __future__ import annotations

import hmac
import json
import logging
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Path, Request
from fastapi.openapi.utils import get_openapi
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from haochaping.daemon.errors import HcpError, InvalidInput
from haochaping.daemon.hall import qrcodes, windows

if TYPE_CHECKING:
    from haochaping.daemon.hall.web_child import Front

log = logging.getLogger(__name__)
TITLE = "haochaping hall daemon: window API"
VERSION = "1"
_DESCRIPTION = (
    "What a queue system calls at a government service hall: a ticket is called to a window"
    " (start), the service ends and the window's rating terminals ask the citizen to rate it"
    " (finish), and what the window is doing now. Every error is a JSON object with `error`"
    " (one line saying what is wrong) and, for a refused field, `field` naming it.")
_ID = "1-32 of A-Z a-z 0-9 _ -"


# ------------------------------------------------------------------ models (the documentation)
class ApiError(BaseModel):
    error: str = Field(description="What is wrong, in one line.")
    field: str | None = Field(None, description="The request field that was refused, if one.")


class StartRequest(BaseModel):
    ticket: str = Field(min_length=1, max_length=windows.TICKET_MAX,
                        description="The queue ticket or 办件编号 being served (no control"
                                    " characters).")
    item: str = Field("", max_length=windows.ITEM_MAX, description="事项编码 of the service item.")
    staff: str = Field("", max_length=32, pattern=r"^[A-Za-z0-9_-]*$",
                       description="Staff number at the window (%s), or empty." % _ID)


class Started(BaseModel):
    transaction: int
    window: str
    ticket: str


class Finished(BaseModel):
    transaction: int
    window: str
    terminals: list[str] = Field(description="The terminals now asking the citizen to rate.")
    prompt_timeout_s: int = Field(description="The prompt closes after this many seconds.")
    qr_url: str | None = Field(None, description=(
        "The address the open prompt's 评价二维码 (QR code) carries: a screen beside the window"
        " may show it as a QR code, and the citizen rates on a phone instead of the keys (one"
        " rating per transaction, whichever comes first). Null when no prompt is open or the"
        " hall has no phone page ([mobile])."))


class WindowState(BaseModel):
    window: str
    state: Literal["idle", "serving", "prompting", "rated", "not-rated"]
    transaction: int | None = Field(None, description="Absent while the window is idle.")
    ticket: str | None = Field(None, description="Absent while the window is idle.")
    level: int | None = Field(None, description="1 (非常满意) to 5 (非常不满意), once rated.")
    terminals: list[str]
    qr_url: str | None = Field(None, description=(
        "The address the open prompt's 评价二维码 (QR code) carries: a screen beside the window"
        " may show it as a QR code, and the citizen rates on a phone instead of the keys (one"
        " rating per transaction, whichever comes first). Null when no prompt is open or the"
        " hall has no phone page ([mobile])."))


class Health(BaseModel):
    ok: bool
    broker: bool = Field(description="Connected to the hall's MQTT broker.")
    broker_error: str | None = Field(
        description="Why the daemon is not connected to its broker, in words (unreachable,"
                    " refused its password, ...); null while connected or before a first"
                    " attempt has failed.")
    messages: int = Field(description="Messages handled since the daemon started.")
    commits: int = Field(description="Database commits since the daemon started.")
    quarantined: int = Field(description="Records the municipal store refused, held for hall IT"
                                         " (`hcp forward quarantine`).")


class Refused(Exception):
    """A request the window API turns down: HTTP status and the JSON answer."""

    def __init__(self, status: int, error: str, field: str | None = None,
                 close: bool = False) -> None:
        super().__init__(error)
        self.status, self.body, self.close = status, {"error": error}, close
        if field is not None:
            self.body["field"] = field


def _refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refused)  # registered for Refused only
    return JSONResponse(exc.body, status_code=exc.status,
                        headers={"Connection": "close"} if exc.close else None)


def install(app: FastAPI) -> None:
    """Answer the API's refusals, and serve its OpenAPI document at /openapi.json."""
    app.add_exception_handler(Refused, _refused)
    document = spec()
    app.add_api_route("/openapi.json", lambda: JSONResponse(document), methods=["GET"],
                      include_in_schema=False)


def spec() -> dict[str, Any]:
    """The window API's OpenAPI document, from the routes and models below."""
    doc = get_openapi(title=TITLE, version=VERSION, description=_DESCRIPTION,
                      routes=router.routes)
    # FastAPI documents a 422 for any route with parameters; these never answer one (a bad
    # field is a 400 naming it), so a client generated from the document expects none
    for ops in doc["paths"].values():
        for op in ops.values():
            op["responses"].pop("422", None)
    for name in ("HTTPValidationError", "ValidationError"):
        doc["components"]["schemas"].pop(name, None)
    return doc


# ------------------------------------------------------------------ requests
_bearer = HTTPBearer(auto_error=False, description="A token from [api.tokens] in hall.toml.")


def caller(request: Request,
           cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    """The caller's name in [api.tokens], or 401."""
    if cred is not None:
        given = cred.credentials.encode()
        for name, tok in request.app.state.daemon.cfg.api.tokens.items():
            if hmac.compare_digest(given, tok.encode()):
                return str(name)
    raise Refused(401, "missing or wrong bearer token (see [api.tokens] in hall.toml)")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, at most `limit` bytes; a larger one is refused unread (and the
    connection closed). The server has checked Content-Length is a number."""
    given = request.headers.get("content-length")
    if given is not None and int(given) > limit:
        raise Refused(413, "body too large (at most %d bytes)" % limit, close=True)
    chunks, n = [], 0
    async for chunk in request.stream():
        n += len(chunk)
        if n > limit:
            raise Refused(413, "body too large (at most %d bytes)" % limit, close=True)
        chunks.append(chunk)
    return b"".join(chunks)


def json_object(raw: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None if it is not one (not JSON, not UTF-8, too deep)."""
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return body if isinstance(body, dict) else None


async def _body(request: Request) -> dict[str, Any]:
    body = json_object(await read_body(request, _daemon(request).cfg.api.max_body_bytes))
    if body is None:
        raise Refused(400, "body must be a JSON object (UTF-8)")
    return body


def _daemon(request: Request) -> Front:
    d: Front = request.app.state.daemon
    return d


def _window(window: str) -> str:
    try:
        windows.check(window)
    except InvalidInput as e:
        raise Refused(400, str(e), e.field) from None
    return window


async def _call(request: Request, command: str, *args: Any) -> JSONResponse:
    """The named command (daemon/hall/commands.py) in the daemon's writer; its result as JSON."""
    try:
        result = await run_in_threadpool(_daemon(request).submit, command, *args)
    except InvalidInput as e:
        raise Refused(400, str(e), e.field) from None
    except HcpError as e:
        raise Refused(409, str(e)) from None
    except TimeoutError as e:
        raise Refused(503, str(e)) from None
    return JSONResponse(result)



def _error(description: str) -> dict[str, Any]:
    return {"model": ApiError, "description": description}


_AUTH: dict[int | str, dict[str, Any]] = {
    401: _error("No bearer token, or not one in [api.tokens]."),
}
_READ: dict[int | str, dict[str, Any]] = {
    **_AUTH,
    400: _error("A refused field, named in `field`."),
    503: _error("The daemon did not answer in time."),
}
_WRITE: dict[int | str, dict[str, Any]] = {
    **_READ,
    400: _error("A refused field (named in `field`), or a body that is not a JSON object."),
    409: _error("Refused by the hall's rules."),
    413: _error("Body larger than [api] max_body_bytes."),
}
Window = Annotated[str, Path(description="The window id (%s)." % _ID, examples=["W01"])]
Caller = Annotated[str, Depends(caller)]
_START_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": StartRequest.model_json_schema()}}}}
_EMPTY_BODY = {"requestBody": {"required": False, "content": {
    "application/json": {"schema": {"type": "object", "maxProperties": 0}}}}}

router = APIRouter(prefix="/api/v1", tags=["window"])


@router.get("/health", operation_id="health",
            responses={200: {"model": Health}, **_AUTH},
            summary="Whether the daemon is up and connected to its broker")
def health(request: Request, who: Caller) -> JSONResponse:
    from haochaping.daemon.hall import forward
    d = _daemon(request)
    st = d.status()
    return JSONResponse({"ok": True, "broker": st.connected,
                         "broker_error": st.error,
                         "messages": st.stored,
                         "commits": st.commits,
                         "quarantined": forward.quarantined_at(d.cfg.hall.database)})


@router.get("/windows/{window}", operation_id="windowState",
            responses={200: {"model": WindowState}, **_READ},
            summary="What the window's current transaction is doing")
async def state(request: Request, window: Window, who: Caller) -> JSONResponse:
    w = _window(window)
    cfg = _daemon(request).cfg
    return await _call(request, "window_state", w, cfg.hall.id, qrcodes.phone_base(cfg))


@router.post("/windows/{window}/start", operation_id="startService",
             responses={200: {"model": Started}, **_WRITE},
             openapi_extra=_START_BODY,
             summary="A ticket is called to the window (closes any prompt still open there)")
async def start(request: Request, window: Window, who: Caller) -> JSONResponse:
    body = await _body(request)
    ticket, item, staff = body.get("ticket"), body.get("item", ""), body.get("staff", "")
    try:  # before anything is stored: 400 naming the field
        windows.check_start(window, ticket, item, staff)
    except InvalidInput as e:
        raise Refused(400, str(e), e.field) from None
    ticket, item, staff = str(ticket), str(item), str(staff)  # text: check_start says so
    log.info("%s: window %s start", who, window)
    return await _call(request, "window_start", window, ticket, item, staff)


@router.post("/windows/{window}/finish", operation_id="finishService",
             responses={200: {"model": Finished}, **_WRITE},
             openapi_extra=_EMPTY_BODY,
             summary="The service ends: the window's terminals ask the citizen to rate it")
async def finish(request: Request, window: Window, who: Caller) -> JSONResponse:
    await _body(request)
    w = _window(window)
    cfg = _daemon(request).cfg
    log.info("%s: window %s finish", who, w)
    return await _call(request, "window_finish", w, cfg.sessions.timeout_s, cfg.hall.id,
                       qrcodes.phone_base(cfg))
