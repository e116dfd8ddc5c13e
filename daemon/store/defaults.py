"""第七条 in the store: a transaction with no counted rating by the end of the 5th working day
after the day it finished gets 基本满意, flagged default (`hcp store run-defaults`, and on a
schedule inside `hcp store serve`).

The default is an ordinary row of `ratings` with is_default=1, outcome counted, and the id
`HALL:default:tx:N` (one per transaction, whatever runs the job and however often: the id is the
primary key and the insert is ON CONFLICT DO NOTHING). Its rated_at is the deadline itself.
A citizen's rating that the hall stored in time but that reaches the store after the default
(an outage of the hall's link) wins over it in the scores (scores.py): the hall's time decides
(docs/rules.md decision 8).
"""
from __future__ import annotations

import datetime
import logging
import time
from typing import TYPE_CHECKING, NotRequired, TypedDict

from haochaping.daemon.rules import deadlines, workdays
from haochaping.daemon.store import access
from haochaping.protocol import levels

if TYPE_CHECKING:
    from haochaping.daemon.store.backends import Store

log = logging.getLogger(__name__)

# 2020-07-01 00:00 Asia/Shanghai: 好差评 reporting starts with 2020 Q3 (第十一条). A transaction
# that finished earlier is a clock error in the hall (e.g. 1970), not a transaction to rate.
EPOCH = 1593532800.0
BATCH = "store:defaults"
_MIN_WAIT_S = 5 * 86400   # 5 working days are at least 5 calendar days: a cheap first filter

UNRATED_SQL = """
SELECT t.uid, t.hall, t.finished_at FROM transactions t
WHERE t.finished_at >= %s AND t.finished_at <= %s
  AND NOT EXISTS (SELECT 1 FROM ratings r WHERE r.tx_uid = t.uid AND r.outcome = 'counted')
ORDER BY t.finished_at, t.uid
"""
INSERT_SQL = """
INSERT INTO ratings (uid, hall, terminal, seq, level, outcome, tx_uid, rated_at,
                     hall_received_at, is_default, batch, received_at)
VALUES (%s, %s, '', 0, %s, 'counted', %s, %s, %s, 1, %s, %s) ON CONFLICT DO NOTHING
"""


class JobsRun(TypedDict):
    """run_defaults() (and jobs.run_once, which adds cases_opened): what was done."""
    given: int
    checked: int
    waiting: int
    fallback_years: list[int]
    warning: NotRequired[str]           # some deadline was counted Monday-Friday
    cases_opened: NotRequired[int]


def default_uid(tx_uid: str) -> str:
    """H01:tx:17 → H01:default:tx:17"""
    hall, _, rest = tx_uid.partition(":")
    return "%s:default:%s" % (hall, rest)


def run_defaults(store: Store, now: float | None = None,
                 calendar: workdays.Calendar | None = None) -> JobsRun:
    """Give every overdue unrated transaction its default rating. Returns what was done:
    {"given": n, "checked": n, "waiting": n, "fallback_years": [...]}. Idempotent."""
    now = time.time() if now is None else now
    cal = calendar or workdays.default_calendar()
    at_now = access.when(now)
    given = checked = waiting = 0
    fallback: set[int] = set()
    due_by_day: dict[datetime.date, workdays.Deadline] = {}
    due = []
    # read without the write lock (the halls' batches go on), then write only what is due;
    # a citizen rating committed in between is no harm: it wins in the scores (scores.py)
    for uid, hall, finished in access.query(store, UNRATED_SQL, (EPOCH, now - _MIN_WAIT_S)):
        checked += 1
        day = access.when(finished).date()
        if day not in due_by_day:
            due_by_day[day] = deadlines.default_rating_deadline(day, cal)
        d = due_by_day[day]
        fallback.update(d.fallback_years)
        if not d.passed(at_now):
            waiting += 1
            continue
        at = d.at.timestamp()
        due.append((default_uid(uid), hall, levels.DEFAULT_LEVEL, uid, at, at, BATCH, now))
    if due:
        with access.atomic(store) as t:
            for row in due:
                given += t.x(INSERT_SQL, row)
    if given:
        log.info("default ratings (第七条): %d given, %d transactions still within their 5 "
                 "working days", given, waiting)
    result: JobsRun = {"given": given, "checked": checked, "waiting": waiting,
              "fallback_years": sorted(fallback)}
    if fallback:
        result["warning"] = workdays.FALLBACK_WARNING % ", ".join(map(str, sorted(fallback)))
    return result
