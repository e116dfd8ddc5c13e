"""One store behaviour over two backends: SQLite (WAL, default, zero set-up) and PostgreSQL
(psycopg 3 with a connection pool; per table and batch, COPY into a staging table and one
INSERT … SELECT … ON CONFLICT DO NOTHING).

store_batch() is the whole contract: the batch and its records are committed in ONE database
transaction (durable when it returns: SQLite synchronous=FULL, PostgreSQL's default
synchronous_commit), a record seen before is skipped, a batch seen before is answered again.
Its `then(tx, hall, batch)` runs in that same transaction once the records are in (the server
opens the batch's rectification cases there: cases.open_in_batch). A database error caused by
the batch's own values (_Store.store_batch, the one place they are told apart) is a refusal,
BadBatch 422 naming the record; only the database being away goes on up (503, retry later).
"""
from __future__ import annotations

import abc
import functools
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain, islice, repeat
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypedDict

from haochaping.daemon import batches
from haochaping.daemon.batches import FIELDS, BadBatch, Column, Columns
from haochaping.daemon.errors import HcpError
from haochaping.daemon.store import access, defaults, schema, unit_months
from haochaping.daemon.store.access import Params, Record, Row

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

    from haochaping.daemon.store.identity import IdentityKey

log = logging.getLogger(__name__)

# store_batch's `then`: called with the batch's open transaction, the hall and the batch id
Then = Callable[[access.Tx, str, str], object]
# a batch's rater records, opened and sealed again for rest: (record id, transaction id,
# rater_enc as a transaction's rater is stored)
Raters = list[tuple[str, str, bytes]]


class BatchAnswer(TypedDict):
    """store_batch(): what the store answers a hall (docs/store.md)."""
    status: str         # "stored" | "duplicate"
    batch: str
    records: int        # records in the batch
    new: int            # of them not seen before

_COLUMNS = {
    "transaction": ("transactions", ("uid", "hall", "tx", "window_id", "ticket", "item",
                                     "item_version", "department", "region", "staff", "channel",
                                     "started_at", "finished_at", "rater_enc")),
    "rating": ("ratings", ("uid", "hall", "terminal", "seq", "level", "outcome", "tx_uid",
                           "rated_at", "hall_received_at", "is_default", "channel",
                           "press_delay_ms")),
    "reason": ("reasons", ("uid", "hall", "terminal", "seq", "ref_seq", "reason", "rated_at")),
}

# PostgreSQL types of the columns, for the unnest() arrays
_PG_TYPES = {"uid": "text", "hall": "text", "tx": "bigint", "seq": "bigint", "ref_seq": "bigint",
             "level": "integer", "is_default": "integer", "rater_enc": "bytea",
             "press_delay_ms": "integer",
             "started_at": "float8", "finished_at": "float8", "rated_at": "float8",
             "hall_received_at": "float8", "received_at": "float8"}


def _sqlite_insert(kind: str) -> str:
    table, cols = _COLUMNS[kind]
    cols = cols + ("batch", "received_at")
    return "INSERT INTO %s (%s) VALUES (%s) ON CONFLICT DO NOTHING" % (
        table, ", ".join(cols), ", ".join("?" * len(cols)))


def _pg_insert(kind: str) -> str:
    """INSERT … SELECT … FROM unnest(%s::type[], …) ON CONFLICT DO NOTHING; parameters: the
    hall, then parse_batch's columns (an array each; None for a transaction's rater column when
    no record has one), then the batch id and the time received."""
    table, cols = _COLUMNS[kind]
    arrays = [c for c in cols if c != "hall"]
    select = ["u.%s" % c if c != "hall" else "h.hall" for c in cols]
    unnest = ", ".join("%%s::%s[]" % _PG_TYPES.get(c, "text") for c in arrays)
    return ("INSERT INTO %s (%s, batch, received_at)"
            " SELECT %s, b.batch, b.received_at"
            " FROM (SELECT %%s::text AS hall) h,"
            " unnest(%s) AS u(%s),"
            " (SELECT %%s::text AS batch, %%s::float8 AS received_at) b"
            " ON CONFLICT DO NOTHING" % (table, ", ".join(cols), ", ".join(select), unnest,
                                         ", ".join(arrays)))


def _pg_array(col: Column | None, typ: str) -> str | Column | None:
    """A column as a PostgreSQL array literal ('{…}'), built with join/map rather than a Python
    step per value (psycopg's own list dumper is pure Python). None (a column of NULLs) and
    bytea columns are left to psycopg."""
    if col is None or typ == "bytea":
        return col
    if typ == "float8":
        return "{%s}" % ",".join(map(float.__repr__, col))
    if typ != "text":  # integers (validated: int, never bool; None in a nullable column)
        if None in col:
            return "{%s}" % ",".join("NULL" if v is None else int.__repr__(v) for v in col)
        return "{%s}" % ",".join(map(int.__repr__, col))
    if None not in col:
        joined = '","'.join(col)
        if joined.count('"') == 2 * (len(col) - 1) and "\\" not in joined:
            return '{"%s"}' % joined  # no value has a quote or a backslash: nothing to escape
    return "{%s}" % ",".join("NULL" if v is None else
                             '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')
                             for v in col)


_PG_ARRAYS = {k: tuple(_PG_TYPES.get(c, "text") for c in cols if c != "hall")
              for k, (_, cols) in _COLUMNS.items()}
_SQLITE_INSERT = {k: _sqlite_insert(k) for k in _COLUMNS}
SQLITE_CHUNK = 500  # rows per INSERT … VALUES (…), (…), …


@functools.lru_cache(maxsize=32)
def _sqlite_multi(kind: str, n: int, conflict: bool) -> str:
    table, cols = _COLUMNS[kind]
    cols = cols + ("batch", "received_at")
    one = "(%s)" % ",".join("?" * len(cols))
    return "INSERT INTO %s (%s) VALUES %s%s" % (table, ", ".join(cols), ",".join([one] * n),
                                               " ON CONFLICT DO NOTHING" if conflict else "")


def sqlite_bulk_insert(c: sqlite3.Connection, kind: str, rows: Iterable[Sequence[object]],
                       conflict: bool = True) -> None:
    """Insert rows (tuples in _COLUMNS order, then batch and received_at) with multi-row
    INSERT … VALUES, SQLITE_CHUNK rows per statement: ~1.4 times executemany's rate here (one
    statement step per 500 rows instead of one per row, and the GIL given up as often)."""
    rows = iter(rows)
    while True:
        part = list(islice(rows, SQLITE_CHUNK))
        if not part:
            return
        c.execute(_sqlite_multi(kind, len(part), conflict), list(chain.from_iterable(part)))
_PG_COPY = {k: "COPY %s (%s, batch, received_at) FROM STDIN" % (t, ", ".join(cols))
            for k, (t, cols) in _COLUMNS.items()}
_PG_INSERT = {k: _pg_insert(k) for k in _COLUMNS}

EXPORT_SQL = """
SELECT r.uid, r.hall, r.terminal, r.seq, r.level, r.outcome, r.is_default, r.rated_at,
       r.hall_received_at, r.tx_uid, t.ticket, t.item, t.item_version, t.department, t.region,
       t.window_id, t.staff, r.channel, t.finished_at,
       (SELECT s.reason FROM reasons s WHERE s.hall = r.hall AND s.terminal = r.terminal
         AND s.ref_seq = r.seq ORDER BY s.seq LIMIT 1) AS reason,
       r.received_at
FROM ratings r LEFT JOIN transactions t ON t.uid = r.tx_uid
WHERE r.hall = %s AND r.rated_at >= %s
ORDER BY r.rated_at, r.uid
"""
EXPORT_COLUMNS = ("uid", "hall", "terminal", "seq", "level", "outcome", "default", "rated_at",
                  "hall_received_at", "transaction", "ticket", "item", "item_version",
                  "department", "region", "window", "staff", "channel", "finished_at", "reason",
                  "received_at")

HALLS_SQL = """
SELECT h.id, h.name, h.added_at, h.revoked_at,
       (SELECT COUNT(*) FROM batches b WHERE b.hall = h.id) AS batches,
       (SELECT MAX(b.received_at) FROM batches b WHERE b.hall = h.id) AS last_batch_at,
       (SELECT COUNT(*) FROM transactions t WHERE t.hall = h.id) AS transactions,
       (SELECT COUNT(*) FROM ratings r WHERE r.hall = h.id) AS ratings
FROM halls h ORDER BY h.id
"""
HALLS_COLUMNS = ("hall", "name", "added_at", "revoked_at", "batches", "last_batch_at",
                 "transactions", "ratings")


def _migrate(c: sqlite3.Connection | psycopg.Connection[Row], dialect: str, mark: str) -> None:
    """Apply the schema's migrations not yet recorded, inside the caller's transaction."""
    done = {r[0] for r in c.execute("SELECT name FROM store_migrations")}
    for name, sql in schema.MIGRATIONS:
        if name in done:
            continue
        for stmt in schema.statements(dialect, sql):
            c.execute(stmt)
        c.execute(mark, (name, time.time()))
        log.info("store: applied migration %s", name)


def open_store(db: str, identity: IdentityKey | None = None) -> Store:
    """db: a SQLite path, or a postgresql:// URL. identity: an IdentityKey or None."""
    if db.startswith(("postgresql://", "postgres://")):
        return PostgresStore(db, identity)
    return SqliteStore(db, identity)


class _Store(abc.ABC):
    dialect: ClassVar[str] = ""

    def __init__(self, identity: IdentityKey | None) -> None:
        self.identity = identity

    @abc.abstractmethod
    def _execute(self, sql: str, args: Params) -> None:
        """Run one statement in a transaction of its own."""

    @abc.abstractmethod
    def _query(self, sql: str, args: Params) -> list[Row]:
        """Rows of one query."""

    @abc.abstractmethod
    def _integrity_errors(self) -> type[Exception]:
        """The driver's exception for a broken unique key."""

    @abc.abstractmethod
    def _store_batch(self, hall: str, batch: str, sha: str, parsed: dict[str, Columns],
                     then: Then | None, raters: Raters) -> BatchAnswer:
        """store_batch's work in this backend: one transaction, rolled back on any error."""

    @abc.abstractmethod
    def _data_error(self, e: Exception) -> bool:
        """Is `e` the database refusing a value (rather than being away)?"""

    def store_batch(self, hall: str, batch: str, sha: str, parsed: dict[str, Columns],
                    then: Then | None = None) -> BatchAnswer:
        """Store one batch as parse_batch gave it (hall, batch id, sha256 of its body) in ONE
        transaction; the module's docstring has the contract. An error of the database caused
        by the batch's values (a value it cannot hold: NUL in a PostgreSQL text, an integer out
        of its range; a NOT NULL or CHECK broken) is BadBatch 422 naming the first such record
        and its field, and nothing of the batch is stored. Any other error goes on up."""
        raters = self._open_raters(hall, parsed)
        try:
            return self._store_batch(hall, batch, sha, parsed, then, raters)
        except Exception as e:
            if isinstance(e, BadBatch) or not self._data_error(e):
                raise
            raise _refusal(parsed, e) from e

    def _seal(self, cols: Columns) -> Columns:
        """The transactions' columns from parse_batch with the raters' identities sealed (the
        last column: a list, or None when no record has a rater)."""
        raters = cols[-1]
        if raters is None:
            return cols
        sealed = []
        for uid, rater in zip(_uids(cols), raters, strict=True):
            if rater is not None:
                if self.identity is None:
                    raise BadBatch("record %s carries a rater identity, but this store has no"
                                   " --identity-key to encrypt it with" % uid)
                rater = self.identity.seal(uid, rater["identity"])
            sealed.append(rater)
        return cols[:-1] + [sealed]

    def _open_raters(self, hall: str, parsed: dict[str, Columns]) -> Raters:
        """The batch's rater records (a phone rater's identity, 第六条), each opened with the
        hall's key and sealed again with the store's identity key for its transaction, as a
        transaction's `rater` is (so cases.contact opens both alike). BadBatch 422 naming the
        record if it does not open, or if this store has no identity key."""
        cols = parsed.get("rater")
        if not cols or not cols[0]:
            return []
        if self.identity is None:
            raise BadBatch("record %s carries a rater identity, but this store has no"
                           " --identity-key to encrypt it with" % _uids(cols)[0])
        key = self.hall_key(hall)
        if key is None:  # the server checked the hall before; revoked meanwhile
            raise BadBatch("hall %s is unknown or revoked" % hall, 403)
        out: Raters = []
        txs, sealed = cols[1], cols[2]
        assert txs is not None and sealed is not None
        for uid, tx, blob in zip(_uids(cols), txs, sealed, strict=True):
            identity = batches.open_rater(key, uid, blob)
            tx_uid = "%s:tx:%d" % (hall, tx)
            out.append((uid, tx_uid, self.identity.seal(tx_uid, identity)))
        return out

    # ------------------------------------------------------------------ halls
    def add_hall(self, hall: str, name: str = "") -> bytes:
        """Register a hall; return its new signing key (32 random bytes)."""
        key = secrets.token_bytes(32)
        try:
            self._execute("INSERT INTO halls (id, key, name, added_at) VALUES (%s, %s, %s, %s)",
                          (hall, key, name, time.time()))
        except self._integrity_errors():
            raise HcpError("hall %s is registered already (`hcp store halls`)"
                           % hall) from None
        return key

    def revoke_hall(self, hall: str) -> None:
        """From now on the hall's batches are refused (403); what it delivered stays."""
        if not self._query("SELECT 1 FROM halls WHERE id = %s AND revoked_at IS NULL", (hall,)):
            raise HcpError("hall %s is not registered, or revoked already (`hcp store halls`)"
                           % hall)
        self._execute("UPDATE halls SET revoked_at = %s WHERE id = %s", (time.time(), hall))

    def hall_key(self, hall: str) -> bytes | None:
        """The hall's key, or None if unknown or revoked."""
        rows = self._query("SELECT key FROM halls WHERE id = %s AND revoked_at IS NULL", (hall,))
        return bytes(rows[0][0]) if rows else None

    def halls(self) -> list[Record]:
        return [dict(zip(HALLS_COLUMNS, r, strict=True)) for r in self._query(HALLS_SQL, ())]

    def ratings(self, hall: str, since: float) -> list[Record]:
        return [dict(zip(EXPORT_COLUMNS, r, strict=True))
                for r in self._query(EXPORT_SQL, (hall, since))]

    def uids(self, kind: str, hall: str) -> list[str]:
        """Every record id of one kind for a hall, sorted (for checks and tests)."""
        table = _COLUMNS[kind][0]
        return [r[0] for r in self._query("SELECT uid FROM %s WHERE hall = %%s ORDER BY uid"
                                          % table, (hall,))]

    def span(self) -> tuple[float, float] | None:
        """When the first and the last transaction the store holds were handled (None: none)."""
        first, last = self._query("SELECT MIN(finished_at), MAX(finished_at) FROM transactions",
                                  ())[0]
        return None if first is None else (float(first), float(last))

    def counts(self) -> dict[str, int]:
        return {t: self._query("SELECT COUNT(*) FROM %s" % t, ())[0][0]
                for t in ("batches", "transactions", "ratings", "reasons")}

    def rater(self, uid: str) -> dict[str, Any] | None:
        """Decrypt a transaction's rater identity (None if it has none)."""
        rows = self._query("SELECT rater_enc FROM transactions WHERE uid = %s", (uid,))
        if not rows or rows[0][0] is None:
            return None
        if self.identity is None:
            raise HcpError("this record's rater identity is encrypted: give --identity-key")
        return self.identity.open(uid, rows[0][0])


class _Checkpointer:
    """Copies the store's WAL into its database file in a thread of its own, once a second, so
    that the writer only ever appends. (With SQLite's automatic checkpoint the connection that
    commits a batch copies the WAL and syncs the database file before it takes the next batch,
    and a page that every batch touches, such as an index's last one, is copied every time.) A
    PASSIVE checkpoint never blocks the writer. Should the WAL file still pass WAL_LIMIT
    (batches arriving without pause), a RESTART checkpoint holds new writes back until it is
    copied, and the WAL starts again from its beginning."""
    EVERY_S: ClassVar[float] = 1.0
    WAL_LIMIT: ClassVar[int] = 256 * 1024 * 1024

    def __init__(self, path: str) -> None:
        self.path = path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA synchronous=FULL")
        try:
            while not self._stop.wait(self.EVERY_S):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    if os.path.getsize(self.path + "-wal") > self.WAL_LIMIT:
                        conn.execute("PRAGMA wal_checkpoint(RESTART)")
                except (sqlite3.Error, OSError) as e:  # tried again in a second
                    log.warning("store: WAL checkpoint failed: %s", e)
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


class SqliteStore(_Store):
    dialect: ClassVar[Literal["sqlite"]] = "sqlite"

    def __init__(self, path: str, identity: IdentityKey | None = None) -> None:
        super().__init__(identity)
        self.path = path
        d = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(d):
            raise HcpError("cannot create the store database %s: no folder %s" % (path, d))
        try:
            self.conn = sqlite3.connect(path, timeout=30, isolation_level=None,
                                        check_same_thread=False)
            tables = {r[0] for r in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            self.conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as e:
            raise HcpError("cannot open the store database %s: %s" % (path, e)) from e
        if "schema_migrations" in tables and "store_migrations" not in tables:
            self.conn.close()   # the hall daemon's: not a table of the store's added to it
            raise HcpError("%s is a hall daemon's database, not the municipal store's: give the"
                           " file `hcp store serve --db` uses (a hall's own figures: `hcp summary"
                           " --config hall.toml`)" % path)
        self.conn.execute("PRAGMA synchronous=FULL")
        self.lock = threading.Lock()
        self._reader: sqlite3.Connection | None = None
        self._rlock = threading.Lock()
        self._checkpointer: _Checkpointer | None = None  # started with the first batch
        self._migrate()

    def _integrity_errors(self) -> type[Exception]:
        return sqlite3.IntegrityError

    def _data_error(self, e: Exception) -> bool:
        # OverflowError: an integer over 64 bits, refused by the sqlite3 module as it binds it
        return isinstance(e, (sqlite3.DataError, OverflowError)) or (
            isinstance(e, sqlite3.IntegrityError) and getattr(e, "sqlite_errorname", "") in (
                "SQLITE_CONSTRAINT_NOTNULL", "SQLITE_CONSTRAINT_CHECK"))

    def hall_key(self, hall: str) -> bytes | None:
        """The hall's key, or None if unknown or revoked; read on a connection of its own (WAL:
        a reader never waits for the writer), so that one batch's signature is checked while
        another batch is being committed."""
        with self._rlock:
            if self._reader is None:
                self._reader = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                               check_same_thread=False)
            row = self._reader.execute("SELECT key FROM halls WHERE id = ? AND revoked_at IS NULL",
                                       (hall,)).fetchone()
        return bytes(row[0]) if row else None

    def _migrate(self) -> None:
        with self.lock:
            c = self.conn
            c.execute("CREATE TABLE IF NOT EXISTS store_migrations"
                      " (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
            c.execute("BEGIN IMMEDIATE")
            try:
                _migrate(c, self.dialect, "INSERT INTO store_migrations VALUES (?, ?)")
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

    def _execute(self, sql: str, args: Params) -> None:
        with self.lock:
            self.conn.execute(sql.replace("%s", "?"), args)

    def _query(self, sql: str, args: Params) -> list[Row]:
        with self.lock:
            return self.conn.execute(sql.replace("%s", "?"), args).fetchall()

    def _store_batch(self, hall: str, batch: str, sha: str, parsed: dict[str, Columns],
                     then: Then | None, raters: Raters) -> BatchAnswer:
        now = time.time()
        total = sum(len(_uids(cols)) for cols in parsed.values())
        # rows straight from the columns (zip, repeat: no per-record Python code)
        rows: dict[str, Iterator[tuple[Any, ...]]] = {}
        for kind, cols in parsed.items():
            if cols[0] and kind in _COLUMNS:
                if kind == "transaction":
                    cols = self._seal(cols)
                rows[kind] = zip(_uids(cols), repeat(hall),
                                 *[repeat(None) if c is None else c for c in cols[1:]],
                                 repeat(batch), repeat(now))
        c = self.conn
        with self.lock:
            if self._checkpointer is None:
                c.execute("PRAGMA wal_autocheckpoint=0")
                self._checkpointer = _Checkpointer(self.path)
            c.execute("BEGIN IMMEDIATE")
            try:
                old = c.execute("SELECT sha256, records, new_records FROM batches"
                                " WHERE hall=? AND batch=?", (hall, batch)).fetchone()
                if old is not None:
                    c.execute("ROLLBACK")
                    return _replayed(batch, sha, old)
                before = c.total_changes
                for kind, values in rows.items():
                    sqlite_bulk_insert(c, kind, values)
                new = c.total_changes - before  # the records'; then the raters'
                new += _apply_raters(access.Tx(c, True), raters)
                if new:
                    _late_ratings(access.Tx(c, True), hall, parsed, now)
                if new and then is not None:
                    then(access.Tx(c, True), hall, batch)
                c.execute("INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?)",
                          (hall, batch, sha, total, new, now))
                c.execute("COMMIT")
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise
        return {"status": "stored", "batch": batch, "records": total, "new": new}

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        if self._reader is not None:
            self._reader.close()
        self.conn.close()


def _apply_raters(t: access.Tx, raters: Raters) -> int:
    """In the batch's transaction, after its records are in (a rater may come in the batch of
    its own transaction): each rater's identity goes where a transaction's `rater` goes, only
    if that transaction has none yet (a record sent again changes nothing), and the
    transaction's open rectification case becomes real-name (its bad review came in an earlier
    batch, its case with it). A rater whose transaction is not in the store (yet) is refused,
    naming the record: the hall sets it apart and nothing of the batch is stored. Returns how
    many identities were stored."""
    stored = 0
    for uid, tx_uid, enc in raters:
        if not t.q("SELECT 1 FROM transactions WHERE uid = %s", (tx_uid,)):
            raise BadBatch("record %s: tx %s is not in the store (yet): its transaction must be"
                           " delivered first" % (uid, tx_uid))
        if t.x("UPDATE transactions SET rater_enc = %s WHERE uid = %s AND rater_enc IS NULL",
               (enc, tx_uid)):
            stored += 1
            t.x("UPDATE cases SET real_name = 1 WHERE tx_uid = %s AND status = 'open'",
                (tx_uid,))
    return stored


def _late_ratings(t: access.Tx, hall: str, parsed: dict[str, Columns], now: float) -> None:
    """第七条, in the batch's transaction before `then`: a citizen's rating received after its
    transaction's 5 working days is kept as `late` and does not count (defaults.late_in_batch).
    Here rather than in `then` because it must hold whoever stores a batch, and it needs the
    batch's columns. Then the closed months whose kept figures the batch changes
    (unit_months.py): after late_in_batch, which waits for a batch holding a rating's
    transaction, so that the transaction is found."""
    defaults.late_in_batch(t, parsed, now)
    txs, rs = parsed.get("transaction"), parsed.get("rating")
    tx_uids = _uids(txs) if txs and txs[0] else []
    finished = (txs[_TX_FINISHED] or []) if tx_uids and txs else []
    unit_months.touch_batch(t, hall, finished, (rs[_R_TX] or []) if rs and rs[0] else [],
                            tx_uids)


_TX_FINISHED = FIELDS["transaction"].index("finished_at")
_R_TX = FIELDS["rating"].index("transaction")


_INT64 = 2 ** 63


def _unholdable(parsed: dict[str, Columns]) -> Iterator[tuple[str, str]]:
    """(record id, field) of each value that no database here holds: a text with NUL in it
    (PostgreSQL), an integer beyond 64 bits. Only looked for once the database has refused."""
    for kind, cols in parsed.items():
        uids = _uids(cols)
        for field, col in zip(FIELDS[kind][1:], cols[1:], strict=True):
            for uid, v in zip(uids, col or (), strict=False):
                if (type(v) is str and "\x00" in v) or (type(v) is int
                                                          and not -_INT64 <= v < _INT64):
                    yield uid, field


def _refusal(parsed: dict[str, Columns], e: Exception) -> BadBatch:
    """The 422 for a batch whose values the database refused (`e`), worded as parse_batch
    words its refusals ("record H01:tx:3: ticket …"), so that the server names the record."""
    what = (str(e).splitlines() or [type(e).__name__])[0]
    found = list(_unholdable(parsed))
    if found:
        uid, field = found[0]
        more = "" if len(found) == 1 else " (and %d more value(s) alike)" % (len(found) - 1)
        return BadBatch("record %s: %s cannot be stored: %s%s" % (uid, field, what, more))
    uids = [u for cols in parsed.values() for u in _uids(cols)]
    if len(uids) == 1:
        return BadBatch("record %s cannot be stored: %s" % (uids[0], what))
    return BadBatch("a record of this batch cannot be stored: %s" % what)


def _uids(cols: Columns) -> Column:
    """A kind's first column, its records' ids (parse_batch: only the raters are ever None)."""
    uids = cols[0]
    assert uids is not None
    return uids


def _replayed(batch: str, sha: str, old: Row) -> BatchAnswer:
    if old[0] != sha:
        raise BadBatch("batch %s was stored before with other content: a batch id must never"
                       " be reused" % batch, 409)
    return {"status": "duplicate", "batch": batch, "records": old[1], "new": 0}


class PostgresStore(_Store):
    dialect: ClassVar[Literal["postgres"]] = "postgres"

    def __init__(self, url: str, identity: IdentityKey | None = None, max_size: int = 8) -> None:
        super().__init__(identity)
        import psycopg
        from psycopg_pool import ConnectionPool
        self.psycopg = psycopg
        self.url = url
        try:
            self.pool: ConnectionPool[psycopg.Connection[Row]] = ConnectionPool(
                # a request waits at most 5 s for a connection, then answers 503 "retry later"
                url, min_size=1, max_size=max_size, open=True, timeout=5,
                kwargs={"autocommit": False},
                # a connection cut while idle (PostgreSQL restarted, a failover) is found and
                # replaced when it is taken, not by the next request's 503
                check=ConnectionPool.check_connection)
            self.pool.wait(timeout=10)
        except Exception as e:  # psycopg_pool.PoolTimeout and friends
            raise HcpError("cannot connect to PostgreSQL at %s: %s"
                           % (_redact_url(url), str(e).splitlines()[0] if str(e) else e)
                           ) from e
        self._migrate()

    def _integrity_errors(self) -> type[Exception]:
        return self.psycopg.errors.UniqueViolation

    def _data_error(self, e: Exception) -> bool:
        # DataError: SQLSTATE class 22 (numeric out of range, …) and psycopg's own refusals as
        # it sends a value (NUL in a text); a connection lost is OperationalError: not ours
        errors = self.psycopg.errors
        return isinstance(e, (self.psycopg.DataError, errors.NotNullViolation,
                              errors.CheckViolation))

    def _migrate(self) -> None:
        with self.pool.connection() as c, c.transaction():
            # one store at a time migrates; the others wait, then find it done
            c.execute("SELECT pg_advisory_xact_lock(7406150)")
            c.execute("CREATE TABLE IF NOT EXISTS store_migrations"
                      " (name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")
            _migrate(c, self.dialect, "INSERT INTO store_migrations VALUES (%s, %s)")

    def _execute(self, sql: str, args: Params) -> None:
        with self.pool.connection() as c:
            c.execute(sql, args)

    def _query(self, sql: str, args: Params) -> list[Row]:
        with self.pool.connection() as c:
            return c.execute(sql, args).fetchall()

    def _store_batch(self, hall: str, batch: str, sha: str, parsed: dict[str, Columns],
                     then: Then | None, raters: Raters) -> BatchAnswer:
        now = time.time()
        total = sum(len(_uids(cols)) for cols in parsed.values())
        with self.pool.connection() as c, c.transaction():
            got = c.execute("INSERT INTO batches VALUES (%s, %s, %s, %s, 0, %s)"
                            " ON CONFLICT DO NOTHING RETURNING 1",
                            (hall, batch, sha, total, now)).fetchone()
            if got is None:
                old = c.execute("SELECT sha256, records, new_records FROM batches"
                                " WHERE hall=%s AND batch=%s", (hall, batch)).fetchone()
                assert old is not None  # the row the INSERT ran into
                return _replayed(batch, sha, old)
            new = 0
            for kind, cols in parsed.items():
                if not cols[0] or kind not in _COLUMNS:
                    continue
                if kind == "transaction":
                    cols = self._seal(cols)
                new += self._insert(c, kind, hall, cols, batch, now)
            new += _apply_raters(access.Tx(c, False), raters)
            if new:
                _late_ratings(access.Tx(c, False), hall, parsed, now)
            if new and then is not None:
                then(access.Tx(c, False), hall, batch)
            c.execute("UPDATE batches SET new_records=%s WHERE hall=%s AND batch=%s",
                      (new, hall, batch))
        return {"status": "stored", "batch": batch, "records": total, "new": new}

    def _insert(self, c: psycopg.Connection[Row], kind: str, hall: str, cols: Columns,
                batch: str, now: float) -> int:
        """Insert one table's records; return how many were new. Usually none was seen before,
        and COPY straight into the table (the fastest way in) stores them all. If one was seen
        before (a hall re-sending after a crash), COPY fails on the unique key: it is rolled
        back to its savepoint, and one INSERT … SELECT FROM unnest(one array per column) …
        ON CONFLICT DO NOTHING stores those that are new."""
        uids = _uids(cols)
        try:
            # c.transaction() inside a transaction: a savepoint
            with c.transaction(), c.cursor().copy(_PG_COPY[kind]) as cp:
                for row in zip(uids, repeat(hall), *[repeat(None) if col is None else col
                                                     for col in cols[1:]],
                               repeat(batch), repeat(now)):
                    cp.write_row(row)
            return len(uids)
        except self.psycopg.errors.UniqueViolation:
            pass
        # each column goes over as one array literal, parsed by the server (array_in, in C)
        args = [hall] + [_pg_array(col, t) for col, t in zip(cols, _PG_ARRAYS[kind], strict=True)]
        return c.execute(_PG_INSERT[kind], args + [batch, now]).rowcount

    def close(self) -> None:
        self.pool.close()


# what open_store returns; `dialect` tells them apart
Store = SqliteStore | PostgresStore


def _redact_url(url: str) -> str:
    """postgresql://user:secret@host/db -> postgresql://user:***@host/db"""
    head, sep, tail = url.partition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, cred = head.partition("//")
    return "%s//%s:***@%s" % (scheme, cred.split(":", 1)[0], tail)
