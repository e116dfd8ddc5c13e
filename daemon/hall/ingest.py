"""What the daemon does with each message from a terminal. Runs inside the caller's database
transaction; the caller commits and only then publishes the acks this returns.

Outcomes of an authenticated rating (RULES.md 第五条: one rating per transaction, bound by token):
- counted      the first rating carrying the token of a prompt shown to this terminal
- duplicate    the transaction already has its rating (a second press, a second terminal)
- unsolicited  no token (pressed with no prompt open) or a token this terminal was never shown
- expired      pressed more than `grace` seconds after the prompt closed (timeout or next ticket)
Everything else (wrong topic, unknown terminal, malformed, bad signature, oversized) is
refused, and not acked: an ack says "your rating is stored". A refused message is counted for
its terminal in `rejected_counts`; its payload (the first PAYLOAD_KEPT bytes) is kept with the
reason in `rejected` for the first KEEP_PER_MINUTE refusals of that terminal in a minute, the
rest are only counted, so that a terminal (or a client of the broker) sending junk cannot fill
the disk. Every field is checked (protocol/fields.py) before anything is stored: whatever the
payload, handle() stores a refusal with a reason in words, it never raises.
"""
from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from typing import Any

from haochaping.protocol import messages, topics

log = logging.getLogger(__name__)

COUNTED, DUPLICATE, UNSOLICITED, EXPIRED = "counted", "duplicate", "unsolicited", "expired"

# (kind, data) for daemon.events (and alerts) once the batch is committed
LiveEvent = tuple[str, dict[str, Any]]
# terminal -> its key, or None if unknown or revoked: looked up once per batch
KeyCache = dict[str, bytes | None]


def bind_outcome(tx: sqlite3.Row | None, shown_to_terminal: bool, rated_at: float, now: float,
                 grace: float) -> str:
    """Pure: the outcome of a rating given its transaction row (or None) and times."""
    if tx is None or not shown_to_terminal:
        return UNSOLICITED
    if tx["rating_id"] is not None:
        return DUPLICATE
    closed = tx["prompt_closed_at"]
    if closed is None and tx["prompt_expires_at"] is not None and now > tx["prompt_expires_at"]:
        closed = tx["prompt_expires_at"]
    if closed is not None and rated_at > closed + grace:
        return EXPIRED
    return COUNTED


def terminal_key(conn: sqlite3.Connection, terminal: str,
                 cache: KeyCache | None = None) -> bytes | None:
    """The terminal's key, or None if unknown or revoked. `cache`: a dict for one batch."""
    if cache is not None:
        if terminal not in cache:
            cache[terminal] = terminal_key(conn, terminal)
        return cache[terminal]
    row = conn.execute("SELECT key FROM terminals WHERE id=? AND revoked_at IS NULL",
                       (terminal,)).fetchone()
    return None if row is None else bytes(row[0])


KEEP_PER_MINUTE = 20  # refused payloads kept per terminal per minute; the rest only counted
PAYLOAD_KEPT = 1024   # bytes of a refused payload kept (a good one is at most 512)
TOPIC_KEPT = 256      # bytes of its topic kept


def reject(conn: sqlite3.Connection, now: float, topic: str, terminal: str | None, reason: str,
           payload: bytes | bytearray, known: bool = True) -> None:
    """Count a refused message for `terminal` (one counter for every message that names no
    registered terminal: known=False or terminal None), and keep it with its reason unless
    KEEP_PER_MINUTE were refused from there this minute. The same payload twice is kept once."""
    bucket = terminal if known and terminal is not None else ""
    minute = int(now // 60)
    (in_minute,) = conn.execute(
        "INSERT INTO rejected_counts (terminal, total, dropped, minute, in_minute, last_at,"
        " last_reason) VALUES (?,1,0,?,1,?,?) ON CONFLICT (terminal) DO UPDATE SET"
        " total=total+1, in_minute=CASE WHEN minute=excluded.minute THEN in_minute+1 ELSE 1 END,"
        " minute=excluded.minute, last_at=excluded.last_at, last_reason=excluded.last_reason"
        " RETURNING in_minute", (bucket, minute, now, reason)).fetchone()
    where = terminal or "a topic of no terminal"
    if in_minute > KEEP_PER_MINUTE:
        conn.execute("UPDATE rejected_counts SET dropped=dropped+1 WHERE terminal=?", (bucket,))
        if in_minute == KEEP_PER_MINUTE + 1:
            log.warning("more than %d messages refused from %s this minute: the rest of the"
                        " minute's are only counted (hcp terminals)", KEEP_PER_MINUTE, where)
        return
    # a topic is text from the broker (valid UTF-8), but keep whatever it is storable
    raw_topic = topic.encode("utf-8", "backslashreplace")
    sha = hashlib.sha256(raw_topic + b"\0" + bytes(payload)).hexdigest()
    conn.execute("INSERT OR IGNORE INTO rejected (received_at, topic, terminal, reason, payload,"
                 " payload_sha) VALUES (?,?,?,?,?,?)",
                 (now, raw_topic[:TOPIC_KEPT].decode("utf-8", "replace"), terminal, reason,
                  bytes(payload[:PAYLOAD_KEPT]), sha))
    log.warning("rejected message from %s: %s", where, reason)


class Result:
    """What to do after the commit: ack (terminal, seq), prompts to close, a live event."""
    __slots__ = ("ack", "closed_token", "event")

    def __init__(self, ack: tuple[str, int] | None = None, closed_token: str | None = None,
                 event: LiveEvent | None = None) -> None:
        self.ack = ack
        self.closed_token = closed_token
        self.event = event  # (kind, data) for daemon.events, or None


_NOTHING = Result()


def handle(conn: sqlite3.Connection, hall: str, topic: str, payload: bytes | bytearray,
           now: float, grace: float, keys: KeyCache | None = None) -> Result:
    """Store one message from a terminal topic; return a Result. `keys`: per-batch key cache."""
    where = topics.parse(topic)
    if where is None or where[0] != hall or where[2] not in (topics.RATING, topics.STATUS):
        reject(conn, now, topic, None, "wrong topic", payload)
        return _NOTHING
    terminal = where[1]
    key = terminal_key(conn, terminal, keys)
    if key is None:
        reject(conn, now, topic, terminal, "unknown terminal", payload, known=False)
        return _NOTHING
    if where[2] == topics.STATUS:
        return _status(conn, terminal, topic, payload, now)
    try:
        msg = messages.decode_uplink(payload)
    except ValueError as e:
        reject(conn, now, topic, terminal, "malformed: %s" % e, payload)
        return _NOTHING
    if msg["term"] != terminal:
        reject(conn, now, topic, terminal,
               "terminal id %s does not match the topic (replayed from another terminal?)"
               % msg["term"], payload)
        return _NOTHING
    if not messages.verify_uplink(key, msg):
        reject(conn, now, topic, terminal, "bad signature", payload)
        return _NOTHING
    if msg["kind"] == "reason":
        return _reason(conn, terminal, msg, now)
    return _rating(conn, topic, terminal, msg, now, grace)


def _rating(conn: sqlite3.Connection, topic: str, terminal: str, msg: dict[str, Any], now: float,
            grace: float) -> Result:
    seq = msg["seq"]
    token = msg["token"]
    rated_at = msg["ts"] or now
    tx = None
    if token:
        tx = conn.execute("SELECT t.id, t.window, t.staff, t.rating_id, t.prompt_closed_at,"
                          " t.prompt_expires_at, p.terminal IS NOT NULL AS shown"
                          " FROM transactions t LEFT JOIN prompt_terminals p"
                          " ON p.token=t.token AND p.terminal=? WHERE t.token=?",
                          (terminal, token)).fetchone()
    bound = tx if tx is not None and tx["shown"] else None  # a prompt shown to this terminal
    outcome = bind_outcome(tx, bound is not None, rated_at, now, grace)
    tx_id = bound["id"] if bound is not None else None
    # delay_ms: checked by decode_uplink (protocol/fields.delay_ms) and covered by the
    # signature; absent from older terminals (NULL: the integrity detectors use the hall's own
    # delay for those)
    cur = conn.execute(
        "INSERT INTO ratings (terminal, seq, level, token, rated_at, received_at, outcome,"
        " transaction_id, sig, press_delay_ms) VALUES (?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT (terminal, seq) DO NOTHING",
        (terminal, seq, msg["level"], token, rated_at, now, outcome, tx_id, msg["sig"],
         msg.get("delay_ms")))
    if cur.rowcount == 0:
        same = conn.execute("SELECT 1 FROM ratings WHERE terminal=? AND seq=? AND sig=?",
                            (terminal, seq, msg["sig"])).fetchone()
        if same:
            return Result(ack=(terminal, seq))  # redelivered: ack again, store nothing
        # the same number for another rating: a terminal that lost its journal (re-flashed
        # without re-provisioning). Keep it aside, unacked, so the terminal's backlog shows it.
        reject(conn, now, topic, terminal,
               "sequence number %d reused for a different rating (terminal lost its journal?"
               " re-provision it)" % seq, json.dumps(msg).encode())
        return _NOTHING
    closed = None
    if outcome == COUNTED:
        assert bound is not None  # counted: bind_outcome saw the prompt shown here
        conn.execute("UPDATE transactions SET rating_id=?,"
                     " prompt_closed_by=COALESCE(prompt_closed_by, 'rated'),"
                     " prompt_closed_at=COALESCE(prompt_closed_at, ?) WHERE id=?",
                     (cur.lastrowid, now, tx_id))
        if bound["prompt_closed_at"] is None:
            closed = token  # this rating closes the prompt; one closed earlier (next ticket)
            #                 must not be cleared again: that would wipe the newer prompt
    window = staff = None
    if bound is not None and tx_id:
        window, staff = bound["window"], bound["staff"]
    event = ("rating", {"terminal": terminal, "seq": seq, "level": msg["level"], "outcome": outcome,
                        "transaction": tx_id, "window": window, "staff": staff, "at": now})
    return Result(ack=(terminal, seq), closed_token=closed, event=event)


def _reason(conn: sqlite3.Connection, terminal: str, msg: dict[str, Any], now: float) -> Result:
    cur = conn.execute("INSERT OR IGNORE INTO reasons (terminal, seq, ref, reason, rated_at,"
                       " received_at) VALUES (?,?,?,?,?,?)",
                       (terminal, msg["seq"], msg["ref"], msg["reason"], msg["ts"] or now, now))
    event: LiveEvent | None = None
    if cur.rowcount:
        conn.execute("UPDATE ratings SET reason=? WHERE terminal=? AND seq=? AND reason IS NULL",
                     (msg["reason"], terminal, msg["ref"]))
        event = ("reason", {"terminal": terminal, "ref": msg["ref"], "reason": msg["reason"],
                            "at": now})
    return Result(ack=(terminal, msg["seq"]), event=event)


def _status(conn: sqlite3.Connection, terminal: str, topic: str, payload: bytes | bytearray,
            now: float) -> Result:
    if not payload:
        return _NOTHING  # a retained status being cleared
    try:
        st = messages.decode_status(payload)
    except ValueError as e:
        reject(conn, now, topic, terminal, "malformed status: %s" % e, payload)
        return _NOTHING
    errors = json.dumps(st["errors"], ensure_ascii=False) if st.get("errors") else None
    was = conn.execute("SELECT online FROM terminal_status WHERE terminal=?",
                       (terminal,)).fetchone()
    if was is None or bool(was[0]) != st["online"]:  # a change: kept for integrity_live
        conn.execute("INSERT INTO terminal_status_log (terminal, at, online) VALUES (?,?,?)",
                     (terminal, now, int(st["online"])))
    conn.execute(
        "INSERT INTO terminal_status (terminal, online, firmware, board, heap, backlog, rssi,"
        " last_seen, errors) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(terminal) DO UPDATE SET"
        " online=excluded.online, firmware=COALESCE(excluded.firmware, firmware),"
        " board=COALESCE(excluded.board, board), heap=COALESCE(excluded.heap, heap),"
        " backlog=COALESCE(excluded.backlog, backlog), rssi=COALESCE(excluded.rssi, rssi),"
        " last_seen=excluded.last_seen,"
        " errors=CASE WHEN excluded.online THEN excluded.errors ELSE errors END",
        (terminal, int(st["online"]), st.get("fw"), st.get("board"), _int(st.get("heap")),
         _int(st.get("backlog")), _int(st.get("rssi")), now, errors))
    if st["online"]:  # what an over-the-air update is doing there (daemon/hall/updates.py)
        conn.execute("UPDATE terminal_status SET update_state=?, image=COALESCE(?, image)"
                     " WHERE terminal=?", (st.get("update") or None, st.get("img") or None,
                                           terminal))
    if errors:
        log.error("terminal %s cannot rate: its config is wrong: %s", terminal, errors)
    if st.get("faults"):
        log.warning("terminal %s reports faults: %s", terminal, "; ".join(st["faults"]))
    return Result(event=("status", {"terminal": terminal, "online": st["online"], "at": now}))


def _int(v: object) -> int | None:
    return v if type(v) is int else None
