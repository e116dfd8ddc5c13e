"""The console's HTTP side: routes of the daemon's one app (daemon/hall/listener.py; the window
API has /api/), for pages, their JSON calls, Server-Sent Events, static files.

    GET  /                        index: links to every window page and the hall page
    GET  /window/<W>              the window staff page           (role staff, signed in at W)
    POST /window/<W>/sign-in      {"number", "pin"}
    POST /window/<W>/start        {"ticket", "item"}      a ticket is called (same as the API)
    POST /window/<W>/finish       {}                      「请评价」 (same as the API)
    POST /window/<W>/sign-out     {}
    GET  /window/<W>/state        JSON;  GET /window/<W>/events  Server-Sent Events
    GET  /window/<W>/qr.svg       the open prompt's 评价二维码 (daemon/hall/qrcodes.py), 404 if none
    GET  /hall  POST /hall/sign-in  POST /hall/sign-out  GET /hall/state  GET /hall/events
    GET  /static/<file>

Rules: the session cookie is HttpOnly and SameSite=Strict; every POST carries the session's CSRF
token in `X-CSRF-Token` (and a cross-site Origin is refused); staff act only on the window they
signed in at, managers only on /hall; the account is re-read on every request, so disabling it or
changing its PIN ends its sessions; sign-ins are counted per staff number and per address before
the PIN is checked, and at most [console] pin_checks PINs are checked at once (the others are
answered 429 at once); at most [console] max_streams pages are live at once.

Pages are Jinja2 templates (templates/: base.html, which every page extends), autoescaped, with
every text from static/labels.<lang>.json as `L`. The work of a request (database reads, the
writer, scrypt) runs in the app's worker threads; the event loop only routes, and answers the
sign-ins refused before their PIN is looked at (429 locked or busy: take_pin_check).
"""
from __future__ import annotations

import hmac
import json
import mimetypes
import os
import queue
import re
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import jinja2
from fastapi import APIRouter
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from haochaping.daemon.errors import HcpError, InvalidInput
from haochaping.daemon.hall import api, integrity_live, windows
from haochaping.daemon.hall.console import keypad_link, staff, views
from haochaping.daemon.hall.console.refused import Refused
from haochaping.daemon.hall.console.sessions import PinLimiter, Session, Sessions
from haochaping.protocol import fields, topics

if TYPE_CHECKING:
    from haochaping.daemon.hall.settings import HallConfig
    from haochaping.daemon.hall.web_child import Front

Labels = dict[str, Any]  # labels.<lang>.json: texts, and tables of texts (levels, errors, ...)
JsonObject = dict[str, Any]

COOKIE = "hcp_console"
INTEGRITY_EVERY_S = 60.0  # the manager page's integrity findings: recomputed this often
_HERE = os.path.dirname(os.path.abspath(__file__))
_KEEPALIVE_S = 15
_COALESCE_S = 0.1  # events that come together make one redraw
_REFRESH_S = {"window": 10.0, "hall": 5.0}  # also redraw this often without events
_MIN_GAP_S = {"window": 0.1, "hall": 0.3}    # at most this often under a flood of events
_PAGES = ("index.html", "window.html", "hall.html", "error.html")
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self';"
    " connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none';"
    " frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_JSON = "application/json; charset=utf-8"


def load_labels(lang: str = "zh-CN") -> Labels:
    """Every text the pages show, in one file per language: static/labels.<lang>.json."""
    with open(os.path.join(_HERE, "static", "labels.%s.json" % lang), encoding="utf-8") as f:
        return json.load(f)


def script_json(value: object) -> Markup:
    """`value` as JSON to stand inside <script type="application/json">, where the browser decodes
    no HTML entities (so no HTML escaping) and ends the element at the first `</script`: every `<`
    (found only inside JSON strings) is written `\\u003c`, so no text can end or change the element.
    """
    return Markup(json.dumps(value, ensure_ascii=False).replace("<", "\\u003c"))


def fill(text: str, values: Mapping[str, Any]) -> str:
    """A label with its {placeholders} filled from `values`; one without a value is left out
    (never shown as `{detail}`)."""
    return re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), "")), text)


def load_templates() -> dict[str, jinja2.Template]:
    """The pages, compiled once: autoescaped ({{ }} is text), and an unknown name (a label that
    is not in the labels file) is an error rather than an empty string."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.path.join(_HERE, "templates")),
        autoescape=True, undefined=jinja2.StrictUndefined, auto_reload=False,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["script_json"] = script_json
    return {name: env.get_template(name) for name in _PAGES}


class Console:
    def __init__(self, daemon: Front) -> None:
        cfg = daemon.cfg.console
        self.daemon = daemon
        self.db_path: str = daemon.cfg.hall.database
        self.prompt_timeout: int = daemon.cfg.sessions.timeout_s
        self.max_body: int = daemon.cfg.api.max_body_bytes
        self.sessions = Sessions(cfg.session_idle_s, cfg.session_max_s, write=self._write)
        conn = views.reader(self.db_path)  # the sessions a previous run kept
        try:
            self.sessions.load(conn)
        finally:
            conn.close()
        self.pins = PinLimiter(cfg.lockout_s)
        self.pin_failures = cfg.pin_failures
        self.pin_checks = threading.BoundedSemaphore(cfg.pin_checks)  # scrypt: 16 MiB each
        # ... in threads of their own: each thread's malloc arena keeps the 16 MiB it once
        # had, so scrypt in any of the 40 request threads grew the daemon by 40 x 16 MiB
        self.pin_threads = ThreadPoolExecutor(cfg.pin_checks, thread_name_prefix="pin-check")
        self.max_streams = cfg.max_streams
        self.streams = 0  # live event streams (changed on the event loop only)
        self._stream_threads: anyio.CapacityLimiter | None = None
        self.labels = load_labels(cfg.language)
        self.static: dict[str, tuple[bytes, str]] = {}  # name -> (content, Content-Type)
        folder = os.path.join(_HERE, "static")
        for name in os.listdir(folder):
            with open(os.path.join(folder, name), "rb") as f:
                ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
                if ctype.startswith("text/") or name.endswith((".js", ".json")):
                    ctype += "; charset=utf-8"
                self.static[name] = (f.read(), ctype)
        self.templates = load_templates()
        self._integrity: tuple[float, list[JsonObject]] = (-INTEGRITY_EVERY_S, [])
        # a kept demo's keypad socket ([console] demo_keypad), or None
        self.demo_keypad: str | None = (keypad_link.socket_path(daemon.cfg.path)
                                        if cfg.demo_keypad and daemon.cfg.path else None)

    def integrity_today(self, conn: sqlite3.Connection, now: float) -> list[JsonObject]:
        """Today's integrity findings (daemon/hall/integrity_live.py) for the manager page,
        worked out at most once a minute: the page redraws every few seconds."""
        at, found = self._integrity
        if now - at >= INTEGRITY_EVERY_S:
            found = [{"unit": f["unit"], "detector": f["detector"],
                      "explanation": f["explanation"]}
                     for f in integrity_live.today(conn, self.daemon.cfg.hall.id, now)]
            self._integrity = (now, found)
        return found

    def _write(self, command: str, args: tuple[Any, ...], wait: bool) -> None:
        """The named command in the daemon's writer transaction (sessions.Write)."""
        if wait:
            self.daemon.submit(command, *args)
        else:
            self.daemon.post(command, *args)

    def place_name(self, place: str | None) -> str:
        """A place as the pages name it: 大厅值班, or 窗口 W02."""
        if place is None:
            return ""
        return self.labels["hall"] if place == "hall" else "%s %s" % (self.labels["window"],
                                                                       place)

    # ------------------------------------------------------------ routes
    def router(self) -> APIRouter:
        r = APIRouter(include_in_schema=False)
        r.add_api_route("/", self._index, methods=["GET"])
        r.add_api_route("/static/{name}", self._static, methods=["GET"])
        r.add_api_route("/window/{window}", self._window_page, methods=["GET"])
        r.add_api_route("/window/{window}/{action}", self._window_get, methods=["GET"])
        r.add_api_route("/window/{window}/{action}", self._window_post, methods=["POST"])
        r.add_api_route("/hall", self._hall_page, methods=["GET"])
        r.add_api_route("/hall/{action}", self._hall_get, methods=["GET"])
        r.add_api_route("/hall/{action}", self._hall_post, methods=["POST"])
        if self.demo_keypad is not None:
            r.add_api_route("/demo/press", self._demo_press, methods=["POST"])
        return r

    async def _demo_press(self, request: Request) -> Response:
        return await self._serve(request, lambda r: r.demo_press(), post=True)

    def refused_response(self, request: Request, status: int, detail: str) -> Response:
        """The console's answer to a path or method no route has: a page in the console's
        language for a browser's address bar, JSON for a page's script."""
        return _Request(self, request).refuse(Refused(status, "no-page", detail=detail))

    async def _index(self, request: Request) -> Response:
        return await self._serve(request, lambda r: r.index())

    async def _static(self, request: Request, name: str) -> Response:
        return await self._serve(request, lambda r: r.static_file(name), threaded=False)

    async def _window_page(self, request: Request, window: str) -> Response:
        return await self._serve(request, lambda r: r.window(window, ""))

    async def _window_get(self, request: Request, window: str, action: str) -> Response:
        if action == "events":
            return await self._events(request, lambda r: r.window(window, action))
        return await self._serve(request, lambda r: r.window(window, action))

    async def _window_post(self, request: Request, window: str, action: str) -> Response:
        return await self._serve(request, lambda r: r.window(window, action), post=True,
                                 sign_in=action == "sign-in")

    async def _hall_page(self, request: Request) -> Response:
        return await self._serve(request, lambda r: r.place("hall", "manager", ""))

    async def _hall_get(self, request: Request, action: str) -> Response:
        if action == "events":
            return await self._events(request, lambda r: r.place("hall", "manager", action))
        return await self._serve(request, lambda r: r.place("hall", "manager", action))

    async def _hall_post(self, request: Request, action: str) -> Response:
        return await self._serve(request, lambda r: r.place("hall", "manager", action),
                                 post=True, sign_in=action == "sign-in")

    async def _serve(self, request: Request, fn: Callable[[_Request], Response],
                     post: bool = False, threaded: bool = True, sign_in: bool = False
                     ) -> Response:
        """One request: its body read first (so a refused one leaves the connection clean), the
        Origin checked for a write, then `fn` in a worker thread (it reads the database). A
        sign-in that would only be answered 429 is answered here, on the event loop."""
        r = _Request(self, request)
        try:
            if post:
                try:
                    r.raw = await api.read_body(request, self.max_body)
                except api.Refused:
                    raise Refused(413, "bad-input", close=True, detail="body too large") from None
                r.check_origin()
            if sign_in:
                r.take_pin_check()
            if not threaded:
                return r.run(fn)
            return await run_in_threadpool(r.run, fn)
        except Refused as e:
            return r.refuse(e)
        finally:
            r.give_back_pin_check()

    # ------------------------------------------------------------ live updates
    async def _events(self, request: Request, authorise: Callable[[_Request], Response]
                      ) -> Response:
        """Server-Sent Events (see _Stream); `authorise` answers the refusal, or raises
        _Go with the session and place when the stream may start."""
        r = _Request(self, request)
        try:
            answer = await run_in_threadpool(r.run, authorise)
        except _Go as go:
            if self.streams >= self.max_streams:
                return r.refuse(Refused(503, "busy"))
            stream = _Stream(r, go.place, go.session)
            return StreamingResponse(self._stream(stream), status_code=200, headers={
                **_SECURITY_HEADERS, "X-Accel-Buffering": "no", "Connection": "close"},
                media_type="text/event-stream; charset=utf-8")
        return answer

    async def _stream(self, stream: _Stream) -> AsyncIterator[bytes]:
        if self._stream_threads is None:  # created on the event loop, where it is used
            self._stream_threads = anyio.CapacityLimiter(self.max_streams)
        threads = self._stream_threads
        self.streams += 1
        try:
            yield b"retry: 2000\n\n"
            yield await anyio.to_thread.run_sync(stream.first, limiter=threads)
            while not self.daemon.stopping.is_set():
                chunk, more = await anyio.to_thread.run_sync(stream.step, limiter=threads)
                if chunk:
                    yield chunk
                if not more:
                    return
        finally:
            self.streams -= 1
            stream.close()


class _Go(Exception):
    """An event stream may start, for this signed-in session at this place."""

    def __init__(self, session: Session, place: str) -> None:
        super().__init__(place)
        self.session, self.place = session, place


class _Request:
    def __init__(self, console: Console, request: Request | None) -> None:
        self.c, self.request = console, request
        self.cookie = request.cookies.get(COOKIE) if request is not None else None
        self.session: Session | None = console.sessions.get(self.cookie)
        self.new_cookie: str | None = None
        self.raw = b""
        self.action = ""
        self.pin_check_held = False  # one of [console] pin_checks is this sign-in's
        self._conn: sqlite3.Connection | None = None

    # ------------------------------------------------------------ plumbing
    def header(self, name: str) -> str | None:
        return self.request.headers.get(name) if self.request is not None else None

    def run(self, fn: Callable[[_Request], Response]) -> Response:
        """fn(self), its refusal as the answer, and this request's read connection closed."""
        try:
            return fn(self)
        except Refused as e:
            return self.refuse(e)
        except TimeoutError as e:  # the writer thread did not answer in time
            return self.refuse(Refused(503, "daemon", detail=str(e)))
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = views.reader(self.c.db_path)
        return self._conn

    def headers(self, extra: Iterable[tuple[str, str]] = ()) -> dict[str, str]:
        h = dict(_SECURITY_HEADERS)
        if self.new_cookie is not None:
            h["Set-Cookie"] = ("%s=%s; Path=/; HttpOnly; SameSite=Strict"
                               % (COOKIE, self.new_cookie))
        h.update(extra)
        return h

    def send(self, status: int, body: bytes, ctype: str,
             extra: Iterable[tuple[str, str]] = ()) -> Response:
        return Response(body, status_code=status, headers=self.headers(extra), media_type=ctype)

    def json(self, status: int, obj: JsonObject, close: bool = False) -> Response:
        return self.send(status, json.dumps(obj, ensure_ascii=False).encode(), _JSON,
                         (("Connection", "close"),) if close else ())

    def wants_page(self) -> bool:
        """A browser's own navigation (address bar, link), not a page's script: it asks for HTML."""
        return (self.request is not None and self.request.method == "GET"
                and "text/html" in (self.header("Accept") or ""))

    def refuse(self, e: Refused) -> Response:
        if e.status == 404 and self.wants_page():
            return self.error_page(404, self.c.labels["errors"]["no-page"])
        body: JsonObject = {"error_code": e.code,
                            "error": fill(self.c.labels["errors"].get(e.code, e.code), e.extra)}
        body.update(e.extra)
        if e.status in (401, 403):
            s = self.session
            if s is None or not self.c.sessions.alive(s):
                s = self.fresh_session()
            if not s.signed_in:
                body["csrf"] = s.csrf  # so the page can sign in again without a reload
        return self.json(e.status, body, close=e.close)

    def fresh_session(self) -> Session:
        self.session = self.c.sessions.new()
        self.new_cookie = self.session.sid
        return self.session

    def body(self) -> JsonObject:
        data = api.json_object(self.raw)
        if data is None:
            raise Refused(400, "bad-input", detail="JSON object")
        return data

    def address(self) -> str:
        client = self.request.client if self.request is not None else None
        return client.host if client is not None else ""

    def is_post(self) -> bool:
        return self.request is not None and self.request.method == "POST"

    # ------------------------------------------------------------ routing
    def window(self, window: str, action: str) -> Response:
        page = not self.is_post() and action == ""
        if not topics.valid_id(window) or not windows.known(self.conn(), window):
            same = views.same_window(self.conn(), window)
            if same is not None and page:  # w01: the hall's W01
                return self.send(308, b"", "text/plain; charset=utf-8",
                                 (("Location", "/window/" + urllib.parse.quote(same)),))
            if page:
                return self.error_page(404, self.c.labels["errors"]["unknown-window"],
                                       windows=views.all_windows(self.conn()))
            raise Refused(404, "unknown-window")
        return self.place(window, "staff", action)

    def error_page(self, status: int, message: str, windows: list[str] | None = None
                   ) -> Response:
        """A page that says what went wrong, with links to the console's pages."""
        return self.render("error.html", self.c.labels["app"], {}, status=status,
                           message=message, windows=windows or [])

    def place(self, place: str, role: str, action: str) -> Response:
        self.action = action
        if not self.is_post():
            if action == "":
                return self.page(place, role)
            if action == "qr.svg":  # the QR channel: the open prompt's code (see qr_svg)
                self.authorised(place, role, write=False)
                return self.qr_svg(place)
            if action in ("state", "events"):
                s = self.authorised(place, role, write=False)
                if action == "events":
                    raise _Go(s, place)
                return self.json(200, self.view(place, time.time()))
            raise Refused(404, "no-page", detail="no such page")
        if action == "sign-in":
            return self.sign_in(place, role)
        s = self.authorised(place, role, write=True)
        if action == "sign-out":
            return self.sign_out(s, place)
        if role == "staff" and action in ("start", "finish"):
            return self.window_action(s, place, action)
        if role == "manager" and action == "ack":
            return self.ack_alert(s)
        raise Refused(404, "no-page", detail="no such action")

    def index(self) -> Response:
        L = self.c.labels
        boot: JsonObject = {"labels": L}
        terminals: list[str] = []
        if self.c.demo_keypad is not None:  # the panel's presses are writes: CSRF as any other
            s = self.session or self.fresh_session()
            boot["csrf"] = s.csrf
            terminals = [r[0] for r in self.conn().execute(
                "SELECT terminal FROM pairings ORDER BY terminal")]
        return self.render("index.html", L["index_title"], boot,
                           windows=views.all_windows(self.conn()),
                           demo=self.c.demo_keypad is not None, terminals=terminals)

    def demo_press(self) -> Response:
        """The demo panel's key press, passed on to the kept demo's keypad (keypad_link)."""
        self.check_csrf()
        body = self.body()
        terminal, level, reason = body.get("terminal"), body.get("level"), body.get("reason")
        if not isinstance(terminal, str) or not topics.valid_id(terminal) or type(level) is not int:
            raise Refused(400, "bad-input", detail="terminal, level")
        if reason is not None and not isinstance(reason, str):
            raise Refused(400, "bad-input", detail="reason")
        assert self.c.demo_keypad is not None  # the route exists only then
        try:
            answer = keypad_link.press(self.c.demo_keypad, terminal, level, reason or None)
        except HcpError as e:
            raise Refused(503, "daemon", detail=str(e)) from None
        if not answer.get("ok"):
            raise Refused(400, "bad-input", detail=str(answer.get("error")))
        return self.json(200, answer)

    def check_origin(self) -> None:
        origin = self.header("Origin")
        if origin and urllib.parse.urlsplit(origin).netloc != self.header("Host"):
            raise Refused(403, "csrf")

    # ------------------------------------------------------------ security
    def check_csrf(self) -> None:
        given = self.header("X-CSRF-Token") or ""
        if self.session is None or not hmac.compare_digest(given.encode(),
                                                           self.session.csrf.encode()):
            raise Refused(403, "csrf")

    def authorised(self, place: str, role: str, write: bool) -> Session:
        """The signed-in session allowed to act on `place`, or Refused."""
        s = self.session
        if s is None or not s.signed_in:
            ended = self.c.sessions.why_ended(self.cookie) if s is None else None
            if ended is not None:
                raise Refused(401, ended[0], signed_in_at=ended[1],
                              where=self.c.place_name(ended[1]))
            raise Refused(401, "expired" if s is None and self.cookie else "signed-out")
        if write:
            self.check_csrf()
        if s.role != role:
            raise Refused(403, "wrong-role")
        if s.place != place:
            raise Refused(403, "wrong-window", signed_in_at=s.place)
        if not self.account_ok(self.conn(), s):
            self.c.sessions.end(s)
            raise Refused(401, "signed-out")
        if write or self.action not in ("events", "state"):
            self.c.sessions.touch(s)
        return s

    def account_ok(self, conn: sqlite3.Connection, s: Session) -> bool:
        if s.number is None:  # not signed in: no account
            return False
        acct = staff.get(conn, s.number)
        return (acct is not None and acct["disabled_at"] is None and acct["role"] == s.role
                and acct["pin_changed_at"] <= s.created)

    def take_pin_check(self) -> None:
        """On the event loop, before a sign-in goes to a worker thread: take one of the
        [console] pin_checks slots for it, or refuse it there and then, 429 `locked` (its
        address locked out) or `busy` (every slot taken). Under a flood of sign-ins nearly all of
        them are refused here, each without a worker thread, a database connection or a
        hand-over between threads: the daemon's one interpreter lock stays free for the ratings.
        Only with the session's CSRF token: anything else goes on to sign_in and its 403."""
        given = self.header("X-CSRF-Token") or ""
        if self.session is None or not hmac.compare_digest(given.encode(),
                                                           self.session.csrf.encode()):
            return
        c = self.c
        wait = c.pins.wait_s({"address:" + self.address(): 4 * c.pin_failures})
        if wait:
            raise Refused(429, "locked", wait=wait)
        if not c.pin_checks.acquire(blocking=False):  # a few scrypt checks at once, no queue
            raise Refused(429, "busy", wait=1)
        self.pin_check_held = True

    def give_back_pin_check(self) -> None:
        """The slot take_pin_check took, given back (once) as soon as the PIN is checked, or when
        the request ends without checking it."""
        if self.pin_check_held:
            self.pin_check_held = False
            self.c.pin_checks.release()

    def sign_in(self, place: str, role: str) -> Response:
        self.check_csrf()
        body = self.body()
        number, pin = body.get("number"), body.get("pin")
        try:  # text a staff number or PIN could be: anything else is refused before it is used
            number = fields.text("number", number, 64)
            pin = fields.text("pin", pin, 64)
        except ValueError as e:  # fields' reasons start with the field's name
            field = str(e).partition(":")[0]
            raise Refused(400, "bad-input", detail=str(e), field=field) from None
        number = number.strip()
        addr = self.address()
        c = self.c
        if not self.pin_check_held:  # taken on the event loop (take_pin_check)
            raise Refused(429, "busy", wait=1)
        try:
            # counted as a wrong PIN now, in one step with the lockout check: parallel sign-ins
            # cannot all pass the check before the first of them is counted
            keys = {"number:" + number: c.pin_failures, "address:" + addr: 4 * c.pin_failures}
            wait = c.pins.attempt(keys)
            if wait:
                raise Refused(429, "locked", wait=wait)
            acct = None
            try:
                acct = c.pin_threads.submit(staff.verify, self.conn(), number, pin).result()
            finally:   # the right PIN for this page clears the count (but for guesses racing it)
                c.pins.finished(keys, acct is not None and acct["role"] == role)
        finally:
            self.give_back_pin_check()
        if acct is None:
            self.record("console:" + addr, "console.sign-in-failed", staff=number, at=place,
                        address=addr, locked=bool(c.pins.wait_s(keys)))
            raise Refused(401, "bad-pin")
        if acct["role"] != role:
            self.record("staff:" + number, "console.sign-in-refused", staff=number, at=place,
                        address=addr, reason="role %s" % acct["role"])
            raise Refused(403, "wrong-role")
        was_at = [p for p, who in c.sessions.signed_in_at().items()
                  if any(n == acct["number"] for n, _ in who)]
        s = c.sessions.sign_in(self.session, acct, place)
        self.session, self.new_cookie = s, s.sid
        self.record("staff:" + number, "console.sign-in", staff=number, at=place, address=addr)
        for p in {place, *was_at}:  # the pages there: who is signed in now
            c.daemon.events.publish("console", window=p)
        return self.json(200, {"csrf": s.csrf, "number": s.number, "name": s.name,
                               "state": self.view(place, time.time())})

    def sign_out(self, s: Session, place: str) -> Response:
        assert s.number is not None  # authorised() returns signed-in sessions only
        self.c.sessions.end(s)
        self.record("staff:" + s.number, "console.sign-out", staff=s.number, at=place)
        self.c.daemon.events.publish("console", window=place)
        return self.json(200, {"csrf": self.fresh_session().csrf})

    def record(self, actor: str, action: str, **detail: Any) -> None:
        self.c.daemon.submit("audit_record", actor, action, detail)

    # ------------------------------------------------------------ window actions
    def window_action(self, s: Session, window: str, action: str) -> Response:
        number = s.number
        assert number is not None  # authorised() returns signed-in sessions only
        body = self.body()
        if action == "start":
            ticket, item = body.get("ticket"), body.get("item", "")
            if not isinstance(ticket, str) or not isinstance(item, str):
                raise Refused(400, "bad-input", detail="ticket, item")
            ticket, item = ticket.strip(), item.strip()
            if not ticket:
                raise Refused(400, "ticket-needed")
            try:  # refused before anything is stored: the audit entry carries these too
                windows.check_start(window, ticket, item, number)
            except InvalidInput as e:
                raise Refused(400, "bad-input", detail=str(e), field=e.field) from None
            command: tuple[Any, ...] = ("console_start", window, ticket, item, number)
        else:  # the window's open transaction, or 409 no-ticket
            command = ("console_finish", window, number, self.c.prompt_timeout)
        try:
            tx = self.c.daemon.submit(*command)
        except InvalidInput as e:  # a field the rules refuse: its name in "field"
            raise Refused(400, "bad-input", detail=str(e), field=e.field) from e
        except HcpError as e:
            raise Refused(400, "bad-input", detail=str(e)) from e
        except TimeoutError as e:
            raise Refused(503, "daemon", detail=str(e)) from e
        return self.json(200, {"transaction": tx, "state": self.view(window, time.time())})

    def ack_alert(self, s: Session) -> Response:
        """The duty manager acknowledges a bad-review alert: who and when, kept with it and in
        the audit log. Acknowledging one already acknowledged keeps the first."""
        number = s.number
        assert number is not None  # authorised() returns signed-in sessions only
        rating = self.body().get("id")
        if type(rating) is not int:
            raise Refused(400, "bad-input", detail="id", field="id")
        try:  # 404 no-alert if it is not a bad review's
            self.c.daemon.submit("alert_ack", rating, number)
        except TimeoutError as e:
            raise Refused(503, "daemon", detail=str(e)) from e
        self.c.daemon.events.publish("console", window="hall")
        return self.json(200, {"state": self.view("hall", time.time())})

    # ------------------------------------------------------------ pages
    def view(self, place: str, now: float,
             conn: sqlite3.Connection | None = None) -> JsonObject:
        conn = conn or self.conn()
        if place == "hall":
            v = views.hall_view(conn, now, self.c.sessions.signed_in_at())
            v["integrity"] = self.c.integrity_today(conn, now)
            link = self.c.daemon.status()
            v["broker"] = {"connected": link.connected, "error": link.error}
            return v
        st = qr_view(self.c.daemon.cfg, conn, views.window_view(conn, place, now))
        # who is signed in here: a page tells its staff when someone else is too
        st["signed_in"] = [{"number": n, "name": nm}
                           for n, nm in self.c.sessions.signed_in_at().get(place, [])]
        return st

    def page(self, place: str, role: str) -> Response:
        s = self.session
        if s is None:
            s = self.fresh_session()
        else:
            self.c.sessions.touch(s)
        me = None
        if s.signed_in and s.place == place and s.role == role and self.account_ok(self.conn(), s):
            me = {"number": s.number, "name": s.name}
        L = self.c.labels
        title = L["hall_title"] if place == "hall" else L["window_title"].format(window=place)
        boot = {"place": place, "csrf": s.csrf, "me": me, "labels": L}
        return self.render("hall.html" if place == "hall" else "window.html", title, boot)

    def render(self, template: str, title: str, boot: JsonObject, status: int = 200,
               **more: Any) -> Response:
        """A page: templates/<template> (which extends base.html) with the labels as `L`."""
        body = self.c.templates[template].render(L=self.c.labels, title=title, boot=boot, **more)
        return self.send(status, body.encode(), "text/html; charset=utf-8")

    def qr_svg(self, window: str) -> Response:
        """The QR code of the window's open prompt, for the staff page to show (SVG)."""
        url = qr_view(self.c.daemon.cfg, self.conn(), {"window": window}).get("qr_url")
        if not url:
            raise Refused(404, "bad-input", detail="no rating prompt open")
        from haochaping.daemon.hall import qrcodes
        return self.send(200, qrcodes.svg_document(url), "image/svg+xml")

    def static_file(self, name: str) -> Response:
        found = self.c.static.get(name)
        if found is None:
            raise Refused(404, "no-page", detail="no such file")
        return self.send(200, found[0], found[1])


def qr_view(cfg: HallConfig, conn: sqlite3.Connection, view: JsonObject) -> JsonObject:
    """The QR channel on the staff page: `qr_url`, the address the open prompt's 评价二维码
    carries (None when no prompt is open or [mobile] is off)."""
    from haochaping.daemon.hall import qrcodes
    view["qr_url"] = qrcodes.prompt_url(conn, cfg.hall.id, qrcodes.phone_base(cfg),
                                         view["window"])
    return view


class _Stream:
    """One page's Server-Sent Events: the whole view at once, again after every event that
    concerns it (bursts coalesced), a fresh one every few seconds anyway, and a comment to keep
    the connection open. Ends when the session does (a `signed-out` event). Each step runs in a
    worker thread of the streams' own (it waits up to a second for an event)."""

    def __init__(self, r: _Request, place: str, s: Session) -> None:
        self.r, self.place, self.s = r, place, s
        self.c = r.c
        self.q = self.c.daemon.events.subscribe()
        self.conn = views.reader(self.c.db_path)
        self.kind = "hall" if place == "hall" else "window"
        self.terms: set[str] | None = None
        self.last_state = self.last_write = time.monotonic()

    def close(self) -> None:
        self.c.daemon.events.unsubscribe(self.q)
        self.conn.close()

    def _state(self) -> bytes:
        view = self.r.view(self.place, time.time(), self.conn)
        self.terms = self._terminals(self.place, view)
        self.last_state = self.last_write = time.monotonic()
        return _event("state", view)

    def first(self) -> bytes:
        return self._state()

    def step(self) -> tuple[bytes, bool]:
        """Wait up to a second for an event: (what to send, whether to go on)."""
        c = self.c
        try:
            ev = self.q.get(timeout=1.0)
        except queue.Empty:
            ev = None
        if not (c.sessions.alive(self.s) and self.r.account_ok(self.conn, self.s)):
            code, where = c.sessions.why_ended(self.r.cookie) or ("expired", None)
            return _event("signed-out", {"error_code": code, "signed_in_at": where,
                                         "error": fill(c.labels["errors"][code],
                                                       {"where": c.place_name(where)})}), False
        now = time.monotonic()
        due = ev is not None and self._concerns(self.place, self.terms, ev)
        if due:
            end = max(now + _COALESCE_S, self.last_state + _MIN_GAP_S[self.kind])
            while time.monotonic() < end:
                try:
                    self.q.get(timeout=max(0.0, end - time.monotonic()))
                except queue.Empty:
                    break
        if due or now - self.last_state >= _REFRESH_S[self.kind]:
            return self._state(), True
        if now - self.last_write >= _KEEPALIVE_S:
            self.last_write = now
            return b": keepalive\n\n", True
        return b"", True

    @staticmethod
    def _terminals(place: str, view: JsonObject) -> set[str] | None:
        if place == "hall":
            return None
        return {t["id"] for t in view["terminals"]}

    @staticmethod
    def _concerns(place: str, terms: set[str] | None, ev: JsonObject) -> bool:
        if place == "hall" or terms is None:  # terms is None for the hall only
            return True
        return ev.get("window") == place or ev.get("terminal") in terms


def _event(kind: str, data: JsonObject) -> bytes:
    return ("event: %s\ndata: %s\n\n" % (kind, json.dumps(data, ensure_ascii=False))).encode()
