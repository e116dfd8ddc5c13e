"""hcp bench scale: what the store's rules cost when its tables hold a city's or a province's
year (issue #19), each step timed against the table's size and again at a tenth of it.

- generate: a year (2025) in the store's own schema at raw bulk speed: PostgreSQL COPY (SQLite:
  multi-row INSERT in one transaction), secondary indexes dropped first and built after, as a
  bulk load does. Halls of Zipf-like sizes, each with departments, windows, terminals and staff;
  transactions on working days and hours; ~88 % rated by the citizen (levels in a hall's mix,
  ~8 % bad reviews, each with its reason and its rectification case and events, ~5 % of them
  appealed), the rest rated by default, as the hourly sweep left them, except in the last
  days of the year: there the sweep still has to find them (`expected_defaults`).
- measure, with the store's own functions, at the store's "now" (2025-12-31 17:00): a batch
  of 5,000 records stored into the full tables; the rule jobs (defaults sweep, cases sweep);
  one unit's score (department, window, staff) and `rules explain`; the whole province's
  scores for 2025Q4; the quarterly report's figures; appeal and case lookups. Each with its
  seconds, the rows it touched and its plan (PostgreSQL EXPLAIN ANALYZE; SQLite EXPLAIN QUERY
  PLAN) in a line per scan.
- growth: the same at size/10, and each step's time at size over its time at size/10.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import random
import resource
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypedDict

from haochaping.daemon import batches
from haochaping.daemon.rules import deadlines, scoring, workdays
from haochaping.daemon.store import (
    access,
    appeals,
    backends,
    cases,
    defaults,
    jobs,
    quarterly,
    rules_api,
    scores,
    sweeps,
    unit_months,
)
from haochaping.daemon.store.access import Params
from haochaping.protocol import levels as level_names
from haochaping.tools.bench.forward_rate import _pg_db

YEAR = 2025
PERIOD = "2025Q4"
NOW = datetime.datetime(2025, 12, 31, 17, 0, tzinfo=workdays.SHANGHAI).timestamp()
UNRATED_FROM = datetime.date(2025, 12, 19)  # from this day on, no sweep ran yet
RECENT_FROM = datetime.date(2025, 12, 1)    # fixed_day: these weeks at the full size's volume
LEVEL_WEIGHTS = (50, 30, 12, 5, 3)          # 非常满意 .. 非常不满意 (tools/sim/scenario.py)
CITIZEN_SHARE = 0.88                        # the rest walk away: a default (第七条)
APPEAL_SHARE = 0.05                         # of bad reviews
REAL_NAME_SHARE = 0.15                      # transactions with a consented identity
RATINGS_PER_HALL = 40000                    # a county hall's year, roughly
TABLES = ("transactions", "ratings", "reasons", "cases", "case_events", "appeals")
REASONS = [r[0] for r in level_names.REASONS]
RATER = b"\x01" * 44                       # a consented identity's place (its size)
MAX_TX = 10 ** 8                            # the ticket (办件编号) carries 8 digits of tx
Row = tuple[object, ...]


class Step(TypedDict, total=False):
    seconds: float
    rows: int
    plan: list[str]
    note: str
    sha256: str         # explain: of the explanation's JSON


class Hall(TypedDict):
    id: str
    region: str
    departments: int
    windows: int
    weight: float


def _halls(n_ratings: int, rnd: random.Random) -> list[Hall]:
    count = max(4, min(3000, n_ratings // RATINGS_PER_HALL))
    out: list[Hall] = []
    for h in range(count):
        windows = rnd.randint(6, 40)
        out.append({"id": "H%04d" % h, "region": "53%02d%02d" % (1 + h % 16, 1 + h // 16 % 99),
                    "departments": max(2, windows // 3), "windows": windows,
                    "weight": 1.0 / (h + 1) ** 0.7})
    return out


def _days() -> list[tuple[datetime.date, float]]:
    """The year's days with a weight: weekends and holidays see few people."""
    cal = workdays.default_calendar()
    d, out = datetime.date(YEAR, 1, 1), []
    while d.year == YEAR:
        out.append((d, 1.0 if cal.is_working_day(d) else 0.08))
        d += datetime.timedelta(days=1)
    return out


COLUMNS = {
    "transactions": ("uid", "hall", "tx", "window_id", "ticket", "item", "item_version",
                     "department", "region", "staff", "channel", "started_at", "finished_at",
                     "rater_enc", "batch", "received_at"),
    "ratings": ("uid", "hall", "terminal", "seq", "level", "outcome", "tx_uid", "rated_at",
                "hall_received_at", "is_default", "batch", "received_at"),
    "reasons": ("uid", "hall", "terminal", "seq", "ref_seq", "reason", "rated_at", "batch",
                "received_at"),
    "cases": cases.COLUMNS,
    "case_events": ("case_id", "at", "kind", "channel", "feedback", "note", "due"),
    "appeals": appeals.COLUMNS,
}


class Generated(TypedDict):
    rows: dict[str, int]
    expected_defaults: int     # unrated transactions whose 第七条 deadline has passed at NOW
    seconds: float
    rows_per_s: int
    phases: dict[str, float]   # seconds: the rows (PostgreSQL: each statement's), the indexes
                               # (and keys), VACUUM ANALYZE
    sample: dict[str, str]     # ids to look up: a department, window, staff, appeal, case, hall


class HallDay(NamedTuple):
    """One hall's transactions of one day: tx numbers first_tx .. first_tx + n - 1."""
    h: int                     # the hall's index: with tx, the key of a row's random draws
    hall: str
    region: str
    windows: int
    departments: int
    day: datetime.date
    start: float               # 09:00 that day, when the hall opens
    first_tx: int
    n: int
    passed: bool | None        # from UNRATED_FROM on: 第七条 deadline passed at NOW; else None


def _hall_days(n_ratings: int, seed: int, recent_of: int | None = None) -> list[HallDay]:
    """How many transactions each hall has each day: a hall's share of the year by its weight,
    a day's by its weight (rest days 8 %), rounded at random. recent_of: the halls and the
    days from RECENT_FROM on of a year of that size, and before it n_ratings' history."""
    size = recent_of or n_ratings
    rnd = random.Random(seed)
    halls = _halls(size, rnd)
    days = _days()
    cal = workdays.default_calendar()
    now = datetime.datetime.fromtimestamp(NOW, workdays.SHANGHAI)
    passed = {d: deadlines.default_rating_deadline(d, cal).passed(now)
              for d, _w in days if d >= UNRATED_FROM}
    history = n_ratings / size
    day_total = sum(w for _d, w in days)
    hall_total = sum(h["weight"] for h in halls)
    out: list[HallDay] = []
    for i, h in enumerate(halls):
        per_day = max(10, round(size * h["weight"] / hall_total)) / day_total
        tx = 1
        for d, w in days:
            x = per_day * w * (history if d < RECENT_FROM else 1.0)
            n = int(x) + (1 if rnd.random() < x - int(x) else 0)
            if n:
                out.append(HallDay(i, h["id"], h["region"], h["windows"], h["departments"], d,
                                   access.day_start(d) + 9 * 3600, tx, n, passed.get(d)))
                tx += n
        if tx > MAX_TX:
            raise ValueError("hall %s: %d transactions a year, past the ticket's 8 digits"
                             % (h["id"], tx - 1))
    return out


# What a transaction is, drawn from uniforms in [0, 1), the same in Python (_rows, SQLite)
# and in SQL (_pg_rows): the window, the start in office hours and its length, a consented
# identity, the item, which of the window's two staff numbers, a citizen's rating or none, its
# level, its delay, a bad review's reason, the case's days to close, an appeal and its decision,
# a follow-up call where no identity says the caller must be called.
LEVEL_CUTS = tuple(sum(LEVEL_WEIGHTS[:i + 1]) / sum(LEVEL_WEIGHTS) for i in range(4))
OPEN_S = 8.5 * 3600


def _rows(hall_days: list[HallDay], seed: int) -> Iterator[tuple[str, Row]]:
    """(table, row) of the year, in Python (SQLite; PostgreSQL generates them itself);
    ('unrated', (1,)) for a transaction the sweep still owes a default at NOW."""
    u = random.Random(seed + 1).random
    reasons = len(REASONS)
    for hd in hall_days:
        hid, region, start = hd.hall, hd.region, hd.start
        win = ["W%02d" % w for w in range(hd.windows)]
        term = ["T%02d" % w for w in range(hd.windows)]
        dept = ["%s-D%02d" % (region, w % hd.departments) for w in range(hd.windows)]
        for tx in range(hd.first_tx, hd.first_tx + hd.n):
            w = int(u() * hd.windows)
            started = start + u() * OPEN_S
            finished = started + 60 + u() * 900
            real = u() < REAL_NAME_SHARE
            tx_uid = "%s:tx:%d" % (hid, tx)
            yield "transactions", (
                tx_uid, hid, tx, win[w], "BJ%s%08d" % (region, tx),
                "%s-%03d" % (region, int(u() * 120)), "1", dept[w], region,
                "S%03d" % (w * 2 + (u() < 0.5)), "PJQ", started, finished,
                RATER if real else None, "gen", finished + 30)
            if u() < CITIZEN_SHARE:
                x = u()
                level = 1 + sum(x >= c for c in LEVEL_CUTS)
                seq = 2 * tx
                r_uid = "%s:rating:%s:%d" % (hid, term[w], seq)
                rated = finished + 20 + u() * 60
                yield "ratings", (r_uid, hid, term[w], seq, level, "counted", tx_uid, rated,
                                  rated + 1, 0, "gen", rated + 30)
                if level >= 4:
                    yield "reasons", ("%s:reason:%s:%d" % (hid, term[w], seq + 1), hid, term[w],
                                      seq + 1, seq, REASONS[int(u() * reasons)], rated + 5,
                                      "gen", rated + 35)
                    yield from _case(u, r_uid, tx_uid, hid, level, real, rated, dept[w])
            elif hd.passed is None:
                at = start + 5 * 86400  # roughly the deadline: its value is not read
                yield "ratings", (defaults.default_uid(tx_uid), hid, "", 0, 3, "counted", tx_uid,
                                  at, at, 1, defaults.BATCH, at)
            elif hd.passed:
                yield "unrated", (1,)


def _date(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, workdays.SHANGHAI).date().isoformat()


def _case(u: Callable[[], float], r_uid: str, tx_uid: str, hall: str, level: int, real: bool,
          rated: float, dept: str) -> Iterator[tuple[str, Row]]:
    digest = hashlib.sha256(r_uid.encode()).hexdigest()[:16]
    cid = "C" + digest          # cases.case_id
    opened = rated + 40
    due = _date(opened + 21 * 86400)
    closed = opened + (2 + u() * 18) * 86400
    status = "closed" if closed < NOW - 86400 else "open"
    appealed, upheld = u() < APPEAL_SHARE, u() < 0.3
    if appealed:
        filed = rated + 86400
        state = "pending" if filed + 10 * 86400 >= NOW else "upheld" if upheld else "rejected"
        if state == "upheld":
            status = "withdrawn"
        yield "appeals", ("A" + digest, r_uid, dept, "申请复核", filed, filed + 2 * 86400,
                          _date(filed + 14 * 86400), "api", state,
                          None if state == "pending" else filed + 7 * 86400,
                          None if state == "pending" else "决定")
    yield "cases", (cid, r_uid, tx_uid, hall, level, 1 if real else 0, opened, due, status,
                    closed if status != "open" else None, "已整改" if status == "closed" else None)
    yield "case_events", (cid, opened, "opened", None, None, None, due)
    followed = u() < 0.5
    if status == "closed":
        if real or followed:
            yield "case_events", (cid, opened + 86400, "follow-up", "phone", "satisfied", "",
                                  None)
        yield "case_events", (cid, closed, "closed", None, None, "已整改", None)


# --- the same in PostgreSQL: INSERT … SELECT over the hall-days and generate_series ----------

def _u(i: int) -> str:
    """SQL: the row's uniform number i, a hash of (hall, tx) and the seed (gen_days.salt): the
    same value in every statement that reads it."""
    return ("((hashint8extended(d.h::int8 * 4294967296 + g.tx, d.salt + %d) & 2147483647)"
            "::float8 / 2147483648.0)" % i)


def _pad(expr: str, width: int) -> str:
    return "lpad((%s)::text, %d, '0')" % (expr, width)


# every transaction of gen_days with its draws (unused columns are not computed: PostgreSQL
# drops a subquery's outputs that the query does not read)
_TX_ROWS = """(SELECT d.hall, d.region, d.departments, d.start, d.passed, g.tx,
  d.hall || ':tx:' || g.tx AS tx_uid,
  floor({u0} * d.windows)::int AS w,
  d.start + {u1} * {open_s} AS started,
  60 + {u2} * 900 AS took,
  {u3} < {real} AS real,
  floor({u4} * 120)::int AS item,
  ({u5} < 0.5)::int AS half,
  {u6} < {citizen} AS citizen,
  CASE WHEN {u7} < {c0} THEN 1 WHEN {u7} < {c1} THEN 2 WHEN {u7} < {c2} THEN 3
       WHEN {u7} < {c3} THEN 4 ELSE 5 END AS level,
  20 + {u8} * 60 AS delay,
  floor({u9} * {reasons})::int AS reason,
  2 + {u10} * 18 AS close_days,
  {u11} < {appeal} AS appealed,
  {u12} < 0.3 AS upheld,
  {u13} < 0.5 AS followed
FROM gen_days d, generate_series(d.first_tx, d.first_tx + d.n - 1) AS g(tx) %s OFFSET 0) s
""".format(**{"u%d" % i: _u(i) for i in range(14)}, open_s=OPEN_S, real=REAL_NAME_SHARE,
           citizen=CITIZEN_SHARE, reasons=len(REASONS), appeal=APPEAL_SHARE,
           **{"c%d" % i: c for i, c in enumerate(LEVEL_CUTS)})


def _tx_rows(where: str = "") -> str:
    return _TX_ROWS % where


def _shanghai_date(expr: str) -> str:
    return "to_char(to_timestamp(%s) AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD')" % expr


_TERM = "'T' || %s" % _pad("s.w", 2)
_DEPT = "s.region || '-D' || %s" % _pad("s.w % s.departments", 2)
PG_INSERTS: list[tuple[str, str]] = [
    ("transactions", """
INSERT INTO transactions (%s)
SELECT s.tx_uid, s.hall, s.tx, 'W' || %s, 'BJ' || s.region || %s, s.region || '-' || %s, '1',
  %s, s.region, 'S' || %s, 'PJQ', s.started, s.started + s.took,
  CASE WHEN s.real THEN decode(repeat('01', 44), 'hex') END, 'gen', s.started + s.took + 30
FROM %s""" % (",".join(COLUMNS["transactions"]), _pad("s.w", 2), _pad("s.tx", 8),
              _pad("s.item", 3), _DEPT, _pad("s.w * 2 + s.half", 3), _tx_rows())),
    ("ratings", """
INSERT INTO ratings (%s)
SELECT CASE WHEN s.citizen THEN s.hall || ':rating:' || %s || ':' || 2 * s.tx
            ELSE s.hall || ':default:tx:' || s.tx END,
  s.hall, CASE WHEN s.citizen THEN %s ELSE '' END, CASE WHEN s.citizen THEN 2 * s.tx ELSE 0 END,
  CASE WHEN s.citizen THEN s.level ELSE 3 END, 'counted', s.tx_uid, s.at,
  s.at + CASE WHEN s.citizen THEN 1 ELSE 0 END, CASE WHEN s.citizen THEN 0 ELSE 1 END,
  CASE WHEN s.citizen THEN 'gen' ELSE '%s' END, s.at + CASE WHEN s.citizen THEN 30 ELSE 0 END
FROM (SELECT s.*, CASE WHEN s.citizen THEN s.started + s.took + s.delay
                       ELSE s.start + 5 * 86400 END AS at
      FROM %s OFFSET 0) s""" % (
        ",".join(COLUMNS["ratings"]), _TERM, _TERM, defaults.BATCH,
        _tx_rows("WHERE %s < %s OR d.passed IS NULL" % (_u(6), CITIZEN_SHARE)))),
    # the bad reviews, once, with what their reason, case and appeal are made of
    ("gen_bad", """
CREATE TEMP TABLE gen_bad AS
SELECT b.*, 'C' || b.digest AS cid, %s AS due,
  CASE WHEN b.state = 'upheld' THEN 'withdrawn' WHEN b.closed < %r THEN 'closed'
       ELSE 'open' END AS status
FROM (SELECT s.hall, s.tx_uid, s.real, s.level, s.reason, s.followed, s.rated, s.r_uid,
        s.term, s.seq, s.dept, s.rated + 40 AS opened, s.rated + 40 + s.close_days * 86400
        AS closed, left(encode(sha256(convert_to(s.r_uid, 'UTF8')), 'hex'), 16) AS digest,
        CASE WHEN NOT s.appealed THEN NULL WHEN s.rated + 11 * 86400 >= %r THEN 'pending'
             WHEN s.upheld THEN 'upheld' ELSE 'rejected' END AS state
      FROM (SELECT s.*, s.started + s.took + s.delay AS rated, %s AS term, 2 * s.tx AS seq,
              s.hall || ':rating:' || %s || ':' || 2 * s.tx AS r_uid, %s AS dept
            FROM %s OFFSET 0) s) b""" % (
        _shanghai_date("b.opened + 21 * 86400"), NOW - 86400, NOW, _TERM, _TERM, _DEPT,
        _tx_rows("WHERE %s < %s AND %s >= %s" % (_u(6), CITIZEN_SHARE, _u(7), LEVEL_CUTS[2])))),
    ("reasons", """
INSERT INTO reasons (%s)
SELECT b.hall || ':reason:' || b.term || ':' || b.seq + 1, b.hall, b.term, b.seq + 1, b.seq,
  (ARRAY[%s])[b.reason + 1], b.rated + 5, 'gen', b.rated + 35 FROM gen_bad b""" % (
        ",".join(COLUMNS["reasons"]), ", ".join("'%s'" % r for r in REASONS))),
    ("cases", """
INSERT INTO cases (%s)
SELECT b.cid, b.r_uid, b.tx_uid, b.hall, b.level, b.real::int, b.opened, b.due, b.status,
  CASE WHEN b.status <> 'open' THEN b.closed END,
  CASE WHEN b.status = 'closed' THEN '已整改' END FROM gen_bad b""" % ",".join(cases.COLUMNS)),
    ("case_events", """
INSERT INTO case_events (%s)
SELECT b.cid, e.at, e.kind, e.channel, e.feedback, e.note, e.due FROM gen_bad b,
LATERAL (VALUES (b.opened, 'opened', NULL, NULL, NULL, b.due, true),
                (b.opened + 86400, 'follow-up', 'phone', 'satisfied', '', NULL,
                 b.status = 'closed' AND (b.real OR b.followed)),
                (b.closed, 'closed', NULL, NULL, '已整改', NULL, b.status = 'closed'))
  AS e(at, kind, channel, feedback, note, due, keep)
WHERE e.keep""" % ",".join(COLUMNS["case_events"])),
    ("appeals", """
INSERT INTO appeals (%s)
SELECT 'A' || b.digest, b.r_uid, b.dept, '申请复核', b.rated + 86400, b.rated + 3 * 86400,
  %s, 'api', b.state, CASE WHEN b.state <> 'pending' THEN b.rated + 8 * 86400 END,
  CASE WHEN b.state <> 'pending' THEN '决定' END
FROM gen_bad b WHERE b.state IS NOT NULL""" % (",".join(appeals.COLUMNS),
                                               _shanghai_date("b.rated + 15 * 86400"))),
]
# the transactions the sweep still owes a default at NOW, counted from the draws
PG_EXPECTED = "SELECT COUNT(*) FROM %s" % _tx_rows("WHERE d.passed AND %s >= %s" % (
    _u(6), CITIZEN_SHARE))


def _secondary_indexes(st: backends.Store) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the indexes of the big tables that no constraint needs."""
    if st.dialect == "sqlite":
        return [(r[0], r[1]) for r in st._query(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            " AND tbl_name IN (%s)" % ",".join("'%s'" % t for t in TABLES), ())]
    return [(r[0], r[1]) for r in st._query(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indrelid WHERE c.relname = ANY(%s) AND NOT EXISTS"
        " (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)", (list(TABLES),))]


def _pg_keys(st: backends.Store) -> list[tuple[str, str, str]]:
    """(table, constraint, definition) of the big tables' primary keys and unique columns:
    dropped for the load and added after, one sorted build each instead of 135 million
    inserts into B-trees larger than shared_buffers."""
    return [(r[0], r[1], r[2]) for r in st._query(
        "SELECT c.relname, k.conname, pg_get_constraintdef(k.oid) FROM pg_constraint k"
        " JOIN pg_class c ON c.oid = k.conrelid WHERE c.relname = ANY(%s)"
        " AND k.contype IN ('p', 'u') ORDER BY c.relname, k.conname", (list(TABLES),))]


def generate(st: backends.Store, n_ratings: int, seed: int = 19,
             recent_of: int | None = None) -> Generated:
    """Fill a fresh store with a province-year of about n_ratings ratings. recent_of: the halls
    of a year of that size and, from RECENT_FROM on, its daily volume; before, n_ratings'
    history (a store that differs from the year of recent_of ratings only in its past)."""
    counts = dict.fromkeys(TABLES, 0)
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    hall_days = _hall_days(n_ratings, seed, recent_of)
    indexes = _secondary_indexes(st)
    keys = _pg_keys(st) if st.dialect == "postgres" else []
    for name, _sql in indexes:
        st._execute("DROP INDEX %s" % name, ())
    for table, name, _sql in keys:
        st._execute("ALTER TABLE %s DROP CONSTRAINT %s" % (table, name), ())
    if isinstance(st, backends.PostgresStore):
        expected = _pg_load(st, hall_days, seed, counts, phases)
    else:
        expected = _sqlite_load(st, hall_days, seed, counts)
    phases["rows"] = round(time.perf_counter() - t0, 1)
    t1 = time.perf_counter()
    if isinstance(st, backends.PostgresStore):
        _pg_build(st, [sql for _n, sql in indexes] + [
            "ALTER TABLE %s ADD CONSTRAINT %s %s" % k for k in keys])
    else:
        for _name, sql in indexes:
            st._execute(sql, ())
    phases["indexes"] = round(time.perf_counter() - t1, 1)
    t1 = time.perf_counter()
    if isinstance(st, backends.PostgresStore):
        _pg_analyze(st)
    else:
        st._execute("ANALYZE", ())
    phases["analyze"] = round(time.perf_counter() - t1, 1)
    seconds = time.perf_counter() - t0
    # the hourly sweeps ran all year: every transaction before UNRATED_FROM was judged
    clock = time.time()
    with access.atomic(st) as t:
        for job, through in (("defaults", access.day_start(UNRATED_FROM)), ("cases", None)):
            t.x(sweeps.UPSERT_SQL, (job, through, clock, clock))
    busiest = max(hall_days, key=lambda hd: hd.first_tx + hd.n).hall
    total = sum(counts.values())
    return {"rows": counts, "expected_defaults": expected, "seconds": round(seconds, 1),
            "rows_per_s": round(total / seconds), "phases": phases,
            "sample": _sample(st, busiest)}


def _sqlite_load(st: backends.SqliteStore, hall_days: list[HallDay], seed: int,
                 counts: dict[str, int]) -> int:
    """executemany of 5,000 rows at a time, in one transaction; the unrated ones counted."""
    c = st.conn
    expected = 0
    buffers: dict[str, list[Row]] = {t: [] for t in TABLES}
    c.execute("BEGIN")
    for table, row in _rows(hall_days, seed):
        buf = buffers.get(table)
        if buf is None:
            expected += 1   # 'unrated'
            continue
        buf.append(row)
        if len(buf) >= 5000:
            counts[table] += len(buf)
            _sqlite_flush(c, table, buf)
    for table, buf in buffers.items():
        counts[table] += len(buf)
        _sqlite_flush(c, table, buf)
    c.execute("COMMIT")
    return expected


def _sqlite_flush(c: sqlite3.Connection, table: str, buf: list[Row]) -> None:
    if buf:
        cols = COLUMNS[table]
        c.executemany("INSERT INTO %s (%s) VALUES (%s)" % (table, ",".join(cols),
                                                          ",".join("?" * len(cols))), buf)
        buf.clear()


def _pg_load(st: backends.PostgresStore, hall_days: list[HallDay], seed: int,
             counts: dict[str, int], phases: dict[str, float]) -> int:
    """The hall-days into a temporary table, then each table made by PostgreSQL from them
    (PG_INSERTS), one statement each; the count of transactions owed a default at NOW."""
    with st.pool.connection() as c:
        c.autocommit = True
        try:
            c.execute("CREATE TEMP TABLE gen_days (h int, hall text, region text, windows int,"
                      " departments int, day date, start float8, first_tx bigint, n int,"
                      " passed boolean, salt bigint)")
            with c.cursor().copy("COPY gen_days FROM STDIN") as cp:
                for hd in hall_days:
                    cp.write_row((*hd, seed * 64))
            for table, sql in PG_INSERTS:
                t0 = time.perf_counter()
                cur = c.execute(sql)
                phases[table] = round(time.perf_counter() - t0, 1)
                if table in counts:
                    counts[table] = cur.rowcount
            row = c.execute(PG_EXPECTED).fetchone()
            c.execute("DROP TABLE gen_days, gen_bad")
        finally:
            c.autocommit = False
    return int(row[0]) if row else 0


def _pg_build(st: backends.PostgresStore, statements: list[str]) -> None:
    """The indexes and keys, with the memory a bulk load's index builds are given."""
    with st.pool.connection() as c:
        c.autocommit = True
        try:
            c.execute("SET maintenance_work_mem = '1GB'")
            for sql in statements:
                c.execute(sql)
            c.execute("RESET maintenance_work_mem")
        finally:
            c.autocommit = False


def _pg_analyze(st: backends.PostgresStore) -> None:
    with st.pool.connection() as c:
        c.autocommit = True
        try:
            c.execute("VACUUM ANALYZE")
        finally:
            c.autocommit = False


def _sample(st: backends.Store, hall: str) -> dict[str, str]:
    """Ids the interactive steps look up: the busiest hall's department, window and staff (of
    its first transaction), its latest case and the latest appeal."""
    dept, window, staff = st._query("SELECT department, window_id, staff FROM transactions"
                                    " WHERE uid = %s", ("%s:tx:1" % hall,))[0]
    appeal = st._query("SELECT id FROM appeals ORDER BY filed_at DESC LIMIT 1", ())
    case = st._query("SELECT id FROM cases WHERE hall = %s ORDER BY opened_at DESC LIMIT 1",
                     (hall,))
    return {"hall": hall, "department": dept, "window": "window:%s/%s" % (hall, window),
            "staff": "staff:%s/%s" % (hall, staff), "appeal": appeal[0][0] if appeal else "",
            "case": case[0][0] if case else ""}


# --- plans -----------------------------------------------------------------------------------

def plan(st: backends.Store, sql: str, args: Params) -> list[str]:
    """One line per scan of the query's plan: 'Seq Scan ratings rows=…' / 'SEARCH t USING …'."""
    if st.dialect == "sqlite":
        return [r[3] for r in st._query("EXPLAIN QUERY PLAN " + sql, args)]
    doc = st._query("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, args)[0][0]
    if isinstance(doc, str):
        doc = json.loads(doc)
    top = doc[0]
    out: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        kind = node["Node Type"]
        if "Scan" in kind or kind in ("Hash Join", "Nested Loop", "Merge Join", "Sort",
                                      "Aggregate", "HashAggregate", "GroupAggregate"):
            what = node.get("Relation Name", "")
            if node.get("Index Name"):
                what += " using " + node["Index Name"]
            out.append("%s %s rows=%s loops=%s ms=%.1f" % (
                kind, what, node.get("Actual Rows"), node.get("Actual Loops"),
                node.get("Actual Total Time", 0.0)))
        for child in node.get("Plans", []):
            walk(child)
    walk(top["Plan"])
    out.append("total ms=%.1f" % top.get("Execution Time", 0.0))
    return out


# --- measurements ----------------------------------------------------------------------------

def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _batch(hall: str, n: int, rnd: random.Random) -> dict[str, list[Any]]:
    """A batch's parsed columns (batches.FIELDS order): n/2 transactions finished today and
    their ratings, ~8 % bad with their reasons."""
    ntx = n // 2
    base = 10 ** 8
    t0 = NOW - 3600
    tx_cols: list[list[Any]] = [[] for _ in range(len(batches.FIELDS["transaction"]) - 1)]
    r_cols: list[list[Any]] = [[] for _ in range(len(batches.FIELDS["rating"]))]
    s_cols: list[list[Any]] = [[] for _ in range(len(batches.FIELDS["reason"]))]
    for i in range(ntx):
        tx = base + i
        fin = t0 + i * 0.5
        for col, v in zip(tx_cols, ("%s:tx:%d" % (hall, tx), tx, "W01", "BJ%d" % tx,
                                    "530102-001", "1", "530102-D00", "530102", "S001", "PJQ",
                                    fin - 300, fin), strict=True):
            col.append(v)
        level = rnd.choices((1, 2, 3, 4, 5), LEVEL_WEIGHTS)[0]
        seq = base + 2 * i
        for col, v in zip(r_cols, ("%s:rating:TB:%d" % (hall, seq), "TB", seq, level,
                                   "counted", "%s:tx:%d" % (hall, tx), fin + 20, fin + 21, 0,
                                   "PJQ", 8000 + i % 7000), strict=True):
            col.append(v)
        if level >= 4:
            for col, v in zip(s_cols, ("%s:reason:TB:%d" % (hall, seq + 1), "TB", seq + 1, seq,
                                       rnd.choice(REASONS), fin + 25), strict=True):
                col.append(v)
    return {"transaction": [*tx_cols, None], "rating": r_cols, "reason": s_cols}


GROUPS = ("ingest", "sweeps", "explain", "quarter", "lookups")  # measure's steps, in order


def measure(st: backends.Store, gen: Generated,
            groups: tuple[str, ...] = GROUPS) -> dict[str, Step]:
    """Each step at the store's NOW; plans after the timing (EXPLAIN ANALYZE runs it again).
    groups: only those (GROUPS; `quarter`, the province's quarter and report, is the long one)."""
    cal = workdays.default_calendar()
    s = gen["sample"]
    out: dict[str, Step] = {}
    _first, _last, q_start, q_end = scores.bounds(PERIOD)
    rnd = random.Random(5)

    if "ingest" in groups:
        parsed = _batch(s["hall"], 5000, rnd)
        sec, ans = _timed(lambda: st.store_batch(s["hall"], "scale-bench-1", "0" * 64, parsed,
                                                 rules_api.in_batch))
        out["ingest_batch_5000"] = {"seconds": round(sec, 3), "rows": ans["new"]}

    if "sweeps" in groups:
        sec, res = _timed(lambda: defaults.run_defaults(st, NOW, cal))
        out["defaults_sweep"] = {"seconds": round(sec, 3), "rows": res["given"],
                                 "note": "given %d of %d expected; checked %d, waiting %d" % (
                                     res["given"], gen["expected_defaults"], res["checked"],
                                     res["waiting"])}
        out["defaults_sweep"]["plan"] = _sweep_plan(st)
        out["late_sweep_plan"] = {"seconds": 0.0, "rows": 0, "plan": plan(
            st, defaults.MAYBE_LATE_SINCE_SQL, (defaults.EPOCH, 5 * 86400.0, 5 * 86400.0,
                                                time.time() - 3600) * 2)}
        sec, opened = _timed(lambda: cases.open_new(st, NOW, cal))
        out["cases_sweep"] = {"seconds": round(sec, 3), "rows": opened}
        out["cases_sweep"]["plan"] = _cases_plan(st)
        # (the months' figures are timed with explain: unit_months_build)
        sec, again = _timed(lambda: jobs.run_once(st, NOW, cal, months=False))
        out["rule_jobs_again"] = {"seconds": round(sec, 3), "rows": again["given"]
                                  + again.get("cases_opened", 0)}
        st._execute("DELETE FROM store_sweeps", ())  # the daily sweep over every row
        sec, full = _timed(lambda: defaults.run_defaults(st, NOW, cal))
        out["defaults_sweep_full"] = {"seconds": round(sec, 3), "rows": full["given"],
                                      "note": "checked %d" % full["checked"]}
        sec, opened = _timed(lambda: cases.open_new(st, NOW, cal))
        out["cases_sweep_full"] = {"seconds": round(sec, 3), "rows": opened}

    if "explain" in groups:
        # the rule job keeps the closed months' figures first (unit_months.py); explain then
        # counts only the open month's transactions. `_from_transactions`: every month counted
        # from the transactions, as before; the two must give the same explanation (sha256)
        sec, kept = _timed(lambda: unit_months.build(st, NOW, cal))
        out["unit_months_build"] = {"seconds": round(sec, 3), "rows": kept,
                                    "note": "months kept: %s" % ", ".join(_kept_months(st))}
        open_from = unit_months.bounds(_kept_months(st)[-1])[1] if kept else q_start
        for kind in ("department", "window", "staff"):
            sec, e = _timed(lambda k=kind: scores.explain(  # type: ignore[misc]
                st, s[k], PERIOD, NOW, cal))
            step: Step = {"seconds": round(sec, 3), "rows": e.score.total, "sha256": _sha(e)}
            step["plan"] = _unit_plan(st, s[kind], open_from, q_end)
            out["explain_%s" % kind] = step
            sec, live = _timed(lambda k=kind: scoring.explain(  # type: ignore[misc]
                *scores.unit_counts(st, s[k], PERIOD, NOW, cal, kept=False), s[k], PERIOD))
            out["explain_%s_from_transactions" % kind] = {
                "seconds": round(sec, 3), "rows": live.score.total, "sha256": _sha(live),
                "plan": _unit_plan(st, s[kind], q_start, q_end)}

    if "quarter" in groups:
        sec, units = _timed(lambda: scores.unit_scores(st, PERIOD, NOW, cal))
        out["province_scores_quarter"] = {"seconds": round(sec, 3), "rows": len(units)}
        out["province_scores_quarter"]["plan"] = _province_plan(st, q_start, q_end)
        sec, fig = _timed(lambda: quarterly.figures(st, PERIOD, False, NOW, cal))
        out["quarterly_report"] = {"seconds": round(sec, 3), "rows": len(fig["units"])}

    if "lookups" in groups:
        if s["appeal"]:
            sec, _a = _timed(lambda: appeals.get(st, s["appeal"]))
            out["appeal_get"] = {"seconds": round(sec, 4), "rows": 1,
                                 "plan": plan(st, appeals.APPEAL_SQL + " WHERE id = %s",
                                              (s["appeal"],))}
            sec, pend = _timed(lambda: appeals.list_appeals(st, "pending", NOW))
            out["appeals_pending"] = {"seconds": round(sec, 4), "rows": len(pend),
                                      "plan": plan(st, appeals.APPEAL_SQL + " WHERE status = %s"
                                                   " ORDER BY filed_at", ("pending",))}
        if s["case"]:
            sec, _c = _timed(lambda: (cases.get(st, s["case"], NOW), cases.events(st, s["case"])))
            out["case_get"] = {"seconds": round(sec, 4), "rows": 1,
                               "plan": plan(st, cases.CASE_SQL + " WHERE id = %s", (s["case"],))}
            sec, open_ = _timed(lambda: cases.list_cases(st, "open", s["hall"], NOW))
            out["cases_open_of_hall"] = {"seconds": round(sec, 4), "rows": len(open_),
                                         "plan": plan(st, cases.CASE_SQL + " WHERE status = %s AND"
                                                      " hall = %s ORDER BY opened_at, id",
                                                      ("open", s["hall"]))}

    return out


def _kept_months(st: backends.Store) -> list[str]:
    return [r[0] for r in st._query("SELECT month FROM unit_month_state WHERE hall = ''"
                                    " ORDER BY month", ())]


def _sha(e: scoring.Explanation) -> str:
    """SHA-256 of an explanation's JSON: the same answer from old code and new."""
    text = json.dumps(e.to_dict(), ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# The SQL each step's plan is taken from: the module's own statements, whatever they are now.

def _sweep_plan(st: backends.Store) -> list[str]:
    sql, args = defaults.sweep_query(st, NOW)
    return plan(st, sql, args)


def _cases_plan(st: backends.Store) -> list[str]:
    sql, args = cases.sweep_query(st)
    return plan(st, sql, args)


def _unit_plan(st: backends.Store, unit: str, start: float, end: float) -> list[str]:
    sql, args = scores.unit_count_query(unit, start, end, st.dialect)
    return plan(st, sql, args)


def _province_plan(st: backends.Store, start: float, end: float) -> list[str]:
    return plan(st, scores.TX_SQL, (start, end))


# --- the run ---------------------------------------------------------------------------------

def one_size(backend: str, n: int, pg_url: str, folder: str,
             say: Callable[[str], object], keep: bool = False,
             recent_of: int | None = None, groups: tuple[str, ...] = GROUPS) -> dict[str, Any]:
    """Generate a year of about n ratings (recent_of: see generate) and measure every step;
    with the database's size, the machine's load average before and after, and this
    process's peak memory so far."""
    drop: Callable[[], None] | None = None
    if backend == "sqlite":
        db = os.path.join(folder, "scale-%d-%d.sqlite" % (n, recent_of or n))
    else:
        db, drop = _pg_db(pg_url, "scale")
    load = [round(x, 2) for x in os.getloadavg()]
    try:
        st = backends.open_store(db)
        try:
            say("generating about %d ratings (%s%s) ..." % (
                n, backend, ", the last weeks of %d" % recent_of if recent_of else ""))
            gen = generate(st, n, recent_of=recent_of)
            say("  %s rows in %.0f s (%s); measuring ..." % (
                sum(gen["rows"].values()), gen["seconds"], gen["phases"]))
            steps = measure(st, gen, groups)
            size = _size(st)
            tables = _table_sizes(st)
        finally:
            st.close()
        return {"ratings": gen["rows"]["ratings"], "recent_of": recent_of, "generated": gen,
                "steps": steps, "database_mb": size, "tables_mb": tables,
                "load_average": {"before": load, "after": [round(x, 2) for x in os.getloadavg()]},
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "db": db if keep else None}
    finally:
        if drop is not None and not keep:
            drop()
        elif backend == "sqlite" and not keep:
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(db + suffix):
                    os.remove(db + suffix)


def _size(st: backends.Store) -> int:
    if st.dialect == "sqlite":
        return round(os.path.getsize(st.path) / 1e6)
    return round(st._query("SELECT pg_database_size(current_database())", ())[0][0] / 1e6)


def _table_sizes(st: backends.Store) -> dict[str, int]:
    """PostgreSQL: each big table's MB with its indexes (SQLite: one file, _size)."""
    if st.dialect == "sqlite":
        return {}
    return {t: round(st._query("SELECT pg_total_relation_size(%s)", (t,))[0][0] / 1e6)
            for t in TABLES}


def _growth(big: dict[str, Any], small: dict[str, Any]) -> dict[str, float | None]:
    return {k: round(v["seconds"] / small["steps"][k]["seconds"], 2)
            if small["steps"].get(k, {}).get("seconds") else None
            for k, v in big["steps"].items()}


def scale(n: int, backend: str = "postgres", pg_url: str | None = None,
          folder: str | None = None, progress: Callable[[str], object] | None = None,
          keep: bool = False, fixed_day: bool = False,
          groups: tuple[str, ...] = GROUPS) -> dict[str, Any]:
    """The whole bench: size n/10, then n; each step's growth (time at n / time at n/10).
    fixed_day: also a store with n's halls and n's daily volume from RECENT_FROM on but a
    tenth of its history (`small_fixed_day`), and `growth_fixed_day`: the two differ only in
    the table's past, so a step that reads only recent rows should not grow. groups: the
    steps measured (GROUPS)."""
    say = progress or (lambda m: None)
    folder = folder or tempfile.mkdtemp(prefix="hcp-bench-scale-")
    url = pg_url or "postgresql://postgres@127.0.0.1:5432/postgres"
    small = one_size(backend, max(1000, n // 10), url, folder, say, keep, groups=groups)
    fixed = (one_size(backend, max(1000, n // 10), url, folder, say, keep, recent_of=n,
                      groups=groups) if fixed_day else None)
    big = one_size(backend, n, url, folder, say, keep, groups=groups)
    out = {"backend": backend, "ratings": n, "now": "2025-12-31T17:00+08:00",
           "period": PERIOD, "small": small, "big": big, "growth": _growth(big, small)}
    if fixed is not None:
        out["small_fixed_day"] = fixed
        out["growth_fixed_day"] = _growth(big, fixed)
    return out
