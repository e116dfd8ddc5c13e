"""The QR channel's writes (a phone's rating, its reason and its rater's sealed identity), run in
the daemon's writer (daemon/hall/commands.py), and the identity key. Kept apart from the phone
page (mobile.py, FastAPI) so that the daemon's own process, and the forwarder, do not load the
web framework to use them."""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from haochaping.daemon import sealed
from haochaping.daemon.errors import HcpError
from haochaping.daemon.hall import ingest, windows
from haochaping.daemon.hall.windows import Publish
from haochaping.protocol import levels

QR_TERMINAL = "QR"    # the terminal id of phone ratings (a terminal cannot be registered so)
CHANNEL_QR = "QR"     # 评价二维码 (docs/province.md: the provinces' code for it)
CHANNEL_KEY = "PJQ"   # 评价器, the key terminal
MORE_S = 600          # seconds after a phone rating in which its reason and name are taken


# ------------------------------------------------------------------ the writer's side
def _next_seq(conn: sqlite3.Connection) -> int:
    """The next sequence number of terminal "QR" (ratings and reasons share it, as a terminal's
    journal does). Runs in the writer thread: nobody else takes one meanwhile."""
    return int(conn.execute(
        "SELECT MAX(s) FROM (SELECT MAX(seq) AS s FROM ratings WHERE terminal=? UNION ALL"
        " SELECT MAX(seq) FROM reasons WHERE terminal=?)", (QR_TERMINAL, QR_TERMINAL)
    ).fetchone()[0] or 0) + 1


def phone_rating(conn: sqlite3.Connection, tx_id: int) -> sqlite3.Row | None:
    return conn.execute("SELECT id, seq, level, outcome, reason, received_at FROM ratings"
                        " WHERE transaction_id=? AND terminal=?", (tx_id, QR_TERMINAL)).fetchone()


# outcomes of rate() beyond ingest's: nothing stored
REUSED, GONE = "reused", "gone"


def rate(conn: sqlite3.Connection, tx_id: int, level: int, now: float, grace: float
         ) -> tuple[tuple[str, dict[str, Any] | None], list[Publish]]:
    """In the writer's transaction: a phone's rating of transaction `tx_id`. Returns ((outcome,
    the live event or None), publishes): counted or duplicate (stored, as a key press would be);
    expired, reused or gone (nothing stored)."""
    if not levels.is_level(level):
        raise HcpError("level must be 1 to 5")
    tx = conn.execute("SELECT id, window, staff, token, rating_id, prompt_closed_at,"
                      " prompt_expires_at FROM transactions WHERE id=?", (tx_id,)).fetchone()
    if tx is None or tx["token"] is None:
        return (GONE, None), []
    if phone_rating(conn, tx_id) is not None:
        return (REUSED, None), []
    outcome = ingest.bind_outcome(tx, True, now, now, grace)
    if outcome == ingest.EXPIRED:
        return (outcome, None), []
    seq = _next_seq(conn)
    cur = conn.execute(
        "INSERT INTO ratings (terminal, seq, level, token, rated_at, received_at, outcome,"
        " transaction_id, sig, channel) VALUES (?,?,?,?,?,?,?,?,'',?)",
        (QR_TERMINAL, seq, level, tx["token"], now, now, outcome, tx_id, CHANNEL_QR))
    publishes: list[Publish] = []
    if outcome == ingest.COUNTED:
        conn.execute("UPDATE transactions SET rating_id=?,"
                     " prompt_closed_by=COALESCE(prompt_closed_by, 'rated'),"
                     " prompt_closed_at=COALESCE(prompt_closed_at, ?) WHERE id=?",
                     (cur.lastrowid, now, tx_id))
        if tx["prompt_closed_at"] is None:  # the terminals stop asking
            publishes = [(t, None, 0) for t in windows.shown_to(conn, tx["token"])]
    event = {"terminal": QR_TERMINAL, "seq": seq, "level": level, "outcome": outcome,
             "transaction": tx_id, "window": tx["window"], "staff": tx["staff"], "at": now,
             "channel": CHANNEL_QR}
    return (outcome, event), publishes


def more(conn: sqlite3.Connection, tx_id: int, reason: str, sealed: Callable[[int], bytes] | None,
         now: float, phone_mac: str | None = None
         ) -> tuple[tuple[str, dict[str, Any] | None], list[Publish]]:
    """In the writer's transaction: the reason (after a bad review; "" for none) and the sealed
    identity (sealed(seq) -> bytes, or None) of the phone's counted rating of `tx_id`, with the
    keyed hash of the rater's phone (phones.py), compared with staff members' numbers by the
    integrity findings.
    Returns ((ok | late | none, the reason's live event or None), [])."""
    r = phone_rating(conn, tx_id)
    if r is None or r["outcome"] != ingest.COUNTED:
        return ("none", None), []
    if now - r["received_at"] > MORE_S:
        return ("late", None), []
    event = None
    if reason and levels.is_bad(r["level"]) and r["reason"] is None:
        seq = _next_seq(conn)
        conn.execute("INSERT INTO reasons (terminal, seq, ref, reason, rated_at, received_at)"
                     " VALUES (?,?,?,?,?,?)", (QR_TERMINAL, seq, r["seq"], reason, now, now))
        conn.execute("UPDATE ratings SET reason=? WHERE id=?", (reason, r["id"]))
        event = {"terminal": QR_TERMINAL, "ref": r["seq"], "reason": reason, "at": now,
                 "channel": CHANNEL_QR}
    if sealed is not None:
        conn.execute("INSERT OR IGNORE INTO mobile_raters (rating_id, sealed, consent_at,"
                     " phone_mac) VALUES (?,?,?,?)", (r["id"], sealed(r["seq"]), now, phone_mac))
    return ("ok", event), []


# ------------------------------------------------------------------ the rater's identity
def read_identity_key(path: str) -> bytes:
    """[mobile] identity_key_file: 64 hex characters (`hcp init` writes one, mode 600)."""
    try:
        with open(path) as f:
            k = bytes.fromhex(f.read().strip())
    except FileNotFoundError:
        raise HcpError("[mobile] identity_key_file %s not found: write 64 random hex"
                       " characters into it (`openssl rand -hex 32`), mode 600" % path) from None
    except (ValueError, UnicodeDecodeError):
        raise HcpError("[mobile] identity_key_file %s: expected 64 hex characters" % path) from None
    if len(k) != 32:
        raise HcpError("[mobile] identity_key_file %s: expected 64 hex characters" % path)
    return k


def rater_aad(hall: str, seq: int) -> bytes:
    """What a sealed identity is bound to: its rating's id as the store names it."""
    return ("%s:rating:%s:%d" % (hall, QR_TERMINAL, seq)).encode()


def seal(key: bytes, hall: str, seq: int, identity: dict[str, str]) -> bytes:
    return sealed.seal(key, identity, rater_aad(hall, seq))


def unseal(key: bytes, hall: str, seq: int, blob: bytes) -> dict[str, str]:
    out: dict[str, str] = sealed.open_sealed(key, blob, rater_aad(hall, seq))
    return out
