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

import contextlib
import datetime
import hashlib
import json
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any, TypedDict

from haochaping.daemon import batches
from haochaping.daemon.rules import deadlines, workdays
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
)
from haochaping.daemon.store.access import Params
from haochaping.protocol import levels as level_names
from haochaping.tools.bench.forward_rate import _pg_db

YEAR = 2025
PERIOD = "2025Q4"
NOW = datetime.datetime(2025, 12, 31, 17, 0, tzinfo=workdays.SHANGHAI).timestamp()
UNRATED_FROM = datetime.date(2025, 12, 19)  # from this day on, no sweep ran yet
LEVEL_WEIGHTS = (50, 30, 12, 5, 3)          # 非常满意 .. 非常不满意 (tools/sim/scenario.py)
CITIZEN_SHARE = 0.88                        # the rest walk away: a default (第七条)
APPEAL_SHARE = 0.05                         # of bad reviews
REAL_NAME_SHARE = 0.15                      # transactions with a consented identity
RATINGS_PER_HALL = 40000                    # a county hall's year, roughly
TABLES = ("transactions", "ratings", "reasons", "cases", "case_events", "appeals")
REASONS = [r[0] for r in level_names.REASONS]
Row = tuple[object, ...]


class Step(TypedDict, total=False):
    seconds: float
    rows: int
    plan: list[str]
    note: str


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


class Generated(TypedDict):
    rows: dict[str, int]
    expected_defaults: int     # unrated transactions whose 第七条 deadline has passed at NOW
    seconds: float
    rows_per_s: int
    sample: dict[str, str]     # ids to look up: a department, window, staff, appeal, case, hall


def _rows(n_ratings: int, seed: int) -> Iterator[tuple[str, Row]]:
    """(table, row) of a province-year; transactions and their ratings interleaved."""
    rnd = random.Random(seed)
    halls = _halls(n_ratings, rnd)
    days = _days()
    cal = workdays.default_calendar()
    day_list = [d for d, _w in days]
    day_w = [w for _d, w in days]
    hall_w = [h["weight"] for h in halls]
    total_w = sum(hall_w)
    day_starts = {d: datetime.datetime.combine(d, datetime.time(9, tzinfo=workdays.SHANGHAI))
                  .timestamp() for d in day_list}
    passed: dict[datetime.date, bool] = {}
    case_ids: set[str] = set()
    tx_count: dict[str, int] = {}
    seq_count: dict[tuple[str, int], int] = {}
    for h in halls:
        n = max(10, round(n_ratings * h["weight"] / total_w))
        hid, region = h["id"], h["region"]
        picked = sorted(rnd.choices(range(len(day_list)), day_w, k=n))
        for di in picked:
            day = day_list[di]
            tx = tx_count[hid] = tx_count.get(hid, 0) + 1
            w = rnd.randrange(h["windows"])
            dept = "%s-D%02d" % (region, w % h["departments"])
            started = day_starts[day] + rnd.random() * 8.5 * 3600
            finished = started + 60 + rnd.random() * 900
            tx_uid = "%s:tx:%d" % (hid, tx)
            real = rnd.random() < REAL_NAME_SHARE
            yield "transactions", (
                tx_uid, hid, tx, "W%02d" % w, "BJ%s%08d" % (region, tx), "%s-%03d" % (region,
                rnd.randrange(120)), "1", dept, region, "S%03d" % (w * 2 + rnd.randrange(2)),
                "PJQ", started, finished, b"\x01" * 44 if real else None, "gen", finished + 30)
            if rnd.random() < CITIZEN_SHARE:
                level = rnd.choices((1, 2, 3, 4, 5), LEVEL_WEIGHTS)[0]
                key = (hid, w)
                seq = seq_count[key] = seq_count.get(key, 0) + 1
                term = "T%02d" % w
                r_uid = "%s:rating:%s:%d" % (hid, term, seq)
                rated = finished + 20 + rnd.random() * 60
                yield "ratings", (r_uid, hid, term, seq, level, "counted", tx_uid, rated,
                                  rated + 1, 0, "gen", rated + 30)
                if level >= 4:
                    seq = seq_count[key] = seq + 1
                    yield "reasons", ("%s:reason:%s:%d" % (hid, term, seq), hid, term, seq,
                                      seq - 1, rnd.choice(REASONS), rated + 5, "gen", rated + 35)
                    cid = cases.case_id(r_uid)
                    if cid in case_ids:  # 8 hex digits: two bad reviews, one case id
                        yield "case_id_collisions", (r_uid,)
                        continue
                    case_ids.add(cid)
                    yield from _case(rnd, r_uid, tx_uid, hid, level, real, rated, dept)
            elif day < UNRATED_FROM:
                at = day_starts[day] + 5 * 86400  # roughly the deadline: its value is not read
                yield "ratings", (defaults.default_uid(tx_uid), hid, "", 0, 3, "counted", tx_uid,
                                  at, at, 1, defaults.BATCH, at)
            else:
                if day not in passed:
                    passed[day] = deadlines.default_rating_deadline(day, cal).passed(
                        datetime.datetime.fromtimestamp(NOW, workdays.SHANGHAI))
                yield "unrated", (1 if passed[day] else 0,)


def _case(rnd: random.Random, r_uid: str, tx_uid: str, hall: str, level: int, real: bool,
          rated: float, dept: str) -> Iterator[tuple[str, Row]]:
    cid = cases.case_id(r_uid)
    opened = rated + 40
    due = datetime.date.fromtimestamp(opened + 21 * 86400).isoformat()
    closed = opened + rnd.uniform(2, 20) * 86400
    status = "closed" if closed < NOW - 86400 else "open"
    appealed = rnd.random() < APPEAL_SHARE
    decision = rnd.choices(("upheld", "rejected"), (3, 7))[0] if appealed else ""
    if appealed:
        filed = rated + 86400
        state = decision if filed + 10 * 86400 < NOW else "pending"
        if state == "upheld":
            status = "withdrawn"
        yield "appeals", ("A" + hashlib.sha256(r_uid.encode()).hexdigest()[:8], r_uid, dept,
                          "申请复核", filed, filed + 2 * 86400,
                          datetime.date.fromtimestamp(filed + 14 * 86400).isoformat(), "api",
                          state, None if state == "pending" else filed + 7 * 86400,
                          None if state == "pending" else "决定")
    yield "cases", (cid, r_uid, tx_uid, hall, level, 1 if real else 0, opened, due, status,
                    closed if status != "open" else None, "已整改" if status == "closed" else None)
    yield "case_events", (cid, opened, "opened", None, None, None, due)
    if status == "closed":
        if real or rnd.random() < 0.5:
            yield "case_events", (cid, opened + 86400, "follow-up", "phone", "satisfied", "",
                                  None)
        yield "case_events", (cid, closed, "closed", None, None, "已整改", None)


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


def generate(st: backends.Store, n_ratings: int, seed: int = 19) -> Generated:
    """Fill a fresh store with a province-year of about n_ratings ratings."""
    counts = dict.fromkeys(TABLES, 0)
    expected = 0
    sample: dict[str, str] = {}
    t0 = time.perf_counter()
    indexes = _secondary_indexes(st)
    for name, _sql in indexes:
        st._execute("DROP INDEX %s" % name, ())
    if st.dialect == "sqlite":
        c = st.conn
        buffers: dict[str, list[Row]] = {t: [] for t in TABLES}
        c.execute("BEGIN")
        for table, row in _rows(n_ratings, seed):
            if table == "unrated":
                expected += int(row[0])  # type: ignore[call-overload]
                continue
            counts[table] = counts.get(table, 0) + 1
            if table not in buffers:
                continue
            buf = buffers[table]
            buf.append(row)
            if len(buf) >= 5000:
                _sqlite_flush(c, table, buf)
        for table, buf in buffers.items():
            _sqlite_flush(c, table, buf)
        c.execute("COMMIT")
    else:
        expected = _pg_load(st, n_ratings, seed, counts)
    for _name, sql in indexes:
        st._execute(sql, ())
    if isinstance(st, backends.PostgresStore):
        _pg_analyze(st)
    else:
        st._execute("ANALYZE", ())
    seconds = time.perf_counter() - t0
    # the hourly sweeps ran all year: every transaction before UNRATED_FROM was judged
    clock = time.time()
    with access.atomic(st) as t:
        for job, through in (("defaults", access.day_start(UNRATED_FROM)), ("cases", None)):
            t.x(sweeps.UPSERT_SQL, (job, through, clock, clock))
    sample = _sample(st)
    total = sum(counts.values())
    return {"rows": counts, "expected_defaults": expected, "seconds": round(seconds, 1),
            "rows_per_s": round(total / seconds), "sample": sample}


def _sqlite_flush(c: sqlite3.Connection, table: str, buf: list[Row]) -> None:
    if buf:
        cols = COLUMNS[table]
        c.executemany("INSERT INTO %s (%s) VALUES (%s)" % (table, ",".join(cols),
                                                          ",".join("?" * len(cols))), buf)
        buf.clear()


def _pg_load(st: backends.PostgresStore, n_ratings: int, seed: int,
             counts: dict[str, int]) -> int:
    """COPY every table at once: one COPY per table at a time, so the rows go to per-table
    temporary files first (the rows come interleaved), then each file is COPYed in."""
    expected = 0
    with tempfile.TemporaryDirectory(prefix="hcp-scale-") as d:
        with contextlib.ExitStack() as stack:
            files = {t: stack.enter_context(open(os.path.join(d, t), "w", encoding="utf-8"))
                     for t in TABLES}
            for table, row in _rows(n_ratings, seed):
                if table == "unrated":
                    expected += int(row[0])  # type: ignore[call-overload]
                    continue
                counts[table] = counts.get(table, 0) + 1
                if table in files:
                    files[table].write("\t".join(map(_copy_text, row)) + "\n")
        with st.pool.connection() as c, c.transaction():
            for table in TABLES:
                with c.cursor().copy("COPY %s (%s) FROM STDIN" % (
                        table, ",".join(COLUMNS[table]))) as cp, \
                        open(os.path.join(d, table), "rb") as f:
                    while chunk := f.read(1 << 20):
                        cp.write(chunk)
    return expected


def _copy_text(v: object) -> str:
    if v is None:
        return "\\N"
    if isinstance(v, bytes):
        return "\\\\x" + v.hex()
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _pg_analyze(st: backends.PostgresStore) -> None:
    with st.pool.connection() as c:
        c.autocommit = True
        try:
            c.execute("VACUUM ANALYZE")
        finally:
            c.autocommit = False


def _sample(st: backends.Store) -> dict[str, str]:
    """Ids the interactive steps look up: the busiest hall's department, window and staff, a
    pending appeal and a case."""
    hall = st._query("SELECT hall FROM transactions ORDER BY tx DESC LIMIT 1", ())[0][0]
    dept, window, staff = st._query("SELECT department, window_id, staff FROM transactions"
                                    " WHERE hall = %s AND tx = 1", (hall,))[0]
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


def measure(st: backends.Store, gen: Generated) -> dict[str, Step]:
    """Each step at the store's NOW; plans after the timing (EXPLAIN ANALYZE runs it again)."""
    cal = workdays.default_calendar()
    s = gen["sample"]
    out: dict[str, Step] = {}
    _first, _last, q_start, q_end = scores.bounds(PERIOD)
    rnd = random.Random(5)

    parsed = _batch(s["hall"], 5000, rnd)
    sec, ans = _timed(lambda: st.store_batch(s["hall"], "scale-bench-1", "0" * 64, parsed,
                                             rules_api.in_batch))
    out["ingest_batch_5000"] = {"seconds": round(sec, 3), "rows": ans["new"]}

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
    sec, again = _timed(lambda: jobs.run_once(st, NOW, cal))
    out["rule_jobs_again"] = {"seconds": round(sec, 3), "rows": again["given"]
                              + again.get("cases_opened", 0)}
    st._execute("DELETE FROM store_sweeps", ())  # the daily sweep over every row
    sec, full = _timed(lambda: defaults.run_defaults(st, NOW, cal))
    out["defaults_sweep_full"] = {"seconds": round(sec, 3), "rows": full["given"],
                                  "note": "checked %d" % full["checked"]}
    sec, opened = _timed(lambda: cases.open_new(st, NOW, cal))
    out["cases_sweep_full"] = {"seconds": round(sec, 3), "rows": opened}

    for kind in ("department", "window", "staff"):
        sec, e = _timed(lambda k=kind: scores.explain(st, s[k], PERIOD, NOW, cal))  # type: ignore[misc]
        step: Step = {"seconds": round(sec, 3), "rows": e.score.total}
        step["plan"] = _unit_plan(st, s[kind], q_start, q_end)
        out["explain_%s" % kind] = step

    sec, units = _timed(lambda: scores.unit_scores(st, PERIOD, NOW, cal))
    out["province_scores_quarter"] = {"seconds": round(sec, 3), "rows": len(units)}
    out["province_scores_quarter"]["plan"] = _province_plan(st, q_start, q_end)
    sec, fig = _timed(lambda: quarterly.figures(st, PERIOD, False, NOW, cal))
    out["quarterly_report"] = {"seconds": round(sec, 3), "rows": len(fig["units"])}

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


# The SQL each step's plan is taken from: the module's own statements, whatever they are now.

def _sweep_plan(st: backends.Store) -> list[str]:
    sql, args = defaults.sweep_query(st, NOW)
    return plan(st, sql, args)


def _cases_plan(st: backends.Store) -> list[str]:
    sql, args = cases.sweep_query(st)
    return plan(st, sql, args)


def _unit_plan(st: backends.Store, unit: str, start: float, end: float) -> list[str]:
    sql, args = scores.unit_query(unit, start, end)
    return plan(st, sql, args)


def _province_plan(st: backends.Store, start: float, end: float) -> list[str]:
    return plan(st, scores.TX_SQL, (start, end))


# --- the run ---------------------------------------------------------------------------------

def one_size(backend: str, n: int, pg_url: str, folder: str,
             say: Callable[[str], object], keep: bool = False) -> dict[str, Any]:
    drop: Callable[[], None] | None = None
    if backend == "sqlite":
        db = os.path.join(folder, "scale-%d.sqlite" % n)
    else:
        db, drop = _pg_db(pg_url, "scale")
    try:
        st = backends.open_store(db)
        try:
            say("generating about %d ratings (%s) ..." % (n, backend))
            gen = generate(st, n)
            say("  %s rows in %.0f s; measuring ..." % (sum(gen["rows"].values()),
                                                      gen["seconds"]))
            steps = measure(st, gen)
            size = _size(st)
        finally:
            st.close()
        return {"ratings": gen["rows"]["ratings"], "generated": gen, "steps": steps,
                "database_mb": size, "db": db if keep else None}
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


def scale(n: int, backend: str = "postgres", pg_url: str | None = None,
          folder: str | None = None, progress: Callable[[str], object] | None = None,
          keep: bool = False) -> dict[str, Any]:
    """The whole bench: size n/10, then n; each step's growth (time at n / time at n/10)."""
    say = progress or (lambda m: None)
    folder = folder or tempfile.mkdtemp(prefix="hcp-bench-scale-")
    url = pg_url or "postgresql://postgres@127.0.0.1:5432/postgres"
    small = one_size(backend, max(1000, n // 10), url, folder, say, keep)
    big = one_size(backend, n, url, folder, say, keep)
    growth = {k: round(v["seconds"] / small["steps"][k]["seconds"], 2)
              if small["steps"].get(k, {}).get("seconds") else None
              for k, v in big["steps"].items()}
    return {"backend": backend, "ratings": n, "now": "2025-12-31T17:00+08:00",
            "period": PERIOD, "small": small, "big": big, "growth": growth}

