"""Property tests (hypothesis) for 第十四条 and the working-day arithmetic. They run when
hypothesis is installed (the dev extra should carry it); the exhaustive small-unit checks in
test_scoring.py always run."""
import datetime

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from haochaping.daemon.rules import scoring, workdays  # noqa: E402
from haochaping.daemon.rules.scoring import Rating  # noqa: E402

RATINGS = st.one_of(st.integers(1, 5).map(Rating), st.just(Rating(3, is_default=True)),
                    st.integers(1, 5).map(lambda lv: Rating(lv, excluded=True)))
CAL = workdays.Calendar(None)


@given(st.lists(RATINGS, max_size=60), st.integers(0, 5))
def test_art14_final_score_is_always_one_of_the_possible_sums(ratings, pending):
    # Wrong: a published score of 2 or 9, which the regulation cannot produce.
    s = scoring.score(ratings, pending)
    assert s.final is None or s.final in scoring.POSSIBLE_FINALS
    assert (s.final is None) == (not any(not r.excluded for r in ratings))


@given(st.lists(RATINGS, max_size=60))
def test_art14_adding_a_feichang_manyi_never_lowers_the_average_band(ratings):
    before = scoring.score(ratings).average_points or 0
    assert scoring.score(ratings + [Rating(1)]).average_points >= before


@given(st.lists(RATINGS, max_size=60))
def test_art7_art14_defaults_never_raise_the_acceptance_rate(ratings):
    base = scoring.score(ratings)
    more = scoring.score(ratings + [Rating(3, is_default=True)])
    assert base.acceptance_rate is None or more.acceptance_rate <= base.acceptance_rate


@given(st.dates(datetime.date(2004, 1, 1), datetime.date(2026, 12, 1)), st.integers(1, 20))
def test_art7_deadline_lands_on_a_working_day_with_exactly_n_working_days(day, n):
    d = CAL.add_working_days(day, n)
    assert CAL.is_working_day(d.day)[0]
    count = sum(CAL.is_working_day(day + datetime.timedelta(days=i))[0]
                for i in range(1, (d.day - day).days + 1))
    assert count == n
