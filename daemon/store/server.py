"""The municipal store's HTTPS API (docs/store-openapi.yaml): stdlib ThreadingHTTPServer + ssl.

Why the standard library: one POST endpoint and a health check need no framework, and every
hall daemon and test already has it. TLS is done in each connection's own thread (not in
accept), so a slow or plain-HTTP client never holds up the others; a plain-HTTP request gets a
plain 400 saying "use https" instead of a TLS alert it cannot read.

    POST /v1/batches   headers X-Hcp-Hall, X-Hcp-Batch, X-Hcp-Signature (hex HMAC-SHA256)
                       200 {"status": "stored"|"duplicate", "batch", "records", "new"}
                       400 malformed · 401 bad signature · 403 unknown hall · 409 batch id reused
                       411/413 length · 422 a record refused (a rule broken, or a value the
                       database cannot hold): {"error", "record", "field"} · 503 database away
    GET  /v1/health    200 {"ok": true, "backend": "sqlite"|"postgres"}
    POST /v1/appeals   a rated unit's appeal (第十条), Authorization: Bearer <unit token>;
    GET  /v1/appeals/ID                                               see rules_api.py
"""
from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, ClassVar

from haochaping.daemon import batches
from haochaping.daemon.batches import BadBatch
from haochaping.daemon.errors import HcpError
from haochaping.daemon.store import rules_api, workers

if TYPE_CHECKING:
    from socketserver import _RequestType

    from haochaping.daemon.store.backends import BatchAnswer, Store

log = logging.getLogger(__name__)
_HANDSHAKE_S = 10
_PLAIN_REFUSAL = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                  b"Connection: close\r\nContent-Length: %d\r\n\r\n%s")
# a refusal that names its record, as docs/store.md words them: "record H01:tx:3: ticket …"
# (the field: a word the batch body knows), or "record H01:tx:3 cannot be stored: …"
_NAMED = re.compile(r"record (\S+?)(?:: (\w+) | )")
_UID = re.compile(r"[A-Za-z0-9_-]{1,32}:(?:tx|rating|reason):")  # batches.py's record ids
_FIELDS = frozenset(f for fields in batches.FIELDS.values() for f in fields[1:])


def refusal(status: int, reason: str) -> dict[str, object]:
    """The body of a refusal: the reason in words; for a 422 also the refused record's id and
    field (each None when the reason names none), so that a hall or a person can find it."""
    doc: dict[str, object] = {"error": reason}
    if status == 422:
        m = _NAMED.match(reason)
        doc["record"] = m.group(1) if m and _UID.match(m.group(1)) else None
        doc["field"] = m.group(2) if m and m.group(2) in _FIELDS else None
    return doc


class StoreServer:
    def __init__(self, store: Store, listen: str, cert: str | None = None, key: str | None = None,
                 insecure_http: bool = False, workers: workers.Workers | None = None) -> None:
        """workers: a workers.Workers pool that stores the batches, or None to store them in
        the connections' own threads."""
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit():
            raise HcpError("--listen: HOST:PORT, got %r" % listen)
        self.store, self.workers = store, workers
        self.ctx: ssl.SSLContext | None = None
        if not insecure_http:
            if not cert or not key:
                raise HcpError("HTTPS needs --cert and --key (or, only behind a TLS proxy,"
                               " --insecure-http)")
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            try:
                self.ctx.load_cert_chain(cert, key)
            except (OSError, ssl.SSLError) as e:
                raise HcpError("cannot load the certificate %s / key %s: %s"
                               % (cert, key, e)) from e
        handler = type("Handler", (_Handler,), {"server_ref": self})
        try:
            self.httpd = _Server((host, int(port)), handler, self.ctx)
        except OSError as e:
            raise HcpError("cannot listen on %s: %s" % (listen, e.strerror)) from e
        scheme = "http" if insecure_http else "https"
        # the address the socket got (with port 0: the port the system chose)
        self.address = "%s://%s:%d" % ((scheme,) + self.httpd.socket.getsockname()[:2])
        self._thread: threading.Thread | None = None

    def store_batch(self, hall: str, batch: str, body: bytes) -> BatchAnswer:
        if self.workers is not None:
            return self.workers.store_batch(hall, batch, body)
        return workers.store_batch(self.store, hall, batch, body)

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> StoreServer:
        self._thread = threading.Thread(target=self.serve_forever, name="store-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], handler: type[_Handler],
                 ctx: ssl.SSLContext | None) -> None:
        self.ctx = ctx
        super().__init__(addr, handler)

    def finish_request(self, request: _RequestType, client_address: Any) -> None:
        if self.ctx is not None and isinstance(request, socket.socket):  # (TCP: a socket)
            request.settimeout(_HANDSHAKE_S)
            try:
                first = request.recv(1, socket.MSG_PEEK)
            except OSError:
                return
            if first and first != b"\x16":  # not a TLS handshake: someone speaks plain HTTP
                body = json.dumps({"error": "this store speaks HTTPS only: use https://"}).encode()
                log.warning("refused plain HTTP from %s", client_address[0])
                with contextlib.suppress(OSError):
                    request.sendall(_PLAIN_REFUSAL % (len(body), body))
                    _drain(request)
                return
            try:
                request = self.ctx.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                log.warning("TLS handshake with %s failed: %s", client_address[0], e)
                return
            request.settimeout(None)
            try:
                super().finish_request(request, client_address)
            finally:
                request.close()
            return
        super().finish_request(request, client_address)


def _drain(sock: socket.socket) -> None:
    """After an answer sent before the request was read: say the answer is complete, then read
    and drop what the client still sends until it closes (at most _HANDSHAKE_S seconds). A
    socket closed with unread data resets the connection, and a client still sending its body
    would get "broken pipe" instead of the answer."""
    sock.shutdown(socket.SHUT_WR)
    end = time.monotonic() + _HANDSHAKE_S
    while (left := end - time.monotonic()) > 0:
        sock.settimeout(left)
        if not sock.recv(65536):
            return


class _Handler(BaseHTTPRequestHandler):
    server_ref: ClassVar[StoreServer | None] = None     # set in StoreServer's subclass of it
    protocol_version = "HTTP/1.1"  # keep-alive: a hall posts batch after batch on one connection
    # TCP_NODELAY: the answer's headers and body are two writes; with Nagle's algorithm the
    # second waits for the hall's delayed ACK (40 ms per batch on Linux)
    disable_nagle_algorithm = True
    timeout = 120

    def _server(self) -> StoreServer:
        """The StoreServer this handler answers for."""
        if self.server_ref is None:
            raise RuntimeError("a _Handler answers only through the subclass StoreServer makes")
        return self.server_ref

    def log_message(self, fmt: str, *args: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s", self.client_address[0], fmt % args)

    def _reply(self, status: int, doc: Mapping[str, object], close: bool = False) -> None:
        body = json.dumps(doc, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _refuse(self, status: int, reason: str, hall: str | None = None, batch: str | None = None,
                close: bool = False) -> None:
        log.warning("refused batch %s from hall %s (%s): HTTP %d %s", batch, hall,
                    self.client_address[0], status, reason)
        self._reply(status, refusal(status, reason), close)

    def do_GET(self) -> None:
        if self.path.startswith("/v1/appeals/"):
            self._reply(*rules_api.get_appeal(self._server().store, self.headers,
                                              self.path[len("/v1/appeals/"):]))
        elif self.path == "/v1/health":
            self._reply(200, {"ok": True, "backend": self._server().store.dialect})
        else:
            self._reply(404, {"error": "no such path: POST /v1/batches, GET /v1/health"})

    def do_POST(self) -> None:
        if self.path == "/v1/appeals":
            self._post_appeal()
            return
        if self.path != "/v1/batches":
            self._reply(404, {"error": "no such path: POST /v1/batches"}, close=True)
            return
        hall = self.headers.get("X-Hcp-Hall", "")
        batch = self.headers.get("X-Hcp-Batch", "")
        sig = self.headers.get("X-Hcp-Signature", "")
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._refuse(411, "Content-Length required", hall, batch, close=True)
            return
        n = int(length)
        if n > batches.MAX_BODY:
            # not read: answered at once, and the connection closed behind it
            self._refuse(413, "body of %d bytes is over the limit of %d" % (n, batches.MAX_BODY),
                         hall, batch, close=True)
            return
        body = self.rfile.read(n)
        if len(body) != n:
            self._refuse(400, "body truncated: got %d of %d bytes" % (len(body), n), hall, batch,
                         close=True)
            return
        if not batches.valid_id(hall) or not batches.valid_batch_id(batch):
            self._refuse(400, "X-Hcp-Hall and X-Hcp-Batch headers required (ids)", hall, batch)
            return
        store = self._server().store
        try:
            key = store.hall_key(hall)
        except Exception as e:  # the database is away: the hall will retry
            log.error("store database unavailable: %s", e)
            self._reply(503, {"error": "store database unavailable, retry later"}, close=True)
            return
        if key is None:
            self._refuse(403, "unknown hall %s (register it: hcp store add-hall)" % hall,
                         hall, batch)
            return
        if not batches.verify(key, hall, batch, body, sig):
            self._refuse(401, "bad signature: the batch is not signed with hall %s's key" % hall,
                         hall, batch)
            return
        try:
            result = self._server().store_batch(hall, batch, body)
        except BadBatch as e:
            self._refuse(e.status, str(e), hall, batch)
            return
        except Exception as e:
            log.exception("batch %s from hall %s: store failed", batch, hall)
            self._reply(503, {"error": "store database unavailable, retry later (%s)"
                              % type(e).__name__}, close=True)
            return
        log.info("hall %s batch %s: %s, %d records (%d new)", hall, batch, result["status"],
                 result["records"], result["new"])
        self._reply(200, result)

    def _post_appeal(self) -> None:
        status, doc = rules_api.post_appeal(self._server().store, self.headers, self.rfile)
        self._reply(status, doc, close=status >= 400)
