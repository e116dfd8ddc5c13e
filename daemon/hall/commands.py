"""The writes the HTTP side asks of the daemon's writer, by name.

The HTTP listeners (window API, console, phone page) run in a process of their own (daemon/hall/
web_process.py): they cannot hand the writer a closure, so they send a command's name and plain
arguments, and the daemon's process runs COMMANDS[name](conn, now, *args) in the writer's
transaction. Each returns (result, publishes) as a service.WriterFn does; what it raises reaches
the caller as the same exception. Everything here runs in the daemon's process, which does not
load the web framework: nothing here imports it.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from haochaping.daemon.hall import audit, phone_ratings, qrcodes, windows
from haochaping.daemon.hall.console.refused import Refused
from haochaping.daemon.hall.windows import Publish

Result = tuple[Any, Sequence[Publish]]
Json = dict[str, Any]


# ------------------------------------------------------------------ window API (api.py)
def window_state(conn: sqlite3.Connection, now: float, window: str, hall: str,
                 qr_base: str | None) -> Result:
    return {**windows.window_state(conn, window),
            "qr_url": qrcodes.prompt_url(conn, hall, qr_base, window)}, []


def window_start(conn: sqlite3.Connection, now: float, window: str, ticket: str, item: str,
                 staff: str) -> Result:
    tx, pubs = windows.start(conn, window, ticket, item, staff, now)
    return {"transaction": tx, "window": window, "ticket": ticket}, pubs


def window_finish(conn: sqlite3.Connection, now: float, window: str, timeout: int, hall: str,
                  qr_base: str | None) -> Result:
    tx, terms, pubs = windows.finish(conn, window, now, timeout)
    return {"transaction": tx, "window": window, "terminals": terms, "prompt_timeout_s": timeout,
            "qr_url": qrcodes.prompt_url(conn, hall, qr_base, window)}, pubs


# ------------------------------------------------------------------ console (console/web.py)
def audit_record(conn: sqlite3.Connection, now: float, actor: str, action: str,
                 detail: Json) -> Result:
    audit.record(conn, actor, action, now=now, **detail)
    return None, []


def console_start(conn: sqlite3.Connection, now: float, window: str, ticket: str, item: str,
                  number: str) -> Result:
    tx, pubs = windows.start(conn, window, ticket, item, number, now)
    audit.record(conn, "staff:" + number, "console.start", now=now, window=window,
                 ticket=ticket, item=item, transaction=tx)
    return tx, pubs


def console_finish(conn: sqlite3.Connection, now: float, window: str, number: str,
                   timeout: int) -> Result:
    open_tx = conn.execute("SELECT 1 FROM transactions WHERE window=? AND finished_at IS NULL",
                           (window,)).fetchone()
    if open_tx is None:
        raise Refused(409, "no-ticket")
    tx, terms, pubs = windows.finish(conn, window, now, timeout)
    audit.record(conn, "staff:" + number, "console.request-rating", now=now, window=window,
                 transaction=tx, terminals=terms)
    return tx, pubs


def alert_ack(conn: sqlite3.Connection, now: float, rating: int, number: str) -> Result:
    """The duty manager acknowledges a bad-review alert; one already acknowledged keeps the
    first."""
    from haochaping.daemon.hall.console import views
    r = views.bad_rating(conn, rating)
    if r is None:
        raise Refused(404, "no-alert")
    done = conn.execute("INSERT OR IGNORE INTO console_alert_acks (rating, acked_by, acked_at)"
                        " VALUES (?,?,?)", (rating, number, now)).rowcount
    if done:
        audit.record(conn, "staff:" + number, "console.alert-ack", now=now, rating=rating,
                     window=r["window"], staff=r["staff"], level=r["level"], ticket=r["ticket"])
    return None, []


# ------------------------------------------------------------------ console sessions (sessions.py)
def session_save(conn: sqlite3.Connection, now: float, row: tuple[Any, ...]) -> Result:
    """A signed-in session: (key, csrf, number, name, role, place, created, seen); the
    account's other sessions go (one person, one place)."""
    conn.execute("DELETE FROM console_sessions WHERE number=?", (row[2],))
    conn.execute("INSERT OR REPLACE INTO console_sessions (key, csrf, number, name, role, place,"
                 " created, seen) VALUES (?,?,?,?,?,?,?,?)", row)
    return None, []


def session_seen(conn: sqlite3.Connection, now: float, key: str, seen: float) -> Result:
    conn.execute("UPDATE console_sessions SET seen=? WHERE key=?", (seen, key))
    return None, []


def sessions_delete(conn: sqlite3.Connection, now: float, keys: list[str]) -> Result:
    conn.executemany("DELETE FROM console_sessions WHERE key=?", [(k,) for k in keys])
    return None, []


# ------------------------------------------------------------------ phone page (mobile.py)
def phone_rate(conn: sqlite3.Connection, now: float, tx_id: int, level: int,
               grace: float) -> Result:
    return phone_ratings.rate(conn, tx_id, level, now, grace)


def phone_more(conn: sqlite3.Connection, now: float, tx_id: int, reason: str, hall: str,
               identity_key: bytes | None, identity: dict[str, str] | None,
               phone_mac: str | None) -> Result:
    """The reason and the rater's identity, sealed here: the seal is bound to the rating's
    sequence number, known only in the writer's transaction."""
    sealer: Callable[[int], bytes] | None = None
    if identity is not None and identity_key is not None:
        k, who = identity_key, identity
        sealer = lambda seq: phone_ratings.seal(k, hall, seq, who)  # noqa: E731
    return phone_ratings.more(conn, tx_id, reason, sealer, now, phone_mac)


COMMANDS: dict[str, Callable[..., Result]] = {f.__name__: f for f in (
    window_state, window_start, window_finish,
    audit_record, console_start, console_finish, alert_ack,
    session_save, session_seen, sessions_delete,
    phone_rate, phone_more)}
