"""The QR channel's phone page (评价二维码, RULES.md 第五条, 第六条), on a listener of its own.

The listener ([mobile] listen) serves ONLY these routes, never the console or the window API,
so that the hall can publish it through its gateway to citizens' phones:
    GET  /r/<token>          the five levels as large buttons (a plain HTML form)
    POST /r/<token>          level=1..5: the rating; then to /more (or /thanks)
    GET  /r/<token>/more     after a bad review: the reason (the terminal's four); and, if
    POST /r/<token>/more     [mobile] identity_key_file is set, an optional real-name part
                             (name, phone, an explicit consent line, 第六条)
    GET  /r/<token>/thanks   a thank-you
    GET  /c/<window>.<mac>   a desk card: to the window's prompt open now, or a kind page
Everything else is a 404 page. The pages are Simplified Chinese, phone-first, a few KB, with
no script at all (forms and redirects work in WeChat's built-in browser as in any other).

One rating per transaction across channels: a phone rating is bound like a key press
(ingest.bind_outcome): the first one counts, whichever channel; a phone after the key press is
kept once as a `duplicate`; a second phone rating of the same transaction (the token reused)
stores nothing. A token whose prompt is over stores nothing. Phone ratings are stored with
terminal "QR", channel "QR" and a hall-wide sequence number (shared with their reasons), so the
forwarder and the store take them as they take a terminal's.

Bounds: as the [api] listener (connections, threads, idle and read time, body size), and in
memory, per minute: requests per address, submissions per token or desk card (429 and a page).
A rater's name and phone are sealed (AES-256-GCM, [mobile] identity_key_file) before they reach
the database, and never logged.
"""
from __future__ import annotations

import logging
import os
import re
import socket
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import jinja2
from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response

from haochaping.daemon.hall import ingest, listener, phones, qrcodes
from haochaping.daemon.hall.phone_ratings import MORE_S, REUSED, phone_rating, read_identity_key
from haochaping.daemon.hall.settings import MobileSection
from haochaping.protocol import fields, levels

if TYPE_CHECKING:
    from haochaping.daemon.hall.web_child import Front

log = logging.getLogger(__name__)

NAME_MAX = 32
_PHONE = re.compile(r"^\+?[0-9][0-9 -]{4,19}$")
_HERE = os.path.dirname(os.path.abspath(__file__))
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self';"
                               " form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # the token is in the address: never sent on
    "Cache-Control": "no-store",
}


# ------------------------------------------------------------------ bounds
class Limiter:
    """At most `per_minute` hits per key in each clock minute; remembers at most `keys` keys
    (a flood of new addresses cannot grow it: the oldest minute's are forgotten first)."""

    def __init__(self, per_minute: int, keys: int = 20000) -> None:
        self.per_minute, self.keys = per_minute, keys
        self._hits: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, now: float) -> bool:
        minute = int(now // 60)
        with self._lock:
            m, n = self._hits.get(key, (minute, 0))
            n = n + 1 if m == minute else 1
            if len(self._hits) >= self.keys and key not in self._hits:
                self._hits = {k: v for k, v in self._hits.items() if v[0] == minute}
                if len(self._hits) >= self.keys:
                    return False  # this minute is full of strangers: refuse, remember nothing
            self._hits[key] = (minute, n)
            return n <= self.per_minute


# ------------------------------------------------------------------ pages
class _Page(Exception):
    """Answer with a page: status, template name, its values."""

    def __init__(self, status: int, template: str, **values: Any) -> None:
        super().__init__(template)
        self.status, self.template, self.values = status, template, values


# what a page says, by name: (title, text); "message.html" shows them
MESSAGES = {
    "forged": ("二维码无效",
               "这个二维码不是本大厅的评价二维码，或者没有扫完整。请重新扫描窗口的评价二维码。"),
    "expired": ("本次评价已结束",
                "这次办件的评价时间已经过了。如果还在窗口前，请工作人员重新发起评价。"),
    "reused": ("您已经评价过了", "这次办件已经收到您的评价，每件事只能评价一次。谢谢！"),
    "duplicate": ("已经评价过了",
                  "这次办件刚刚已经在窗口的评价器上评价过了，每件事只能评价一次。谢谢！"),
    "no-prompt": ("现在没有待评价的办件",
                  "这个窗口现在没有需要评价的事项。办理结束、窗口提示「请评价」后，"
                  "再扫一次桌上的二维码就可以评价。"),
    "bad-level": ("请选择一个评价", "请点击下面五个按钮中的一个。"),
    "bad-input": ("填写有误", "%s"),
    "too-many": ("请求过于频繁", "请稍等一分钟再试。"),
    "too-large": ("内容太长", "提交的内容太长了，请少写一些再试。"),
    "not-found": ("页面不存在", "请扫描窗口的评价二维码进入评价页面。"),
    "busy": ("系统繁忙", "请稍后再试。"),
    "late": ("补充时间已过", "评价已经收到；补充原因或实名信息的时间已经过了。谢谢！"),
}


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(_HERE, "mobile_pages")),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return env


class Mobile:
    """The phone routes, on the daemon `daemon`, as one FastAPI app."""

    def __init__(self, daemon: Front) -> None:
        self.daemon = daemon
        self.cfg: MobileSection = daemon.cfg.mobile
        self.hall = daemon.cfg.hall.id
        self.grace = float(daemon.cfg.sessions.grace_s)
        self.db_path = daemon.cfg.hall.database
        self.identity_key = (read_identity_key(self.cfg.identity_key_file)
                             if self.cfg.identity_key_file else None)
        self.phone_key = phones.mac_key(self.identity_key) if self.identity_key else b""
        self.by_address = Limiter(self.cfg.per_address_per_minute)
        self.by_token = Limiter(self.cfg.per_token_per_minute)
        self.env = _templates()
        self.clock = time.time
        conn = self.reader()
        try:
            self.key = qrcodes.key(conn)
        finally:
            conn.close()

    def app(self) -> FastAPI:
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None,
                      lifespan=listener.lifespan(self.cfg))
        app.add_api_route("/r/{token}", self._rate_page, methods=["GET"])
        app.add_api_route("/r/{token}", self._rate_post, methods=["POST"])
        app.add_api_route("/r/{token}/more", self._more_page, methods=["GET"])
        app.add_api_route("/r/{token}/more", self._more_post, methods=["POST"])
        app.add_api_route("/r/{token}/thanks", self._thanks, methods=["GET"])
        app.add_api_route("/c/{card}", self._card, methods=["GET"])
        app.add_exception_handler(StarletteHTTPException, self._no_route)
        app.add_exception_handler(ClientDisconnect, self._no_route)
        return app

    # ---------------------------------------------------------------- plumbing
    def page(self, status: int, template: str, **values: Any) -> Response:
        if template == "message.html" and "name" in values:
            title, text = MESSAGES[values.pop("name")]
            values.setdefault("title", title)
            values.setdefault("text", text % values.pop("detail", "") if "%s" in text else text)
        body = self.env.get_template(template).render(**values)
        return Response(body.encode(), status_code=status, media_type="text/html; charset=utf-8",
                        headers=_HEADERS)

    def message(self, status: int, name: str, **values: Any) -> _Page:
        return _Page(status, "message.html", name=name, **values)

    def _no_route(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, StarletteHTTPException) else 400
        return self.page(404 if status in (404, 405) else status, "message.html",
                         name="not-found")

    async def _guard(self, request: Request, fn: Callable[[], Response]) -> Response:
        """Count the address, then run fn in a worker thread; a _Page it raises is the answer."""
        address = request.client.host if request.client else "?"
        if not self.by_address.allow(address, self.clock()):
            return self.page(429, "message.html", name="too-many")
        try:
            return await anyio.to_thread.run_sync(fn)
        except _Page as p:
            return self.page(p.status, p.template, **p.values)
        except TimeoutError:
            return self.page(503, "message.html", name="busy")

    def _limit(self, what: str) -> None:
        if not self.by_token.allow(what, self.clock()):
            raise self.message(429, "too-many")

    async def _form(self, request: Request) -> dict[str, str] | Response:
        """The posted form (application/x-www-form-urlencoded, UTF-8), or the page refusing it."""
        limit = self.cfg.max_body_bytes
        try:
            n = int(request.headers.get("content-length") or 0)
        except ValueError:
            n = 0
        chunks, got = [], 0
        if n <= limit:
            async for chunk in request.stream():
                got += len(chunk)
                if got > limit:
                    break
                chunks.append(chunk)
        if n > limit or got > limit:
            r = self.page(413, "message.html", name="too-large")
            r.headers["Connection"] = "close"
            return r
        try:
            pairs = urllib.parse.parse_qsl(b"".join(chunks).decode("utf-8"),
                                           keep_blank_values=True, max_num_fields=10,
                                           errors="strict")
        except (UnicodeDecodeError, ValueError):
            return self.page(400, "message.html", name="bad-input",
                             detail="提交的内容无法识别，请返回重试。")
        return dict(pairs)

    def reader(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA query_only=ON")
        return conn

    def _token(self, token: str) -> tuple[int, int]:
        found = qrcodes.read_token(self.key, self.hall, token)
        if found is None:
            raise self.message(404, "forged")
        return found

    def _state(self, tx_id: int, expires: int) -> tuple[str, sqlite3.Row | None]:
        """Where the transaction's rating stands for a phone: open | mine | duplicate |
        expired; and the phone's rating, if any."""
        conn = self.reader()
        try:
            tx = conn.execute("SELECT id, token, rating_id, prompt_closed_at, prompt_expires_at"
                              " FROM transactions WHERE id=?", (tx_id,)).fetchone()
            mine = phone_rating(conn, tx_id)
        finally:
            conn.close()
        if tx is None or tx["token"] is None:
            return "expired", None
        if mine is not None:
            return "mine", mine
        if tx["rating_id"] is not None:
            return "duplicate", None
        now = self.clock()
        if now > expires + self.grace or ingest.bind_outcome(
                tx, True, now, now, self.grace) == ingest.EXPIRED:
            return "expired", None
        return "open", None

    def _publish(self, kind: str, event: dict[str, Any] | None) -> None:
        """After the commit: the staff page, the duty manager's page and the alerts."""
        if event is not None:
            self.daemon.alert(kind, event)  # in the daemon's process: alerts go out there
            self.daemon.events.publish(kind, **event)

    # ---------------------------------------------------------------- routes
    async def _rate_page(self, request: Request, token: str) -> Response:
        def go() -> Response:
            tx_id, expires = self._token(token)
            state, mine = self._state(tx_id, expires)
            if state == "open":
                return self.page(200, "rate.html", levels=levels.LEVELS, action="")
            if state == "mine":
                raise self.message(200, "reused")
            raise self.message(200 if state == "duplicate" else 410, state)
        return await self._guard(request, go)

    async def _rate_post(self, request: Request, token: str) -> Response:
        form = await self._form(request)
        if isinstance(form, Response):
            return form

        def go() -> Response:
            tx_id, expires = self._token(token)
            self._limit("r:" + token)
            level_s = form.get("level", "")
            if level_s not in ("1", "2", "3", "4", "5"):
                return self.page(400, "rate.html", levels=levels.LEVELS,
                                 error=MESSAGES["bad-level"][1], action="")
            if self.clock() > expires + self.grace:
                raise self.message(410, "expired")
            level = int(level_s)
            outcome, event = self.daemon.submit("phone_rate", tx_id, level, self.grace)
            self._publish("rating", event)
            if outcome == ingest.COUNTED:
                if levels.is_bad(level) or self.identity_key is not None:
                    return RedirectResponse("%s/more" % token, 303, headers=_HEADERS)
                return RedirectResponse("%s/thanks" % token, 303, headers=_HEADERS)
            if outcome == ingest.DUPLICATE:
                raise self.message(200, "duplicate")
            if outcome == REUSED:
                raise self.message(409, "reused")
            raise self.message(410, "expired")
        return await self._guard(request, go)

    def _mine(self, token: str) -> tuple[int, sqlite3.Row]:
        """The phone's counted rating of the token's transaction, still open to more."""
        tx_id, _ = self._token(token)
        conn = self.reader()
        try:
            mine = phone_rating(conn, tx_id)
        finally:
            conn.close()
        if mine is None or mine["outcome"] != ingest.COUNTED:
            raise self.message(404, "not-found")
        if self.clock() - mine["received_at"] > MORE_S:
            raise self.message(410, "late")
        return tx_id, mine

    def _more_values(self, mine: sqlite3.Row, **more: Any) -> dict[str, Any]:
        ask = levels.is_bad(mine["level"]) and mine["reason"] is None
        return {"level_name": levels.name(mine["level"]), "bad": levels.is_bad(mine["level"]),
                "reasons": levels.REASONS if ask else (), "real_name": self.identity_key
                is not None, "name_max": NAME_MAX, **more}

    async def _more_page(self, request: Request, token: str) -> Response:
        def go() -> Response:
            _, mine = self._mine(token)
            return self.page(200, "more.html", **self._more_values(mine))
        return await self._guard(request, go)

    async def _more_post(self, request: Request, token: str) -> Response:
        form = await self._form(request)
        if isinstance(form, Response):
            return form

        def go() -> Response:
            tx_id, mine = self._mine(token)
            self._limit("r:" + token)
            try:
                reason, identity = self._check_more(form)
            except ValueError as e:
                return self.page(400, "more.html", **self._more_values(mine, error=str(e)))
            mac = None
            if identity is not None:  # sealed in the writer (bound to the rating's seq)
                assert self.identity_key is not None  # _check_more refuses a name without one
                mac = phones.mac(self.phone_key, identity["phone"])
            outcome, event = self.daemon.submit("phone_more", tx_id, reason, self.hall,
                                                self.identity_key, identity, mac)
            self._publish("reason", event)
            if outcome == "late":
                raise self.message(410, "late")
            return RedirectResponse("thanks", 303, headers=_HEADERS)
        return await self._guard(request, go)

    def _check_more(self, form: dict[str, str]) -> tuple[str, dict[str, str] | None]:
        """The reason ("" for none) and the identity (None for none), by the field rules;
        ValueError with what to correct, in Chinese."""
        reason = form.get("reason", "")
        if reason and not levels.is_reason(reason):
            raise ValueError("请选择下面列出的原因之一。")
        name, phone = form.get("name", "").strip(), form.get("phone", "").strip()
        if not name and not phone:
            return reason, None
        if self.identity_key is None:
            raise ValueError("本大厅暂未开放实名评价，请不要填写姓名和电话。")
        try:
            fields.text("name", name, NAME_MAX, 1)
        except ValueError:
            raise ValueError("姓名请填写 1 到 %d 个字，不要包含特殊字符。" % NAME_MAX) from None
        if not _PHONE.match(phone):
            raise ValueError("电话请填写 5 到 20 位数字（可以有 + 和 -）。")
        if form.get("consent") != "yes":
            raise ValueError("实名评价需要勾选同意；不想实名的话，请清空姓名和电话。")
        return reason, {"name": name, "phone": phone}

    async def _thanks(self, request: Request, token: str) -> Response:
        def go() -> Response:
            self._token(token)
            return self.page(200, "message.html", title="感谢您的评价",
                             text="您的评价已经收到，我们会认真改进。", thanks=True)
        return await self._guard(request, go)

    async def _card(self, request: Request, card: str) -> Response:
        def go() -> Response:
            window = qrcodes.read_card(self.key, self.hall, card)
            if window is None:
                raise self.message(404, "forged")
            self._limit("c:" + window)
            conn = self.reader()
            try:
                token = qrcodes.open_token(conn, self.key, self.hall, window)
            finally:
                conn.close()
            if token is None:
                raise self.message(200, "no-prompt", window=window)
            return RedirectResponse("../r/" + token, 303, headers=_HEADERS)
        return await self._guard(request, go)


class MobileServer(listener.ApiServer):
    """The [mobile] listener: the phone routes only, with the [api] listener's bounds."""

    def __init__(self, daemon: Front, cfg: MobileSection, sock: socket.socket) -> None:
        self.mobile = Mobile(daemon)
        super().__init__(self.mobile.app(), cfg, sock, name="mobile", proxy=cfg.trusted_proxy)
