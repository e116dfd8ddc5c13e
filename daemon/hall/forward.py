"""The forwarder: a thread of the hall daemon that delivers every finished transaction, rating
and reason, and each phone rater's consented identity (第六条), to the municipal store
(RULES.md 第十五条), exactly once in effect.

How delivery is tracked (migration 0002-forward-outbox in db.py):
- Triggers put one row into `forward_outbox` in the SAME transaction that commits a finished
  transaction, a rating, a reason or a phone rater's identity (mobile_raters, migration 0013):
  the outbox is in commit order and can never miss a record.
- A phone rater's identity is sealed at rest ([mobile] identity_key_file); the forwarder opens it
  only to seal it again for the store (RaterSealer, batches.seal_rater), so the batch bytes it
  keeps in forward_batches never hold it in clear.
- The forwarder takes the oldest rows (up to batch_size, or fewer once the oldest has waited
  max_wait_s), builds the batch body ONCE and writes it to `forward_batches` with a new batch id,
  then posts it. The same bytes under the same id are posted again until the store answers
  200 ("stored" or "duplicate": durably committed); only then are the outbox rows deleted and
  the batch marked delivered. A crash anywhere in between re-posts the same batch; the store
  answers "duplicate".
- A batch the store refuses for its records (422: a value it will not take) never blocks the
  queue: it is split in two new batches (new ids: a batch id is the store's idempotency key),
  halves again and again, until each refused record is alone; the others are delivered, and a
  record refused alone is set apart in `forward_quarantine` (migration 0007) with the store's
  reason, an alert is raised, and the queue moves on. Hall IT fixes and retries it, or drops it
  with a reason (`hcp forward quarantine`); nothing is dropped unasked.
- A batch refused for anything else (4xx: bad signature, unknown hall, …) stays at the head of
  the line with its reason, retried with backoff, never deleted: `hcp forward status` shows it
  in words.
- Its own SQLite connection (WAL: readers never block the daemon's writer); its writes are a few
  rows, short, with a busy timeout; it never holds the writer up for long.
"""
from __future__ import annotations

import collections
import json
import logging
import queue
import random
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from haochaping.daemon import batches
from haochaping.daemon.errors import HcpError
from haochaping.daemon.hall import audit, db
from haochaping.daemon.hall.settings import ForwardSection, HallConfig
from haochaping.daemon.hall.store_client import StoreClient, StoreRefused, StoreUnavailable

log = logging.getLogger(__name__)
_POLL_S = 0.2      # how often an idle forwarder looks for new records
_RETRY_MIN_S = 0.5
IN_FLIGHT = 2      # batches posted and not yet answered, at most (one connection each)

# A batch as built into forward_batches: (id, first outbox id, last outbox id, records, body)
Batch = tuple[str, int, int, int, bytes]
# A batch posted and not yet answered: (id, first, last, records, sent at, the store's answer)
_InFlight = tuple[str, int, int, int, float, Future[dict[str, Any]]]


# alert(kind, data): the daemon's Alerter.on_event (alerts.py); called with ("quarantine", …)
Alert = Callable[[str, Mapping[str, Any]], None]
# the hall table behind each kind of outbox row
TABLES = {"transaction": "transactions", "rating": "ratings", "reason": "reasons",
          "rater": "mobile_raters"}
KINDS = {t: k for k, t in TABLES.items()}


class Forwarder:
    def __init__(self, cfg: HallConfig, clock: Callable[[], float] = time.time,
                 alert: Alert | None = None) -> None:
        """alert: told of every record set apart (see _refused), or None."""
        f = cfg.forward
        self.f = f
        self.hall = f.hall_id or cfg.hall.id
        self.db_path = cfg.hall.database
        self.clock = clock
        self.alert = alert
        self.key = batches.read_key_file(f.key_file)
        self.raters = RaterSealer.from_config(cfg, self.hall, self.key)
        # one keep-alive connection per batch in flight
        self.clients = [StoreClient(f.url, self.hall, self.key, ca=f.ca or None,
                                    timeout=f.timeout_s) for _ in range(IN_FLIGHT)]
        self.client = self.clients[0]
        self._idle: queue.SimpleQueue[StoreClient] = queue.SimpleQueue()
        for c in self.clients:
            self._idle.put(c)
        self.stopping = threading.Event()
        self._poster = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="forward-post")
        self._thread: threading.Thread | None = None
        self.failures = 0  # consecutive, for the backoff
        self._flight: collections.deque[_InFlight] = collections.deque()  # in order
        self._held: list[dict[str, Any]] = []  # set apart while building, told after commit

    def start(self) -> Forwarder:
        self._thread = threading.Thread(target=self._run, name="forwarder", daemon=True)
        self._thread.start()
        log.info("forwarding hall %s to %s", self.hall, self.f.url)
        return self

    def stop(self, timeout: float = 5) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.close()

    def close(self) -> None:
        self._poster.shutdown(wait=False)
        for c in self.clients:
            c.close()

    # ---------------------------------------------------------------- loop
    def _run(self) -> None:
        conn = open_conn(self.db_path)
        try:
            while not self.stopping.is_set():
                try:
                    wait = self.step(conn)
                except Exception:  # a bug or a locked database: log it, back off, go on
                    log.exception("forwarder step failed")
                    wait = self._backoff()
                if wait:
                    self.stopping.wait(wait)
        finally:
            conn.close()

    def step(self, conn: sqlite3.Connection) -> float:
        """Wait for the oldest batch in flight to be answered and mark it; return how long to
        wait before the next step (0: none).

        Up to IN_FLIGHT batches travel at once, each on its own connection, so that the store
        parses one while it commits another, and the hall's own work hides behind them: while
        they travel the next batch is built (read, encoded, written to forward_batches); as soon
        as one is answered the next is posted, and only then is the answered one marked
        delivered. After a failure only the oldest undelivered batch is retried, alone. A batch
        refused for its records is split (or its one record set apart) at once, no backoff."""
        wait = self._fill(conn)
        if not self._flight:
            return _POLL_S if wait is None else wait
        bid, first, last, n, now, post = self._flight[0]
        if self.failures == 0 and self._next_built(conn, self._flight[-1][2]) is None:
            try:
                self._build(conn, after=self._flight[-1][2])
            except Exception:  # the batches in flight still count; building is tried again
                log.exception("building the next batch failed")
        try:
            answer = post.result()
        except (StoreRefused, StoreUnavailable) as e:
            self._flight.popleft()
            if _about_records(e):
                assert isinstance(e, StoreRefused)
                # the batches behind it first: its parts are older, and go next (from after=0)
                if self._drain(conn):
                    self._refused(conn, bid, first, last, n, now, e)
                    return self._backoff()
                self._refused(conn, bid, first, last, n, now, e)
                self.failures = 0  # the store answers: on at full speed
                return 0
            self._failed(conn, bid, n, now, e)
            self._drain(conn)
            return self._backoff()
        self._flight.popleft()
        self.failures = 0
        # the store gets the next batch before this one is marked; `last` as the floor, or
        # the batch just answered (not yet marked) would be taken for the next one, and posted
        # again when nothing else is in flight
        self._fill(conn, floor=last)
        self._delivered(conn, bid, first, last, n, now, answer)
        return 0

    def _fill(self, conn: sqlite3.Connection, floor: int = 0) -> float | None:
        """Post built batches (building them if need be) until IN_FLIGHT are under way (one
        while failing): those after the last one in flight, or, with none in flight, after
        outbox id `floor` (0: from the oldest undelivered). Returns None, or the seconds to wait
        for records to fill a batch."""
        while len(self._flight) < (IN_FLIGHT if self.failures == 0 else 1):
            after = self._flight[-1][2] if self._flight else floor
            batch = self._next_built(conn, after) or self._build(conn, after)
            if batch is None or isinstance(batch, float):
                return batch
            bid, first, last, n, body = batch
            self._flight.append((bid, first, last, n, self.clock(),
                                 self._poster.submit(self._post, bid, bytes(body))))
        return None

    def _post(self, bid: str, body: bytes) -> dict[str, Any]:
        client = self._idle.get()
        try:
            return client.post_batch(bid, body)
        finally:
            self._idle.put(client)

    def _drain(self, conn: sqlite3.Connection) -> bool:
        """After a failure or a refusal: wait for the other batches in flight; mark those the
        store took, split those it refused for their records. True if one of them failed."""
        failed = False
        while self._flight:
            bid, first, last, n, now, post = self._flight.popleft()
            try:
                answer = post.result()
            except (StoreRefused, StoreUnavailable) as e:
                if _about_records(e):
                    assert isinstance(e, StoreRefused)
                    self._refused(conn, bid, first, last, n, now, e)
                else:
                    self._failed(conn, bid, n, now, e)
                    failed = True
            else:
                self._delivered(conn, bid, first, last, n, now, answer)
        return failed

    def _failed(self, conn: sqlite3.Connection, bid: str, n: int, now: float,
                e: StoreRefused | StoreUnavailable) -> None:
        status = e.status if isinstance(e, StoreRefused) else 0
        _write(conn, "UPDATE forward_batches SET attempts=attempts+1, last_attempt_at=?,"
               " last_status=?, last_error=?, last_error_at=? WHERE id=?",
               (now, status, str(e), now, bid))
        log.warning("batch %s (%d records) not delivered: %s", bid, n, e)

    def _refused(self, conn: sqlite3.Connection, bid: str, first: int, last: int, n: int,
                 now: float, e: StoreRefused) -> None:
        """The store refused batch `bid` for its records (422): in one transaction, mark it
        refused and split its outbox rows into two new batches (new ids, each its own body),
        which _next_built finds next; or, with one row left, set that record apart in
        forward_quarantine (and tell the duty manager). The records behind move on either way;
        a crash before the commit only means the batch is posted and refused again."""
        held: dict[str, Any] | None = None
        parts: list[Batch] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids = [r[0] for r in conn.execute("SELECT id FROM forward_outbox WHERE id BETWEEN"
                                              " ? AND ? ORDER BY id", (first, last))]
            conn.execute("UPDATE forward_batches SET attempts=attempts+1, last_attempt_at=?,"
                         " last_status=?, last_error=?, last_error_at=?, refused_at=?, body=NULL"
                         " WHERE id=?", (now, e.status, str(e), now, self.clock(), bid))
            if len(ids) > 1:
                half = len(ids) // 2
                parts = [self._insert_batch(conn, ids[0], ids[half - 1]),
                         self._insert_batch(conn, ids[half], ids[-1])]
            elif ids:
                held = _quarantine(conn, self.hall, ids[0], bid, e.status, e.reason,
                                   self.clock())
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._held = []  # rolled back: nothing was set apart
            raise
        if parts:
            log.warning("batch %s (%d records) refused for its records, split in %s (%d) and"
                        " %s (%d): %s", bid, n, parts[0][0], parts[0][3], parts[1][0],
                        parts[1][3], e)
        elif held is not None:
            self._held.append(held)
        self._tell_held()

    def _tell_held(self) -> None:
        """After the commit that set them apart: log each record held, and tell the duty
        manager (the alert names the record and the reason, never its content)."""
        held, self._held = self._held, []
        for h in held:
            log.error("record %s set apart in the quarantine (id %d, %d held): %s",
                      h["record"], h["id"], h["quarantined"], h["reason"])
            if self.alert is not None:
                try:
                    self.alert("quarantine", h)
                except Exception:  # an alert that cannot go out must not stop forwarding
                    log.exception("the quarantine alert failed")

    def _delivered(self, conn: sqlite3.Connection, bid: str, first: int, last: int, n: int,
                   now: float, answer: Mapping[str, Any]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM forward_outbox WHERE id BETWEEN ? AND ?", (first, last))
            conn.execute("UPDATE forward_batches SET attempts=attempts+1, last_attempt_at=?,"
                         " last_status=200, delivered_at=?, body=NULL WHERE id=?",
                         (now, self.clock(), bid))
            # a record retried out of the quarantine (hcp forward quarantine retry) got through
            conn.execute("UPDATE forward_quarantine SET state='delivered', outbox_id=NULL"
                         " WHERE state='retried' AND outbox_id BETWEEN ? AND ?", (first, last))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        log.info("batch %s delivered: %d records (%s, %d new)", bid, n, answer["status"],
                 answer.get("new", 0))

    def _next_built(self, conn: sqlite3.Connection, after: int) -> Batch | None:
        """The oldest batch built (in forward_batches) for outbox ids after `after` and not yet
        delivered, as (id, first, last, records, body); or None."""
        r = conn.execute("SELECT id, first_id, last_id, records, body FROM forward_batches"
                         " WHERE delivered_at IS NULL AND refused_at IS NULL AND first_id > ?"
                         " ORDER BY first_id LIMIT 1", (after,)).fetchone()
        return None if r is None else _batch(r)

    def _backoff(self) -> float:
        """Exponential backoff with jitter: half fixed, half random, capped at retry_max_s."""
        self.failures += 1
        d = min(self.f.retry_max_s, _RETRY_MIN_S * 2 ** min(self.failures, 20))
        return d / 2 + random.uniform(0, d / 2)

    def _build(self, conn: sqlite3.Connection, after: int = 0) -> Batch | float | None:
        """Write the next batch (outbox rows after `after`) to forward_batches; return it, None
        if nothing waits, or the seconds to wait for more records to fill it."""
        size = self.f.batch_size
        n, oldest, first, last = outbox_range(conn, size, after)
        if not n:
            return None
        assert oldest is not None and first is not None and last is not None  # n rows: all set
        waited = self.clock() - oldest
        if n < size and waited < self.f.max_wait_s:
            return float(min(_POLL_S, self.f.max_wait_s - waited))
        conn.execute("BEGIN IMMEDIATE")
        try:
            batch = self._insert_batch(conn, first, last)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._held = []
            raise
        self._tell_held()
        return batch

    def _insert_batch(self, conn: sqlite3.Connection, first: int, last: int) -> Batch:
        """Build the batch of outbox rows first..last (a new id, its body) and write it to
        forward_batches, inside the caller's transaction."""
        bid = "%s-%d-%d-%s" % (self.hall, first, last, secrets.token_hex(4))
        while True:
            try:
                tables = read_tables(conn, self.f, first, last, self.raters)
                break
            except Unopenable as e:
                # never sent (status 0): hall IT puts the key back, then retries it
                self._held.append(_quarantine(conn, self.hall, e.outbox_id, bid, 0, e.reason,
                                              self.clock()))
        n = sum(len(t["seq"] if "seq" in t else t["tx"]) for t in tables.values())
        body = batches.encode_columns(self.hall, bid, tables)
        conn.execute("INSERT INTO forward_batches (id, first_id, last_id, records, body,"
                     " created_at) VALUES (?,?,?,?,?,?)", (bid, first, last, n, body,
                                                           self.clock()))
        return bid, first, last, n, body


def _about_records(e: StoreRefused | StoreUnavailable) -> bool:
    """Did the store refuse the batch for its records (422: a value it will not take), so that
    the batch is split rather than sent again as it is?"""
    return isinstance(e, StoreRefused) and e.status == 422


def _batch(r: Any) -> Batch:
    """A forward_batches row (id, first_id, last_id, records, body) as a Batch."""
    bid, first, last, n, body = r
    return bid, first, last, n, body


def _write(conn: sqlite3.Connection, sql: str, args: tuple[object, ...]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(sql, args)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def open_conn(path: str) -> sqlite3.Connection:
    """The forwarder's own connection to the hall database. synchronous=NORMAL: a mark lost in
    a power cut only means the batch is posted again, and the store answers "duplicate"."""
    conn = db.connect(path)
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def pending_batch(conn: sqlite3.Connection) -> Batch | None:
    """The oldest batch built but not yet delivered (batches are delivered in order) nor
    refused for its records (split since), or None."""
    r = conn.execute("SELECT id, first_id, last_id, records, body FROM forward_batches"
                     " WHERE delivered_at IS NULL AND refused_at IS NULL ORDER BY first_id"
                     " LIMIT 1").fetchone()
    return None if r is None else _batch(r)


def outbox_range(conn: sqlite3.Connection, size: int,
                 after: int = 0) -> tuple[int, float | None, int | None, int | None]:
    """(count, oldest queued_at, first id, last id) of the oldest `size` outbox rows after
    `after`: one query. With no rows: (0, None, None, None)."""
    n, oldest, first, last = conn.execute(
        "SELECT COUNT(*), MIN(queued_at), MIN(id), MAX(id) FROM (SELECT id, queued_at FROM"
        " forward_outbox WHERE id > ? ORDER BY id LIMIT ?)", (after, size)).fetchone()
    return n, oldest, first, last


# one query per kind and batch; the columns come out in the order of the batch body's fields
_READ: dict[str, tuple[tuple[str, ...], str]] = {
    "transactions": (
        ("tx", "window", "ticket", "item", "staff", "started_at", "finished_at"),
        "SELECT t.id, t.window, t.ticket, COALESCE(t.item, ''), COALESCE(t.staff, ''),"
        " t.started_at, t.finished_at FROM forward_outbox o JOIN transactions t ON t.id = o.ref"
        " WHERE o.kind = 'transaction' AND o.id BETWEEN ? AND ? ORDER BY o.id"),
    "ratings": (
        ("terminal", "seq", "level", "outcome", "transaction", "rated_at", "received_at",
         "channel", "press_delay_ms"),
        "SELECT g.terminal, g.seq, g.level, g.outcome, g.transaction_id, g.rated_at,"
        " g.received_at, g.channel, g.press_delay_ms"
        " FROM forward_outbox o JOIN ratings g ON g.id = o.ref"
        " WHERE o.kind = 'rating' AND o.id BETWEEN ? AND ? ORDER BY o.id"),
    "reasons": (
        ("terminal", "seq", "ref", "reason", "rated_at"),
        "SELECT s.terminal, s.seq, s.ref, s.reason, s.rated_at FROM forward_outbox o"
        " JOIN reasons s ON s.terminal = o.terminal AND s.seq = o.ref"
        " WHERE o.kind = 'reason' AND o.id BETWEEN ? AND ? ORDER BY o.id"),
}


class Unopenable(HcpError):
    """A phone rater's identity the hall cannot open ([mobile] identity_key_file unset or
    changed since it was sealed): set apart in the quarantine, not sent, and not in the way
    of the records behind it."""

    def __init__(self, outbox_id: int, reason: str) -> None:
        super().__init__(reason)
        self.outbox_id, self.reason = outbox_id, reason


class RaterSealer:
    """A phone rater's identity from mobile_raters (sealed by the phone page with [mobile]
    identity_key_file, bound to its rating), sealed again for the store: batches.seal_rater
    under the hall's batch key, bound to the rater record. The clear identity lives only in
    memory, between the two."""

    def __init__(self, identity_key: bytes | None, mobile_hall: str, hall: str,
                 batch_key: bytes) -> None:
        """mobile_hall: [hall] id (what the phone page bound the seal to); hall: the id the
        store knows the hall by ([forward] hall_id or [hall] id)."""
        self.identity_key, self.mobile_hall = identity_key, mobile_hall
        self.hall, self.batch_key = hall, batch_key

    @classmethod
    def from_config(cls, cfg: HallConfig, hall: str, batch_key: bytes) -> RaterSealer:
        key = None
        if cfg.mobile.identity_key_file:
            from haochaping.daemon.hall import phone_ratings
            key = phone_ratings.read_identity_key(cfg.mobile.identity_key_file)
        return cls(key, cfg.hall.id, hall, batch_key)

    def __call__(self, tx: int, seq: int, sealed: bytes) -> str:
        """The identity of the phone rating `seq` (of transaction `tx`), sealed for the store."""
        from cryptography.exceptions import InvalidTag

        from haochaping.daemon.hall import phone_ratings
        if self.identity_key is None:
            raise HcpError("a phone rater's identity (rating QR:%d) waits to be forwarded, but"
                           " [mobile] identity_key_file is not set: set it back to the key it"
                           " was sealed with" % seq)
        try:
            identity = phone_ratings.unseal(self.identity_key, self.mobile_hall, seq, sealed)
        except (InvalidTag, ValueError):
            raise HcpError("a phone rater's identity (rating QR:%d) does not open with [mobile]"
                           " identity_key_file: was the key changed?" % seq) from None
        return batches.seal_rater(self.batch_key, batches.rater_uid(self.hall, tx), identity)


_RATERS_SQL = (
    "SELECT o.id, g.transaction_id, g.seq, m.sealed, m.consent_at FROM forward_outbox o"
    " JOIN mobile_raters m ON m.rating_id = o.ref JOIN ratings g ON g.id = m.rating_id"
    " WHERE o.kind = 'rater' AND o.id BETWEEN ? AND ? ORDER BY o.id")


def _read_raters(cur: sqlite3.Cursor, first: int, last: int,
                 sealer: RaterSealer | None) -> dict[str, list[Any]] | None:
    """The raters table of outbox rows first..last (None when there are none), each identity
    sealed for the store by `sealer`; Unopenable names the first one it cannot open (HcpError
    if there is one to send and no sealer at all)."""
    rows = cur.execute(_RATERS_SQL, (first, last)).fetchall()
    if not rows:
        return None
    if sealer is None:
        raise HcpError("phone raters' identities wait to be forwarded, but nothing here can seal"
                       " them for the store")
    out: dict[str, list[Any]] = {"tx": [], "sealed": [], "consent_at": []}
    for outbox_id, tx, seq, sealed, consent_at in rows:
        try:
            out["sealed"].append(sealer(tx, seq, sealed))
        except HcpError as e:
            raise Unopenable(outbox_id, str(e)) from None
        out["tx"].append(tx)
        out["consent_at"].append(consent_at)
    return out


def read_tables(conn: sqlite3.Connection, f: ForwardSection, first: int, last: int,
                raters: RaterSealer | None = None) -> dict[str, dict[str, list[Any]]]:
    """The outbox rows first..last as the tables of a version-2 batch body (batches.encode_columns):
    {"transactions"|"ratings"|"reasons"|"raters": {field: [value, ...]}}, each in outbox order
    (raters: each identity sealed for the store by `raters`). The
    hall's department and region codes are the same for every transaction: they are added here,
    not read row by row (a third of the read's time); item_version (the hall has none) and
    a transaction's channel (always the hall's, PJQ) are left to the store's defaults; a
    rating carries its own (PJQ or QR, 第五条)."""
    cur = conn.cursor()
    cur.row_factory = None  # plain tuples, transposed into columns below
    out: dict[str, dict[str, list[Any]]] = {}
    for name, (fields, sql) in _READ.items():
        rows = cur.execute(sql, (first, last)).fetchall()
        if rows:
            out[name] = dict(zip(fields, map(list, zip(*rows, strict=True)), strict=True))
    if "transactions" in out:
        n = len(out["transactions"]["tx"])
        out["transactions"]["department"] = [f.department] * n
        out["transactions"]["region"] = [f.region] * n
    if "ratings" in out:
        out["ratings"]["default"] = [False] * len(out["ratings"]["seq"])
        if not any(v is not None for v in out["ratings"]["press_delay_ms"]):
            # no rating of the batch has one (older terminals): the column is left out, so a
            # store not yet upgraded (schema 0007) still takes the hall's batches
            del out["ratings"]["press_delay_ms"]
    sealed = _read_raters(cur, first, last, raters)
    if sealed is not None:
        out["raters"] = sealed
    return out


# ------------------------------------------------------------------ the quarantine
# a hall record's fields as `hcp forward quarantine show` prints them (what is forwarded)
_SHOW = {
    "transactions": ("SELECT id AS tx, window, ticket, item, staff, started_at, finished_at"
                     " FROM transactions WHERE id = ?"),
    "ratings": ("SELECT terminal, seq, level, outcome, transaction_id AS \"transaction\","
                " rated_at, received_at, channel, press_delay_ms FROM ratings WHERE id = ?"),
    "reasons": "SELECT terminal, seq, ref, reason, rated_at FROM reasons WHERE seq = ?",
    # never the identity, not even sealed: what it belongs to and when consent was given
    "mobile_raters": ("SELECT g.transaction_id AS tx, g.seq AS rating_seq, m.consent_at FROM"
                      " mobile_raters m JOIN ratings g ON g.id = m.rating_id"
                      " WHERE m.rating_id = ?"),
}
_QCOLS = ("id", "record", "hall_table", "ref", "terminal", "queued_at", "batch", "status",
          "reason", "quarantined_at", "attempts", "state", "decided_at", "decided_by", "note")


def record_id(conn: sqlite3.Connection, hall: str, kind: str, ref: int,
              terminal: str | None) -> str:
    """The id the store gives the record an outbox row stands for (daemon/batches.py)."""
    if kind == "transaction":
        return "%s:tx:%d" % (hall, ref)
    if kind == "reason":
        return "%s:reason:%s:%d" % (hall, terminal, ref)
    if kind == "rater":
        t = conn.execute("SELECT transaction_id FROM ratings WHERE id = ?", (ref,)).fetchone()
        return (batches.rater_uid(hall, t[0]) if t and t[0] is not None
                else "%s:rater:#%d" % (hall, ref))
    r = conn.execute("SELECT terminal, seq FROM ratings WHERE id = ?", (ref,)).fetchone()
    return "%s:rating:%s:%s" % (hall, r[0], r[1]) if r else "%s:rating:#%d" % (hall, ref)


def _quarantine(conn: sqlite3.Connection, hall: str, outbox_id: int, bid: str, status: int,
                reason: str, now: float) -> dict[str, Any]:
    """Inside the caller's transaction: move outbox row `outbox_id`, refused alone in batch
    `bid` (the store's HTTP status and reason; 0: the hall could not send it), into
    forward_quarantine (a record refused again after a retry keeps its row, one more attempt).
    Returns what the alert says."""
    kind, ref, terminal, queued = conn.execute(
        "SELECT kind, ref, terminal, queued_at FROM forward_outbox WHERE id = ?",
        (outbox_id,)).fetchone()
    table, record = TABLES[kind], record_id(conn, hall, kind, ref, terminal)
    old = conn.execute("SELECT id FROM forward_quarantine WHERE hall_table = ? AND ref = ?"
                       " AND terminal IS ?", (table, ref, terminal)).fetchone()
    if old is None:
        qid = conn.execute(
            "INSERT INTO forward_quarantine (record, hall_table, ref, terminal, queued_at, batch,"
            " status, reason, quarantined_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (record, table, ref, terminal, queued, bid, status, reason, now)).lastrowid
        assert qid is not None
    else:
        qid = old[0]
        conn.execute("UPDATE forward_quarantine SET record=?, batch=?, status=?, reason=?,"
                     " quarantined_at=?, attempts=attempts+1, state='held', outbox_id=NULL"
                     " WHERE id=?", (record, bid, status, reason, now, qid))
    conn.execute("DELETE FROM forward_outbox WHERE id = ?", (outbox_id,))
    attempts = conn.execute("SELECT attempts FROM forward_quarantine WHERE id = ?",
                            (qid,)).fetchone()[0]
    return {"id": qid, "record": record, "table": table, "status": status,
            "reason": reason, "attempts": attempts, "quarantined": quarantined(conn),
            "at": now}


def quarantined(conn: sqlite3.Connection) -> int:
    """How many records the store refused are held, waiting for hall IT."""
    return int(conn.execute("SELECT COUNT(*) FROM forward_quarantine WHERE state = 'held'")
               .fetchone()[0])


def quarantined_at(path: str) -> int | None:
    """quarantined() on a connection of its own to the hall database at `path` (for the window
    API's health answer, which must not use the writer's); None if it cannot be read."""
    try:
        conn = sqlite3.connect(path, timeout=5)
        try:
            return quarantined(conn)
        finally:
            conn.close()
    except sqlite3.Error as e:
        log.warning("cannot count the quarantined records: %s", e)
        return None


def quarantine_list(conn: sqlite3.Connection, every: bool = False) -> list[dict[str, Any]]:
    """The records held in the quarantine, oldest first (every: also those retried, delivered
    after a retry, or dropped)."""
    rows = conn.execute("SELECT %s FROM forward_quarantine%s ORDER BY id" % (
        ", ".join(_QCOLS), "" if every else " WHERE state = 'held'")).fetchall()
    return [dict(zip(_QCOLS, tuple(r), strict=True)) for r in rows]


def quarantine_show(conn: sqlite3.Connection, qid: int) -> dict[str, Any]:
    """One quarantined record: why and when it was refused, and its fields as the hall holds
    them (`fields`; None if the hall no longer has the row)."""
    q = _quarantined_row(conn, qid)
    sql = _SHOW[q["hall_table"]]
    args: tuple[object, ...] = (q["ref"],)
    if q["hall_table"] == "reasons":
        sql, args = sql + " AND terminal = ?", (q["ref"], q["terminal"])
    cur = conn.execute(sql, args)
    row = cur.fetchone()
    q["fields"] = (None if row is None else
                   dict(zip([d[0] for d in cur.description], tuple(row), strict=True)))
    return q


def _quarantined_row(conn: sqlite3.Connection, qid: int) -> dict[str, Any]:
    r = conn.execute("SELECT %s FROM forward_quarantine WHERE id = ?" % ", ".join(_QCOLS),
                     (qid,)).fetchone()
    if r is None:
        raise HcpError("no record %d in the quarantine (hcp forward quarantine list)" % qid)
    return dict(zip(_QCOLS, tuple(r), strict=True))


def _decide(conn: sqlite3.Connection, qid: int, actor: str, action: str,
            fn: Callable[[dict[str, Any]], None], now: float,
            **detail: object) -> dict[str, Any]:
    """Retry or drop held record `qid` (fn does it) in one transaction with its audit entry."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        q = _quarantined_row(conn, qid)
        if q["state"] != "held":
            raise HcpError("record %d (%s) is not held in the quarantine: it is %s"
                           % (qid, q["record"], q["state"]))
        fn(q)
        audit.record(conn, actor, action, now, id=qid, record=q["record"], **detail)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return _quarantined_row(conn, qid)


def quarantine_retry(conn: sqlite3.Connection, qid: int, actor: str,
                     now: float | None = None) -> dict[str, Any]:
    """Put held record `qid` back in the outbox (after its cause is fixed): the forwarder sends
    it with the next batch; refused again, it comes back here with one more attempt."""
    when = time.time() if now is None else now

    def retry(q: dict[str, Any]) -> None:
        oid = conn.execute("INSERT INTO forward_outbox (kind, ref, terminal, queued_at)"
                           " VALUES (?,?,?,?)", (KINDS[q["hall_table"]], q["ref"],
                                                 q["terminal"], q["queued_at"])).lastrowid
        conn.execute("UPDATE forward_quarantine SET state='retried', outbox_id=?, decided_at=?,"
                     " decided_by=?, note=NULL WHERE id=?", (oid, when, actor, qid))
    return _decide(conn, qid, actor, "forward.quarantine.retry", retry, when)


def quarantine_drop(conn: sqlite3.Connection, qid: int, actor: str, reason: str,
                    now: float | None = None) -> dict[str, Any]:
    """Give up forwarding held record `qid`, for `reason` (required: a person decides). The
    record stays in the hall's own tables; the store never gets it."""
    if not reason.strip():
        raise HcpError("dropping a record needs a reason (--reason)")
    when = time.time() if now is None else now

    def drop(q: dict[str, Any]) -> None:
        conn.execute("UPDATE forward_quarantine SET state='dropped', decided_at=?, decided_by=?,"
                     " note=? WHERE id=?", (when, actor, reason, qid))
    return _decide(conn, qid, actor, "forward.quarantine.drop", drop, when, reason=reason)


def status(conn: sqlite3.Connection, now: float | None = None) -> dict[str, Any]:
    """What hall IT needs to see at a glance: backlog, oldest age, last success, last error,
    records set apart in the quarantine."""
    now = time.time() if now is None else now
    n, oldest = conn.execute("SELECT COUNT(*), MIN(queued_at) FROM forward_outbox").fetchone()
    last_ok = conn.execute("SELECT MAX(delivered_at) FROM forward_batches").fetchone()[0]
    delivered = conn.execute("SELECT COALESCE(SUM(records), 0), COUNT(*) FROM forward_batches"
                             " WHERE delivered_at IS NOT NULL").fetchone()
    err = conn.execute("SELECT id, last_error, last_error_at, last_status, attempts, delivered_at"
                       " FROM forward_batches WHERE last_error_at IS NOT NULL"
                       " ORDER BY last_error_at DESC LIMIT 1").fetchone()
    pend = pending_batch(conn)
    out = {
        "backlog": n, "oldest_age_s": None if oldest is None else round(now - oldest, 1),
        "last_success_at": last_ok, "delivered_records": delivered[0],
        "delivered_batches": delivered[1],
        "pending_batch": None, "last_error": None, "last_error_at": None,
        "quarantined": quarantined(conn),
    }
    if pend is not None:
        row = conn.execute("SELECT attempts FROM forward_batches WHERE id=?", (pend[0],)).fetchone()
        out["pending_batch"] = {"id": pend[0], "records": pend[3], "attempts": row[0]}
    if err is not None:
        out["last_error"] = err["last_error"]
        out["last_error_at"] = err["last_error_at"]
        out["last_error_resolved"] = err["delivered_at"] is not None or (
            last_ok is not None and last_ok > err["last_error_at"])
    return out


def describe(st: Mapping[str, Any], now: float | None = None) -> list[str]:
    """status() in words, one fact per line."""
    now = time.time() if now is None else now

    def ago(t: float) -> str:
        s = now - t
        if s < 120:
            return "%d s ago" % s
        if s < 7200:
            return "%d min ago" % (s // 60)
        if s < 172800:
            return "%.1f h ago" % (s / 3600)
        return "%.1f days ago" % (s / 86400)
    lines = []
    if st["backlog"]:
        lines.append("backlog: %d records waiting, the oldest for %s" % (
            st["backlog"], ago(now - st["oldest_age_s"])[:-4]))
    else:
        lines.append("backlog: none, everything is delivered")
    lines.append("last success: %s (%d records in %d batches so far)" % (
        ago(st["last_success_at"]) if st["last_success_at"] else "never",
        st["delivered_records"], st["delivered_batches"]))
    if st["last_error"]:
        lines.append("last error: %s, %s%s" % (ago(st["last_error_at"]), st["last_error"],
                                                " (resolved since)" if st.get("last_error_resolved")
                                                else ""))
    else:
        lines.append("last error: none")
    if st["pending_batch"]:
        p = st["pending_batch"]
        lines.append("in flight: batch %s, %d records, %d attempt(s)" % (p["id"], p["records"],
                                                                         p["attempts"]))
    if st.get("quarantined"):
        lines.append("quarantined: %d record(s) the store refused, set apart for hall IT"
                     " (hcp forward quarantine list)" % st["quarantined"])
    else:
        lines.append("quarantined: none")
    return lines


def open_status(cfg: HallConfig) -> dict[str, Any]:
    try:
        conn = db.connect(cfg.hall.database)
    except Exception as e:
        raise HcpError("cannot open the hall database %s: %s" % (cfg.hall.database, e)) from e
    try:
        return status(conn)
    finally:
        conn.close()


def dumps(st: Mapping[str, Any]) -> str:
    return json.dumps(st, sort_keys=True)
