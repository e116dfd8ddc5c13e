"""The daemon's HTTP listener: one FastAPI app (the window API under /api/v1, daemon/hall/api.py;
the hall console everywhere else, daemon/hall/console/web.py) served by uvicorn on an event loop
in a thread of the daemon's HTTP process (daemon/hall/web_child.py). Requests reach the writer
through `daemon.submit(command, *args)`: a named command (daemon/hall/commands.py) that the
daemon's process runs as it runs the MQTT ingest.

Every resource is bounded ([api] in hall.toml):
  max_connections   open connections; one more is closed as soon as it is accepted, and the
                    last one allowed is answered 503 (uvicorn's limit_concurrency)
  worker_threads    requests worked on at once (anyio's thread limiter); the rest wait
  keepalive_s       an idle connection, before or between requests, is closed
  read_timeout_s    a request's head and body must arrive within this, counted from its first
                    byte and never restarted by a later one: a client that trickles a byte at a
                    time is cut off (uvicorn restarts nothing, but waits for ever once a byte came)
  max_body_bytes    a larger body is answered 413 and the connection closed
"""
from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import h11
import uvicorn
from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from uvicorn.protocols.http.h11_impl import H11Protocol

from haochaping.daemon.hall import api
from haochaping.daemon.hall.settings import ApiSection, MobileSection

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from haochaping.daemon.hall.web_child import Front

log = logging.getLogger(__name__)
_SHUTDOWN_S = 3  # streams and slow requests get this long to finish when the daemon stops


class _BoundedH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with the bounds it lacks: a connection cap, an idle timeout
    from the moment a connection opens, one total deadline for each request to arrive, and a
    JSON body on the 400 it sends for a request it cannot parse."""

    max_connections = 500  # set per server: ApiServer makes a subclass with its own values
    read_timeout_s = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.close()
            return
        # idle before the first byte: the same limit as idle between requests
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive,
                                                            self.timeout_keep_alive_handler)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
            self._deadline = self.loop.call_later(self.read_timeout_s, self._too_slow)
        super().data_received(data)
        if self._deadline is not None and self.conn.their_state not in (h11.IDLE,
                                                                        h11.SEND_BODY):
            self._deadline.cancel()  # the whole request is in
            self._deadline = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().connection_lost(exc)

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:  # still in the head: say so
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json"
                                 b"\r\nContent-Length: 49\r\nConnection: close\r\n\r\n"
                                 b'{"error": "the request did not arrive in time"}\r\n')
        self.transport.close()  # a body still arriving: the app sees the client gone

    def send_400_response(self, msg: str) -> None:
        body = json.dumps({"error": "malformed HTTP request: %s" % msg}).encode()
        self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                             % (len(body), body))
        self.transport.close()


def _not_found(request: Request, exc: Exception) -> Response:
    """404/405 from the router: in the console's form for its pages, else the API's."""
    status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
    console = getattr(request.app.state, "console", None)
    if console is not None and not request.url.path.startswith("/api/"):
        return console.refused_response(request, status,
                                        "method" if status == 405 else "no such page")
    return JSONResponse({"error": "not found" if status == 404 else "method not allowed"},
                        status_code=status)


def _client_gone(request: Request, exc: Exception) -> Response:
    """The client went away while its body was arriving (or was cut off): nobody to answer."""
    return Response(status_code=400, headers={"Connection": "close"})


def build_app(daemon: Front) -> FastAPI:
    """The daemon's one app: the window API (documented at /openapi.json) and the console."""
    app = FastAPI(title=api.TITLE, version=api.VERSION, openapi_url=None, docs_url=None,
                  redoc_url=None, lifespan=lifespan(daemon.cfg.api))
    app.state.daemon = daemon
    app.state.console = None
    app.include_router(api.router)
    if daemon.cfg.console.enabled:
        from haochaping.daemon.hall.console.web import Console
        app.state.console = Console(daemon)
        app.include_router(app.state.console.router())
    api.install(app)
    app.add_exception_handler(StarletteHTTPException, _not_found)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    return app


def lifespan(cfg: ApiSection | MobileSection) -> Any:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # requests worked on at once: the threads sync routes and the writer's callers run in
        anyio.to_thread.current_default_thread_limiter().total_tokens = cfg.worker_threads
        yield
    return lifespan


class ApiServer:
    """The listener on `sock` (bound by the daemon: web_process.bind, so a port in use fails
    `hcp daemon run` at once), served from start() to stop() in a thread of its own. The same
    class serves the phone page ([mobile], daemon/hall/mobile.py) with its own app, bounds and
    name; `proxy`: the address whose X-Forwarded-For is believed ("": none; None: uvicorn's
    defaults)."""

    def __init__(self, app: FastAPI, cfg: ApiSection | MobileSection, sock: socket.socket,
                 name: str = "api", proxy: str | None = None) -> None:
        self.name = name
        self.app = app
        self.sock = sock
        self.address = "http://%s:%d" % self.sock.getsockname()[:2]
        protocol = type("BoundedH11", (_BoundedH11,), {
            "max_connections": cfg.max_connections, "read_timeout_s": float(cfg.read_timeout_s)})
        forwarded: dict[str, Any] = {} if proxy is None else {
            "proxy_headers": bool(proxy), "forwarded_allow_ips": proxy or None}
        config = uvicorn.Config(
            self.app, http=protocol, lifespan="on", log_config=None, access_log=False,
            limit_concurrency=cfg.max_connections, backlog=cfg.max_connections,
            timeout_keep_alive=cfg.keepalive_s, timeout_graceful_shutdown=_SHUTDOWN_S,
            h11_max_incomplete_event_size=16 * 1024, server_header=False, **forwarded)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)

    def _serve(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def start(self, timeout: float = 10) -> None:
        self._thread.start()
        end = time.monotonic() + timeout
        while not self.server.started and self._thread.is_alive() and time.monotonic() < end:
            time.sleep(0.01)
        if not self.server.started:
            raise RuntimeError("%s on %s did not start" % (self.name, self.address))

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(_SHUTDOWN_S + 5)
        self.sock.close()
