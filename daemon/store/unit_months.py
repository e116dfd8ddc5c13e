"""第十四条 for one unit without reading every transaction of its period: each closed month's
figures per hall and unit, counted by the database (one GROUP BY per month) and kept in the
tables unit_months and unit_month_state, so that `scores.explain` adds up a few rows per month
for what is closed and counts only the open month's transactions (docs/scale.md).

A month is *closed* once the 第七条 deadline of its last day has passed (every transaction of
it is then rated by its citizen or by default: none is pending) and the defaults sweep's mark
is past its end (the sweep judged it). Its figures change only when the store learns
something about it afterwards:

  a batch brings one of its transactions, or a rating of one (a hall offline)  touch_batch
  the sweep finds one of its ratings late (第七条)                    defaults.mark_late
  the sweep writes defaults for it (a transaction received late)      defaults.run_defaults
  an appeal against one of its ratings is upheld (第十条)             appeals.decide
  the archive removes it                                              archive.py (forget)

Each raises the hall-month's version in its own database transaction (touch); figures built
at an older version are not read (explain counts that month from its transactions) until the
rule job builds them again. A build reads the versions before the transactions, so a change
committed while it runs leaves the hall-month stale rather than fresh. Per hall, not per
month: the halls' batches never wait on one another's row. A month may be closed only 4 days
after its end by the store's clock, so a batch of a hall forwarding as it goes touches nothing.
"""
from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from haochaping.daemon.errors import HcpError
from haochaping.daemon.rules import deadlines, scoring, workdays
from haochaping.daemon.store import access
from haochaping.protocol import levels

if TYPE_CHECKING:
    from haochaping.daemon.store.backends import Store

log = logging.getLogger(__name__)

# a month may be closed only once its last day's 5 working days (at least 5 calendar days
# after its start, so 4 after its end) are over
MAY_BE_CLOSED_S = 4 * 86400.0
LOCK = 7406152             # PostgreSQL advisory lock: one build writes at a time
_CHUNK = 500
LEVELS = tuple(code for code, _n, _p, _b in levels.LEVELS)     # 1 非常满意 .. 5 非常不满意
# a unit's figures of one hall-month: counted citizen ratings per level (c1..c5), those an
# upheld appeal excluded (x1..x5), transactions rated by default (d, given or due)
COLUMNS = tuple("c%d" % i for i in LEVELS) + tuple("x%d" % i for i in LEVELS) + ("d",)
Figures = list[int]

TOUCH_SQL = ("INSERT INTO unit_month_state (month, hall, version, fresh) VALUES (%s, %s, 1, 0)"
             " ON CONFLICT (month, hall) DO UPDATE SET version = unit_month_state.version + 1")
SAVED_SQL = ("INSERT INTO unit_month_state (month, hall, version, fresh) VALUES (%s, %s, %s, %s)"
             " ON CONFLICT (month, hall) DO UPDATE SET fresh = excluded.fresh")
ROW_SQL = "INSERT INTO unit_months (month, hall, kind, unit, %s) VALUES (%s)" % (
    ", ".join(COLUMNS), ", ".join(["%s"] * (4 + len(COLUMNS))))
SUM_SQL = ("SELECT %s FROM unit_months WHERE kind = %%s AND unit = %%s AND month IN ({months})"
           % ", ".join("COALESCE(SUM(%s), 0)" % c for c in COLUMNS))

# each transaction of a hall-month with its first counted citizen rating (as scores.TX_SQL):
# PostgreSQL in one probe (LATERAL), SQLite in two subqueries. No defaults: in a closed month a
# transaction without a citizen's rating is rated by default, given or not.
_EACH = {
    "postgres": """SELECT t.hall, t.department, t.window_id, t.staff, x.uid AS rating_uid,
  x.level FROM transactions t LEFT JOIN LATERAL (SELECT r.uid, r.level FROM ratings r
  WHERE r.tx_uid = t.uid AND r.outcome = 'counted' AND r.is_default = 0
  ORDER BY r.rated_at, r.uid LIMIT 1) x ON true
WHERE t.finished_at >= %s AND t.finished_at < %s{hall}
OFFSET 0""",
    "sqlite": """SELECT t.hall, t.department, t.window_id, t.staff,
  (SELECT r.uid FROM ratings r WHERE r.tx_uid = t.uid AND r.outcome = 'counted'
     AND r.is_default = 0 ORDER BY r.rated_at, r.uid LIMIT 1) AS rating_uid,
  (SELECT r.level FROM ratings r WHERE r.tx_uid = t.uid AND r.outcome = 'counted'
     AND r.is_default = 0 ORDER BY r.rated_at, r.uid LIMIT 1) AS level
FROM transactions t
WHERE t.finished_at >= %s AND t.finished_at < %s{hall}
LIMIT -1""",
}
# ... counted per (hall, department, window, staff, level, excluded): the units come from these
GROUP_SQL = """
SELECT u.hall, u.department, u.window_id, u.staff, u.level,
  CASE WHEN u.level >= 4 AND EXISTS (SELECT 1 FROM appeals a WHERE a.rating_uid = u.rating_uid
    AND a.status = 'upheld') THEN 1 ELSE 0 END AS excluded,
  COUNT(*) AS n
FROM (%s) u
GROUP BY 1, 2, 3, 4, 5, 6
"""


# --- the pure core: months, closing, figures --------------------------------------------------

def month_of(ts: float) -> str:
    """The month (Asia/Shanghai) of a time: '2025-10'."""
    return access.when(ts).strftime("%Y-%m")


def first_day(month: str) -> datetime.date:
    return datetime.date(int(month[:4]), int(month[5:7]), 1)


def next_month(day: datetime.date) -> datetime.date:
    """The first day of the month after day's."""
    return datetime.date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def bounds(month: str) -> tuple[float, float]:
    """(start, end) of a month in seconds since 1970."""
    first = first_day(month)
    return access.day_start(first), access.day_start(next_month(first))


def months_within(first: datetime.date, last: datetime.date) -> list[str]:
    """The months wholly inside first..last (a period's)."""
    out = []
    day = first if first.day == 1 else next_month(first)
    while next_month(day) - datetime.timedelta(days=1) <= last:
        out.append(day.strftime("%Y-%m"))
        day = next_month(day)
    return out


def closed(month: str, at: datetime.datetime, cal: workdays.Calendar) -> bool:
    """Has the 第七条 deadline of the month's last day passed at `at`? (Then that of every
    day of it has: the deadlines follow the days.) A month no calendar holds is not closed."""
    last = next_month(first_day(month)) - datetime.timedelta(days=1)
    try:
        return deadlines.default_rating_deadline(last, cal).passed(at)
    except HcpError:
        return False


def may_be_closed(month: str, clock: float) -> bool:
    """Could the month be closed by the store's clock? (If not, no figures of it are kept.)"""
    return bounds(month)[1] + MAY_BE_CLOSED_S < clock


def closable_before(clock: float) -> float:
    """Every transaction of a month that may be closed by this clock finished before this
    (the start of the month 4 days ago): a cheap first filter."""
    at = access.when(clock - MAY_BE_CLOSED_S).date()
    return access.day_start(at.replace(day=1))


def units(hall: str, department: str, window: str, staff: str) -> list[tuple[str, str]]:
    """(kind, unit key) a transaction counts for, as scores.units_of."""
    out = [("department", department or hall), ("window", "window:%s/%s" % (hall, window))]
    if staff:
        out.append(("staff", "staff:%s/%s" % (hall, staff)))
    return out


def column(level: int | None, excluded: bool) -> int:
    """The figure a transaction adds to: its citizen's level, excluded or not, else a default."""
    if level is None:
        return len(COLUMNS) - 1
    return LEVELS.index(level) + (len(LEVELS) if excluded else 0)


def roll_up(groups: Iterable[access.Row]) -> dict[tuple[str, str, str], Figures]:
    """GROUP_SQL's rows (hall, department, window, staff, level, excluded, n) → each unit's
    figures per hall: {(hall, kind, unit): figures}."""
    out: dict[tuple[str, str, str], Figures] = {}
    for hall, dept, window, staff, level, excluded, n in groups:
        col = column(level, bool(excluded))
        for kind, unit in units(hall, dept, window, staff):
            figures = out.setdefault((hall, kind, unit), [0] * len(COLUMNS))
            figures[col] += n
    return out


def ratings(figures: Sequence[int]) -> dict[scoring.Rating, int]:
    """A unit's figures as the scoring's {Rating: how many} (none of those not there)."""
    n = len(LEVELS)
    out = {scoring.Rating(level, excluded=x): figures[i + (n if x else 0)]
           for i, level in enumerate(LEVELS) for x in (False, True)}
    out[scoring.Rating(levels.DEFAULT_LEVEL, is_default=True)] = figures[2 * n]
    return {r: k for r, k in out.items() if k}


# --- touching: whatever changes a month that may be closed -----------------------------------

def touch(t: access.Tx, hall_months: Iterable[tuple[str, str]]) -> None:
    """These hall-months' figures (if kept) no longer hold: raise their versions. Only months
    that may be closed by the store's clock; in order (two batches lock rows alike)."""
    clock = time.time()
    rows = sorted({(month, hall) for hall, month in hall_months if may_be_closed(month, clock)})
    if rows:
        t.xmany(TOUCH_SQL, rows)


def touch_finished(t: access.Tx, hall: str, finished: Iterable[float]) -> None:
    """The hall's transactions finished at these times changed."""
    before = closable_before(time.time())
    touch(t, {(hall, m) for m in {month_of(f) for f in finished if f < before}})


def touch_txs(t: access.Tx, tx_uids: Iterable[str]) -> None:
    """The hall-months of these stored transactions (those that may be closed) changed."""
    keys = sorted(set(tx_uids))
    old = closable_before(time.time())
    found: set[tuple[str, str]] = set()
    for i in range(0, len(keys), _CHUNK):
        part = keys[i:i + _CHUNK]
        found.update((hall, month_of(f)) for hall, f in t.q(
            "SELECT hall, finished_at FROM transactions WHERE uid IN (%s) AND finished_at < %%s"
            % ", ".join(["%s"] * len(part)), [*part, old]))
    touch(t, found)


def touch_batch(t: access.Tx, hall: str, tx_finished: Sequence[float],
                rating_txs: Iterable[str | None], tx_uids: Sequence[str]) -> None:
    """In the transaction storing a batch: the hall-months it changes, of its own old
    transactions and of the transactions of its ratings stored before it."""
    if tx_finished and min(tx_finished) < closable_before(time.time()):
        touch_finished(t, hall, tx_finished)
    earlier = {u for u in rating_txs if u is not None} - set(tx_uids)
    if earlier:
        touch_txs(t, earlier)


def forget(t: access.Tx, before: datetime.date) -> None:
    """The figures of every month before this day's (archive.py: their rows left the store)."""
    month = before.strftime("%Y-%m")
    t.x("DELETE FROM unit_months WHERE month < %s", (month,))
    t.x("DELETE FROM unit_month_state WHERE month < %s", (month,))


# --- reading: which kept months explain may use, and their sums --------------------------------

def usable(t: access.Tx, hall: str | None, months: Sequence[str]) -> list[str]:
    """Those of these months whose figures are kept and fresh for a unit: built for every
    hall, and none stale — of the unit's hall (a window, a staff number), or of any hall
    (hall None, a department: its code may be sent by several)."""
    if not months:
        return []
    marks = ", ".join(["%s"] * len(months))
    own, args = ("", []) if hall is None else (" AND o.hall = %s", [hall])
    rows = t.q("SELECT s.month FROM unit_month_state s WHERE s.hall = '' AND s.month IN (%s)"
               " AND NOT EXISTS (SELECT 1 FROM unit_month_state o WHERE o.month = s.month"
               " AND o.hall <> ''%s AND o.version <> o.fresh)" % (marks, own),
               [*months, *args])
    return sorted(r[0] for r in rows)


def kept(t: access.Tx, kind: str, unit: str, months: Sequence[str]) -> Figures:
    """The unit's kept figures summed over these months (every hall's)."""
    row = t.q(SUM_SQL.format(months=", ".join(["%s"] * len(months))), [kind, unit, *months])[0]
    return [int(v) for v in row]


# --- building: the rule job ---------------------------------------------------------------------

def buildable(store: Store, now: float, cal: workdays.Calendar,
              first: datetime.date | None = None) -> list[str]:
    """The months from `first` (default: the previous quarter's first day) closed at `now`
    (never later than the store's clock) and judged by the defaults sweep."""
    at = access.when(min(now, time.time()))
    rows = access.query(store, "SELECT through FROM store_sweeps WHERE job = 'defaults'")
    through = rows[0][0] if rows else None
    if through is None:
        return []
    if first is None:
        q = (at.month - 1) // 3 * 3 + 1          # this quarter's first month
        first = datetime.date(at.year - (q == 1), (q - 4) % 12 + 1, 1)
    out = []
    day = datetime.date(first.year, first.month, 1)
    while day < at.date():
        month = day.strftime("%Y-%m")
        if bounds(month)[1] > through or not closed(month, at, cal):
            break
        out.append(month)
        day = next_month(day)
    return out


def build(store: Store, now: float | None = None, calendar: workdays.Calendar | None = None,
          first: datetime.date | None = None) -> int:
    """Keep the figures of every buildable month (buildable) not kept yet, and build again
    those of stale hall-months. Returns how many unit rows were written."""
    now = time.time() if now is None else now
    cal = calendar or workdays.default_calendar()
    months = buildable(store, now, cal, first)
    if not months:
        return 0
    state: dict[str, dict[str, tuple[int, int]]] = {m: {} for m in months}
    for month, hall, version, fresh in access.query(
            store, "SELECT month, hall, version, fresh FROM unit_month_state WHERE month IN (%s)"
                   % ", ".join(["%s"] * len(months)), months):
        state[month][hall] = (version, fresh)
    written = 0
    for month in months:
        if "" not in state[month]:
            written += build_month(store, month)
        for hall, (version, fresh) in sorted(state[month].items()):
            if hall and version != fresh and "" in state[month]:
                written += build_month(store, month, hall)
    return written


def build_month(store: Store, month: str, hall: str | None = None) -> int:
    """Count one month's transactions (one hall's: hall) per unit and keep the figures, at the
    versions read before the count. Returns how many unit rows were written."""
    start, end = bounds(month)
    where, args = ("", [start, end]) if hall is None else (" AND t.hall = %s", [start, end, hall])
    sql = GROUP_SQL % _EACH[store.dialect].format(hall=where)
    with access.atomic(store, write=False) as t:
        versions = t.q("SELECT hall, version FROM unit_month_state WHERE month = %s AND hall <> ''"
                       + ("" if hall is None else " AND hall = %s"),
                       [month] if hall is None else [month, hall])
        if not t.sqlite:
            t.x("SET LOCAL jit = off")  # index probes, nothing JIT speeds up (scores.unit_counts)
        figures = roll_up(t.q(sql, args))
    rows = [(month, h, kind, unit, *f) for (h, kind, unit), f in sorted(figures.items())]
    with access.atomic(store) as t:
        if not t.sqlite:
            t.x("SELECT pg_advisory_xact_lock(%s)", (LOCK,))
        if hall is None:
            t.x("DELETE FROM unit_months WHERE month = %s", (month,))
        else:
            t.x("DELETE FROM unit_months WHERE month = %s AND hall = %s", (month, hall))
        if rows:
            t.xmany(ROW_SQL, rows)
        if versions:
            t.xmany(SAVED_SQL, [(month, h, v, v) for h, v in versions])
        if hall is None:
            t.x(SAVED_SQL, (month, "", 0, 0))
    log.info("unit figures of %s%s kept: %d units", month,
             "" if hall is None else " (hall %s)" % hall, len(rows))
    return len(rows)
