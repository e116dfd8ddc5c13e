"""Integrity detectors (第十一条 弄虚作假) on scripted halls: honest citizens give no finding;
each way of gaming the ratings is found, at its unit, with its evidence."""
import random

import pytest

from haochaping.daemon.rules import integrity
from haochaping.daemon.rules.integrity import Thresholds
from haochaping.protocol import levels

DAY = 1790000000.0   # a working morning
WEIGHTS = (55, 25, 12, 5, 3)   # a hall's honest mix of levels (~8 % bad)


def honest(rnd, hall="H01", windows=("W01", "W02", "W03", "W04"), per_window=60, days=3):
    """Citizens as they are: most rate (some walk away), levels in a hall's mix, a human press
    delay after the prompt (2-12 s, the terminal's correction window included), reasons
    chosen freely after bad reviews, served through a whole day."""
    cases = []
    for w in windows:
        for i in range(per_window):
            day = i % days
            at = DAY + day * 86400 + rnd.uniform(0, 8 * 3600)
            level = None if rnd.random() < 0.08 else rnd.choices(range(1, 6), WEIGHTS)[0]
            reasons = ()
            if level and levels.is_bad(level) and rnd.random() < 0.7:
                reasons = (rnd.choice(levels.REASONS)[0],)
            cases.append({"hall": hall, "window": w, "staff": "S%s%02d" % (w[-2:], i % 2 + 1),
                          "finished_at": at, "level": level,
                          "delay": rnd.uniform(5.0, 15.0) if level else None,
                          "reasons": reasons, "phone": ""})
    return cases


def _found(cases, t=None):
    return {(f["detector"], f["unit"]) for f in integrity.findings(cases, t)}


@pytest.mark.parametrize("seed", range(20))
def test_an_honest_hall_yields_no_finding(seed):
    # if this fails, honest staff are named in an internal report for what citizens freely did
    assert integrity.findings(honest(random.Random(seed))) == []


def _at(cases, window):
    return [c for c in cases if c["window"] == window]


def test_staff_reaching_over_to_press_is_found_at_their_window():
    # if this fails, presses made by the staff a moment after 请评价 count as citizens' ratings
    cases = honest(random.Random(1))
    for c in _at(cases, "W02"):
        if c["level"]:
            c["delay"], c["level"] = random.Random(c["finished_at"]).uniform(0.3, 1.0), 1
    assert _found(cases) >= {("reaction", "window:H01/W02")}
    assert {u for _, u in _found(cases)} <= {"window:H01/W02", "staff:H01/S0201",
                                             "staff:H01/S0202"}


def test_a_window_that_skips_the_prompt_is_found():
    # if this fails, a window that never asks citizens to rate looks like one nobody minds
    cases = honest(random.Random(2))
    for c in _at(cases, "W03")[::5]:
        c["level"] = c["level"] or 1
    for i, c in enumerate(_at(cases, "W03")):
        if i % 5:
            c["level"], c["delay"], c["reasons"] = None, None, ()
    assert ("skipped_prompts", "window:H01/W03") in _found(cases)


def test_a_window_with_only_very_satisfied_ratings_is_found():
    # if this fails, a good-review quota filled in by staff raises a window's score unseen
    cases = honest(random.Random(3))
    for c in _at(cases, "W01"):
        if c["level"]:
            c["level"], c["reasons"] = 1, ()
    found = _found(cases)
    assert ("too_good", "window:H01/W01") in found


def test_ratings_posted_a_fixed_time_after_each_service_are_found():
    # if this fails, integration code posting 非常满意 for citizens counts as their ratings
    cases = honest(random.Random(4))
    for c in _at(cases, "W04"):
        c["level"], c["delay"], c["reasons"] = 1, 30.0 + random.Random(c["finished_at"]).uniform(
            -0.2, 0.2), ()
    assert ("patterns", "window:H01/W04") in _found(cases)


def test_bad_reviews_with_the_same_reasons_in_bulk_are_found():
    # if this fails, bad reviews filled in by one hand with one reason look like citizens'
    cases = honest(random.Random(5))
    w = sorted(_at(cases, "W02"), key=lambda c: c["finished_at"])
    for c in w[10:20]:
        c["level"], c["reasons"] = 4, ("efficiency",)
    assert ("patterns", "window:H01/W02") in _found(cases)


def test_ratings_piled_up_at_the_start_and_end_of_the_day_are_found():
    # if this fails, ratings filled in before opening or after closing go unnoticed
    cases = honest(random.Random(6))
    rnd = random.Random(7)
    for c in _at(cases, "W03"):
        day = DAY + ((c["finished_at"] - DAY) // 86400) * 86400
        c["finished_at"] = day + (rnd.uniform(0, 600) if rnd.random() < 0.5
                                  else 8 * 3600 - rnd.uniform(0, 600))
    _at(cases, "W03")[0]["finished_at"] = DAY + 4 * 3600   # a few genuine ones in the day
    assert ("bursts", "window:H01/W03") in _found(cases)


def test_one_phone_rating_many_transactions_is_found_and_shown_masked():
    # if this fails, a cadre's number filled in for citizens defeats the call-backs unseen
    cases = honest(random.Random(8))
    for c in cases[::20]:
        c["phone"], c["level"] = "13800001234", c["level"] or 1
    f = [f for f in integrity.findings(cases) if f["detector"] == "real_name"]
    assert [x["unit"] for x in f] == ["phone:****1234"]
    assert "13800001234" not in str(f)


def test_thresholds_are_config():
    # if this fails, a city cannot tune a detector that is too eager for its halls
    cases = honest(random.Random(1))
    for c in _at(cases, "W02"):
        if c["level"]:
            c["delay"] = 0.5
    assert ("reaction", "window:H01/W02") in _found(cases)
    assert ("reaction", "window:H01/W02") not in _found(cases, Thresholds(min_cases=1000))
