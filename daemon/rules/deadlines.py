"""The 好差评 deadlines in working days as pure functions: default ratings (第七条), appeals
(第十条) and rectification (第十二条). Each ends at 23:59:59 Asia/Shanghai of the n-th working day
after the given day (workdays.py, RULES.md Decision). A day is a date, or an aware datetime
taken as its Asia/Shanghai day."""
from __future__ import annotations

import datetime

from haochaping.daemon.errors import HcpError
from haochaping.daemon.rules import workdays

DEFAULT_RATING_WORKING_DAYS = 5     # 第七条
APPEAL_FILING_WORKING_DAYS = 3      # 第十条
APPEAL_DECISION_WORKING_DAYS = 10   # 第十条
RECTIFICATION_WORKING_DAYS = 15     # 第十二条


def default_rating_deadline(closed: datetime.date,
                            calendar: workdays.Calendar | None = None) -> workdays.Deadline:
    """第七条: the end of the 5th working day after the day the transaction closed."""
    return workdays.add_working_days(closed, DEFAULT_RATING_WORKING_DAYS, calendar)


def needs_default(closed: datetime.date, rated: bool, now: datetime.datetime,
                  calendar: workdays.Calendar | None = None) -> bool:
    """第七条: True if the transaction gets a default 基本满意 at `now`: not rated (a counted
    rating bound to it) and its deadline has passed."""
    return not rated and default_rating_deadline(closed, calendar).passed(now)


def appeal_filing_deadline(received: datetime.date,
                           calendar: workdays.Calendar | None = None) -> workdays.Deadline:
    """第十条: 3 working days counted from the day the rating was received (RULES.md Decision)."""
    return workdays.add_working_days(received, APPEAL_FILING_WORKING_DAYS, calendar)


def check_appeal_in_time(received: datetime.date, filed: datetime.date,
                         calendar: workdays.Calendar | None = None) -> workdays.Deadline:
    """第十条: return the filing deadline if `filed` is in time, else raise HcpError with the
    deadline in the message (no appeal in time means no objection)."""
    d = appeal_filing_deadline(received, calendar)
    if d.passed(filed):
        shown = (filed.astimezone(workdays.SHANGHAI).isoformat(timespec="seconds")
                 if isinstance(filed, datetime.datetime) else filed.isoformat())
        raise HcpError("appeal too late: filed %s, the deadline (3 working days, 第十条) was %s"
                       % (shown, d.at.isoformat()))
    return d


def appeal_decision_deadline(filed: datetime.date,
                             calendar: workdays.Calendar | None = None) -> workdays.Deadline:
    """第十条: the office decides within 10 working days after the day the appeal was filed."""
    return workdays.add_working_days(filed, APPEAL_DECISION_WORKING_DAYS, calendar)


def rectification_deadline(verified: datetime.date,
                           calendar: workdays.Calendar | None = None) -> workdays.Deadline:
    """第十二条: a verified bad review is rectified within 15 working days after the day it was
    verified."""
    return workdays.add_working_days(verified, RECTIFICATION_WORKING_DAYS, calendar)


def extend_rectification(current: workdays.Deadline, new_day: datetime.date,
                         reason: str) -> datetime.datetime:
    """第十二条: an extension needs a reason and a later date; returns the new end of day."""
    if not isinstance(reason, str) or not reason.strip():
        raise HcpError("an extension of a rectification deadline needs a reason (第十二条)")
    new_day = workdays.local_day(new_day)
    if new_day <= current.day:
        raise HcpError("the new rectification date %s must be after the current deadline %s"
                       % (new_day, current.day))
    return datetime.datetime.combine(new_day, workdays.END_OF_DAY)
