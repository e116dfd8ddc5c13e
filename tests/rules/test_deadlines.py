"""Deadlines in working days: default ratings (第七条), appeals (第十条), rectification (第十二条),
and report periods (第十一条). If these fail, citizens lose time to rate, units have appeals
refused or accepted wrongly, and overdue rectifications go unnoticed."""
import datetime

import pytest

from haochaping.daemon.errors import HcpError
from haochaping.daemon.rules import deadlines, scoring, workdays

D = datetime.date
SH = workdays.SHANGHAI
CAL = workdays.Calendar(None)


def at(y, m, d, hh=12, mm=0, tz=SH):
    return datetime.datetime(y, m, d, hh, mm, tzinfo=tz)


def test_art7_default_rating_deadline_is_end_of_5th_working_day_shanghai():
    # closed during the afternoon of Tue 30 Sep 2025; National Day + 中秋 1–8 Oct, 11 Oct 调休.
    d = deadlines.default_rating_deadline(at(2025, 9, 30, 16), CAL)
    assert d.at.isoformat() == "2025-10-14T23:59:59+08:00"
    assert d.working_days == 5


def test_art7_needs_default_only_after_the_deadline_and_only_when_unrated():
    # Wrong: a citizen still within 5 working days is pre-empted by a default, or a rated
    # transaction gets a second (default) rating.
    closed = at(2025, 9, 30, 16)
    assert not deadlines.needs_default(closed, False, at(2025, 10, 14, 23, 59), CAL)
    assert deadlines.needs_default(closed, False, at(2025, 10, 15, 0, 0), CAL)
    assert not deadlines.needs_default(closed, True, at(2025, 12, 1), CAL)


def test_art7_property_a_transaction_gets_at_most_one_default():
    # Running the default job many times: once a default is given the transaction is rated.
    closed = at(2026, 2, 12, 10)
    rated, given = False, 0
    for day in range(40):
        now = at(2026, 2, 12, 23) + datetime.timedelta(days=day)
        if deadlines.needs_default(closed, rated, now, CAL):
            given += 1
            rated = True
    assert given == 1


def test_art10_appeal_in_time_on_the_last_day_and_refused_after_with_the_deadline():
    # rating received Thu 24 Sep 2026; 25–27 Sep 中秋: deadline Wed 30 Sep 23:59:59.
    received = at(2026, 9, 24, 9)
    d = deadlines.check_appeal_in_time(received, at(2026, 9, 30, 23, 59), CAL)
    assert d.at.isoformat() == "2026-09-30T23:59:59+08:00"
    with pytest.raises(HcpError) as e:
        deadlines.check_appeal_in_time(received, at(2026, 10, 1, 0, 1), CAL)
    assert "2026-09-30T23:59:59+08:00" in str(e.value) and "第十条" in str(e.value)
    with pytest.raises(HcpError, match="filed 2026-10-01, the deadline"):
        deadlines.check_appeal_in_time(D(2026, 9, 24), D(2026, 10, 1), CAL)


def test_art10_appeal_decision_within_10_working_days():
    # filed Wed 30 Sep 2026: 1–7 Oct off; 8, 9, 10 (调休 Sat), 12–16, 19, 20.
    assert deadlines.appeal_decision_deadline(D(2026, 9, 30), CAL).day == D(2026, 10, 20)


def test_art12_rectification_within_15_working_days_and_extension_needs_reason():
    d = deadlines.rectification_deadline(D(2026, 9, 28), CAL)
    assert d.day == D(2026, 10, 23)
    new = deadlines.extend_rectification(d, D(2026, 11, 6), "需要系统改造")
    assert new.isoformat() == "2026-11-06T23:59:59+08:00"
    with pytest.raises(HcpError, match="needs a reason"):
        deadlines.extend_rectification(d, D(2026, 11, 6), "  ")
    with pytest.raises(HcpError, match="must be after"):
        deadlines.extend_rectification(d, D(2026, 10, 23), "late")


def test_art7_deadline_beyond_the_calendar_data_is_flagged_in_the_rule_answer():
    d = deadlines.default_rating_deadline(D(2026, 12, 30), CAL)
    assert d.fallback and d.to_dict()["calendar"]["warning"]


@pytest.mark.parametrize("text,first,last", [
    ("2026Q3", D(2026, 7, 1), D(2026, 9, 30)),
    ("2026q4", D(2026, 10, 1), D(2026, 12, 31)),
    ("2020Q3", D(2020, 7, 1), D(2020, 9, 30)),
    ("2026-02", D(2026, 2, 1), D(2026, 2, 28)),
    ("2024-02", D(2024, 2, 1), D(2024, 2, 29)),
    ("2026", D(2026, 1, 1), D(2026, 12, 31)),
])
def test_art11_report_periods(text, first, last):
    assert scoring.parse_period(text) == (first, last)


@pytest.mark.parametrize("text,message", [
    ("2026Q5", "not like"), ("Q3 2026", "not like"), ("2026-13", "not like"),
    ("2020Q2", "before 2020Q3"), ("2019", "before 2020Q3"),
])
def test_art11_bad_or_too_early_periods_are_refused(text, message):
    with pytest.raises(HcpError, match=message):
        scoring.parse_period(text)
