"""第十二条, 第十三条 in the store: every bad review opens a rectification case.

A case opens for each counted citizen rating of level 4 or 5 (不满意, 非常不满意) not removed by
an upheld appeal: in the transaction that stores its batch (`open_in_batch`), else by the
sweep that runs with the default ratings (`open_new`). It is due at the end of the 15th working
day after the day the hall received the rating (docs/rules.md: the store takes every bad review
as verified on receipt; an upheld appeal withdraws the case). The deadline moves only with a
reason and a later date. Follow-ups (回访) by phone, SMS or online self-rating are recorded with the
citizen's feedback; a real-name case cannot close without one (实名差评回访整改率 100%).
Every step is a row of case_events: the loop is auditable.

The rater's identity is decrypted only by `contact()` (for `hcp cases follow-up
--show-contact` with the identity key) and never logged.
"""
from __future__ import annotations

import datetime
import hashlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from haochaping.daemon.errors import HcpError
from haochaping.daemon.rules import deadlines, workdays
from haochaping.daemon.store import access, sweeps
from haochaping.daemon.store.access import Record, Row
from haochaping.protocol import levels

if TYPE_CHECKING:
    from haochaping.daemon.store.backends import Store

log = logging.getLogger(__name__)

CHANNELS = ("phone", "sms", "online")          # 人工回访, 短信, 网上自助评价
FEEDBACK = ("satisfied", "unsatisfied", "no-answer")
CHANNEL_NAMES = {"phone": "电话回访", "sms": "短信回访", "online": "网上自助评价"}
FEEDBACK_NAMES = {"satisfied": "满意", "unsatisfied": "不满意", "no-answer": "未联系上"}
MAX_TEXT = 2000
_CHUNK = 500  # ids per IN (…)

BAD_SQL = """
SELECT r.uid, r.tx_uid, r.hall, r.level, r.hall_received_at, t.rater_enc IS NOT NULL
FROM ratings r JOIN transactions t ON t.uid = r.tx_uid
WHERE r.outcome = 'counted' AND r.is_default = 0 AND r.level >= 4 %s
  AND NOT EXISTS (SELECT 1 FROM cases c WHERE c.rating_uid = r.uid)
  AND NOT EXISTS (SELECT 1 FROM appeals a WHERE a.rating_uid = r.uid AND a.status = 'upheld')
"""
# the hourly sweep (sweeps.py): bad reviews received since the last, or whose transaction was
# (+r.level: not the partial index of every bad review, so that SQLite starts from the
# transactions received since)
SINCE_SQL = ((BAD_SQL % "AND r.received_at >= %s") + "UNION"
             + (BAD_SQL % "AND t.received_at >= %s").replace("r.level >= 4", "+r.level >= 4"))
COLUMNS = ("id", "rating_uid", "tx_uid", "hall", "level", "real_name", "opened_at", "due",
           "status", "closed_at", "result")
CASE_SQL = "SELECT %s FROM cases" % ", ".join(COLUMNS)


def case_id(rating_uid: str) -> str:
    """The id of a bad review's new case: C + 16 hex digits of its SHA-256. (Stores before
    #19 gave 8, which two of a province's ~5 million bad reviews a year share a few thousand
    times: the second got no case. Those ids stay; a case is found by its rating_uid.)"""
    return "C" + hashlib.sha256(rating_uid.encode()).hexdigest()[:16]


def _case_of(t: access.Tx, rating_uid: str) -> str | None:
    rows = t.q("SELECT id FROM cases WHERE rating_uid = %s", (rating_uid,))
    return rows[0][0] if rows else None


def _due_dates(rows: Sequence[Row], cal: workdays.Calendar) -> list[str | None]:
    """Each bad review's deadline (ISO day); a batch's bad reviews share one or two days
    received, so the calendar is asked once per day. A review received at a time no calendar
    holds (a hall clock gone wild) gets None and a warning: no case, and no refused batch or
    failed sweep for the others; each sweep tries it again."""
    due_of: dict[datetime.date, str] = {}
    out: list[str | None] = []
    for uid, _tx, _hall, _level, received, _real in rows:
        try:
            day = access.when(received).date()
            if day not in due_of:
                due_of[day] = deadlines.rectification_deadline(access.when(received),
                                                           cal).day.isoformat()
            out.append(due_of[day])
        except Exception as e:  # nothing in the rules may keep a batch from being stored
            log.warning("rating %s received at %r: no rectification deadline (%s); its case"
                        " waits for the sweep", uid, received, e)
            out.append(None)
    return out


def _open(t: access.Tx, rows: Sequence[Row], dues: Sequence[str | None], now: float,
          fresh: bool = False) -> int:
    """Open the cases of rows (BAD_SQL's), due on dues. fresh: none of them can have a case yet
    (their ratings were inserted in this very transaction): each table takes one executemany."""
    new = [(case_id(uid), uid, tx_uid, hall, level, 1 if real_name else 0, now, due)
           for (uid, tx_uid, hall, level, _received, real_name), due in zip(rows, dues, strict=True)
           if due is not None]
    insert = ("INSERT INTO cases (id, rating_uid, tx_uid, hall, level, real_name, opened_at,"
              " due, status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'open')"
              " ON CONFLICT DO NOTHING")
    event = "INSERT INTO case_events (case_id, at, kind, due) VALUES (%s, %s, 'opened', %s)"
    if fresh:
        t.xmany(insert, new)
        t.xmany(event, [(c[0], now, c[7]) for c in new])
        return len(new)
    opened = 0
    for c in new:
        if t.x(insert, c):  # two sweeps at once: the first one opens it
            t.x(event, (c[0], now, c[7]))
            opened += 1
    return opened


def open_in_batch(t: access.Tx, hall: str, batch: str, now: float | None = None,
                  calendar: workdays.Calendar | None = None) -> int:
    """Open the cases of a batch's bad reviews inside the transaction that stores the batch
    (backends.store_batch): a bad review is never stored without its case. Only ratings this
    batch inserted carry its id, and no other transaction sees them yet, so none has a case.
    A review whose deadline cannot be computed is stored all the same (see _due_dates)."""
    rows = t.q(BAD_SQL % "AND r.hall = %s AND r.batch = %s", (hall, batch))
    if not rows:
        return 0
    try:
        cal = calendar or workdays.default_calendar()
    except HcpError as e:  # a broken calendar override file must not stop the halls' batches
        log.error("batch %s of hall %s: no calendar (%s); its cases wait for the sweep",
                  batch, hall, e)
        return 0
    opened = _open(t, rows, _due_dates(rows, cal), time.time() if now is None else now,
                   fresh=True)
    log.info("rectification (第十二条): %d case(s) opened for batch %s", opened, batch)
    return opened


def open_new(store: Store, now: float | None = None,
             calendar: workdays.Calendar | None = None) -> int:
    """The sweep: open a case for every bad review that has none (a batch stored while its
    deadlines could not be computed, a rating whose transaction came in a later batch). The
    hourly run reads the bad reviews received since the last (sweeps.py), once a day all."""
    now = time.time() if now is None else now
    cal = calendar or workdays.default_calendar()
    sweep = sweeps.begin(store, "cases")
    sql, args = _sweep_sql(sweep)
    # read first (no write lock: usually every bad review has its case), then insert
    opened = 0
    if access.query(store, sql, args):
        with access.atomic(store) as t:
            rows = t.q(sql, args)
            opened = _open(t, rows, _due_dates(rows, cal), now)
    with access.atomic(store) as t:
        sweeps.done(t, sweep)
    if opened:
        log.info("rectification (第十二条): %d case(s) opened", opened)
    return opened


def sweep_query(store: Store) -> tuple[str, tuple[float, ...]]:
    """The statement and parameters of the next sweep (for `hcp bench scale`'s plans)."""
    return _sweep_sql(sweeps.begin(store, "cases"))


def _sweep_sql(sweep: sweeps.Sweep) -> tuple[str, tuple[float, ...]]:
    if sweep.full:
        return BAD_SQL % "", ()
    return SINCE_SQL, (sweep.since, sweep.since)


def _row(r: Row, today: datetime.date) -> Record:
    c = dict(zip(COLUMNS, r, strict=True))
    c["real_name"] = bool(c["real_name"])
    c["level_name"] = levels.name(c["level"])
    c["overdue"] = c["status"] == "open" and c["due"] < today.isoformat()
    return c


def _today(now: float | None) -> datetime.date:
    return access.when(time.time() if now is None else now).date()


def list_cases(store: Store, status: str | None = None, hall: str | None = None,
               now: float | None = None) -> list[Record]:
    """Cases (dicts), oldest first; status: open | closed | withdrawn | overdue | None (all)."""
    where: list[str] = []
    args: list[object] = []
    if status in ("open", "closed", "withdrawn"):
        where.append("status = %s")
        args.append(status)
    elif status == "overdue":
        where.append("status = 'open' AND due < %s")
        args.append(_today(now).isoformat())
    elif status is not None:
        raise HcpError("status must be open, closed, withdrawn or overdue, not %r" % status)
    if hall:
        where.append("hall = %s")
        args.append(hall)
    sql = CASE_SQL + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY opened_at, id"
    today = _today(now)
    rows = [_row(r, today) for r in access.query(store, sql, tuple(args))]
    for c in rows:
        c["follow_ups"] = 0
    if rows:
        # only the listed cases' events (index case_events_case), not every case's
        ids = [c["id"] for c in rows]
        counts: dict[str, int] = {}
        for i in range(0, len(ids), _CHUNK):
            part = ids[i:i + _CHUNK]
            counts.update(access.query(
                store, "SELECT case_id, COUNT(*) FROM case_events WHERE kind = 'follow-up'"
                       " AND case_id IN (%s) GROUP BY case_id" % ", ".join(["%s"] * len(part)),
                part))
        for c in rows:
            c["follow_ups"] = counts.get(c["id"], 0)
    return rows


def get(store: Store, cid: str, now: float | None = None) -> Record:
    rows = access.query(store, CASE_SQL + " WHERE id = %s", (cid,))
    if not rows:
        raise HcpError("no case %s (`hcp cases list`)" % cid)
    return _row(rows[0], _today(now))


def events(store: Store, cid: str) -> list[Record]:
    return [dict(zip(("at", "kind", "channel", "feedback", "note", "due"), r, strict=True))
            for r in access.query(store, "SELECT at, kind, channel, feedback, note, due FROM"
                                         " case_events WHERE case_id = %s ORDER BY at", (cid,))]


def _text(value: str | None, what: str, required: bool = True) -> str:
    value = (value or "").strip()
    if required and not value:
        raise HcpError("%s is required" % what)
    if len(value) > MAX_TEXT:
        raise HcpError("%s: at most %d characters" % (what, MAX_TEXT))
    return value


def _open_case(t: access.Tx, cid: str) -> None:
    rows = t.q("SELECT status FROM cases WHERE id = %s", (cid,))
    if not rows:
        raise HcpError("no case %s (`hcp cases list`)" % cid)
    if rows[0][0] != "open":
        raise HcpError("case %s is %s already" % (cid, rows[0][0]))


def follow_up(store: Store, cid: str, channel: str, feedback: str, note: str = "",
              now: float | None = None) -> None:
    """第十二条 回访: record a follow-up and the citizen's feedback."""
    if channel not in CHANNELS:
        raise HcpError("channel must be one of %s, not %r" % (", ".join(CHANNELS), channel))
    if feedback not in FEEDBACK:
        raise HcpError("feedback must be one of %s, not %r" % (", ".join(FEEDBACK), feedback))
    note = _text(note, "note", required=False)
    now = time.time() if now is None else now
    with access.atomic(store) as t:
        if not t.q("SELECT 1 FROM cases WHERE id = %s", (cid,)):
            raise HcpError("no case %s (`hcp cases list`)" % cid)
        t.x("INSERT INTO case_events (case_id, at, kind, channel, feedback, note) VALUES"
            " (%s, %s, 'follow-up', %s, %s, %s)", (cid, now, channel, feedback, note))


def extend(store: Store, cid: str, new_day: datetime.date, reason: str,
           now: float | None = None) -> datetime.date:
    """第十二条: a new deadline, only with a reason and a later day than the current one."""
    reason = _text(reason, "the reason for the extension (第十二条)")
    now = time.time() if now is None else now
    with access.atomic(store) as t:
        _open_case(t, cid)
        due = datetime.date.fromisoformat(t.q("SELECT due FROM cases WHERE id = %s", (cid,))[0][0])
        current = workdays.Deadline(due, 0, due, (), ())  # its day: all extend_rectification needs
        new_end = deadlines.extend_rectification(current, new_day, reason)
        t.x("UPDATE cases SET due = %s WHERE id = %s", (new_end.date().isoformat(), cid))
        t.x("INSERT INTO case_events (case_id, at, kind, note, due) VALUES"
            " (%s, %s, 'extended', %s, %s)", (cid, now, reason, new_end.date().isoformat()))
    return new_end.date()


def close(store: Store, cid: str, result: str, now: float | None = None) -> None:
    """The rectification is done and the citizen told: close with its result. A real-name case
    needs a recorded follow-up first (第十二条: 实名差评回访整改率 100%)."""
    result = _text(result, "the result of the rectification")
    now = time.time() if now is None else now
    with access.atomic(store) as t:
        _open_case(t, cid)
        real = t.q("SELECT real_name FROM cases WHERE id = %s", (cid,))[0][0]
        if real and not t.q("SELECT 1 FROM case_events WHERE case_id = %s AND kind ="
                            " 'follow-up'", (cid,)):
            raise HcpError("case %s is a real-name bad review: record the follow-up with the"
                           " citizen first (`hcp cases follow-up %s --channel phone --feedback"
                           " …`, 第十二条)" % (cid, cid))
        t.x("UPDATE cases SET status = 'closed', closed_at = %s, result = %s WHERE id = %s",
            (now, result, cid))
        t.x("INSERT INTO case_events (case_id, at, kind, note) VALUES (%s, %s, 'closed', %s)",
            (cid, now, result))


def withdraw(t: access.Tx, rating_uid: str, appeal_id: str, now: float) -> None:
    """An upheld appeal (第十条) withdraws the bad review's case, if open (inside its tx)."""
    cid = _case_of(t, rating_uid)
    if cid is not None and t.x("UPDATE cases SET status = 'withdrawn', closed_at = %s, result = %s"
           " WHERE id = %s AND status = 'open'",
           (now, "appeal %s upheld (第十条)" % appeal_id, cid)):
        t.x("INSERT INTO case_events (case_id, at, kind, note) VALUES (%s, %s, 'withdrawn', %s)",
            (cid, now, "appeal %s upheld" % appeal_id))


def withdraw_late(t: access.Tx, rating_uids: Sequence[str], now: float) -> None:
    """Ratings found late (第七条: received after their transaction's 5 working days) do not
    count, so their cases, if open, are withdrawn (inside the caller's transaction). Only a
    store that opened them before it applied the rule has any."""
    note = "rating received after its transaction's 5 working days (第七条): it does not count"
    for uid in rating_uids:
        cid = _case_of(t, uid)
        if cid is not None and t.x("UPDATE cases SET status = 'withdrawn', closed_at = %s,"
                                   " result = %s WHERE id = %s AND status = 'open'",
                                   (now, note, cid)):
            t.x("INSERT INTO case_events (case_id, at, kind, note) VALUES"
                " (%s, %s, 'withdrawn', %s)", (cid, now, note))


def contact(store: Store, cid: str) -> dict[str, Any]:
    """The rater's identity for an authorised follow-up (needs the store's identity key). The
    caller shows it to the person making the call and never logs it."""
    c = get(store, cid)
    identity = store.rater(c["tx_uid"])
    if identity is None:
        raise HcpError("case %s is anonymous: no contact to follow up with (record an online"
                       " self-rating follow-up instead)" % cid)
    return identity
