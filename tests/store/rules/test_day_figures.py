"""第十四条 at scale: a quarter's scores from each closed day's kept figures (day_figures.py)
are the scores its transactions give, whatever the store learns about those days afterwards."""
import datetime

from haochaping.daemon.rules import scoring, workdays
from haochaping.daemon.store import appeals, defaults, scores

from .conftest import Data, at

PERIOD = "2026Q3"
LATER = at("2026-11-20 12:00")     # every day of 2026Q3 closed


def _from_transactions(st):
    """The scores read from every transaction of the period, as before the kept figures."""
    return scores.unit_scores(st, PERIOD, LATER, txs=scores.transactions(st, PERIOD, LATER))


def _same(st):
    kept = scores.unit_scores(st, PERIOD, LATER)
    assert kept == _from_transactions(st)
    return kept


def _hall_b(st):
    st.add_hall("H02", "盘龙区政务服务中心")
    return Data(st, hall="H02", department="D2")


def test_a_quarters_scores_from_kept_day_figures_follow_every_later_change(st, data):
    # if this fails, the quarterly scores and report (read from the kept per-day figures) differ
    # from what the transactions say: a hall's late batch, an upheld appeal (第十条) or a late
    # rating (第七条) changes a closed day but the report keeps the old figures
    data.transaction("2026-09-01 09:00", level=1)
    data.transaction("2026-09-01 10:00", level=2, window="W02", staff="S0102")
    _tx, bad = data.transaction("2026-09-02 09:00", level=5, reason="attitude")
    data.transaction("2026-09-03 09:00")                      # never rated: a default
    other = _hall_b(st)
    other.transaction("2026-09-01 11:00", level=4)
    before = _same(st)
    assert before["D1"]["score"].total == 4 and before["D2"]["score"].total == 1
    assert st._query("SELECT COUNT(*) FROM figure_days WHERE hall = ''", ())[0][0] == 92
    # a hall offline for weeks: a transaction of 1 September and a rating of 3 September's
    tx3 = "H01:tx:4"
    data.transaction("2026-09-01 15:00", level=3, window="W03", staff="S0103")
    data.rating(tx3, 1, "2026-09-05 10:00")                  # received in time by the hall
    after = _same(st)
    assert after["D1"]["score"].total == 5 and "window:H01/W03" in after
    assert after["D1"]["score"] != before["D1"]["score"]
    # 第十条: the bad review excluded
    a = appeals.file(st, bad, "D1", "监控显示群众误触", now=at("2026-09-03 17:00"))
    appeals.decide(st, a["id"], True, "核实为误评", now=at("2026-09-10 10:00"))
    assert _same(st)["D1"]["ratings"] != after["D1"]["ratings"]
    # 第七条: a rating the hall received after the deadline: marked late, the default stands
    _tx5, _r = other.transaction("2026-09-02 09:00")
    other.rating(_tx5, 5, "2026-09-30 10:00")
    defaults.run_defaults(st, now=LATER)
    last = _same(st)
    assert last["D2"]["score"].total == 2 and last["D2"]["ratings"][
        scoring.Rating(3, is_default=True)] == 1


def test_the_kept_figures_are_what_is_read_until_a_change_makes_them_stale(st, data):
    # if this fails, every report reads the whole quarter's transactions again (the kept
    # figures are not used: a province's quarter takes minutes), or a day is read from its
    # kept figures after the store learned something new about it
    data.transaction("2026-09-01 09:00", level=1)
    data.transaction("2026-09-02 09:00", level=2)
    _same(st)
    # the kept figures of 1 September, altered behind the store's back, are what it reads
    st._execute("UPDATE unit_days SET c1 = 7 WHERE day = '2026-09-01' AND unit = 'D1'", ())
    assert scores.unit_scores(st, PERIOD, LATER)["D1"]["score"].total == 8
    # a new transaction of that day makes the day stale: computed again from its transactions
    data.transaction("2026-09-01 16:00", level=2)
    assert _same(st)["D1"]["score"].total == 3
    assert st._query("SELECT version = fresh FROM figure_days WHERE hall = 'H01'"
                     " AND day = '2026-09-01'", ())[0][0]


def test_days_not_yet_closed_are_read_from_their_transactions_and_not_kept(st, data):
    # if this fails, a day whose ratings may still come (第七条: 5 working days) is frozen into
    # the kept figures: a citizen who rates on day 4 never counts in the report
    data.transaction("2026-09-28 09:00", level=1)
    data.transaction("2026-09-30 09:00")                      # still inside its 5 working days
    now = at("2026-10-05 12:00")                              # National Day holidays
    s = scores.unit_scores(st, PERIOD, now)["D1"]
    assert s["pending"] == 1 and s["score"].total == 2 and s["score"].provisional
    assert not st._query("SELECT 1 FROM figure_days WHERE hall = '' AND day >= '2026-09-28'", ())
    assert not st._query("SELECT 1 FROM unit_days WHERE day >= '2026-09-28'", ())
    assert s == scores.unit_scores(st, PERIOD, now, txs=scores.transactions(st, PERIOD, now))["D1"]


def test_a_batch_of_todays_transactions_touches_no_kept_figures(st, data):
    # if this fails, every batch of a hall forwarding as it goes writes to figure_days: the
    # halls' batches queue on one another's row locks for nothing
    data.transaction("2026-09-01 09:00", level=1)
    n = st._query("SELECT COUNT(*) FROM figure_days", ())[0][0]
    today = datetime.datetime.now(workdays.SHANGHAI).strftime("%Y-%m-%d %H:%M")
    data.transaction(today, level=2)
    assert st._query("SELECT COUNT(*) FROM figure_days", ())[0][0] == n
