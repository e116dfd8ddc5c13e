"""The window system's two calls: a ticket is called to a window (start), the service ends
(finish, which opens the rating prompt). Also prompt timeouts. Each function runs inside the
caller's database transaction and returns what to publish once that transaction is committed:
a list of (terminal, token-or-None, expires_at) — None clears the terminal's retained session.
"""
from __future__ import annotations

import secrets
import sqlite3
from typing import Any

from haochaping.daemon.errors import HcpError, InvalidInput
from haochaping.daemon.hall import registry
from haochaping.protocol import fields

# What to publish once committed: (terminal, token or None, expires_at); None clears the prompt.
Publish = tuple[str, str | None, float]

TICKET_MAX = 64  # characters: queue tickets and 办件编号 (the store keeps as many)
ITEM_MAX = 64    # characters: 事项编码


def check(window: object) -> None:
    """InvalidInput unless `window` is an id (protocol/fields.py)."""
    try:
        fields.ident("window", window)
    except ValueError as e:
        raise InvalidInput(str(e), field="window") from None


def check_start(window: object, ticket: object, item: object = "", staff: object = "") -> None:
    """The rules of protocol/fields.py for what a ticket called to a window carries:
    InvalidInput naming the first bad field. An id for the window, a staff number or "", a
    ticket of 1-64 and an item code of 0-64 characters, neither with control characters or lone
    surrogates. Called before anything is stored (and by the API client before anything is
    sent)."""
    check(window)
    try:
        fields.text("ticket", ticket, TICKET_MAX, 1)
        fields.text("item", item, ITEM_MAX)
        fields.ident("staff", staff, empty=True)
    except ValueError as e:  # fields' reasons start with the field's name
        raise InvalidInput(str(e), field=str(e).partition(":")[0]) from None


def _close_open_prompts(conn: sqlite3.Connection, window: str, now: float,
                        why: str) -> list[Publish]:
    """Close the window's open prompt, if any; return the clears to publish."""
    out: list[Publish] = []
    for row in conn.execute("SELECT id, token FROM transactions WHERE window=?"
                            " AND token IS NOT NULL AND prompt_closed_at IS NULL",
                            (window,)).fetchall():
        conn.execute("UPDATE transactions SET prompt_closed_at=?, prompt_closed_by=? WHERE id=?",
                     (now, why, row["id"]))
        out += [(t, None, 0) for t in shown_to(conn, row["token"])]
    return out


def shown_to(conn: sqlite3.Connection, token: str) -> list[str]:
    return [r[0] for r in conn.execute("SELECT terminal FROM prompt_terminals WHERE token=?",
                                       (token,))]


def known(conn: sqlite3.Connection, window: str) -> bool:
    """A window of this hall: a terminal is paired with it, or it has served before."""
    return conn.execute("SELECT 1 FROM pairings WHERE window=? UNION ALL"
                        " SELECT 1 FROM transactions WHERE window=? LIMIT 1",
                        (window, window)).fetchone() is not None


def _unknown(conn: sqlite3.Connection, window: str) -> InvalidInput:
    names = [r[0] for r in conn.execute("SELECT DISTINCT window FROM pairings ORDER BY window")]
    alike = [w for w in names if w.lower() == window.lower()]
    hint = ("did you mean %s?" % alike[0] if alike else
            "this hall's windows: %s" % (", ".join(names) if names else "none yet"))
    return InvalidInput("window %s is not a window of this hall (%s); a new window needs a"
                        " terminal first: `hcp pair --window %s --terminal T...`"
                        % (window, hint, window), field="window")


def start(conn: sqlite3.Connection, window: str, ticket: str, item: str, staff: str,
          now: float) -> tuple[int, list[Publish]]:
    """A ticket is called to the window. Returns (transaction id, publishes). A window that is
    neither paired nor has served before is refused: a typo would become a new window."""
    check_start(window, ticket, item, staff)
    if not known(conn, window):
        raise _unknown(conn, window)
    publishes = _close_open_prompts(conn, window, now, "next")
    # a transaction that was never finished ends here, without a prompt
    conn.execute("UPDATE transactions SET finished_at=? WHERE window=? AND finished_at IS NULL",
                 (now, window))
    cur = conn.execute("INSERT INTO transactions (window, ticket, item, staff, started_at)"
                       " VALUES (?,?,?,?,?)", (window, ticket, item, staff, now))
    assert cur.lastrowid is not None  # set by every INSERT into a rowid table
    return cur.lastrowid, publishes


def finish(conn: sqlite3.Connection, window: str, now: float,
           timeout: float) -> tuple[int, list[str], list[Publish]]:
    """The service ends: open the rating prompt on the window's terminals.
    Returns (transaction id, terminals prompted, publishes)."""
    check(window)
    tx = conn.execute("SELECT id, staff FROM transactions WHERE window=? AND finished_at IS NULL"
                      " ORDER BY id DESC LIMIT 1", (window,)).fetchone()
    if tx is None:
        raise HcpError("no ticket is being served at window %s: call `hcp window start` first"
                       % window)
    token = secrets.token_hex(16)
    expires = now + timeout
    conn.execute("UPDATE transactions SET finished_at=?, token=?, prompt_expires_at=? WHERE id=?",
                 (now, token, expires, tx["id"]))
    terms = registry.terminals_of(conn, window)
    conn.executemany("INSERT INTO prompt_terminals (token, terminal) VALUES (?,?)",
                     [(token, t) for t in terms])
    if not terms:
        # nobody can rate it; the transaction stays unrated (and gets its default later)
        conn.execute("UPDATE transactions SET prompt_closed_at=?, prompt_closed_by='no-terminal'"
                     " WHERE id=?", (now, tx["id"]))
    return tx["id"], terms, [(t, token, expires) for t in terms]


def expire(conn: sqlite3.Connection, now: float) -> list[Publish]:
    """Close prompts whose time is up; return the clears to publish."""
    out: list[Publish] = []
    for row in conn.execute("SELECT id, token FROM transactions WHERE token IS NOT NULL"
                            " AND prompt_closed_at IS NULL AND prompt_expires_at <= ?",
                            (now,)).fetchall():
        conn.execute("UPDATE transactions SET prompt_closed_at=prompt_expires_at,"
                     " prompt_closed_by='timeout' WHERE id=?", (row["id"],))
        out += [(t, None, 0) for t in shown_to(conn, row["token"])]
    return out


def open_prompts(conn: sqlite3.Connection) -> list[Publish]:
    """Every paired terminal and what its retained session should be now (for a resync)."""
    want: dict[str, Publish] = {}
    for r in conn.execute("SELECT terminal FROM pairings"):
        want[r[0]] = (r[0], None, 0)
    for r in conn.execute("SELECT p.terminal, t.token, t.prompt_expires_at FROM transactions t"
                          " JOIN prompt_terminals p ON p.token=t.token"
                          " WHERE t.prompt_closed_at IS NULL AND t.token IS NOT NULL"):
        want[r[0]] = (r[0], r[1], r[2])
    return list(want.values())


def window_state(conn: sqlite3.Connection, window: str) -> dict[str, Any]:
    """What the window's current transaction is doing, for the queue system and the console
    (JSON; the console adds its own keys to it)."""
    tx = conn.execute("SELECT * FROM transactions WHERE window=? ORDER BY id DESC LIMIT 1",
                      (window,)).fetchone()
    if tx is None:
        return {"window": window, "state": "idle", "terminals": registry.terminals_of(conn, window)}
    state = "serving"
    level = channel = None
    if tx["rating_id"] is not None:
        state = "rated"
        level, channel = conn.execute("SELECT level, channel FROM ratings WHERE id=?",
                                      (tx["rating_id"],)).fetchone()
    elif tx["token"] is not None:
        state = "prompting" if tx["prompt_closed_at"] is None else "not-rated"
    elif tx["finished_at"] is not None:
        state = "not-rated"
    return {"window": window, "state": state, "transaction": tx["id"], "ticket": tx["ticket"],
            "level": level, "channel": channel, "terminals": registry.terminals_of(conn, window)}
