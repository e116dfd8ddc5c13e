"""第十四条 on the store's data: scores per department, window and staff member and period,
boundaries included, and `hcp rules explain` step by step."""
import json

from haochaping.daemon.store import defaults, scores

from .conftest import Data, at, hcp

LATER = at("2026-12-31 12:00")   # every 2026Q3 deadline has passed


def _boundary_day(d):
    """W01/S0101: 20 transactions, 19 rated by citizens (17×10, 8, 6) and 1 default at 6:
    acceptance exactly 95 % and average exactly 9.5 — both boundaries, both to the higher band.
    W02/S0201: 5 transactions, 4 rated (80 %), average (10+8+8+6+6)/5 = 7.6."""
    levels = [1] * 17 + [2, 3]
    for i, lv in enumerate(levels):
        d.transaction("2026-08-%02d 10:00" % (3 + i % 20), level=lv)
    d.transaction("2026-08-20 16:00")
    for lv in (1, 2, 2, 3, None):
        d.transaction("2026-09-10 11:00", level=lv, window="W02", staff="S0201")


def test_art14_department_window_and_staff_scores_from_the_store_with_exact_boundaries(st):
    # if this fails, a unit exactly at 95 % and 9.5 gets 8 instead of 10, or the scores of
    # windows and staff are mixed up
    _boundary_day(Data(st))
    units = scores.unit_scores(st, "2026Q3", now=LATER)
    got = {k: (u["score"].final, u["score"].rate_points, u["score"].average_points,
               u["score"].rated, u["score"].total) for k, u in units.items()}
    assert got == {
        "D1": (6, 1, 5, 23, 25),                      # 92 % → 1; 226/25 = 9.04 → 5
        "window:H01/W01": (10, 3, 7, 19, 20),
        "window:H01/W02": (4, 1, 3, 4, 5),            # 80 % → 1; 7.6 → 3
        "staff:H01/S0101": (10, 3, 7, 19, 20),
        "staff:H01/S0201": (4, 1, 3, 4, 5),
    }
    assert not any(u["score"].provisional for u in units.values())


def test_art14_defaults_written_or_not_give_the_same_score(st):
    # if this fails, a report run before the default job shows other scores than one run after
    _boundary_day(Data(st))
    before = scores.unit_scores(st, "2026Q3", now=LATER)["D1"]["score"]
    assert defaults.run_defaults(st, now=LATER)["given"] == 2
    assert scores.unit_scores(st, "2026Q3", now=LATER)["D1"]["score"] == before


def test_art14_transactions_still_in_their_5_working_days_make_the_score_provisional(st):
    # if this fails, a quarter's score is published as final while citizens can still rate
    d = Data(st)
    d.transaction("2026-09-29 10:00", level=1)
    d.transaction("2026-09-30 10:00")                 # deadline 13 Oct
    s = scores.unit_scores(st, "2026Q3", now=at("2026-10-09 12:00"))["D1"]["score"]
    assert s.provisional and s.total == 2 and s.rated == 1
    s = scores.unit_scores(st, "2026Q3", now=at("2026-10-14 00:00"))["D1"]["score"]
    assert not s.provisional and s.average == 8


def test_art14_a_unit_with_no_transactions_in_the_period_has_no_score_not_zero(st, store_db):
    # if this fails, a department closed for the quarter is published with 0 points
    Data(st).transaction("2026-09-01 10:00", level=1)
    e = scores.explain(st, "D1", "2026Q4", now=LATER)
    assert e.score.final is None and e.score.reason == "no data"
    out = json.loads(hcp("rules", "explain", "--db", store_db, "--unit", "D1", "--period",
                         "2026Q4", "--json").output)
    assert out["score"]["final"] is None and out["score"]["reason"] == "no data"
    r = hcp("rules", "explain", "--db", store_db, "--unit", "D404", "--period", "2026Q3",
            ok=False)
    assert r.exit_code == 1 and "not in the store" in r.output


def test_art14_cli_rules_explain_goes_step_by_step_on_store_data(st, store_db):
    # if this fails, an auditor cannot see how a published score was reached
    _boundary_day(Data(st))
    out = hcp("rules", "explain", "--db", store_db, "--unit", "window:H01/W01", "--period",
              "2026Q3").output
    assert "17 citizen" in out and "1 default" in out
    assert "19/20 = 95.00%" in out and "→ band ≥ 95% → 3 points" in out
    assert "190/20 = 9.500" in out and "→ band ≥ 9.5 → 7 points" in out
    assert "final = 3 + 7 = 10 / 10" in out
    j = json.loads(hcp("rules", "explain", "--db", store_db, "--unit", "staff:H01/S0201",
                       "--period", "2026Q3", "--json").output)
    assert j["score"]["final"] == 4 and j["article"] == "第十四条"
