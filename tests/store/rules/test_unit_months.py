"""`hcp rules explain` from each closed month's kept figures (unit_months.py) says what the
unit's transactions say, whatever the store learns about a closed month afterwards: a late
batch, a late rating, an upheld appeal, a default written, the archive. Both backends."""
import datetime

import pytest

from haochaping.daemon.rules import scoring, workdays
from haochaping.daemon.store import access, appeals, archive, defaults, jobs, scores, unit_months

from .conftest import Data, at

PERIOD = "2026Q3"
LATER = at("2026-11-20 12:00")     # every month of 2026Q3 and October closed
UNITS = ("D1", "D2", "H03", "window:H01/W01", "window:H01/W02", "window:H02/W01",
         "staff:H01/S0101", "staff:H01/S0102", "staff:H02/S0101")


def _from_transactions(st, unit, period=PERIOD, now=LATER):
    """The explanation from the unit's every transaction, pulled one by one (scores.transactions),
    as before the kept figures and before explain counted in the database."""
    txs = scores.transactions(st, period, now, unit=unit)
    rated = [tx["rating"] for tx in txs if tx["rating"] is not None]
    return scoring.explain(rated, sum(tx["rating"] is None for tx in txs), unit, period).data


def _kept_months(st, unit, period=PERIOD, now=LATER):
    """The months explain reads from kept figures for this unit."""
    first, last, _s, _e = scores.bounds(period)
    closed = [m for m in unit_months.months_within(first, last)
              if unit_months.closed(m, access.when(now), workdays.default_calendar())]
    with access.atomic(st, write=False) as t:
        return unit_months.usable(t, scores._kind_hall(unit)[1], closed)


def _same(st, period=PERIOD, now=LATER, units=UNITS):
    """explain (kept figures where fresh) == explain from the transactions, for every unit."""
    out = {}
    for unit in units:
        got = scores.explain(st, unit, period, now).data
        assert got == _from_transactions(st, unit, period, now), unit
        assert scores.unit_counts(st, unit, period, now, kept=False)[1] == got["tally"]["pending"]
        out[unit] = got
    return out


def _hall_b(st):
    st.add_hall("H02", "盘龙区政务服务中心")
    return Data(st, hall="H02", department="D2")


def _a_quarter(st, data):
    """Two halls' quarter: rated, bad, unrated, two windows and staff numbers; the rule job
    then keeps July to October."""
    data.transaction("2026-07-15 09:00", level=1)
    data.transaction("2026-08-03 10:00", level=2, window="W02", staff="S0102")
    _tx, bad = data.transaction("2026-09-02 09:00", level=5, reason="attitude")
    unrated, _r = data.transaction("2026-09-03 09:00")
    data.transaction("2026-09-04 09:00", level=4, window="W02", staff="")
    other = _hall_b(st)
    other.transaction("2026-09-01 11:00", level=4)
    other.transaction("2026-09-07 11:00", level=1)
    st.add_hall("H03", "官渡区政务服务中心")
    no_codes = Data(st, hall="H03", department="")           # a hall that sends no department
    no_codes.transaction("2026-08-11 10:00", level=2)
    no_codes.transaction("2026-09-11 10:00")
    jobs.run_once(st, LATER)
    return bad, unrated, other


def test_explain_from_kept_months_follows_every_change_to_a_closed_month(st, data):
    # if this fails, `hcp rules explain` answers from figures of a closed month that no longer
    # hold: a hall's late batch, a late rating (第七条), an upheld appeal (第十条) or a default
    # changed the month after the rule job kept it, and the unit's score is stale
    bad, _unrated, other = _a_quarter(st, data)
    assert _kept_months(st, "D1") == ["2026-07", "2026-08", "2026-09"]
    before = _same(st)
    assert before["D1"]["tally"]["transactions"] == 5
    # a hall offline for weeks: a transaction of 1 September arrives now
    data.transaction("2026-09-01 15:00", level=3, window="W03", staff="S0103")
    assert _kept_months(st, "D1") == ["2026-07", "2026-08"]       # September counted live
    after = _same(st, units=UNITS + ("window:H01/W03",))
    assert after["D1"]["tally"]["transactions"] == 6
    jobs.run_once(st, LATER)                                          # kept again
    assert _kept_months(st, "D1") == ["2026-07", "2026-08", "2026-09"]
    assert _same(st, units=UNITS + ("window:H01/W03",)) == after
    # a rating the hall received in time, of a transaction stored weeks ago
    tx, _r = data.transaction("2026-09-08 09:00")
    jobs.run_once(st, LATER)
    data.rating(tx, 1, "2026-09-09 10:00")
    assert _same(st)["D1"]["tally"]["accepted"] == after["D1"]["tally"]["accepted"] + 1
    jobs.run_once(st, LATER)
    # 第十条: the bad review excluded
    a = appeals.file(st, bad, "D1", "监控显示群众误触", now=at("2026-09-03 17:00"))
    appeals.decide(st, a["id"], True, "核实为误评", now=at("2026-09-10 10:00"))
    assert _same(st)["D1"]["tally"]["excluded"] == 1
    jobs.run_once(st, LATER)
    assert _same(st)["D1"]["tally"]["excluded"] == 1
    # 第七条: a rating the hall received after the deadline: late, the default stands
    tx5, _r = other.transaction("2026-09-02 09:00")
    jobs.run_once(st, LATER)
    other.rating(tx5, 5, "2026-09-30 10:00")
    last = _same(st)
    assert last["D2"]["tally"]["defaults"] == 1
    jobs.run_once(st, LATER)
    assert _same(st) == last


def test_a_closed_month_whose_kept_figures_went_stale_is_not_read(st, data):
    # if this fails, explain reads a closed month's kept figures after the store learned
    # something about that month: the figures are what is read (first assertion), and a
    # change must stop that until the job keeps them again
    _bad, _unrated, other = _a_quarter(st, data)
    st._execute("UPDATE unit_months SET c1 = c1 + 7 WHERE month = '2026-09' AND unit = 'D2'", ())
    assert scores.explain(st, "D2", PERIOD, LATER).data["tally"]["transactions"] == 9
    assert scores.explain(st, "D2", PERIOD, LATER).data != _from_transactions(st, "D2")
    other.transaction("2026-09-10 09:00", level=2)          # the month changed: not read
    assert scores.explain(st, "D2", PERIOD, LATER).data == _from_transactions(st, "D2")
    jobs.run_once(st, LATER)                                # kept again, from the transactions
    assert st._query("SELECT c1 FROM unit_months WHERE month = '2026-09' AND unit = 'D2'",
                     ())[0][0] == 1
    _same(st)


@pytest.mark.parametrize("change", ["default", "mark_late"])
def test_defaults_written_and_ratings_found_late_by_the_sweep_raise_the_months_version(
        st, data, change):
    # if this fails, a default written or a rating found late by the sweep (第七条) leaves the
    # month's kept figures marked fresh, and a later explain may read figures that missed it
    _a_quarter(st, data)
    tx, _r = data.transaction("2026-09-09 09:00")
    if change == "mark_late":
        data.rating(tx, 2, "2026-09-09 09:05")
    jobs.run_once(st, LATER)
    version = st._query("SELECT version FROM unit_month_state WHERE month = '2026-09' AND"
                        " hall = 'H01'", ())[0][0]
    if change == "default":
        st._execute("DELETE FROM ratings WHERE tx_uid = %s", (tx,))
    else:
        # a rating received after its deadline that no batch judged (a store before 第七条's
        # rule): only the sweep finds it
        st._execute("UPDATE ratings SET hall_received_at = %s, received_at = %s WHERE"
                    " tx_uid = %s", (at("2026-10-30 10:00"),) * 2 + (tx,))
    if change == "default":
        st._execute("DELETE FROM store_sweeps", ())             # the daily sweep over every row
        assert defaults.run_defaults(st, LATER)["given"] == 1
    else:   # the sweep's first step alone (its defaults would raise the version too)
        assert defaults.mark_late(st, LATER)[0] == 1
    assert st._query("SELECT version FROM unit_month_state WHERE month = '2026-09' AND"
                     " hall = 'H01'", ())[0][0] > version
    _same(st)


def test_the_archive_forgets_the_kept_months_it_removed(st, data, tmp_path):
    # if this fails, explain of an archived quarter reads figures of transactions that are no
    # longer in the store (the report keeps its own, archived_reports)
    data.transaction("2026-05-06 10:00", level=1)
    data.transaction("2026-06-10 10:00", level=2)
    _a_quarter(st, data)
    unit_months.build(st, LATER, first=datetime.date(2026, 4, 1))
    assert _kept_months(st, "D1", "2026Q2") == ["2026-04", "2026-05", "2026-06"]
    assert _same(st, "2026Q2", units=("D1",))["D1"]["tally"]["transactions"] == 2
    archive.archive(st, "2026-07", str(tmp_path / "a"), now=LATER)
    assert not st._query("SELECT 1 FROM unit_months WHERE month < '2026-07'", ())
    assert _same(st, "2026Q2", units=("D1",))["D1"]["tally"]["transactions"] == 0
    _same(st)


def test_months_not_yet_closed_are_counted_from_their_transactions(st, data):
    # if this fails, explain of the current quarter freezes a month whose ratings may still
    # come (第七条: 5 working days), or reads a month's figures at a `now` before it closed
    _a_quarter(st, data)
    data.transaction("2026-09-30 09:00")                        # pending on 5 October
    early = at("2026-10-05 12:00")
    assert _kept_months(st, "D1", now=early) == ["2026-07", "2026-08"]
    got = _same(st, now=early)
    assert got["D1"]["tally"]["pending"] == 1
    assert not st._query("SELECT 1 FROM unit_month_state WHERE month >= '2026-11'", ())


def test_a_department_code_sent_by_two_halls_sums_both_and_goes_live_if_either_changes(
        st, data):
    # if this fails, a department whose code two halls send gets one hall's figures, or keeps
    # reading a month that the other hall changed
    _a_quarter(st, data)
    twin = Data(st, hall="H02", department="D1")
    twin.tx = twin.seq = 50
    twin.transaction("2026-08-20 09:00", level=1)               # H02's August changes
    assert _kept_months(st, "D1") == ["2026-07", "2026-09"]
    assert _same(st)["D1"]["tally"]["transactions"] == 6
    jobs.run_once(st, LATER)
    assert _kept_months(st, "D1") == ["2026-07", "2026-08", "2026-09"]
    assert _same(st)["D1"]["tally"]["transactions"] == 6


def test_months_and_spans():
    # if this fails, explain counts a day twice or not at all between its kept months and
    # the spans it counts from the transactions
    d = datetime.date
    assert unit_months.months_within(d(2026, 7, 1), d(2026, 9, 30)) == [
        "2026-07", "2026-08", "2026-09"]
    assert unit_months.months_within(d(2026, 7, 2), d(2026, 9, 29)) == ["2026-08"]
    assert unit_months.months_within(d(2025, 12, 1), d(2026, 1, 31)) == ["2025-12", "2026-01"]
    lo, hi = unit_months.bounds("2026-08")
    assert hi - lo == 31 * 86400 and unit_months.month_of(lo) == "2026-08"
    assert unit_months.month_of(hi - 1) == "2026-08" and unit_months.month_of(hi) == "2026-09"
    start, end = scores.bounds(PERIOD)[2:]
    assert scores._not_kept(start, end, ["2026-08"]) == [
        (start, lo), (hi, end)]
    assert scores._not_kept(start, end, ["2026-07", "2026-08", "2026-09"]) == []
    assert scores._not_kept(start, end, []) == [(start, end)]
    assert unit_months.roll_up([("H01", "", "W1", "", 5, 1, 2), ("H01", "D", "W1", "S", None,
                                                                 0, 3)]) == {
        ("H01", "department", "H01"): [0] * 9 + [2, 0],
        ("H01", "window", "window:H01/W1"): [0] * 9 + [2, 3],
        ("H01", "department", "D"): [0] * 10 + [3],
        ("H01", "staff", "staff:H01/S"): [0] * 10 + [3]}
