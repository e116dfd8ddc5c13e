"""第十四条 scores: points per level, the acceptance rate and average bands with their boundaries
(each boundary value goes to the higher band), no data, default ratings (第七条) and upheld
appeals (第十条). If these fail, a unit's published score and its annual assessment are wrong."""
import collections
import itertools
from fractions import Fraction

import pytest

from haochaping.daemon.errors import HcpError
from haochaping.daemon.rules import scoring
from haochaping.daemon.rules.scoring import Rating
from haochaping.protocol import levels


def citizen(level, n=1):
    return [Rating(level)] * n


def defaults(n):
    return [Rating(levels.DEFAULT_LEVEL, is_default=True)] * n


# --- points per level ----------------------------------------------------------------------------

@pytest.mark.parametrize("level,points", [(1, 10), (2, 8), (3, 6), (4, 2), (5, 0)])
def test_art14_each_level_scores_its_points(level, points):
    # Wrong: a 满意 counts like 非常满意 and every unit's average is off.
    assert scoring.score(citizen(level)).average == points


# --- acceptance rate bands: ≥95% → 3, 80% to <95% → 1, <80% → 0 ---------------------------------

@pytest.mark.parametrize("rated,total,points", [
    (20, 20, 3),
    (19, 20, 3),        # exactly 95%: the overlap "95%以上" / "80%-95%" goes to the higher band
    (1899, 2000, 1),    # 94.95%: just below
    (4, 5, 1),          # exactly 80%: higher band
    (799, 1000, 0),     # 79.9%: just below
    (0, 7, 0),
])
def test_art14_acceptance_rate_band_boundaries(rated, total, points):
    # Wrong: a unit at exactly 95% loses 2 points it earned (or gains them at 94.95%).
    s = scoring.score_from(rated, total, 10)
    assert s.rate_points == points
    assert s.acceptance_rate == Fraction(rated, total)


# --- average bands: ≥9.5 → 7, 8 to <9.5 → 5, 6 to <8 → 3, <6 → 0 -------------------------------

@pytest.mark.parametrize("average,points", [
    (10, 7), (9.5, 7), ("9.5", 7), (9.4999, 5),
    (8, 5), (7.9999, 3),
    (6, 3), (5.9999, 0),
    (0, 0),
])
def test_art14_average_band_boundaries(average, points):
    # Wrong: a unit averaging exactly 8 drops from 5 to 3 points.
    assert scoring.score_from(20, 20, average).average_points == points


def test_art14_boundaries_reached_by_real_ratings_are_exact():
    # 3×10 + 1×8 = 9.5 exactly; 1×10 + 1×6 = 8 exactly; 1×8 + 1×6 + 1×4? (no 4): 2×6 = 6.
    assert scoring.score(citizen(1, 3) + citizen(2)).average_points == 7
    assert scoring.score(citizen(1) + citizen(3)).average_points == 5
    assert scoring.score(citizen(3, 2)).average_points == 3
    # 9.4736…: 17×10 + 1×8 + 1×2 = 180/19, just under 9.5
    s = scoring.score(citizen(1, 17) + citizen(2) + citizen(4))
    assert s.average == Fraction(180, 19) and s.average_points == 5


def test_art14_float_rounding_never_moves_a_boundary():
    # 57/60 is 95% exactly; 0.1+0.2-style float error must not push it below.
    assert scoring.score_from(57, 60, 9.5).final == 10
    assert scoring.score_from(57, 60, 0.95 * 10).final == 10


def test_art14_final_is_the_sum_of_rate_and_average_points():
    s = scoring.score_from(19, 20, 9.5)
    assert (s.final, s.rate_points, s.average_points) == (10, 3, 7)
    s = scoring.score_from(17, 20, 8.2)
    assert (s.final, s.rate_points, s.average_points) == (6, 1, 5)


# --- no data -------------------------------------------------------------------------------------

def test_art14_a_unit_with_no_transactions_has_no_score_not_zero():
    # Wrong: a window that served nobody is published as scoring 0 / 10.
    for s in (scoring.score_from(0, 0, None), scoring.score_from(0, 0, 9), scoring.score([])):
        assert s.final is None and s.reason == "no data"
        assert s.to_dict()["final"] is None and s.to_dict()["reason"] == "no data"
    assert "no data" in scoring.score([]).text()


def test_art14_all_ratings_excluded_or_open_gives_no_score():
    s = scoring.score([Rating(5, excluded=True)])
    assert s.final is None and s.reason == scoring.NO_COUNTED_RATINGS
    s = scoring.score([], pending=3)
    assert s.final is None and s.provisional


# --- default ratings (第七条) --------------------------------------------------------------------

def test_art7_art14_default_ratings_are_not_accepted_evaluations():
    # 19 citizen + 1 default = 95%: 3 points. 18 + 2 defaults = 90%: 1 point.
    # Wrong: units reach 100% acceptance by letting every transaction default.
    assert scoring.score(citizen(1, 19) + defaults(1)).rate_points == 3
    s = scoring.score(citizen(1, 18) + defaults(2))
    assert s.rated == 18 and s.total == 20 and s.rate_points == 1
    assert scoring.score(defaults(10)).acceptance_rate == 0


def test_art7_art14_default_ratings_count_at_six_points_in_the_average():
    s = scoring.score(citizen(1, 19) + defaults(1))
    assert s.average == Fraction(196, 20)
    assert scoring.score(defaults(4)).average == 6


def test_art7_a_default_rating_is_always_jiben_manyi():
    with pytest.raises(HcpError, match="always level 3"):
        Rating(1, is_default=True)


@pytest.mark.parametrize("bad", [0, 6, "1", True, None])
def test_art14_a_level_outside_1_to_5_is_refused(bad):
    with pytest.raises(HcpError, match="level must be 1 to 5"):
        Rating(bad)


# --- upheld appeals (第十条) ---------------------------------------------------------------------

def test_art10_an_upheld_appeal_removes_the_rating_from_the_average_only():
    # Wrong: a malicious 非常不满意 that the office removed still drags the unit down — or
    # winning the appeal lowers the unit's acceptance rate.
    ratings = citizen(1, 9) + [Rating(5, excluded=True)]
    s = scoring.score(ratings)
    assert s.average == 10 and s.average_points == 7
    assert s.rated == 10 and s.total == 10 and s.rate_points == 3
    assert scoring.score(citizen(1, 9) + citizen(5)).average_points == 5    # 9.0 when not excluded


# --- open transactions ---------------------------------------------------------------------------

def test_art7_art14_transactions_still_within_their_deadline_make_the_score_provisional():
    s = scoring.score(citizen(1, 19), pending=1)
    assert s.total == 20 and s.rate_points == 3 and s.provisional
    assert "provisional" in s.text()


# --- input checks --------------------------------------------------------------------------------

@pytest.mark.parametrize("args,message", [
    ((5, 4, 9), "cannot exceed"),
    ((-1, 4, 9), "rated must be a whole number"),
    ((1, 2.5, 9), "total must be a whole number"),
    ((1, 4, 10.5), "from 0 to 10"),
    ((1, 4, -1), "from 0 to 10"),
    ((1, 4, "nine"), "must be a number"),
])
def test_art14_bad_counts_are_refused(args, message):
    with pytest.raises(HcpError, match=message):
        scoring.score_from(*args)


# --- the explanation -----------------------------------------------------------------------------

def test_art14_explain_shows_every_step_as_data_and_text():
    ratings = citizen(1, 16) + citizen(2) + defaults(2) + [Rating(5, excluded=True)]
    e = scoring.explain(ratings, unit="窗口 3", period="2026Q3")
    assert e.score == scoring.score(ratings)
    t = e.data["tally"]
    assert (t["transactions"], t["accepted"], t["defaults"], t["excluded"]) == (20, 18, 2, 1)
    lv = {r["level"]: r for r in t["per_level"]}
    assert ((lv[1]["citizen"], lv[2]["citizen"], lv[3]["default"], lv[5]["excluded"])
            == (16, 1, 2, 1))
    assert [s["step"] for s in e.data["steps"]] == ["count", "rate", "average", "final"]
    assert e.data["score"]["final"] == 6
    assert "窗口 3" in e.text and "2026Q3" in e.text
    assert "18/20 = 90.00%" in e.text and "80% to < 95% → 1 points" in e.text
    assert "180/19 = 9.473" in e.text and "8 to < 9.5 → 5 points" in e.text
    assert "final = 1 + 5 = 6 / 10" in e.text
    assert e.to_dict()["text"] == e.text


def test_art14_explain_with_no_transactions_says_no_data():
    e = scoring.explain([])
    assert e.score.final is None and e.data["steps"][-1] == {"step": "no data"}
    assert "no score (no data), not 0" in e.text


def test_art14_percent_and_average_never_print_rounded_across_a_band_edge():
    assert scoring.percent(Fraction(18999, 20000)) == "94.99%"
    assert scoring.decimal(Fraction(94999, 10000)) == "9.499"


# --- properties, exhaustive over small units ------------------------------------------------

def _units(max_n):
    kinds = [Rating(1), Rating(2), Rating(3), Rating(4), Rating(5), Rating(3, is_default=True),
             Rating(5, excluded=True)]
    for n in range(max_n + 1):
        yield from itertools.combinations_with_replacement(kinds, n)


def test_art14_property_the_final_score_is_always_a_possible_sum():
    assert {0, 1, 3, 4, 5, 6, 7, 8, 10} == scoring.POSSIBLE_FINALS
    for unit in _units(6):
        s = scoring.score(unit)
        assert s.final is None or s.final in scoring.POSSIBLE_FINALS


def test_art14_property_adding_a_feichang_manyi_never_lowers_the_average_band():
    for unit in _units(6):
        before = scoring.score(unit).average_points
        after = scoring.score(unit + (Rating(1),)).average_points
        assert after >= (before or 0)


def test_art14_property_more_citizen_ratings_never_lower_the_rate_band():
    for total in range(1, 60):
        points = [scoring.score_from(r, total, 9).rate_points for r in range(total + 1)]
        assert points == sorted(points)


def test_ratings_given_as_counts_score_and_explain_as_the_records_do():
    # if this fails, `hcp rules explain` of a large unit (its ratings counted by the store,
    # {Rating: how many}) says something other than the same ratings one by one
    records = ([scoring.Rating(1)] * 7 + [scoring.Rating(5, excluded=True)] * 2
               + [scoring.Rating(3, is_default=True)] * 3 + [scoring.Rating(4)])
    counts = collections.Counter(records)
    assert scoring.score(counts, 2) == scoring.score(records, 2)
    assert scoring.explain(counts, 2, "D1", "2026Q3") == scoring.explain(records, 2, "D1",
                                                                          "2026Q3")
    assert scoring.tally({scoring.Rating(2): 0}) == scoring.tally([])
    with pytest.raises(HcpError):
        scoring.tally({scoring.Rating(2): -1})
