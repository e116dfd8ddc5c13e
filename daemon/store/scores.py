"""第十四条 on the store's data: one score per department, window and staff member and period.
daemon/rules/scoring.py does the arithmetic; this module only decides what each transaction counts
as:

  a citizen's counted rating      Rating(level), excluded if an appeal against it was upheld
  else a default 基本满意          Rating(3, is_default=True): written by run-defaults, or its
                                  第七条 deadline has passed (the same answer before the job ran)
  else                            pending (still inside its 5 working days: provisional score)

A transaction belongs to the period of the day it finished (Asia/Shanghai). Units:
  department  its department code, or the hall id when the hall sends none (one hall, one unit)
  window      window:HALL/WINDOW
  staff       staff:HALL/STAFF (the staff number, 工号; no names are kept in the store)
"""
from __future__ import annotations

import collections
import datetime
import time
from typing import TYPE_CHECKING, TypedDict

from haochaping.daemon.errors import HcpError
from haochaping.daemon.rules import deadlines, scoring, workdays
from haochaping.daemon.store import access, defaults, unit_months

if TYPE_CHECKING:
    from haochaping.daemon.store.backends import Store

KINDS = ("department", "window", "staff")

TX_SQL = """
SELECT t.uid, t.hall, t.department, t.window_id, t.staff, t.finished_at,
  (SELECT r.uid FROM ratings r WHERE r.tx_uid = t.uid AND r.outcome = 'counted'
     AND r.is_default = 0 ORDER BY r.rated_at, r.uid LIMIT 1) AS rating_uid,
  (SELECT r.level FROM ratings r WHERE r.tx_uid = t.uid AND r.outcome = 'counted'
     AND r.is_default = 0 ORDER BY r.rated_at, r.uid LIMIT 1) AS level,
  (SELECT COUNT(*) FROM ratings r WHERE r.tx_uid = t.uid AND r.is_default = 1) AS defaults
FROM transactions t
WHERE t.finished_at >= %s AND t.finished_at < %s
ORDER BY t.finished_at, t.uid
"""

# one unit's transactions (unit_query): the indexes transactions_department, _window, _staff
UNIT_WHERE = {
    "department": "(t.department = %s OR (t.department = '' AND t.hall = %s))",
    "window": "t.hall = %s AND t.window_id = %s",
    "staff": "t.hall = %s AND t.staff = %s",
}
_CHUNK = 500

# explain (unit_counts): one unit's transactions counted in the database, not pulled into
# Python: per level of the citizen's counted rating (the first, as in TX_SQL) and whether an
# upheld appeal excluded it (bad reviews only); those rated by default by the job; the rest
# (neither) per day they finished, whose 第七条 deadline says whether they are still pending.
# A few hundred rows whatever the unit's size. The unit's transactions come from index-only
# scans (UNIT_FROM): a department as two branches, its code (transactions_department) and a
# hall that sends none (transactions_no_department), not one OR that makes PostgreSQL read
# the heap of every transaction of the hall. Its subquery is kept from being flattened into
# the GROUP BY (FENCE), else each rating subquery would be run once per mention.
UNIT_FROM = {
    "department": """SELECT uid, finished_at FROM transactions
      WHERE department = %s AND finished_at >= %s AND finished_at < %s
    UNION ALL SELECT uid, finished_at FROM transactions
      WHERE department = '' AND hall = %s AND finished_at >= %s AND finished_at < %s""",
    "window": """SELECT uid, finished_at FROM transactions
      WHERE hall = %s AND window_id = %s AND finished_at >= %s AND finished_at < %s""",
    "staff": """SELECT uid, finished_at FROM transactions
      WHERE hall = %s AND staff = %s AND finished_at >= %s AND finished_at < %s""",
}
# each of the unit's transactions: PostgreSQL takes the first counted citizen rating in one
# probe (LATERAL) and counts defaults only where there is none; SQLite (no LATERAL, in-process
# probes) as TX_SQL does
COUNTED_SQL = {
    "postgres": """SELECT t.finished_at, x.uid AS rating_uid, x.level,
  CASE WHEN x.uid IS NULL THEN (SELECT COUNT(*) FROM ratings r WHERE r.tx_uid = t.uid
    AND r.is_default = 1) ELSE 0 END AS defaults
FROM (%s) t LEFT JOIN LATERAL (SELECT r.uid, r.level FROM ratings r WHERE r.tx_uid = t.uid
  AND r.outcome = 'counted' AND r.is_default = 0 ORDER BY r.rated_at, r.uid LIMIT 1) x ON true
OFFSET 0""",
    "sqlite": """SELECT t.finished_at,
  (SELECT r.uid FROM ratings r WHERE r.tx_uid = t.uid AND r.outcome = 'counted'
     AND r.is_default = 0 ORDER BY r.rated_at, r.uid LIMIT 1) AS rating_uid,
  (SELECT r.level FROM ratings r WHERE r.tx_uid = t.uid AND r.outcome = 'counted'
     AND r.is_default = 0 ORDER BY r.rated_at, r.uid LIMIT 1) AS level,
  (SELECT COUNT(*) FROM ratings r WHERE r.tx_uid = t.uid AND r.is_default = 1) AS defaults
FROM (%s) t
LIMIT -1""",
}
# the day (Asia/Shanghai: UTC+8 all year since 1991) a transaction finished, in days since 1970
DAY_OF = {"postgres": "floor((u.finished_at + 28800) / 86400)",
          "sqlite": "CAST((u.finished_at + 28800) / 86400 AS INTEGER)"}
COUNT_SQL = """
SELECT CASE WHEN u.level IS NULL AND u.defaults = 0 THEN %(day)s END AS day, u.level,
  CASE WHEN u.level >= 4 AND EXISTS (SELECT 1 FROM appeals a WHERE a.rating_uid = u.rating_uid
    AND a.status = 'upheld') THEN 1 ELSE 0 END AS excluded,
  COUNT(*) AS n
FROM (%(each)s) u
GROUP BY 1, 2, 3
"""


class Transaction(TypedDict):
    """transactions(): one transaction of the period and what it counts as."""
    uid: str
    hall: str
    department: str
    window: str
    staff: str
    finished_at: float
    rating_uid: str | None          # the citizen's counted rating, if any
    level: int | None               # its level, or 3 for a default; None while pending
    rating: scoring.Rating | None   # None while pending


class _Unit(TypedDict):
    kind: str                       # one of KINDS
    unit: str                       # its key, e.g. window:H01/W01
    hall: str
    ratings: list[scoring.Rating]
    pending: int


class UnitScore(_Unit):
    """unit_scores(): one unit's transactions as the scoring sees them, and its score."""
    score: scoring.Score


def bounds(period: str) -> tuple[datetime.date, datetime.date, float, float]:
    """(first day, last day, start ts, end ts) of a period like 2026Q3."""
    first, last = scoring.parse_period(period)
    start = max(access.day_start(first), defaults.EPOCH)
    return first, last, start, access.day_start(last + datetime.timedelta(days=1))


def department_of(hall: str, department: str) -> str:
    return department or hall


def units_of(tx: Transaction) -> list[tuple[str, str]]:
    """The unit keys a transaction counts for."""
    out = [("department", department_of(tx["hall"], tx["department"])),
           ("window", "window:%s/%s" % (tx["hall"], tx["window"]))]
    if tx["staff"]:
        out.append(("staff", "staff:%s/%s" % (tx["hall"], tx["staff"])))
    return out


def unit_query(unit: str, start: float, end: float) -> tuple[str, tuple[object, ...]]:
    """TX_SQL for one unit's transactions (a department code or hall id, window:HALL/WINDOW,
    staff:HALL/STAFF): the statement and its parameters."""
    kind, _, rest = unit.partition(":")
    if kind in ("window", "staff") and "/" in rest:
        hall, _, ident = rest.partition("/")
        args: tuple[object, ...] = (hall, ident)
    else:
        kind, args = "department", (unit, unit)
    head, _, order = TX_SQL.rpartition("ORDER BY")
    sql = "%s  AND %s\nORDER BY%s" % (head, UNIT_WHERE[kind], order)
    return sql, (start, end) + args


def unit_count_query(unit: str, start: float, end: float,
                     dialect: str) -> tuple[str, tuple[object, ...]]:
    """COUNT_SQL for one unit (as unit_query) on a backend ("postgres", "sqlite")."""
    kind, _, rest = unit.partition(":")
    if kind in ("window", "staff") and "/" in rest:
        hall, _, ident = rest.partition("/")
        args: tuple[object, ...] = (hall, ident, start, end)
    else:
        kind, args = "department", (unit, start, end, unit, start, end)
    each = COUNTED_SQL[dialect] % UNIT_FROM[kind]
    return COUNT_SQL % {"day": DAY_OF[dialect], "each": each}, args


def unit_counts(store: Store, unit: str, period: str, now: float | None = None,
                calendar: workdays.Calendar | None = None,
                kept: bool = True) -> tuple[collections.Counter[scoring.Rating], int]:
    """({Rating: how many} of its transactions, how many pending) of one unit in the period: what
    transactions(unit=…) gives it, counted in the database (unit_count_query). The months
    closed at `now` whose figures the rule job kept (unit_months.py) are added up from those,
    the rest counted from the transactions; kept=False: every month from its transactions."""
    now = time.time() if now is None else now
    cal = calendar or workdays.default_calendar()
    first, last, start, end = bounds(period)
    kind, _, rest = unit.partition(":")
    if kind == "staff" and rest.endswith("/") and rest.count("/") == 1:
        return collections.Counter(), 0   # no staff number: it counts for no staff unit
    at_now = access.when(now)
    closed = [m for m in unit_months.months_within(first, last)
              if unit_months.closed(m, at_now, cal)] if kept else []
    kind, hall = _kind_hall(unit)
    ratings: collections.Counter[scoring.Rating] = collections.Counter()
    rows: list[access.Row] = []
    with access.atomic(store, write=False) as t:
        if not t.sqlite:
            # its estimated cost (a subquery per transaction) passes jit_above_cost for a large
            # unit: compiling the query took 0.46 s of its 0.82 s at 2M ratings (31,000
            # transactions), to run 0.3 s of index probes that JIT does not speed up
            t.x("SET LOCAL jit = off")
        months = unit_months.usable(t, hall, closed) if closed else []
        if months:
            ratings.update(unit_months.ratings(unit_months.kept(t, kind, unit, months)))
        for lo, hi in _not_kept(start, end, months):
            sql, args = unit_count_query(unit, lo, hi, store.dialect)
            rows += t.q(sql, args)
    pending = 0
    for day, level, excluded, n in rows:
        if level is not None:
            ratings[scoring.Rating(level, excluded=bool(excluded))] += n
            continue
        if day is not None:     # neither rated nor given its default: has its deadline passed?
            d = _EPOCH_DAY + datetime.timedelta(days=int(day))
            if not deadlines.default_rating_deadline(d, cal).passed(at_now):
                pending += n
                continue
        ratings[_DEFAULT] += n
    return ratings, pending


def _kind_hall(unit: str) -> tuple[str, str | None]:
    """(kind, its hall) of a unit key as unit_query reads it: a department has no one hall."""
    kind, _, rest = unit.partition(":")
    if kind in ("window", "staff") and "/" in rest:
        return kind, rest.partition("/")[0]
    return "department", None


def _not_kept(start: float, end: float, months: list[str]) -> list[tuple[float, float]]:
    """The spans of start..end outside these (sorted) months: counted from the transactions."""
    out: list[tuple[float, float]] = []
    at = start
    for month in months:
        lo, hi = unit_months.bounds(month)
        if lo > at:
            out.append((at, lo))
        at = max(at, hi)
    if at < end:
        out.append((at, end))
    return out


_EPOCH_DAY = datetime.date(1970, 1, 1)
_DEFAULT = scoring.Rating(3, is_default=True)


def transactions(store: Store, period: str, now: float | None = None,
                 calendar: workdays.Calendar | None = None,
                 unit: str | None = None) -> list[Transaction]:
    """Every transaction of the period with what it counts as (`rating`: a scoring.Rating, or
    None while pending); unit: only the transactions that count for that unit."""
    now = time.time() if now is None else now
    cal = calendar or workdays.default_calendar()
    _first, _last, start, end = bounds(period)
    sql, args = (TX_SQL, (start, end)) if unit is None else unit_query(unit, start, end)
    rows = access.query(store, sql, args)
    if unit is None:
        upheld = {r[0] for r in access.query(store, "SELECT rating_uid FROM appeals"
                                                    " WHERE status = 'upheld'")}
    else:  # only bad reviews are appealed: look up those of this unit alone
        upheld = _upheld(store, [r[6] for r in rows if r[6] is not None and r[7] >= 4])
    at_now = access.when(now)
    due_by_day: dict[datetime.date, workdays.Deadline] = {}
    out: list[Transaction] = []
    for uid, hall, dept, window, staff, finished, ruid, level, ndef in rows:
        rating: scoring.Rating | None
        if ruid is not None:
            rating = scoring.Rating(level, excluded=ruid in upheld)
        else:
            passed = bool(ndef)  # given by the job: no need to ask the calendar
            if not passed:
                day = access.when(finished).date()
                if day not in due_by_day:
                    due_by_day[day] = deadlines.default_rating_deadline(day, cal)
                passed = due_by_day[day].passed(at_now)
            rating = scoring.Rating(3, is_default=True) if passed else None
            if rating is not None:
                level = 3
        out.append({"uid": uid, "hall": hall, "department": dept, "window": window,
                    "staff": staff, "finished_at": finished, "rating_uid": ruid, "level": level,
                    "rating": rating})
    return out


def _upheld(store: Store, rating_uids: list[str]) -> set[str]:
    """Those of these ratings that an upheld appeal removed from scoring."""
    out: set[str] = set()
    for i in range(0, len(rating_uids), _CHUNK):
        part = rating_uids[i:i + _CHUNK]
        out.update(r[0] for r in access.query(
            store, "SELECT rating_uid FROM appeals WHERE status = 'upheld' AND rating_uid IN"
                   " (%s)" % ", ".join(["%s"] * len(part)), part))
    return out


def unit_scores(store: Store, period: str, now: float | None = None,
                calendar: workdays.Calendar | None = None,
                txs: list[Transaction] | None = None) -> dict[str, UnitScore]:
    """{unit key: {"kind", "unit", "hall", "ratings": [...], "pending": n, "score": Score}}."""
    txs = transactions(store, period, now, calendar) if txs is None else txs
    units: dict[str, _Unit] = {}
    for tx in txs:
        for kind, key in units_of(tx):
            u = units.setdefault(key, {"kind": kind, "unit": key, "hall": tx["hall"],
                                       "ratings": [], "pending": 0})
            if tx["rating"] is None:
                u["pending"] += 1
            else:
                u["ratings"].append(tx["rating"])
    scored: dict[str, UnitScore] = {
        key: {**u, "score": scoring.score(u["ratings"], u["pending"])}
        for key, u in units.items()}
    return dict(sorted(scored.items(), key=lambda kv: (KINDS.index(kv[1]["kind"]), kv[0])))


def explain(store: Store, unit: str, period: str, now: float | None = None,
            calendar: workdays.Calendar | None = None) -> scoring.Explanation:
    """scoring.Explanation of one unit's score from the store's data. A unit with no transaction
    in the period gets the rules' "no data" answer, unless the store has never seen it at all."""
    ratings, pending = unit_counts(store, unit, period, now, calendar)
    if ratings or pending:
        return scoring.explain(ratings, pending, unit, period)
    if not _known(store, unit):
        raise HcpError("unit %s is not in the store: a department code (or hall id), "
                       "window:HALL/WINDOW or staff:HALL/STAFF" % unit)
    return scoring.explain([], 0, unit, period)


def _known(store: Store, unit: str) -> bool:
    kind, _, rest = unit.partition(":")
    if kind in ("window", "staff") and "/" in rest:
        hall, _, ident = rest.partition("/")
        col = "window_id" if kind == "window" else "staff"
        sql = "SELECT 1 FROM transactions WHERE hall = %%s AND %s = %%s LIMIT 1" % col
        return bool(access.query(store, sql, (hall, ident)))
    return bool(access.query(store, "SELECT 1 FROM transactions WHERE department = %s OR"
                                    " (department = '' AND hall = %s) LIMIT 1", (unit, unit)))
