"""`hcp store serve`: the store's API (server.py) served by uvicorn, in worker processes under
uvicorn's supervisor, with TLS by the server and every resource bounded.

Why worker processes: in one CPython process the decoding and checking of one batch and the
database writer of another share one interpreter lock and end up taking turns (docs/store.md,
"Figures"); in two processes one decodes while the other writes. Each worker is a uvicorn
server of its own on the one listening socket, and opens its own database connection(s) when
its first request comes (SQLite WAL; PostgreSQL: a psycopg pool). uvicorn starts workers
afresh (spawn, not fork), so none inherits a lock held by a thread of the serving process.

uvicorn's supervisor (uvicorn.supervisors.Multiprocess) checks its workers every half second
and starts a new one for each that died (killed, out of memory) or stopped answering its
health pings; a batch the dead one was writing is rolled back by the database, and the hall's
retry stores it, once. The rules jobs (default ratings, the cases sweep) run in the serving
process only, once, not in every worker (tools/cli/hcp_store.py).

Bounds, per worker process: connections and requests at once (`max_connections`; past it a
request is answered 503 at once), request bodies in memory and threads on the database
(server.py), an idle keep-alive connection closed after `keep_alive_s`, headers at most
MAX_HEAD bytes, and a total read deadline: a request must arrive whole, headers and body,
within `read_timeout_s` of the connection (or, on a kept-alive connection, of its first byte),
or the connection is cut (408). The TLS handshake has asyncio's own deadline (60 s).
"""
from __future__ import annotations

import asyncio
import logging
import resource
import socket
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from haochaping.daemon.errors import HcpError
from haochaping.daemon.store.server import Settings, create_app

log = logging.getLogger(__name__)
MAX_HEAD = 64 * 1024
READY_S = 60        # a worker's start (a fresh interpreter importing FastAPI) takes 1-3 s


@dataclass(frozen=True)
class Limits:
    """The bounds of `hcp store serve` (per worker process)."""
    read_timeout_s: float = 60.0
    keep_alive_s: float = 15.0
    max_connections: int = 256


class _Protocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol (httptools) with a total read deadline per request and a
    bound on the size of its headers. uvicorn itself times out only an idle keep-alive
    connection after a response: a connection that never sends a whole request (one byte a
    minute) would otherwise stay open for ever."""

    def __init__(self, config: _Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._read_s = config.hcp_limits.read_timeout_s
        self._deadline: asyncio.TimerHandle | None = None
        self._in_head = True
        self._head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self._read_s, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > MAX_HEAD and not self.transport.is_closing():
            self._cut(431, "headers over %d bytes" % MAX_HEAD)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes = False, 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self._cut(408, "request not read whole within %g s" % self._read_s)

    def _cut(self, status: int, why: str) -> None:
        """Answer `status` (unless an answer has begun) and close the connection."""
        client = "%s:%d" % self.client if self.client else "?"
        log.warning("cut off %s: %s", client, why)
        if self.cycle is None or not self.cycle.response_started:
            body = ('{"error": "%s"}' % why).encode()
            self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
                                 b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (
                                     status, {408: b"Request Timeout",
                                              431: b"Request Header Fields Too Large"}[status],
                                     len(body), body))
        if self.cycle is not None:
            self.cycle.disconnected = True    # the app's answer, if any, goes nowhere
            self.cycle.message_event.set()    # and its wait for the body ends
        self.transport.close()
        # a TLS close waits up to 30 s (asyncio's) for the client's own close, reading all it
        # still trickles in: one second for the answer to go out, then the socket is dropped
        self.loop.call_later(1.0, self.transport.abort)


class _Config(uvicorn.Config):
    """uvicorn's settings plus ours; picklable (it travels to every spawned worker, where
    uvicorn makes the app from it)."""

    def __init__(self, settings: Settings, limits: Limits, log_level: int,
                 **kwargs: Any) -> None:
        self.hcp_settings, self.hcp_limits, self.hcp_log_level = settings, limits, log_level
        super().__init__(app=create_app, factory=True, http=_Protocol, lifespan="on",
                         access_log=False, log_config=None, server_header=False,
                         ssl_context_factory=_tls,
                         timeout_keep_alive=int(max(1, limits.keep_alive_s)),
                         limit_concurrency=limits.max_connections, **kwargs)

    def load_app(self) -> Any:
        settings = self.hcp_settings
        return lambda: create_app(settings)

    def configure_logging(self) -> None:
        # in a spawned worker nothing is set up yet: log as `hcp` does, to the serving
        # process's own stderr, which the worker inherits
        logging.basicConfig(level=self.hcp_log_level, stream=sys.stderr,
                            format="%(asctime)s %(name)s[%(process)d] %(levelname)s %(message)s")
        logging.getLogger("uvicorn.error").setLevel(max(self.hcp_log_level, logging.WARNING))
        super().configure_logging()


def _tls(config: uvicorn.Config, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's TLS context (the certificate and key given), TLS 1.2 at least."""
    ctx = default()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class _Supervisor(Multiprocess):
    """uvicorn's supervisor, saying when every worker is serving (so that the first clients'
    connections are spread over them all, not all taken by the first one up) and, in our log
    at ERROR (it matters without -v), when it replaces a worker that died."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket],
                 on_ready: Callable[[], None]) -> None:
        super().__init__(config, sockets)
        self.on_ready = on_ready

    def init_processes(self) -> None:
        super().init_processes()
        for p in self.processes:
            if not p.wait_until_ready(READY_S, self.should_exit) and not self.should_exit.is_set():
                log.warning("store worker process %s is not serving after %d s", p.pid, READY_S)
        self.on_ready()

    def keep_subprocess_alive(self) -> None:
        before = {p.pid for p in self.processes}
        super().keep_subprocess_alive()
        for pid in sorted(before - {p.pid for p in self.processes}, key=lambda p: p or 0):
            log.error("store worker process %s died (killed, or out of memory); started a new"
                      " one", pid)


def check_tls(cert: str | None, key: str | None, insecure_http: bool) -> None:
    """Before anything starts: HTTPS needs a certificate and key that load."""
    if insecure_http:
        return
    if not cert or not key:
        raise HcpError("HTTPS needs --cert and --key (or, only behind a TLS proxy,"
                       " --insecure-http)")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise HcpError("cannot load the certificate %s / key %s: %s" % (cert, key, e)) from e


def listen(address: str) -> socket.socket:
    """The listening socket for HOST:PORT (the workers share it)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise HcpError("--listen: HOST:PORT, got %r" % address)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), int(port)))
    except OSError as e:
        sock.close()
        raise HcpError("cannot listen on %s: %s" % (address, e.strerror)) from e
    sock.set_inheritable(True)
    return sock


def _more_files(need: int) -> None:
    """Raise this process's open-file limit (inherited by the workers) toward `need`, within
    the hard limit: each connection is a file."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def serve(settings: Settings, sock: socket.socket, workers: int, cert: str | None,
          key: str | None, limits: Limits = Limits(),
          on_ready: Callable[[], None] = lambda: None) -> None:
    """Serve until SIGTERM or SIGINT: `workers` processes under uvicorn's supervisor, or with
    0 this process alone (no supervisor: nothing replaces it but the service manager).
    `on_ready` is called once every worker serves."""
    _more_files(limits.max_connections * max(1, workers) + 256)
    config = _Config(settings, limits, logging.getLogger().getEffectiveLevel(),
                     ssl_certfile=cert, ssl_keyfile=key, workers=max(1, workers),
                     timeout_graceful_shutdown=20)
    if workers == 0:
        on_ready()
        uvicorn.Server(config).run(sockets=[sock])
    else:
        _Supervisor(config, [sock], on_ready).run()
