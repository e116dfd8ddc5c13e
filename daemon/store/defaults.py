"""第七条 in the store: a transaction with no counted rating by the end of the 5th working day
after the day it finished gets 基本满意, flagged default (`hcp store run-defaults`, and on a
schedule inside `hcp store serve`); a citizen's rating received after that deadline is kept, as
`late`, and does not count.

The default is an ordinary row of `ratings` with is_default=1, outcome counted, and the id
`HALL:default:tx:N` (one per transaction, whatever runs the job and however often: the id is the
primary key and the insert is ON CONFLICT DO NOTHING). Its rated_at is the deadline itself.
A citizen's rating that the hall stored in time but that reaches the store after the default
(an outage of the hall's link) wins over it in the scores (scores.py): the hall's time decides
(docs/rules.md decision 8).

A late rating (docs/rules.md decision 22): a counted citizen rating received after its
transaction's deadline gets the outcome `late` (the hall counted it, the store found it too
late), so that every query of counted ratings (defaults, scores, cases, appeals, reports) leaves
it out, and the transaction is rated by default as if unrated. "Received" is the hall's time
(decision 8), but never later than the store's own time of receipt. The store decides it in the
transaction that stores a batch (late_in_batch, from backends.store_batch: whichever of rating
and transaction comes second), and the job's sweep (mark_late) catches what a batch could not
judge (no calendar) and what a store stored before this rule.
"""
from __future__ import annotations

import datetime
import logging
import time
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from haochaping.daemon import batches
from haochaping.daemon.errors import HcpError
from haochaping.daemon.rules import deadlines, workdays
from haochaping.daemon.store import access, cases, sweeps, unit_months
from haochaping.protocol import levels

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from haochaping.daemon.batches import Columns
    from haochaping.daemon.store.backends import Store

log = logging.getLogger(__name__)

# 2020-07-01 00:00 Asia/Shanghai: 好差评 reporting starts with 2020 Q3 (第十一条). A transaction
# that finished earlier is a clock error in the hall (e.g. 1970), not a transaction to rate.
EPOCH = 1593532800.0
BATCH = "store:defaults"
_MIN_WAIT_S = 5 * 86400   # 5 working days are at least 5 calendar days: a cheap first filter
LATE = "late"             # a rating's outcome: received after its transaction's 第七条 deadline
LATE_LOCK = 7406151       # PostgreSQL advisory lock: batches holding the two halves of a late pair
_SKEW_S = 86400           # a batch stored alongside this one may carry a slightly later time
_CHUNK = 500              # ids per IN (…)

UNRATED_SQL = """
SELECT t.uid, t.hall, t.finished_at FROM transactions t
WHERE t.finished_at >= %s AND t.finished_at <= %s
  AND NOT EXISTS (SELECT 1 FROM ratings r WHERE r.tx_uid = t.uid AND r.outcome = 'counted')
ORDER BY t.finished_at, t.uid
"""
# the hourly sweep (sweeps.py): transactions whose deadline may have passed since the last
# sweep (finished from its mark on), those received since (a hall's link was down), and those
# whose rating was found late since; the full sweep (UNRATED_SQL) reads every one. (+column: no
# index on it, so that SQLite drives each branch from its own index, not finished_at's)
_NOT_RATED = ("NOT EXISTS (SELECT 1 FROM ratings r WHERE r.tx_uid = t.uid"
               " AND r.outcome = 'counted')")
SINCE_SQL = """
SELECT t.uid, t.hall, t.finished_at FROM transactions t
WHERE t.finished_at >= %%s AND t.finished_at <= %%s AND %(nr)s
UNION
SELECT t.uid, t.hall, t.finished_at FROM transactions t
WHERE t.received_at >= %%s AND +t.finished_at >= %%s AND +t.finished_at <= %%s AND %(nr)s
UNION
SELECT t.uid, t.hall, t.finished_at FROM ratings l JOIN transactions t ON t.uid = l.tx_uid
WHERE l.received_at >= %%s AND l.outcome = 'late' AND +t.finished_at >= %%s
  AND +t.finished_at <= %%s AND %(nr)s
ORDER BY 3, 1
""" % {"nr": _NOT_RATED}
# the defaults, written set-based (write_defaults): one statement per WRITE_CHUNK of them, the
# columns they share given once. PostgreSQL: one array per column (unnest); SQLite: a multi-row
# VALUES. ON CONFLICT DO NOTHING: a default already there (another run's) is not written twice.
_COLS = ("INSERT INTO ratings (uid, hall, terminal, seq, level, outcome, tx_uid, rated_at,"
         " hall_received_at, is_default, batch, received_at)\n")
INSERT_PG_SQL = _COLS + """SELECT d.uid, d.hall, '', 0, %s, 'counted', d.tx, d.at, d.at, 1, %s, %s
FROM unnest(%s::text[], %s::text[], %s::text[], %s::float8[]) AS d(uid, hall, tx, at)
ON CONFLICT DO NOTHING"""
INSERT_SQLITE_ROW = "(%s, %s, '', 0, %s, 'counted', %s, %s, %s, 1, %s, %s)"
WRITE_CHUNK = 2000        # defaults per statement (SQLite: 8 parameters each, 16,000 < 32,766)
# (default uid, hall, transaction uid, deadline): one default to write
Due = tuple[str, str, str, float]

# counted citizen ratings of some transactions, with the times that decide whether they are late
STORED_SQL = """
SELECT r.uid, r.tx_uid, r.hall_received_at, r.received_at, t.finished_at FROM ratings r
JOIN transactions t ON t.uid = r.tx_uid
WHERE r.tx_uid IN (%s) AND r.outcome = 'counted' AND r.is_default = 0
"""
# the sweep: every counted citizen rating received more than 5 days after its transaction
MAYBE_LATE_SQL = """
SELECT r.uid, r.tx_uid, r.hall_received_at, r.received_at, t.finished_at FROM ratings r
JOIN transactions t ON t.uid = r.tx_uid
WHERE r.outcome = 'counted' AND r.is_default = 0 AND t.finished_at >= %s
  AND r.hall_received_at > t.finished_at + %s AND r.received_at > t.finished_at + %s
"""
# the hourly sweep: only ratings received since the last sweep, or of transactions received since
_MAYBE_LATE = MAYBE_LATE_SQL.replace("t.finished_at >= %s", "+t.finished_at >= %s")
MAYBE_LATE_SINCE_SQL = (_MAYBE_LATE + "  AND r.received_at >= %s\nUNION"
                        + _MAYBE_LATE + "  AND t.received_at >= %s\n")
MARK_SQL = "UPDATE ratings SET outcome = 'late' WHERE uid = %s AND outcome = 'counted'"

# a batch's columns (batches.FIELDS order)
_TX_FINISHED = batches.FIELDS["transaction"].index("finished_at")
_R_OUTCOME, _R_TX, _R_RECEIVED, _R_DEFAULT = (batches.FIELDS["rating"].index(f) for f in
                                              ("outcome", "transaction", "received_at",
                                               "default"))
# (rating uid, tx uid, hall's time of receipt, store's time of receipt, tx finished_at)
Stored = tuple[str, str, float, float, float]


class JobsRun(TypedDict):
    """run_defaults() (and jobs.run_once, which adds cases_opened): what was done."""
    given: int
    checked: int
    waiting: int
    late: int                           # ratings found late by the sweep (mark_late)
    fallback_years: list[int]
    warning: NotRequired[str]           # some deadline was counted Monday-Friday
    cases_opened: NotRequired[int]
    unit_months: NotRequired[int]       # unit figures of closed months kept (jobs.run_once)


def default_uid(tx_uid: str) -> str:
    """H01:tx:17 → H01:default:tx:17"""
    hall, _, rest = tx_uid.partition(":")
    return "%s:default:%s" % (hall, rest)


def run_defaults(store: Store, now: float | None = None,
                 calendar: workdays.Calendar | None = None) -> JobsRun:
    """Mark late ratings (mark_late), then give every overdue unrated transaction its default
    rating. Returns what was done: {"given": n, "checked": n, "waiting": n, "late": n,
    "fallback_years": [...]}. Idempotent. The hourly run reads only what changed since the
    last (sweeps.py): the transactions from its mark (the earliest it left waiting) to 5 days
    ago, and those received or found late since; once a day it reads them all."""
    now = time.time() if now is None else now
    cal = calendar or workdays.default_calendar()
    sweep = sweeps.begin(store, "defaults")
    at_now = access.when(now)
    given = checked = waiting = 0
    due_by_day: dict[datetime.date, workdays.Deadline] = {}
    # late ratings first: the transactions they were bound to are unrated
    late, fallback = mark_late(store, now, cal, due_by_day, since=sweep.since)
    due = []
    old_months: set[tuple[str, str]] = set()    # (hall, month) of the due, for unit_months
    closable = unit_months.closable_before(time.time())
    upto = now - _MIN_WAIT_S
    mark = upto        # every transaction finished before it is judged once this sweep is done
    sql, args = _sweep_sql(sweep, upto)
    # read without the write lock (the halls' batches go on), then write only what is due;
    # a citizen rating committed in between is no harm: it wins in the scores (scores.py)
    for uid, hall, finished in access.query(store, sql, args):
        checked += 1
        day = access.when(finished).date()
        if day not in due_by_day:
            due_by_day[day] = deadlines.default_rating_deadline(day, cal)
        d = due_by_day[day]
        fallback.update(d.fallback_years)
        if not d.passed(at_now):
            waiting += 1
            mark = min(mark, finished)
            continue
        due.append((default_uid(uid), hall, uid, d.at.timestamp()))
        if finished < closable:
            old_months.add((hall, unit_months.month_of(finished)))
    with access.atomic(store) as t:
        given = write_defaults(t, due, now)
        # a closed month's figures count these as defaults already; kept honest all the same
        unit_months.touch(t, {(hall, month) for hall, month in old_months})
        sweeps.done(t, sweep, mark)
    if given:
        log.info("default ratings (第七条): %d given, %d transactions still within their 5 "
                 "working days", given, waiting)
    result: JobsRun = {"given": given, "checked": checked, "waiting": waiting, "late": late,
                       "fallback_years": sorted(fallback)}
    if fallback:
        result["warning"] = workdays.FALLBACK_WARNING % ", ".join(map(str, sorted(fallback)))
    return result


def write_defaults(t: access.Tx, due: Sequence[Due], now: float) -> int:
    """Write these defaults (基本满意, rated at their deadline, received now) in statements of
    WRITE_CHUNK rows, in order of their ids (their index pages in order), in the caller's
    transaction; returns how many were new. A default already in the store is left as it is."""
    rows = sorted(due)
    given = 0
    for i in range(0, len(rows), WRITE_CHUNK):
        given += _write_chunk(t, rows[i:i + WRITE_CHUNK], now)
    return given


def _write_chunk(t: access.Tx, rows: Sequence[Due], now: float) -> int:
    if t.sqlite:
        sql = _COLS + "VALUES " + ",\n".join([INSERT_SQLITE_ROW] * len(rows)) \
            + " ON CONFLICT DO NOTHING"
        return t.x(sql, [v for uid, hall, tx, at in rows
                         for v in (uid, hall, levels.DEFAULT_LEVEL, tx, at, at, BATCH, now)])
    # each column as one array literal (backends._pg_array: psycopg's list dumper is pure
    # Python, a third of the write at 3,300 defaults); backends imports this module
    from haochaping.daemon.store.backends import _pg_array
    cols = [_pg_array(list(col), typ) for col, typ in zip(
        zip(*rows, strict=True), ("text", "text", "text", "float8"), strict=True)]
    return t.x(INSERT_PG_SQL, (levels.DEFAULT_LEVEL, BATCH, now, *cols))


def sweep_query(store: Store, now: float) -> tuple[str, tuple[float, ...]]:
    """The statement and parameters the next hourly sweep of unrated transactions would run
    (for `hcp bench scale`'s plans)."""
    return _sweep_sql(sweeps.begin(store, "defaults"), now - _MIN_WAIT_S)


def _sweep_sql(sweep: sweeps.Sweep, upto: float) -> tuple[str, tuple[float, ...]]:
    if sweep.full:
        return UNRATED_SQL, (EPOCH, upto)
    start = EPOCH if sweep.through is None else max(EPOCH, sweep.through)
    return SINCE_SQL, (start, upto, sweep.since, EPOCH, upto, sweep.since, EPOCH, upto)


# --- late ratings ------------------------------------------------------------------------------

def late_in_batch(t: access.Tx, parsed: Mapping[str, Columns], now: float,
                  calendar: workdays.Calendar | None = None) -> int:
    """In the transaction that stores a batch (backends.store_batch), once its records are in:
    mark `late` every counted citizen rating that this batch completes, i.e. its ratings (their
    transaction stored before, or in this batch) and the ratings stored before for its
    transactions. Returns how many were marked. A rating whose transaction is still missing is
    judged by the batch that brings it.

    Cheap in the usual case: a rating pressed minutes after its transaction, both in the batch,
    is cleared by the batch's own columns without a query; the store looks up only ratings
    whose transaction came earlier, and earlier ratings only of transactions over 4 days old
    (none, when a hall forwards as it goes). PostgreSQL stores batches side by side: a batch
    holding one half of a pair whose other half may be in a batch not yet committed takes
    LATE_LOCK, held until it commits, before it looks (it has an old transaction) or before
    it looks again (it did not find a rating's transaction), so that of two such batches the
    second sees the first."""
    txs = parsed.get("transaction")
    tx_uids: Sequence[str] = _col(txs, 0) if txs and txs[0] else []
    tx_finished: Sequence[float] = _col(txs, _TX_FINISHED) if tx_uids and txs else []
    look: set[str] = set()          # transactions whose counted ratings are judged from the db
    missing: set[str] = set()       # transactions of this batch's ratings, not in this batch
    rs = parsed.get("rating")
    if rs and rs[0]:
        # set and min/max run in C: a batch of 10,000 records takes well under a millisecond
        # unless a rating was received more than 5 days after some transaction of the batch
        missing = set(_col(rs, _R_TX)) - set(tx_uids)
        missing.discard(None)  # a rating bound to no transaction
        received = _col(rs, _R_RECEIVED)
        if tx_uids and min(max(received), now) > min(tx_finished) + _MIN_WAIT_S:
            finished = dict(zip(tx_uids, tx_finished, strict=True))
            for outcome, tx, got, default in zip(_col(rs, _R_OUTCOME), _col(rs, _R_TX),
                                                 received, _col(rs, _R_DEFAULT), strict=True):
                f = finished.get(tx) if outcome == "counted" and not default else None
                if f is not None and min(got, now) > f + _MIN_WAIT_S:  # perhaps late
                    look.add(tx)
    # a rating stored before counts as received no later than the store got it, so only a
    # transaction whose 5 working days may be over can have a late one waiting
    old: set[str] = set()
    if tx_uids and min(tx_finished) + _MIN_WAIT_S < now + _SKEW_S:
        old = {tx for tx, f in zip(tx_uids, tx_finished, strict=True)
               if f + _MIN_WAIT_S < now + _SKEW_S}
    serialise = not t.sqlite        # SQLite: one writer at a time, nothing to wait for
    locked = False
    if old and serialise:
        t.x("SELECT pg_advisory_xact_lock(%s)", (LATE_LOCK,))
        locked = True
    rows = _stored(t, look | old | missing)
    missing -= {r[1] for r in rows}
    if missing and serialise and not locked:
        # their transactions may be in a batch being stored right now: wait for it, look again
        t.x("SELECT pg_advisory_xact_lock(%s)", (LATE_LOCK,))
        rows += _stored(t, missing)
    if not rows:
        return _mark(t, [], now)
    try:
        cal = calendar or workdays.default_calendar()
    except HcpError as e:   # a broken calendar override file must not stop the halls' batches
        log.error("no calendar (%s): late ratings (第七条) wait for the job's sweep", e)
        return _mark(t, [], now)
    late, _fallback = _judge(rows, cal, {})
    return _mark(t, late, now)


def mark_late(store: Store, now: float | None = None,
              calendar: workdays.Calendar | None = None,
              due_by_day: dict[datetime.date, workdays.Deadline] | None = None,
              since: float = 0.0) -> tuple[int, set[int]]:
    """The sweep (run by run_defaults): mark `late` every counted citizen rating received after
    its transaction's deadline that no batch marked (stored before this rule, or while the
    calendar could not be read). since: only ratings, or ratings of transactions, the store
    received from then on (0: all). Returns (how many, the years counted Monday-Friday)."""
    now = time.time() if now is None else now
    cal = calendar or workdays.default_calendar()
    sql: str = MAYBE_LATE_SQL
    args: tuple[float, ...] = (EPOCH, _MIN_WAIT_S, _MIN_WAIT_S)
    if since > 0:
        sql, args = MAYBE_LATE_SINCE_SQL, args + (since,) + args + (since,)
    rows: list[Stored] = [tuple(r) for r in access.query(store, sql, args)]
    if not rows:
        return 0, set()
    late, fallback = _judge(rows, cal, {} if due_by_day is None else due_by_day)
    if not late:
        return 0, fallback
    found = set(late)
    with access.atomic(store) as t:
        n = _mark(t, late, now)
        unit_months.touch(t, ((tx.partition(":")[0], unit_months.month_of(finished))
                              for uid, tx, _h, _s, finished in rows if uid in found))
    return n, fallback


def _col(cols: Columns, i: int) -> list[Any]:
    """One column of a batch's parsed records (parse_batch: only the raters are ever None)."""
    col = cols[i]
    assert col is not None
    return col


def _stored(t: access.Tx, txs: Iterable[str]) -> list[Stored]:
    """The counted citizen ratings of these transactions (those stored), with their times."""
    keys = sorted(txs)
    out: list[Stored] = []
    for i in range(0, len(keys), _CHUNK):
        part = keys[i:i + _CHUNK]
        out += [tuple(r) for r in t.q(STORED_SQL % ", ".join(["%s"] * len(part)), part)]
    return out


def _judge(rows: Sequence[Stored], cal: workdays.Calendar,
           due_by_day: dict[datetime.date, workdays.Deadline]) -> tuple[list[str], set[int]]:
    """The ids of the late ratings among rows, and the years counted Monday-Friday. Received:
    the hall's time, but no later than the store's. A rating whose deadline cannot be computed
    (a transaction's time no calendar holds) is left as it is, with a warning."""
    late: list[str] = []
    fallback: set[int] = set()
    for uid, _tx, hall_received, store_received, finished in rows:
        received = min(hall_received, store_received)
        if finished < EPOCH or received <= finished + _MIN_WAIT_S:
            continue
        try:
            day = access.when(finished).date()
            if day not in due_by_day:
                due_by_day[day] = deadlines.default_rating_deadline(day, cal)
            d = due_by_day[day]
            if d.passed(access.when(received)):
                late.append(uid)
            fallback.update(d.fallback_years)
        except Exception as e:  # nothing in the rules may keep a batch from being stored
            log.warning("rating %s: cannot tell whether it is late (%s); the job tries again",
                        uid, e)
    return sorted(set(late)), fallback


def _mark(t: access.Tx, uids: Sequence[str], now: float) -> int:
    """Give these ratings the outcome `late` (those still counted), and withdraw their
    rectification cases if any were opened (a store before this rule). Returns how many."""
    marked = [uid for uid in uids if t.x(MARK_SQL, (uid,))]
    if marked:
        cases.withdraw_late(t, marked, now)
        log.info("late ratings (第七条): %d received after their transaction's 5 working days:"
                 " kept as late, not counted; the transaction is rated by default", len(marked))
    return len(marked)
