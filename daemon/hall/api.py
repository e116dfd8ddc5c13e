"""The local HTTP API (JSON) a queue system calls, and that `hcp window` uses.

    POST /api/v1/windows/<W>/start   {"ticket": "A017", "item": "事项编码", "staff": "S01"}
    POST /api/v1/windows/<W>/finish  {}
    GET  /api/v1/windows/<W>         -> {"state": "idle|serving|prompting|rated|not-rated", ...}
    GET  /api/v1/health              -> {"ok": true, "broker": true, "quarantined": 0, ...}

Every call needs `Authorization: Bearer <token>` with a token from [api.tokens] in hall.toml.
Bound to 127.0.0.1 unless hall.toml says otherwise.
"""
from __future__ import annotations

import hmac
import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from haochaping.daemon.errors import HcpError, InvalidInput
from haochaping.daemon.hall import windows
from haochaping.daemon.hall.settings import ApiSection
from haochaping.daemon.hall.windows import Publish

if TYPE_CHECKING:
    from haochaping.daemon.hall.console.web import Console
    from haochaping.daemon.hall.service import HallDaemon

log = logging.getLogger(__name__)
MAX_BODY = 4096


class ApiServer:
    def __init__(self, daemon: HallDaemon, cfg: ApiSection) -> None:
        host, _, port = cfg.listen.rpartition(":")
        self.daemon = daemon
        self.tokens = {name: tok.encode() for name, tok in cfg.tokens.items()}
        self.console: Console | None = None  # the hall web console: every path outside /api/
        if daemon.cfg.console.enabled:
            from haochaping.daemon.hall.console.web import Console
            self.console = Console(daemon)
        handler = type("Handler", (_Handler,), {"api": self})
        self.httpd = ThreadingHTTPServer((host, int(port)), handler)
        self.httpd.daemon_threads = True
        # the address bound (server_address, typed loosely: it may be given as bytes)
        self.address = "http://%s:%d" % self.httpd.socket.getsockname()[:2]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="api", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("window API on %s", self.address)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def caller(self, header: str | None) -> str | None:
        if not header or not header.startswith("Bearer "):
            return None
        given = header[7:].strip().encode()
        for name, tok in self.tokens.items():
            if hmac.compare_digest(given, tok):
                return name
        return None


class _Handler(BaseHTTPRequestHandler):
    api: ApiServer  # set per server: ApiServer makes a subclass that has it
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s", self.address_string(), fmt % args)

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self) -> tuple[list[str], str] | tuple[None, None]:
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        if parts[:2] != ["api", "v1"]:
            return None, None
        return parts[2:], self.command

    def _authorised(self) -> str | None:
        who = self.api.caller(self.headers.get("Authorization"))
        if who is None:
            self._send(401, {"error": "missing or wrong bearer token"
                                      " (see [api.tokens] in hall.toml)"})
        return who

    def do_GET(self) -> None:
        if self.api.console and not self.path.startswith("/api/"):
            return self.api.console.handle(self)
        parts, _ = self._route()
        if parts is None or not self._authorised():
            if parts is None:
                self._send(404, {"error": "not found"})
            return
        d = self.api.daemon
        if parts == ["health"]:
            # quarantined: records the store refused, held for hall IT (hcp forward quarantine)
            from haochaping.daemon.hall import forward
            return self._send(200, {"ok": True, "broker": d.link.connected.is_set(),
                                    "messages": d.stored, "commits": d.commits,
                                    "quarantined": forward.quarantined_at(d.cfg.hall.database)})
        if len(parts) == 2 and parts[0] == "windows":
            try:
                windows.check(parts[1])
            except InvalidInput as e:
                return self._send(400, {"error": str(e), "field": e.field})
            return self._call(lambda conn, now: (windows.window_state(conn, parts[1]), []))
        self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.api.console and not self.path.startswith("/api/"):
            return self.api.console.handle(self)
        parts, _ = self._route()
        if parts is None:
            return self._send(404, {"error": "not found"})
        who = self._authorised()
        if not who:
            return
        body = self._body()
        if body is None:
            return
        if len(parts) != 3 or parts[0] != "windows" or parts[2] not in ("start", "finish"):
            return self._send(404, {"error": "not found"})
        window, action = parts[1], parts[2]
        timeout = self.api.daemon.cfg.sessions.timeout_s
        if action == "start":
            try:  # before anything is stored: 400 naming the field
                windows.check_start(window, body.get("ticket"), body.get("item", ""),
                                    body.get("staff", ""))
            except InvalidInput as e:
                return self._send(400, {"error": str(e), "field": e.field})
            ticket, item, staff = body["ticket"], body.get("item", ""), body.get("staff", "")

            def fn(conn: sqlite3.Connection, now: float) -> tuple[dict[str, Any], list[Publish]]:
                tx, pubs = windows.start(conn, window, ticket, item, staff, now)
                return {"transaction": tx, "window": window, "ticket": ticket}, pubs
        else:
            def fn(conn: sqlite3.Connection, now: float) -> tuple[dict[str, Any], list[Publish]]:
                tx, terms, pubs = windows.finish(conn, window, now, timeout)
                return {"transaction": tx, "window": window, "terminals": terms,
                        "prompt_timeout_s": timeout}, pubs
        log.info("%s: window %s %s", who, window, action)
        self._call(fn)

    def _body(self) -> dict[str, Any] | None:
        """The request's JSON object, read whole; or None once a 400/413 is sent. A length that
        is not a number, a body that is not UTF-8 JSON or not an object: 400, never a dropped
        connection. After a refused length the connection is closed (the body was not read)."""
        given = self.headers.get("Content-Length") or "0"
        if not (given.isascii() and given.strip().isdigit()):
            self.close_connection = True
            self._send(400, {"error": "Content-Length must be a number of bytes"})
            return None
        length = int(given)
        if length > MAX_BODY:
            self.close_connection = True
            self._send(413, {"error": "body too large (at most %d bytes)" % MAX_BODY})
            return None
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            body = None
        if not isinstance(body, dict):
            self._send(400, {"error": "body must be a JSON object (UTF-8)"})
            return None
        return body

    def _call(self, fn: Callable[[sqlite3.Connection, float],
                                 tuple[dict[str, Any], list[Publish]]]) -> None:
        try:
            result = self.api.daemon.submit(fn)
        except InvalidInput as e:
            return self._send(400, {"error": str(e), "field": e.field})
        except HcpError as e:
            return self._send(409, {"error": str(e)})
        except TimeoutError as e:
            return self._send(503, {"error": str(e)})
        self._send(200, result)
