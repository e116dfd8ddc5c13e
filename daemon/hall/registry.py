"""Terminals and their pairing with windows (hall IT's side of the hall database)."""
from __future__ import annotations

import secrets
import sqlite3
import time
from typing import Literal, TypedDict

from haochaping.daemon.errors import HcpError
from haochaping.daemon.hall import audit
from haochaping.protocol import topics


class Pairing(TypedDict):
    """One row of `pairings` (and of `hcp pairings`)."""
    window: str
    terminal: str
    paired_at: float


def _check_id(what: str, value: str) -> None:
    if not topics.valid_id(value):
        raise HcpError("%s %r: use 1-32 of A-Z a-z 0-9 _ -" % (what, value))


def add_terminal(conn: sqlite3.Connection, terminal: str, key: bytes | None = None,
                 now: float | None = None, actor: str | None = None, **detail: object) -> bytes:
    """Register a terminal with a fresh HMAC key (or the given one); return the key.
    With `actor`, an audit entry (action "register", with `detail`) in the same transaction."""
    _check_id("terminal", terminal)
    if terminal.upper() == "QR":  # phone ratings' terminal id (daemon/hall/mobile.py)
        raise HcpError("terminal id %s is kept for ratings made on phones (评价二维码):"
                       " choose another id" % terminal)
    key = key if key is not None else secrets.token_bytes(32)
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT revoked_at FROM terminals WHERE id=?", (terminal,)).fetchone()
        if row is not None and row[0] is None:
            raise HcpError("terminal %s is already registered; `hcp unpair` and re-provision, "
                           "or choose another id" % terminal)
        conn.execute("INSERT OR REPLACE INTO terminals (id, key, added_at, revoked_at)"
                     " VALUES (?,?,?,NULL)", (terminal, key, now or time.time()))
        if actor:
            audit.record(conn, actor, "register", now, terminal=terminal, **detail)
    return key


def pair(conn: sqlite3.Connection, window: str, terminal: str, now: float | None = None,
         actor: str | None = None) -> None:
    _check_id("window", window)
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        if conn.execute("SELECT 1 FROM terminals WHERE id=? AND revoked_at IS NULL",
                        (terminal,)).fetchone() is None:
            raise HcpError("terminal %s is not registered: add it first "
                           "(`hcp terminal add --terminal %s`)" % (terminal, terminal))
        conn.execute("INSERT INTO pairings (terminal, window, paired_at) VALUES (?,?,?)"
                     " ON CONFLICT(terminal) DO UPDATE SET window=excluded.window,"
                     " paired_at=excluded.paired_at", (terminal, window, now or time.time()))
        if actor:
            audit.record(conn, actor, "pair", now, terminal=terminal, window=window)


def unpair(conn: sqlite3.Connection, terminal: str, actor: str | None = None,
           now: float | None = None) -> None:
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT window FROM pairings WHERE terminal=?", (terminal,)).fetchone()
        if row is None:
            raise HcpError("terminal %s is not paired with any window" % terminal)
        conn.execute("DELETE FROM pairings WHERE terminal=?", (terminal,))
        if actor:
            audit.record(conn, actor, "unpair", now, terminal=terminal, window=row[0])


def replace(conn: sqlite3.Connection, old: str, new: str, actor: str,
            now: float | None = None) -> str | None:
    """Move `old`'s pairing to `new` and revoke `old` (its ratings are then refused as from an
    unknown terminal), in one transaction with its audit entry. Return the window (or None).
    Running it again after it succeeded changes nothing and returns the window `new` has."""
    if old == new:
        raise HcpError("--old and --new are the same terminal")
    now = now or time.time()
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        rows = {r[0]: r[1] for r in conn.execute(
            "SELECT id, revoked_at FROM terminals WHERE id IN (?,?)", (old, new))}
        if new not in rows or rows[new] is not None:
            raise HcpError("terminal %s is not registered: provision the new board first "
                           "(`hcp device provision --terminal %s ...`)" % (new, new))
        if old not in rows:
            raise HcpError("terminal %s is not registered in this hall" % old)
        window = conn.execute("SELECT window FROM pairings WHERE terminal=?", (old,)).fetchone()
        if rows[old] is not None and window is None:
            w = conn.execute("SELECT window FROM pairings WHERE terminal=?", (new,)).fetchone()
            return w[0] if w else None       # done before: nothing left to move
        if window is not None:
            conn.execute("INSERT INTO pairings (terminal, window, paired_at) VALUES (?,?,?)"
                         " ON CONFLICT(terminal) DO UPDATE SET window=excluded.window,"
                         " paired_at=excluded.paired_at", (new, window[0], now))
            conn.execute("DELETE FROM pairings WHERE terminal=?", (old,))
        conn.execute("UPDATE terminals SET revoked_at=? WHERE id=? AND revoked_at IS NULL",
                     (now, old))
        audit.record(conn, actor, "replace", now, old=old, new=new,
                     window=window[0] if window else None)
    return window[0] if window else None


def terminal_state(conn: sqlite3.Connection,
                   terminal: str) -> tuple[Literal["active", "revoked"] | None, bool]:
    """None (never registered), "active" or "revoked"; and whether it has sent ratings."""
    row = conn.execute("SELECT revoked_at FROM terminals WHERE id=?", (terminal,)).fetchone()
    if row is None:
        return None, False
    rated = conn.execute("SELECT 1 FROM ratings WHERE terminal=? LIMIT 1", (terminal,)).fetchone()
    return ("active" if row[0] is None else "revoked"), rated is not None


def terminals_of(conn: sqlite3.Connection, window: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT p.terminal FROM pairings p JOIN terminals t ON t.id=p.terminal"
        " WHERE p.window=? AND t.revoked_at IS NULL ORDER BY p.terminal", (window,))]


def pairings(conn: sqlite3.Connection) -> list[Pairing]:
    return [{"window": r["window"], "terminal": r["terminal"], "paired_at": r["paired_at"]}
            for r in conn.execute(
                "SELECT window, terminal, paired_at FROM pairings ORDER BY window, terminal")]
