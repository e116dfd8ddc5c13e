"""第十条 in the store: a rated unit appeals a bad review in writing within 3 working days of the
day the hall received it; the management office decides within 10 working days of the filing.
An upheld appeal removes the rating from scoring (scores.py) and withdraws its rectification
case; the rating itself stays, marked by its appeal, for audit. Late filings are refused with
the deadline in the message (no appeal in time means no objection).

Who may appeal: the rating's unit, i.e. its transaction's hall id or department code. Over
HTTP (POST /v1/appeals) a unit authenticates with a bearer token of its own (`hcp appeal
add-unit`); the store keeps only the token's SHA-256.
"""
from __future__ import annotations

import datetime
import hashlib
import logging
import secrets
import time
from typing import TYPE_CHECKING

from haochaping.daemon.errors import HcpError
from haochaping.daemon.rules import deadlines, workdays
from haochaping.daemon.store import access, cases, unit_months
from haochaping.daemon.store.access import Params, Record, Row
from haochaping.protocol import levels

if TYPE_CHECKING:
    from haochaping.daemon.store.backends import Store

log = logging.getLogger(__name__)

MAX_REASON = 2000
COLUMNS = ("id", "rating_uid", "unit", "reason", "filed_at", "filing_deadline", "decision_due",
           "via", "status", "decided_at", "decision_reason")
APPEAL_SQL = "SELECT %s FROM appeals" % ", ".join(COLUMNS)


class AppealRefused(HcpError):
    """The appeal cannot be filed or decided; `status` is the HTTP answer for the API."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def _reason(text: str | None, what: str) -> str:
    text = (text or "").strip()
    if not text:
        raise AppealRefused("%s is required (第十条: a written appeal)" % what)
    if len(text) > MAX_REASON:
        raise AppealRefused("%s: at most %d characters" % (what, MAX_REASON))
    return text


def file(store: Store, rating_uid: str, unit: str, reason: str, now: float | None = None,
         via: str = "cli", calendar: workdays.Calendar | None = None) -> Record:
    """File an appeal; return it (a dict). Raises AppealRefused with the reason."""
    reason = _reason(reason, "the reason")
    now = time.time() if now is None else now
    cal = calendar or workdays.default_calendar()
    with access.atomic(store) as t:
        rows = t.q("SELECT r.level, r.outcome, r.is_default, r.hall_received_at, t.hall,"
                   " t.department FROM ratings r LEFT JOIN transactions t ON t.uid = r.tx_uid"
                   " WHERE r.uid = %s", (rating_uid,))
        if not rows:
            raise AppealRefused("no rating %s in the store" % rating_uid, 404)
        level, outcome, is_default, received, hall, department = rows[0]
        if hall is None or unit not in (hall, department):
            raise AppealRefused("rating %s is not a rating of unit %s: only the rated unit (its"
                                " hall or department) may appeal" % (rating_uid, unit), 403)
        if outcome != "counted" or is_default or not levels.is_bad(level):
            raise AppealRefused("rating %s is not a counted bad review (it is %s, %s): only"
                                " 不满意/非常不满意 are appealed (第十条)"
                                % (rating_uid, levels.name(level),
                                   "default" if is_default else outcome))
        try:
            filing = deadlines.check_appeal_in_time(access.when(received), access.when(now), cal)
        except HcpError as e:
            raise AppealRefused(str(e)) from None
        old = t.q("SELECT id, status FROM appeals WHERE rating_uid = %s", (rating_uid,))
        if old:
            raise AppealRefused("rating %s was appealed already: appeal %s (%s)"
                                % (rating_uid, old[0][0], old[0][1]), 409)
        aid = "A" + secrets.token_hex(8)  # 64 bits: no collision at a province's ~240,000 a year
        due = deadlines.appeal_decision_deadline(access.when(now), cal).day.isoformat()
        t.x("INSERT INTO appeals (id, rating_uid, unit, reason, filed_at, filing_deadline,"
            " decision_due, via, status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'pending')",
            (aid, rating_uid, unit, reason, now, filing.at.timestamp(), due, via))
    log.info("appeal %s filed by unit %s via %s", aid, unit, via)
    return get(store, aid)


def decide(store: Store, aid: str, upheld: bool, reason: str,
           now: float | None = None) -> Record:
    """The office's decision. Upheld: the rating leaves scoring, its case is withdrawn."""
    reason = _reason(reason, "the decision's reason")
    now = time.time() if now is None else now
    with access.atomic(store) as t:
        rows = t.q("SELECT status, rating_uid FROM appeals WHERE id = %s", (aid,))
        if not rows:
            raise AppealRefused("no appeal %s (`hcp appeal list`)" % aid, 404)
        if rows[0][0] != "pending":
            raise AppealRefused("appeal %s was decided already (%s)" % (aid, rows[0][0]), 409)
        status = "upheld" if upheld else "rejected"
        t.x("UPDATE appeals SET status = %s, decided_at = %s, decision_reason = %s WHERE id = %s",
            (status, now, reason, aid))
        if upheld:
            cases.withdraw(t, rows[0][1], aid, now)
            unit_months.touch(t, ((hall, unit_months.month_of(finished)) for hall, finished
                                  in t.q("SELECT t.hall, t.finished_at FROM ratings r JOIN"
                                         " transactions t ON t.uid = r.tx_uid WHERE r.uid = %s",
                                         (rows[0][1],))))
    log.info("appeal %s %s", aid, status)
    return get(store, aid)


def _row(r: Row, today: datetime.date) -> Record:
    a = dict(zip(COLUMNS, r, strict=True))
    a["overdue"] = a["status"] == "pending" and a["decision_due"] < today.isoformat()
    return a


def get(store: Store, aid: str) -> Record:
    rows = access.query(store, APPEAL_SQL + " WHERE id = %s", (aid,))
    if not rows:
        raise AppealRefused("no appeal %s (`hcp appeal list`)" % aid, 404)
    return _row(rows[0], access.when(time.time()).date())


def list_appeals(store: Store, status: str | None = None,
                 now: float | None = None) -> list[Record]:
    """Appeals, oldest first; status: pending | upheld | rejected | overdue | None (all)."""
    today = access.when(time.time() if now is None else now).date()
    args: Params
    if status == "overdue":
        sql, args = " WHERE status = 'pending' AND decision_due < %s", (today.isoformat(),)
    elif status in ("pending", "upheld", "rejected"):
        sql, args = " WHERE status = %s", (status,)
    elif status is None:
        sql, args = "", ()
    else:
        raise HcpError("status must be pending, upheld, rejected or overdue, not %r" % status)
    return [_row(r, today) for r in access.query(store, APPEAL_SQL + sql + " ORDER BY filed_at",
                                                 args)]


def overdue(store: Store, now: float | None = None) -> list[Record]:
    """Pending appeals past their 10 working days (第十条)."""
    return list_appeals(store, "overdue", now)


# --- unit tokens for POST /v1/appeals ------------------------------------------------------

def _sha(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()


def add_unit(store: Store, unit: str) -> str:
    """A new bearer token for `unit` (replacing any earlier one); returned once, never stored."""
    token = secrets.token_hex(32)
    with access.atomic(store) as t:
        t.x("DELETE FROM unit_tokens WHERE unit = %s", (unit,))
        t.x("INSERT INTO unit_tokens (unit, token_sha256, added_at) VALUES (%s, %s, %s)",
            (unit, _sha(token), time.time()))
    return token


def unit_of(store: Store, token: str | None) -> str | None:
    """The unit a bearer token belongs to, or None."""
    if not token:
        return None
    rows = access.query(store, "SELECT unit FROM unit_tokens WHERE token_sha256 = %s"
                               " AND revoked_at IS NULL", (_sha(token),))
    return rows[0][0] if rows else None
