"""The municipal store's HTTPS API: a FastAPI (Starlette) application, served by uvicorn in
worker processes (workers.py). Its OpenAPI document is generated from this module (served at
/openapi.json; `hcp store openapi` writes docs/store-openapi.json).

    POST /v1/batches   headers X-Hcp-Hall, X-Hcp-Batch, X-Hcp-Signature (hex HMAC-SHA256 over the
                       raw body), Content-Length
                       200 {"status": "stored"|"duplicate", "batch", "records", "new"}
                       400 malformed · 401 bad signature · 403 unknown hall · 409 batch id reused
                       411/413 length · 422 a record refused (a rule broken, or a value the
                       database cannot hold): {"error", "record", "field"} · 503 database away
    GET  /v1/health    200 {"ok": true, "backend": "sqlite"|"postgres"}
    POST /v1/appeals   a rated unit's appeal (第十条), Authorization: Bearer <unit token>;
    GET  /v1/appeals/ID                                               see rules_api.py

Every answer is JSON with the reason in `error` when it is a refusal. The body is read as raw
bytes (the signature covers them exactly), never parsed before the signature is checked; the
work on it (signature, decoding, checks, the database) runs in a thread, at most
STORE_THREADS at once per worker process, and at most BODIES bodies are held at once.
"""
from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from haochaping.daemon import batches
from haochaping.daemon.batches import BadBatch
from haochaping.daemon.errors import HcpError
from haochaping.daemon.store import backends, batch_spec, identity, rules_api

if TYPE_CHECKING:
    from haochaping.daemon.store.backends import BatchAnswer, Store

log = logging.getLogger(__name__)
T = TypeVar("T")

STORE_THREADS = 2   # per worker process: one decodes a batch while another writes
BODIES = 8          # per worker process: request bodies held in memory at once (≤ 16 MiB each)
# a refusal that names its record, as docs/store.md words them: "record H01:tx:3: ticket …"
# (the field: a word the batch body knows), or "record H01:tx:3 cannot be stored: …"
_NAMED = re.compile(r"record (\S+?)(?:: (\w+) | )")
_UID = re.compile(r"[A-Za-z0-9_-]{1,32}:(?:tx|rating|reason|rater):")  # batches.py's record ids
_FIELDS = frozenset(f for fields in batches.FIELDS.values() for f in fields[1:])
_AWAY = "store database unavailable, retry later"


def refusal(status: int, reason: str) -> dict[str, object]:
    """The body of a refusal: the reason in words; for a 422 also the refused record's id and
    field (each None when the reason names none), so that a hall or a person can find it."""
    doc: dict[str, object] = {"error": reason}
    if status == 422:
        m = _NAMED.match(reason)
        doc["record"] = m.group(1) if m and _UID.match(m.group(1)) else None
        doc["field"] = m.group(2) if m and m.group(2) in _FIELDS else None
    return doc


@dataclass(frozen=True)
class Settings:
    """What each worker process needs to open the store: picklable, as uvicorn's workers are
    started afresh (spawn) and get it from the serving process."""
    db: str
    identity_key: str | None = None
    supervisor: int | None = None   # the pid of the process that started this worker, if any


def _orphaned(supervisor: int) -> None:
    """A worker whose supervisor is gone (SIGKILLed: it had no time to stop its workers) stops
    too, rather than keep serving and holding the port and the database with nobody to
    replace it; a batch it was writing is rolled back."""
    while os.getppid() == supervisor:
        time.sleep(0.5)
    log.error("the store's serving process %d is gone: this worker stops", supervisor)
    os._exit(1)


class _WriteLock:
    """SQLite: one batch written at a time across the worker processes, under an flock on a
    file next to the database (`store.sqlite-writer`). The kernel wakes the next writer the
    moment the lock is given back, where SQLite's own busy wait sleeps; and a worker killed
    while it writes gives it back with its life. SQLite's own locking stays what keeps the
    file whole: this only orders the writers."""

    def __init__(self, db: str) -> None:
        self.path = db + "-writer"
        self._threads = threading.Lock()   # the flock is per open file: one thread at a time
        self._fd: int | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._threads:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


class _Backend:
    """This worker process's own connection(s) to the store database, opened at first use (so
    that a worker started while the database is away answers 503 rather than failing to
    start), and the SQLite write lock."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: Store | None = None
        self._opening = threading.Lock()
        sqlite = not settings.db.startswith(("postgresql://", "postgres://"))
        self.write_lock = _WriteLock(settings.db) if sqlite else None
        self.dialect: Literal["sqlite", "postgres"] = "sqlite" if sqlite else "postgres"

    def store(self) -> Store:
        with self._opening:
            if self._store is None:
                key = self.settings.identity_key
                ident = identity.IdentityKey.load(key) if key else None
                self._store = backends.open_store(self.settings.db, ident)
            return self._store

    def close(self) -> None:
        with self._opening:
            if self._store is not None:
                self._store.close()
                self._store = None


def store_batch(store: Store, hall: str, batch: str, body: bytes,
                write_lock: _WriteLock | None = None) -> BatchAnswer:
    """Decode, check and store one batch whose signature is checked: backends.store_batch's
    answer (with the batch's cases opened in its transaction), or BadBatch."""
    h, b, parsed = batches.parse_batch(body, hall, batch)
    sha = hashlib.sha256(body).hexdigest()
    if write_lock is None:
        return store.store_batch(h, b, sha, parsed, then=rules_api.in_batch)
    with write_lock.held():
        return store.store_batch(h, b, sha, parsed, then=rules_api.in_batch)


# ------------------------------------------------------------------ documented shapes
class Stored(BaseModel):
    """The batch is durably committed (now, or before for a "duplicate")."""
    status: Literal["stored", "duplicate"]
    batch: str
    records: int = Field(description="Records in the batch.")
    new: int = Field(description="Records not seen before (0 for a duplicate).")


class Health(BaseModel):
    ok: bool
    backend: Literal["sqlite", "postgres"]


class Refused(BaseModel):
    """Refused, with the reason in words (also logged by the store)."""
    error: str = Field(examples=["bad signature: the batch is not signed with hall H01's key"])


class RecordRefused(BaseModel):
    """422: a record breaks docs/store.md, or holds a value the store's database cannot (a
    NUL in a text on PostgreSQL, an integer out of range). Nothing of the batch is stored. The
    first refused record and its field are named when the store can tell. The hall splits the
    batch until the refused record is alone, delivers the rest, and sets the record apart for
    hall IT (docs/store.md, "A record the store refuses")."""
    error: str = Field(examples=["record H01:rating:T001:42: level must be an integer 1..5"])
    record: str | None = Field(examples=["H01:rating:T001:42"], description=(
        "The first refused record's id; null when the refusal names none."))
    field: str | None = Field(examples=["level"], description=(
        "Its field in the batch body; null when not named."))


_BATCH_REFUSALS = {
    400: "Malformed: not JSON, a truncated body, the X-Hcp-Hall/X-Hcp-Batch headers missing or"
         " not ids, an unknown body version.",
    401: "Bad signature: the body is not signed with the hall's key.",
    403: "Unknown or revoked hall (`hcp store add-hall`).",
    409: "The batch id was stored before with other content: a batch id is never reused.",
    411: "No Content-Length.",
    413: "Body or record count over the limit (16 MiB, 20,000 records); answered before the"
         " body is read, and the connection closed.",
    503: "The store's database is unavailable (connection lost, pool exhausted, disk), or the"
         " store is at its connection limit (then a plain-text answer from the server): retry"
         " later. Never for a value it refuses.",
}
_APPEAL_REFUSALS = {
    400: "The body is not {rating, reason}.",
    401: "No or unknown unit token.",
    403: "Not a rating of the token's unit.",
    404: "No such rating (or appeal).",
    409: "Appealed (or decided) already.",
    411: "No Content-Length.",
    413: "Over 64 KiB.",
    422: "Filed too late (`error` carries the deadline, e.g. \"appeal too late: filed …, the"
         " deadline (3 working days, 第十条) was 2026-09-30T23:59:59+08:00\") or not a counted"
         " bad review.",
    503: "The store's database is unavailable: retry later.",
}
_CUT = {408: "The request was not read whole within the store's read deadline.",
        431: "The request's headers are over 64 KiB."}


def _responses(refusals: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Refused, "description": words} for code, words in refusals.items()}


# ------------------------------------------------------------------ the application
def create_app(settings: Settings) -> FastAPI:
    """The store's API over the database in `settings`; each process that serves it opens its
    own connection(s) at first use."""
    backend = _Backend(settings)
    limiter = anyio.CapacityLimiter(STORE_THREADS)
    bodies = asyncio.Semaphore(BODIES)

    async def in_thread(fn: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(fn, limiter=limiter)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.supervisor is not None:
            threading.Thread(target=_orphaned, args=(settings.supervisor,), daemon=True,
                             name="store-orphan-watch").start()
        yield
        backend.close()

    app = FastAPI(title="haochaping municipal store", version="2",
                  description=batch_spec.DESCRIPTION, openapi_url="/openapi.json",
                  docs_url=None, redoc_url=None,
                  servers=[{"url": "https://store.city.local:8443"}], lifespan=lifespan)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, e: HTTPException) -> JSONResponse:
        # a path or method the store does not have: {"error"} like every other refusal
        words = {404: "no such path: POST /v1/batches, GET /v1/health, POST /v1/appeals,"
                      " GET /v1/appeals/ID"}.get(e.status_code, str(e.detail))
        return JSONResponse({"error": words}, e.status_code, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "malformed request: %s" % e.errors()[0]["msg"]}, 400)

    async def read_body(request: Request, limit: int, what: str
                        ) -> bytes | JSONResponse:
        """The raw body, or the refusal: 411 no length, 413 over `limit` (not read: answered at
        once, and the connection closed behind it), 400 cut short."""
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            return _answer(411, {"error": "Content-Length required"}, close=True)
        n = int(length)
        if n > limit:
            return _answer(413, {"error": "body of %d bytes is over the limit of %d for %s"
                                 % (n, limit, what)}, close=True)
        try:
            body = await request.body()
        except ClientDisconnect:
            return _answer(400, {"error": "body truncated: the connection closed before %d bytes"
                                 % n}, close=True)
        if len(body) != n:
            return _answer(400, {"error": "body truncated: got %d of %d bytes" % (len(body), n)},
                           close=True)
        return body

    @app.post("/v1/batches", summary="Store one batch of a hall's records",
              operation_id="postBatch", response_model=None,
              responses={200: {"model": Stored, "description": Stored.__doc__},
                         **_responses(_BATCH_REFUSALS),
                         422: {"model": RecordRefused, "description": RecordRefused.__doc__},
                         **_responses(_CUT)},
              openapi_extra=batch_spec.BATCH_REQUEST)
    async def post_batch(request: Request) -> JSONResponse:
        hall = request.headers.get("x-hcp-hall", "")
        batch = request.headers.get("x-hcp-batch", "")
        sig = request.headers.get("x-hcp-signature", "")
        client = request.client.host if request.client else "?"
        async with bodies:
            body = await read_body(request, batches.MAX_BODY, "a batch")
            if isinstance(body, JSONResponse):
                doc = bytes(body.body).decode()
                log.warning("refused batch %s from hall %s (%s): HTTP %d %s", batch, hall, client,
                            body.status_code, doc)
                return body
            status, answer, close = await in_thread(
                lambda: _batch(backend, hall, batch, sig, body))
        if status != 200:
            log.warning("refused batch %s from hall %s (%s): HTTP %d %s", batch, hall, client,
                        status, answer["error"])
        return _answer(status, answer, close)

    @app.get("/v1/health", summary="Is the store up", operation_id="health",
             response_model=Health)
    async def health() -> JSONResponse:
        return _answer(200, {"ok": True, "backend": backend.dialect})

    @app.post("/v1/appeals", summary="A rated unit appeals a bad review (第十条)",
              operation_id="postAppeal", description=batch_spec.APPEAL_DESCRIPTION,
              status_code=201, response_model=None,
              responses={201: {"model": batch_spec.Appeal, "description": "Filed."},
                         **_responses(_APPEAL_REFUSALS), **_responses(_CUT)},
              openapi_extra=batch_spec.APPEAL_REQUEST)
    async def post_appeal(request: Request) -> JSONResponse:
        async with bodies:
            body = await read_body(request, rules_api.MAX_BODY, "an appeal")
            if isinstance(body, JSONResponse):
                return body
            auth = request.headers.get("authorization", "")
            status, doc = await in_thread(
                lambda: _or_away(backend, lambda s: rules_api.post_appeal(s, auth, body)))
        return _answer(status, doc, close=status >= 400)

    @app.get("/v1/appeals/{id}", summary="An appeal's state, for the unit that filed it",
             operation_id="getAppeal", response_model=None,
             responses={200: {"model": batch_spec.Appeal, "description": "The appeal."},
                        **_responses({k: _APPEAL_REFUSALS[k] for k in (401, 404, 503)})},
             openapi_extra=batch_spec.BEARER)
    async def get_appeal(id: str, request: Request) -> JSONResponse:
        auth = request.headers.get("authorization", "")
        status, doc = await in_thread(
            lambda: _or_away(backend, lambda s: rules_api.get_appeal(s, auth, id)))
        return _answer(status, doc)

    app.openapi = lambda: batch_spec.complete(app)  # type: ignore[method-assign]
    return app


def _answer(status: int, doc: dict[str, object], close: bool = False) -> JSONResponse:
    """A JSON answer; `close`: the connection is closed behind it (after a refusal whose body
    may be unread, or a database away)."""
    return JSONResponse(doc, status, headers={"Connection": "close"} if close else None)


def _or_away(backend: _Backend, fn: Callable[[Store], rules_api.Answer]) -> rules_api.Answer:
    """fn on this process's store; 503 when the database cannot be reached (or fails)."""
    try:
        return fn(backend.store())
    except HcpError as e:
        log.error("store database unavailable: %s", e)
    except Exception:
        log.exception("store database unavailable")
    return 503, {"error": _AWAY}


def _batch(backend: _Backend, hall: str, batch: str, sig: str, body: bytes
           ) -> tuple[int, dict[str, object], bool]:
    """In a thread: (HTTP status, JSON answer, close the connection) for one batch."""
    if not batches.valid_id(hall) or not batches.valid_batch_id(batch):
        return 400, refusal(400, "X-Hcp-Hall and X-Hcp-Batch headers required (ids)"), False
    try:
        store = backend.store()
        key = store.hall_key(hall)
    except Exception as e:  # the database is away: the hall will retry
        log.error("store database unavailable: %s", e)
        return 503, {"error": _AWAY}, True
    if key is None:
        return 403, refusal(403, "unknown hall %s (register it: hcp store add-hall)" % hall), False
    if not batches.verify(key, hall, batch, body, sig):
        return 401, refusal(401, "bad signature: the batch is not signed with hall %s's key"
                            % hall), False
    try:
        result = store_batch(store, hall, batch, body, backend.write_lock)
    except BadBatch as e:
        return e.status, refusal(e.status, str(e)), False
    except Exception as e:
        log.exception("batch %s from hall %s: store failed", batch, hall)
        return 503, {"error": "%s (%s)" % (_AWAY, type(e).__name__)}, True
    log.info("hall %s batch %s: %s, %d records (%d new)", hall, batch, result["status"],
             result["records"], result["new"])
    return 200, dict(result), False


def openapi_text() -> str:
    """The store's OpenAPI document as docs/store-openapi.json holds it (made from the code;
    `hcp store openapi`)."""
    doc = create_app(Settings(db="")).openapi()
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
