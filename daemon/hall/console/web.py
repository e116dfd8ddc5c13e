"""The console's HTTP side, mounted on the daemon's API server (daemon/hall/api.py hands it every
path outside /api/): pages, their JSON calls, Server-Sent Events, static files.

    GET  /                        index: links to every window page and the hall page
    GET  /window/<W>              the window staff page           (role staff, signed in at W)
    POST /window/<W>/sign-in      {"number", "pin"}
    POST /window/<W>/start        {"ticket", "item"}      a ticket is called (same as the API)
    POST /window/<W>/finish       {}                      「请评价」 (same as the API)
    POST /window/<W>/sign-out     {}
    GET  /window/<W>/state        JSON;  GET /window/<W>/events  Server-Sent Events
    GET  /hall  POST /hall/sign-in  POST /hall/sign-out  GET /hall/state  GET /hall/events
    GET  /static/<file>

Rules: the session cookie is HttpOnly and SameSite=Strict; every POST carries the session's CSRF
token in `X-CSRF-Token` (and a cross-site Origin is refused); staff act only on the window they
signed in at, managers only on /hall; the account is re-read on every request, so disabling it or
changing its PIN ends its sessions; wrong PINs are limited per staff number and per address.

Pages are Jinja2 templates (templates/: base.html, which every page extends), autoescaped, with
every text from static/labels.<lang>.json as `L`.
"""
from __future__ import annotations

import hmac
import json
import mimetypes
import os
import queue
import sqlite3
import time
import urllib.parse
from collections.abc import Iterable
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup

from haochaping.daemon.errors import HcpError, InvalidInput
from haochaping.daemon.hall import audit, windows
from haochaping.daemon.hall.console import staff, views
from haochaping.daemon.hall.console.sessions import PinLimiter, Session, Sessions
from haochaping.protocol import fields, topics

if TYPE_CHECKING:
    from haochaping.daemon.hall.service import HallDaemon

Labels = dict[str, Any]  # labels.<lang>.json: texts, and tables of texts (levels, errors, ...)
JsonObject = dict[str, Any]

COOKIE = "hcp_console"
MAX_BODY = 4096
_HERE = os.path.dirname(os.path.abspath(__file__))
_KEEPALIVE_S = 15
_COALESCE_S = 0.1  # events that come together make one redraw
_REFRESH_S = {"window": 10.0, "hall": 5.0}  # also redraw this often without events
_MIN_GAP_S = {"window": 0.1, "hall": 0.3}    # at most this often under a flood of events
_PAGES = ("index.html", "window.html", "hall.html", "error.html")
_SECURITY_HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self';"
     " connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none';"
     " frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)


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


def load_templates() -> dict[str, jinja2.Template]:
    """The pages, compiled once: autoescaped ({{ }} is text), and an unknown name (a label that
    is not in the labels file) is an error rather than an empty string."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.path.join(_HERE, "templates")),
        autoescape=True, undefined=jinja2.StrictUndefined, auto_reload=False,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["script_json"] = script_json
    return {name: env.get_template(name) for name in _PAGES}


class Refused(Exception):
    """A request the console turns down: HTTP status, error code (a key of labels.errors)."""

    def __init__(self, status: int, code: str, **extra: Any) -> None:
        super().__init__(code)
        self.status, self.code = status, code
        self.extra: JsonObject = extra


class Console:
    def __init__(self, daemon: HallDaemon) -> None:
        cfg = daemon.cfg.console
        lang = cfg.language
        self.daemon = daemon
        self.db_path: str = daemon.cfg.hall.database
        self.prompt_timeout: int = daemon.cfg.sessions.timeout_s
        self.sessions = Sessions(cfg.session_idle_s, cfg.session_max_s)
        self.pins_by_number = PinLimiter(cfg.pin_failures, cfg.lockout_s)
        self.pins_by_address = PinLimiter(4 * cfg.pin_failures, cfg.lockout_s)
        self.labels = load_labels(lang)
        self.static: dict[str, tuple[bytes, str]] = {}  # name -> (content, Content-Type)
        folder = os.path.join(_HERE, "static")
        for name in os.listdir(folder):
            with open(os.path.join(folder, name), "rb") as f:
                ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
                if ctype.startswith("text/") or name.endswith((".js", ".json")):
                    ctype += "; charset=utf-8"
                self.static[name] = (f.read(), ctype)
        self.templates = load_templates()

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        """Serve one request on the API server's handler `h` (a BaseHTTPRequestHandler)."""
        req = _Request(self, h)
        try:
            req.dispatch()
        except Refused as e:
            req.refuse(e)
        except TimeoutError as e:  # the writer thread did not answer in time
            req.refuse(Refused(503, "daemon", detail=str(e)))
        except (BrokenPipeError, ConnectionResetError):
            pass


class _Request:
    def __init__(self, console: Console, h: BaseHTTPRequestHandler) -> None:
        self.c, self.h = console, h
        parsed = urllib.parse.urlsplit(h.path)
        self.parts = [urllib.parse.unquote(p) for p in parsed.path.split("/") if p]
        self.method = h.command
        self.session: Session | None = console.sessions.get(self._cookie())
        self.new_cookie: str | None = None
        self._conn: sqlite3.Connection | None = None
        self._raw = b""

    # ------------------------------------------------------------ plumbing
    def _cookie(self) -> str | None:
        try:
            jar = SimpleCookie(self.h.headers.get("Cookie") or "")
        except CookieError:
            return None
        m = jar.get(COOKIE)
        return m.value if m else None

    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = views.reader(self.c.db_path)
        return self._conn

    def _headers(self, status: int, ctype: str, length: int | None = None,
                 extra: Iterable[tuple[str, str]] = ()) -> None:
        h = self.h
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        if length is not None:
            h.send_header("Content-Length", str(length))
        for k, v in _SECURITY_HEADERS:
            h.send_header(k, v)
        if self.new_cookie is not None:
            h.send_header("Set-Cookie", "%s=%s; Path=/; HttpOnly; SameSite=Strict"
                          % (COOKIE, self.new_cookie))
        for k, v in extra:
            h.send_header(k, v)
        h.end_headers()

    def send(self, status: int, body: bytes, ctype: str,
             extra: Iterable[tuple[str, str]] = ()) -> None:
        self._headers(status, ctype, len(body), extra)
        self.h.wfile.write(body)

    def json(self, status: int, obj: JsonObject) -> None:
        self.send(status, json.dumps(obj, ensure_ascii=False).encode(),
                  "application/json; charset=utf-8")

    def refuse(self, e: Refused) -> None:
        body: JsonObject = {"error_code": e.code,
                            "error": self.c.labels["errors"].get(e.code, e.code)}
        body.update(e.extra)
        if e.status in (401, 403):
            s = self.session
            if s is None or not self.c.sessions.alive(s):
                s = self.fresh_session()
            if not s.signed_in:
                body["csrf"] = s.csrf  # so the page can sign in again without a reload
        self.json(e.status, body)

    def fresh_session(self) -> Session:
        self.session = self.c.sessions.new()
        self.new_cookie = self.session.sid
        return self.session

    def read_body(self) -> None:
        """Read the whole body first, so that a refused request leaves the connection clean."""
        given = self.h.headers.get("Content-Length") or "0"
        if not (given.isascii() and given.strip().isdigit()):
            self.h.close_connection = True
            raise Refused(400, "bad-input", detail="Content-Length")
        length = int(given)
        if length > MAX_BODY:
            self.h.close_connection = True
            raise Refused(413, "bad-input", detail="body too large")
        self._raw = self.h.rfile.read(length)

    def body(self) -> JsonObject:
        try:
            data = json.loads(self._raw or b"{}")
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            data = None
        if not isinstance(data, dict):
            raise Refused(400, "bad-input", detail="JSON object")
        return data

    def address(self) -> str:
        return self.h.client_address[0]

    # ------------------------------------------------------------ routing
    def dispatch(self) -> None:
        try:
            self._dispatch()
        finally:
            if self._conn is not None:
                self._conn.close()

    def _dispatch(self) -> None:
        p, m = self.parts, self.method
        if m not in ("GET", "POST"):
            raise Refused(405, "bad-input", detail="method")
        if m == "POST":
            self.read_body()
            self.check_origin()
        if not p:
            if m == "POST":
                raise Refused(404, "bad-input", detail="no such action")
            return self.index()
        if len(p) == 2 and p[0] == "static" and m != "POST":
            return self.static_file(p[1])
        if p[0] == "window" and len(p) in (2, 3) and topics.valid_id(p[1]):
            place, role = p[1], "staff"
            if not views.known_window(self.conn(), place):
                if m == "GET" and len(p) == 2:
                    return self.render("error.html", self.c.labels["app"], {}, status=404,
                                       message=self.c.labels["errors"]["unknown-window"])
                raise Refused(404, "unknown-window")
        elif p[0] == "hall" and len(p) in (1, 2):
            place, role = "hall", "manager"
        else:
            raise Refused(404, "bad-input", detail="no such page")
        action = p[-1] if len(p) == (3 if role == "staff" else 2) else ""
        if m != "POST":
            if action == "":
                return self.page(place, role)
            if action in ("state", "events"):
                s = self.authorised(place, role, write=False)
                if action == "state":
                    return self.json(200, self.view(place, time.time()))
                return self.stream(place, s)
            raise Refused(404, "bad-input", detail="no such page")
        if action == "sign-in":
            return self.sign_in(place, role)
        s = self.authorised(place, role, write=True)
        if action == "sign-out":
            return self.sign_out(s, place)
        if role == "staff" and action in ("start", "finish"):
            return self.window_action(s, place, action)
        raise Refused(404, "bad-input", detail="no such action")

    def check_origin(self) -> None:
        origin = self.h.headers.get("Origin")
        if origin and urllib.parse.urlsplit(origin).netloc != self.h.headers.get("Host"):
            raise Refused(403, "csrf")

    # ------------------------------------------------------------ security
    def check_csrf(self) -> None:
        given = self.h.headers.get("X-CSRF-Token") or ""
        if self.session is None or not hmac.compare_digest(given.encode(),
                                                           self.session.csrf.encode()):
            raise Refused(403, "csrf")

    def authorised(self, place: str, role: str, write: bool) -> Session:
        """The signed-in session allowed to act on `place`, or Refused."""
        s = self.session
        if s is None or not s.signed_in:
            raise Refused(401, "expired" if s is None and self._cookie() else "signed-out")
        if write:
            self.check_csrf()
        if s.role != role:
            raise Refused(403, "wrong-role")
        if s.place != place:
            raise Refused(403, "wrong-window", signed_in_at=s.place)
        if not self.account_ok(self.conn(), s):
            self.c.sessions.end(s)
            raise Refused(401, "signed-out")
        if write or self.method != "GET" or self.parts[-1] not in ("events", "state"):
            self.c.sessions.touch(s)
        return s

    def account_ok(self, conn: sqlite3.Connection, s: Session) -> bool:
        if s.number is None:  # not signed in: no account
            return False
        acct = staff.get(conn, s.number)
        return (acct is not None and acct["disabled_at"] is None and acct["role"] == s.role
                and acct["pin_changed_at"] <= s.created)

    def sign_in(self, place: str, role: str) -> None:
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
        wait = max(self.c.pins_by_number.wait_s(number), self.c.pins_by_address.wait_s(addr))
        if wait:
            raise Refused(429, "locked", wait=wait)
        acct = staff.verify(self.conn(), number, pin)
        if acct is None:
            self.c.pins_by_number.failed(number)
            self.c.pins_by_address.failed(addr)
            locked = max(self.c.pins_by_number.wait_s(number),
                         self.c.pins_by_address.wait_s(addr))
            self.record("console:" + addr, "console.sign-in-failed", staff=number, at=place,
                        address=addr, locked=bool(locked))
            raise Refused(401, "bad-pin")
        if acct["role"] != role:
            self.record("staff:" + number, "console.sign-in-refused", staff=number, at=place,
                        address=addr, reason="role %s" % acct["role"])
            raise Refused(403, "wrong-role")
        self.c.pins_by_number.succeeded(number)
        self.c.pins_by_address.succeeded(addr)
        s = self.c.sessions.sign_in(self.session, acct, place)
        self.session, self.new_cookie = s, s.sid
        self.record("staff:" + number, "console.sign-in", staff=number, at=place, address=addr)
        self.json(200, {"csrf": s.csrf, "number": s.number, "name": s.name,
                        "state": self.view(place, time.time())})

    def sign_out(self, s: Session, place: str) -> None:
        assert s.number is not None  # authorised() returns signed-in sessions only
        self.c.sessions.end(s)
        self.record("staff:" + s.number, "console.sign-out", staff=s.number, at=place)
        self.json(200, {"csrf": self.fresh_session().csrf})

    def record(self, actor: str, action: str, **detail: Any) -> None:
        def write(conn: sqlite3.Connection, now: float) -> tuple[None, list[Any]]:
            audit.record(conn, actor, action, now=now, **detail)
            return None, []
        self.c.daemon.submit(write)

    # ------------------------------------------------------------ window actions
    def window_action(self, s: Session, window: str, action: str) -> None:
        number = s.number
        assert number is not None  # authorised() returns signed-in sessions only
        body = self.body()
        actor = "staff:" + number
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

            def fn(conn: sqlite3.Connection, now: float) -> tuple[int, list[Any]]:
                tx, pubs = windows.start(conn, window, ticket, item, number, now)
                audit.record(conn, actor, "console.start", now=now, window=window, ticket=ticket,
                             item=item, transaction=tx)
                return tx, pubs
        else:
            timeout = self.c.prompt_timeout

            def fn(conn: sqlite3.Connection, now: float) -> tuple[int, list[Any]]:
                open_tx = conn.execute("SELECT 1 FROM transactions WHERE window=? AND"
                                       " finished_at IS NULL", (window,)).fetchone()
                if open_tx is None:
                    raise Refused(409, "no-ticket")
                tx, terms, pubs = windows.finish(conn, window, now, timeout)
                audit.record(conn, actor, "console.request-rating", now=now, window=window,
                             transaction=tx, terminals=terms)
                return tx, pubs
        try:
            tx = self.c.daemon.submit(fn)
        except InvalidInput as e:  # a field the rules refuse: its name in "field"
            raise Refused(400, "bad-input", detail=str(e), field=e.field) from e
        except HcpError as e:
            raise Refused(400, "bad-input", detail=str(e)) from e
        except TimeoutError as e:
            raise Refused(503, "daemon", detail=str(e)) from e
        self.json(200, {"transaction": tx, "state": self.view(window, time.time())})

    # ------------------------------------------------------------ pages
    def view(self, place: str, now: float,
             conn: sqlite3.Connection | None = None) -> JsonObject:
        conn = conn or self.conn()
        if place == "hall":
            return views.hall_view(conn, now, self.c.sessions.signed_in_at())
        return views.window_view(conn, place, now)

    def page(self, place: str, role: str) -> None:
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
        self.render("hall.html" if place == "hall" else "window.html", title, boot)

    def index(self) -> None:
        L = self.c.labels
        self.render("index.html", L["index_title"], {"labels": L},
                    windows=views.all_windows(self.conn()))

    def render(self, template: str, title: str, boot: JsonObject, status: int = 200,
               **more: Any) -> None:
        """A page: templates/<template> (which extends base.html) with the labels as `L`."""
        body = self.c.templates[template].render(L=self.c.labels, title=title, boot=boot, **more)
        self.send(status, body.encode(), "text/html; charset=utf-8")

    def static_file(self, name: str) -> None:
        found = self.c.static.get(name)
        if found is None:
            raise Refused(404, "bad-input", detail="no such file")
        self.send(200, found[0], found[1])

    # ------------------------------------------------------------ live updates
    def stream(self, place: str, s: Session) -> None:
        """Server-Sent Events: the whole view at once, again after every event that concerns it
        (bursts coalesced), a fresh one every few seconds anyway, and a comment to keep the
        connection open. Ends when the session does (a `signed-out` event) or the client goes."""
        d = self.c.daemon
        q = d.events.subscribe()
        conn = self.conn()
        try:
            self.h.close_connection = True
            self._headers(200, "text/event-stream; charset=utf-8",
                          extra=(("X-Accel-Buffering", "no"), ("Connection", "close")))
            self.h.wfile.write(b"retry: 2000\n\n")
            view = self.view(place, time.time(), conn)
            self.event("state", view)
            terms = self._terminals(place, view)
            kind = "hall" if place == "hall" else "window"
            refresh, gap = _REFRESH_S[kind], _MIN_GAP_S[kind]
            last_state = last_write = time.monotonic()
            while not d.stopping.is_set():
                try:
                    ev = q.get(timeout=1.0)
                except queue.Empty:
                    ev = None
                if not (self.c.sessions.alive(s) and self.account_ok(conn, s)):
                    self.event("signed-out", {"error_code": "expired",
                                              "error": self.c.labels["errors"]["expired"]})
                    return
                now = time.monotonic()
                due = ev is not None and self._concerns(place, terms, ev)
                if due:
                    end = max(now + _COALESCE_S, last_state + gap)
                    while time.monotonic() < end:
                        try:
                            q.get(timeout=max(0.0, end - time.monotonic()))
                        except queue.Empty:
                            break
                if due or now - last_state >= refresh:
                    view = self.view(place, time.time(), conn)
                    terms = self._terminals(place, view)
                    self.event("state", view)
                    last_state = last_write = time.monotonic()
                elif now - last_write >= _KEEPALIVE_S:
                    self.h.wfile.write(b": keepalive\n\n")
                    last_write = now
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            d.events.unsubscribe(q)

    def event(self, kind: str, data: JsonObject) -> None:
        self.h.wfile.write(("event: %s\ndata: %s\n\n" % (
            kind, json.dumps(data, ensure_ascii=False))).encode())

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
