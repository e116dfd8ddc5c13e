"""The forwarder: a thread of the hall daemon that delivers every finished transaction, rating
and reason to the municipal store (RULES.md 第十五条), exactly once in effect.

How delivery is tracked (migration 0002-forward-outbox in db.py):
- Triggers put one row into `forward_outbox` in the SAME transaction that commits a finished
  transaction, a rating or a reason: the outbox is in commit order and can never miss a record.
- The forwarder takes the oldest rows (up to batch_size, or fewer once the oldest has waited
  max_wait_s), builds the batch body ONCE and writes it to `forward_batches` with a new batch id,
  then posts it. The same bytes under the same id are posted again until the store answers
  200 ("stored" or "duplicate": durably committed); only then are the outbox rows deleted and
  the batch marked delivered. A crash anywhere in between re-posts the same batch; the store
  answers "duplicate".
- A refused batch (4xx: bad signature, unknown hall, …) stays at the head of the line with its
  reason, retried with backoff, never deleted: `hcp forward status` shows it in words.
- Its own SQLite connection (WAL: readers never block the daemon's writer); its writes are a few
  rows, short, with a busy timeout; it never holds the writer up for long.
"""
import json
import logging
import random
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from . import db
from .errors import HcpError
from .store import records
from .store.client import StoreClient, StoreRefused, StoreUnavailable

log = logging.getLogger(__name__)
_POLL_S = 0.2      # how often an idle forwarder looks for new records
_RETRY_MIN_S = 0.5


class Forwarder:
    def __init__(self, cfg, clock=time.time):
        f = cfg["forward"]
        self.f = f
        self.hall = f["hall_id"] or cfg["hall"]["id"]
        self.db_path = cfg["hall"]["database"]
        self.clock = clock
        self.key = records.read_key_file(f["key_file"])
        self.client = StoreClient(f["url"], self.hall, self.key, ca=f["ca"] or None,
                                  timeout=f["timeout_s"])
        self.stopping = threading.Event()
        self._poster = ThreadPoolExecutor(1, thread_name_prefix="forward-post")
        self._thread = None
        self.failures = 0  # consecutive, for the backoff

    def start(self):
        self._thread = threading.Thread(target=self._run, name="forwarder", daemon=True)
        self._thread.start()
        log.info("forwarding hall %s to %s", self.hall, self.f["url"])
        return self

    def stop(self, timeout=5):
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.close()

    def close(self):
        self._poster.shutdown(wait=False)
        self.client.close()

    # ---------------------------------------------------------------- loop
    def _run(self):
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

    def step(self, conn):
        """Deliver at most one batch; return how long to wait before the next step (0: none).
        While the batch travels, the next one is built (one ahead at most), so that the hall's
        reading and encoding overlap the store's parsing and committing."""
        batch = pending_batch(conn) or self._build(conn)
        if batch is None:
            return _POLL_S
        if isinstance(batch, float):
            return batch  # records wait for the batch to fill up
        bid, first, last, n, body = batch
        now = self.clock()
        post = self._poster.submit(self.client.post_batch, bid, bytes(body))
        if self.failures == 0 and not conn.execute(
                "SELECT 1 FROM forward_batches WHERE delivered_at IS NULL AND first_id > ?",
                (last,)).fetchone():
            try:
                self._build(conn, after=last)
            except Exception:  # the batch in flight still counts; building is tried again
                log.exception("building the next batch failed")
        try:
            answer = post.result()
        except (StoreRefused, StoreUnavailable) as e:
            status = e.status if isinstance(e, StoreRefused) else 0
            _write(conn, "UPDATE forward_batches SET attempts=attempts+1, last_attempt_at=?,"
                   " last_status=?, last_error=?, last_error_at=? WHERE id=?",
                   (now, status, str(e), now, bid))
            log.warning("batch %s (%d records) not delivered: %s", bid, n, e)
            return self._backoff()
        self.failures = 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM forward_outbox WHERE id BETWEEN ? AND ?", (first, last))
            conn.execute("UPDATE forward_batches SET attempts=attempts+1, last_attempt_at=?,"
                         " last_status=200, delivered_at=?, body=NULL WHERE id=?",
                         (now, self.clock(), bid))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        log.info("batch %s delivered: %d records (%s, %d new)", bid, n, answer["status"],
                 answer.get("new", 0))
        return 0

    def _backoff(self):
        """Exponential backoff with jitter: half fixed, half random, capped at retry_max_s."""
        self.failures += 1
        d = min(self.f["retry_max_s"], _RETRY_MIN_S * 2 ** min(self.failures, 20))
        return d / 2 + random.uniform(0, d / 2)

    def _build(self, conn, after=0):
        """Write the next batch (outbox rows after `after`) to forward_batches; return it, None
        if nothing waits, or the seconds to wait for more records to fill it."""
        size = self.f["batch_size"]
        head = conn.execute("SELECT COUNT(*), MIN(queued_at) FROM (SELECT queued_at FROM"
                            " forward_outbox WHERE id > ? ORDER BY id LIMIT ?)",
                            (after, size)).fetchone()
        if not head[0]:
            return None
        waited = self.clock() - head[1]
        if head[0] < size and waited < self.f["max_wait_s"]:
            return float(min(_POLL_S, self.f["max_wait_s"] - waited))
        recs, first, last = read_records(conn, self.hall, size, self.f, after)
        bid = "%s-%d-%d-%s" % (self.hall, first, last, secrets.token_hex(4))
        body = records.encode_batch(self.hall, bid, recs)
        _write(conn, "INSERT INTO forward_batches (id, first_id, last_id, records, body,"
               " created_at) VALUES (?,?,?,?,?,?)", (bid, first, last, len(recs), body,
                                                     self.clock()))
        return bid, first, last, len(recs), body


def _write(conn, sql, args):
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(sql, args)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def open_conn(path):
    """The forwarder's own connection to the hall database. synchronous=NORMAL: a mark lost in
    a power cut only means the batch is posted again, and the store answers "duplicate"."""
    conn = db.connect(path)
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def pending_batch(conn):
    """The oldest batch built but not yet delivered (batches are delivered in order), or None."""
    r = conn.execute("SELECT id, first_id, last_id, records, body FROM forward_batches"
                     " WHERE delivered_at IS NULL ORDER BY first_id LIMIT 1").fetchone()
    return None if r is None else tuple(r)


def read_records(conn, hall, size, f, after=0):
    """The oldest `size` outbox rows after `after` as store records, in outbox order;
    returns (records, first outbox id, last outbox id)."""
    ids = [r[0] for r in conn.execute("SELECT id FROM forward_outbox WHERE id > ? ORDER BY id"
                                      " LIMIT ?", (after, size))]
    first, last = ids[0], ids[-1]
    out = []
    for r in conn.execute(
            "SELECT o.id AS oid, t.* FROM forward_outbox o JOIN transactions t ON t.id = o.ref"
            " WHERE o.kind = 'transaction' AND o.id BETWEEN ? AND ?", (first, last)):
        out.append((r[0], {
            "type": "transaction", "id": "%s:tx:%d" % (hall, r["id"]), "tx": r["id"],
            "window": r["window"], "ticket": r["ticket"], "item": r["item"], "item_version": "",
            "department": f["department"], "region": f["region"], "staff": r["staff"],
            "channel": records.CHANNEL, "started_at": r["started_at"],
            "finished_at": r["finished_at"]}))
    for r in conn.execute(
            "SELECT o.id AS oid, g.* FROM forward_outbox o JOIN ratings g ON g.id = o.ref"
            " WHERE o.kind = 'rating' AND o.id BETWEEN ? AND ?", (first, last)):
        out.append((r[0], {
            "type": "rating", "id": "%s:rating:%s:%d" % (hall, r["terminal"], r["seq"]),
            "terminal": r["terminal"], "seq": r["seq"], "level": r["level"],
            "outcome": r["outcome"], "rated_at": r["rated_at"], "received_at": r["received_at"],
            "transaction": ("%s:tx:%d" % (hall, r["transaction_id"])
                            if r["transaction_id"] is not None else None),
            "default": False}))
    for r in conn.execute(
            "SELECT o.id AS oid, s.* FROM forward_outbox o JOIN reasons s"
            " ON s.terminal = o.terminal AND s.seq = o.ref"
            " WHERE o.kind = 'reason' AND o.id BETWEEN ? AND ?", (first, last)):
        out.append((r[0], {
            "type": "reason", "id": "%s:reason:%s:%d" % (hall, r["terminal"], r["seq"]),
            "terminal": r["terminal"], "seq": r["seq"], "ref": r["ref"], "reason": r["reason"],
            "rated_at": r["rated_at"]}))
    out.sort(key=lambda x: x[0])
    return [rec for _, rec in out], first, last


def status(conn, now=None):
    """What hall IT needs to see at a glance: backlog, oldest age, last success, last error."""
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


def describe(st, now=None):
    """status() in words, one fact per line."""
    now = time.time() if now is None else now

    def ago(t):
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
    return lines


def open_status(cfg):
    try:
        conn = db.connect(cfg["hall"]["database"])
    except Exception as e:
        raise HcpError("cannot open the hall database %s: %s" % (cfg["hall"]["database"], e))
    try:
        return status(conn)
    finally:
        conn.close()


def dumps(st):
    return json.dumps(st, sort_keys=True)
