"""hcp bench fuzz: malformed MQTT input against the hall's ingest, on a real hall SQLite file.

Inputs (seeded, so a run can be repeated): valid ratings, reasons and statuses of registered
terminals with some fields replaced by awkward values (numbers past 2^53 and 2^63, bools,
floats, NaN, text with NUL, control characters or lone surrogates, lists, objects) or left out,
most of them signed again with the terminal's key so that they get past the signature to the
code behind it; the bytes of such a message cut, flipped or spliced; random bytes; mostly on the
terminal's own topic, sometimes on another (wrong kind, unknown terminal, another hall).

Two phases over the same inputs, in one run:
  decode  messages.decode_uplink / decode_status alone: the raw speed of the component;
  ingest  ingest.handle for each, as the daemon calls it: one transaction per batch of 100
          (synchronous=FULL), a savepoint per message.
`escaped` counts exceptions out of ingest.handle (there must be none: every input ends as a
stored rating, reason or status, or a refusal with a reason); `invalid_stored` counts rows in
ratings, reasons, transactions and terminal_status that break the rules of protocol/fields.py.
"""
from __future__ import annotations

import json
import logging
import os
import random
import re
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from haochaping.daemon.hall import db, ingest, registry, windows
from haochaping.protocol import fields, levels, messages, sign, topics

HALL = "H01"
TERMINALS = ("T001", "T002", "T003")
BATCH = 100
# values a careless or hostile sender puts in a field
AWKWARD: tuple[Any, ...] = (
    None, True, False, 0, -1, 1, 5, 2 ** 31, 2 ** 53 - 1, 2 ** 53, 2 ** 62 + 1, 2 ** 63,
    -2 ** 63 - 1, 2 ** 64, 10 ** 30, 1.5, -0.0, 1e308, float("nan"), float("inf"), "", "1",
    "A\x00B", "\x01", "A\ud800", "\udcff", "\x7f", "\x85", "x" * 70, "办件", "T001", "W01",
    "attitude", "rude", "ab" * 16, "0" * 64, "A" * 64, [], [1], ["x"], [None], {}, {"a": 1},
)
Input = tuple[str, bytes]  # (topic, payload)


class Kit:
    """A hall database to fuzz: terminals with known keys, prompts open on T001 and T002."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.conn = db.connect(path)
        self.keys: dict[str, bytes] = {}
        for i, t in enumerate(TERMINALS):
            self.keys[t] = registry.add_terminal(self.conn, t, bytes([i + 1]) * 32)
        registry.pair(self.conn, "W01", "T001")
        registry.pair(self.conn, "W02", "T002")
        self.tokens: list[str] = []
        now = time.time()
        self.conn.execute("BEGIN IMMEDIATE")
        for w in ("W01", "W02"):
            windows.start(self.conn, w, "A1", "", "", now)
            windows.finish(self.conn, w, now, 3600)
        self.conn.execute("COMMIT")
        self.tokens = [r[0] for r in self.conn.execute("SELECT token FROM transactions")]


def _base(rnd: random.Random, kit: Kit, term: str, seq: int) -> dict[str, Any]:
    kind = rnd.choice(("rating", "rating", "reason", "status"))
    ts = rnd.choice((0, int(time.time())))
    if kind == "rating":
        token = rnd.choice(kit.tokens + [""])
        return {"v": 1, "kind": "rating", "term": term, "seq": seq, "level": rnd.randint(1, 5),
                "token": token, "ts": ts}
    if kind == "reason":
        return {"v": 1, "kind": "reason", "term": term, "seq": seq, "ref": max(1, seq - 1),
                "reason": rnd.choice(levels.REASONS)[0], "ts": ts}
    return {"v": 1, "term": term, "online": rnd.random() < 0.9, "fw": "0.1.0",
            "board": "esp32-devkitc-buttons", "heap": 61234, "backlog": rnd.randint(0, 9),
            "rssi": -58, "errors": rnd.choice(([], ["journal_max: 4096..1048576 bytes"]))}


def _mutate_bytes(rnd: random.Random, raw: bytes) -> bytes:
    b = bytearray(raw)
    for _ in range(rnd.randint(1, 3)):
        op = rnd.randrange(4)
        i = rnd.randrange(len(b) + 1)
        if op == 0:
            del b[i:]
        elif op == 1 and b:
            b[min(i, len(b) - 1)] = rnd.randrange(256)
        elif op == 2:
            b[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 4)))
        else:
            j = rnd.randrange(len(b) + 1)
            b[i:i] = b[min(i, j):max(i, j)][:64]
    return bytes(b)


def make_input(rnd: random.Random, kit: Kit, seq: int) -> Input:
    """One input: (topic, payload)."""
    term = rnd.choice(TERMINALS)
    msg = _base(rnd, kit, term, seq)
    for _ in range(rnd.choice((0, 1, 1, 1, 2, 3))):
        key = rnd.choice(sorted(msg) + ["extra"])
        if rnd.random() < 0.1:
            msg.pop(key, None)
        else:
            msg[key] = rnd.choice(AWKWARD)
    kind = msg.get("kind")
    if "online" not in msg and kind in ("rating", "reason") and rnd.random() < 0.8:
        signed = ([msg.get(f) for f in ("term", "seq", "level", "token", "ts")] if kind == "rating"
                  else [msg.get(f) for f in ("term", "seq", "ref", "reason", "ts")])
        try:
            msg["sig"] = sign.sign(kit.keys[term], kind, signed)
        except UnicodeEncodeError:  # a lone surrogate cannot be signed (nor sent by a terminal)
            msg["sig"] = "0" * 64
    elif "online" not in msg:
        msg["sig"] = rnd.choice(("0" * 64, "zz", None))
    payload = json.dumps(msg).encode()
    r = rnd.random()
    if r < 0.15:
        payload = _mutate_bytes(rnd, payload)
    elif r < 0.2:
        payload = bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 600)))
    t_kind = topics.STATUS if "online" in msg else topics.RATING
    r = rnd.random()
    if r < 0.9:
        topic = topics.topic(HALL, term, t_kind)
    else:
        topic = rnd.choice((topics.topic(HALL, term, topics.ACK),
                            topics.topic(HALL, "T999", t_kind), topics.topic("H02", term, t_kind),
                            "hcp/v1/H01/T\ud800/rating", "hcp/v1/H01/T001/rating/x", ""))
    return topic, payload


def make_inputs(n: int, kit: Kit, seed: int = 1) -> list[Input]:
    rnd = random.Random(seed)
    return [make_input(rnd, kit, i + 1) for i in range(n)]


# ---------------------------------------------------------------- what may be stored
_ID = re.compile(r"[A-Za-z0-9_-]{1,32}\Z")
_HEX = re.compile(r"[0-9a-f]*\Z")
_BAD_CHAR = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_REASONS = {r[0] for r in levels.REASONS}
_OUTCOMES = {ingest.COUNTED, ingest.DUPLICATE, ingest.UNSOLICITED, ingest.EXPIRED}


def _whole(v: object, lo: int = 0, hi: int = 2 ** 53 - 1) -> bool:
    return type(v) is int and lo <= v <= hi


def _time(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= fields.MAX_TS


def _text(v: object, lo: int, hi: int) -> bool:
    return type(v) is str and lo <= len(v) <= hi and not _BAD_CHAR.search(v)


def _id(v: object, empty: bool = False) -> bool:
    return type(v) is str and (bool(_ID.match(v)) or (empty and v == ""))


def _hex(v: object, n: int, empty: bool = False) -> bool:
    return type(v) is str and (len(v) == n or (empty and v == "")) and bool(_HEX.match(v))


# table -> (columns, row check); written from the rules in words, not with fields.py's code
_CHECKS: dict[str, tuple[str, Callable[[sqlite3.Row], bool]]] = {
    "ratings": ("terminal, seq, level, token, rated_at, received_at, outcome, sig, reason",
                lambda r: _id(r[0]) and _whole(r[1], 1) and _whole(r[2], 1, 5)
                and _hex(r[3], 32, True) and _time(r[4]) and _time(r[5]) and r[6] in _OUTCOMES
                and _hex(r[7], 64) and (r[8] is None or r[8] in _REASONS)),
    "reasons": ("terminal, seq, ref, reason, rated_at, received_at",
                lambda r: _id(r[0]) and _whole(r[1], 1) and _whole(r[2], 1) and r[3] in _REASONS
                and _time(r[4]) and _time(r[5])),
    "transactions": ("window, ticket, item, staff",
                     lambda r: _id(r[0]) and _text(r[1], 1, 64) and _text(r[2], 0, 64)
                     and _id(r[3], True)),
    "terminal_status": ("terminal, online, firmware, board, heap, backlog, rssi, errors",
                        lambda r: _id(r[0]) and r[1] in (0, 1)
                        and all(v is None or _text(v, 0, 64) for v in (r[2], r[3]))
                        and all(v is None or _whole(v) for v in (r[4], r[5]))
                        and (r[6] is None or _whole(r[6], -128, 127))
                        and (r[7] is None or all(_text(e, 0, 40) for e in json.loads(r[7])))),
}


def invalid_rows(conn: sqlite3.Connection) -> list[str]:
    """Every row of ratings, reasons, transactions and terminal_status that breaks the field
    rules (numbers to 2^53-1, ids, text without control characters or lone surrogates)."""
    bad = []
    conn.text_factory = lambda b: b.decode("utf-8", "surrogatepass")  # whatever is there
    try:
        for table, (cols, ok) in _CHECKS.items():
            for r in conn.execute("SELECT %s FROM %s" % (cols, table)):
                if not ok(r):
                    bad.append("%s: %r" % (table, tuple(r)))
    finally:
        conn.text_factory = str
    return bad


# ---------------------------------------------------------------- the run
def _decode(items: Sequence[Input]) -> tuple[float, int]:
    """The raw decoder over every input: (seconds, exceptions other than ValueError)."""
    escaped = 0
    t0 = time.perf_counter()
    for topic, payload in items:
        try:
            if topic.endswith("/status"):
                messages.decode_status(payload)
            else:
                messages.decode_uplink(payload)
        except ValueError:
            pass
        except Exception:  # counted: the figure that must be 0
            escaped += 1
    return time.perf_counter() - t0, escaped


def _ingest(kit: Kit, items: Sequence[Input]) -> tuple[float, int, int, list[str]]:
    """ingest.handle over every input, batched as the daemon does: (seconds, acked, escaped,
    the first few escapes as text)."""
    conn, acked, escaped = kit.conn, 0, 0
    samples: list[str] = []
    t0 = time.perf_counter()
    for i in range(0, len(items), BATCH):
        now = time.time()
        keys: ingest.KeyCache = {}
        conn.execute("BEGIN IMMEDIATE")
        for topic, payload in items[i:i + BATCH]:
            conn.execute("SAVEPOINT m")
            try:
                if ingest.handle(conn, HALL, topic, payload, now, 30.0, keys).ack:
                    acked += 1
            except Exception as e:  # counted: the figure that must be 0
                escaped += 1
                conn.execute("ROLLBACK TO m")
                if len(samples) < 5:
                    samples.append("%s on %r: %r" % (type(e).__name__, topic, payload[:80]))
            conn.execute("RELEASE m")
        conn.execute("COMMIT")
    return time.perf_counter() - t0, acked, escaped, samples


def fuzz(inputs: int = 100000, seed: int = 1, folder: str | None = None,
         progress: Callable[[str], object] = print) -> dict[str, object]:
    """Run the benchmark; return the result dict (`hcp bench fuzz` prints it as JSON)."""
    folder = folder or tempfile.mkdtemp(prefix="hcp-fuzz-")
    kit = Kit(os.path.join(folder, "hall.sqlite"))
    progress("making %d inputs (seed %d) for %s" % (inputs, seed, kit.path))
    items = make_inputs(inputs, kit, seed)
    progress("decode: messages.decode_* alone")
    decode_s, decode_escaped = _decode(items)
    progress("ingest: ingest.handle in batches of %d, one commit each" % BATCH)
    quiet = logging.getLogger(ingest.__name__)  # a refusal's warning each would drown the figures
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        ingest_s, acked, escaped, samples = _ingest(kit, items)
    finally:
        quiet.setLevel(level)
    conn = kit.conn
    refused = conn.execute("SELECT COALESCE(SUM(total), 0), COALESCE(SUM(dropped), 0)"
                           " FROM rejected_counts").fetchone()
    bad = invalid_rows(conn)
    result: dict[str, object] = {
        "inputs": inputs, "seed": seed,
        "rejected": refused[0], "rejected_kept": conn.execute(
            "SELECT COUNT(*) FROM rejected").fetchone()[0], "rejected_only_counted": refused[1],
        "acked": acked,
        "ratings": conn.execute("SELECT COUNT(*) FROM ratings").fetchone()[0],
        "reasons": conn.execute("SELECT COUNT(*) FROM reasons").fetchone()[0],
        "escaped": escaped, "decode_escaped": decode_escaped, "escapes": samples,
        "invalid_stored": len(bad), "invalid_examples": bad[:5],
        "decode_per_s": round(inputs / decode_s, 1), "ingest_per_s": round(inputs / ingest_s, 1),
        "ratio": round(decode_s / ingest_s, 3),
        "db_bytes": sum(os.path.getsize(kit.path + s) for s in ("", "-wal")
                        if os.path.exists(kit.path + s)),
        "folder": folder, "cpus": os.cpu_count(),
    }
    conn.close()
    return result
