"""Terminals and their pairing with windows (hall IT's side of the hall database)."""
import secrets
import time

from haochaping.protocol import topics

from .errors import HcpError


def _check_id(what, value):
    if not topics.valid_id(value):
        raise HcpError("%s %r: use 1-32 of A-Z a-z 0-9 _ -" % (what, value))


def add_terminal(conn, terminal, key=None, now=None):
    """Register a terminal with a fresh HMAC key (or the given one); return the key."""
    _check_id("terminal", terminal)
    key = key if key is not None else secrets.token_bytes(32)
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT revoked_at FROM terminals WHERE id=?", (terminal,)).fetchone()
        if row is not None and row[0] is None:
            raise HcpError("terminal %s is already registered; `hcp unpair` and re-provision, "
                           "or choose another id" % terminal)
        conn.execute("INSERT OR REPLACE INTO terminals (id, key, added_at, revoked_at)"
                     " VALUES (?,?,?,NULL)", (terminal, key, now or time.time()))
    return key


def pair(conn, window, terminal, now=None):
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


def unpair(conn, terminal):
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        if conn.execute("DELETE FROM pairings WHERE terminal=?", (terminal,)).rowcount == 0:
            raise HcpError("terminal %s is not paired with any window" % terminal)


def terminals_of(conn, window):
    return [r[0] for r in conn.execute(
        "SELECT p.terminal FROM pairings p JOIN terminals t ON t.id=p.terminal"
        " WHERE p.window=? AND t.revoked_at IS NULL ORDER BY p.terminal", (window,))]


def pairings(conn):
    return [dict(r) for r in conn.execute(
        "SELECT window, terminal, paired_at FROM pairings ORDER BY window, terminal")]
