"""Working days (第七条, 第十条, 第十二条): real 2025/2026 holidays and 调休 make-up days from the
chinese-calendar package, the Monday-Friday fallback (always flagged), and the override file.

If these fail, a citizen's transaction gets a default 基本满意 while the office is closed for a
holiday, or a unit's appeal is refused as late on a day that was a holiday, or a deadline lands on
a make-up Saturday nobody counted."""
import datetime
import logging
import os
import textwrap

import pytest

from haochaping.daemon.errors import HcpError
from haochaping.daemon.rules import workdays

D = datetime.date
OFFICIAL = workdays.Calendar(None)

# TEST DATA, INVENTED for these tests: not the real 2027 schedule.
OVERRIDE_2027 = textwrap.dedent("""\
    # test override (invented dates)
    [2027]
    notice = "test notice, invented dates"

    [[2027.holiday]]
    name = "元旦"
    from = 2027-01-01
    to = 2027-01-03

    [[2027.holiday]]
    name = "春节"
    from = 2027-02-06
    to = 2027-02-14
    makeup = [2027-01-31, 2027-02-20]
    """)


def _cal(text=OVERRIDE_2027):
    return workdays.Calendar(workdays.parse_override(text, "test.toml"))


@pytest.fixture(autouse=True)
def _no_real_override(tmp_path, monkeypatch):
    """Never read or write the real user's calendar file."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv(workdays.ENV_VAR, raising=False)
    monkeypatch.setattr(workdays, "_default", None)


# --- official data: 2025 National Day + Mid-autumn, 2026 Spring Festival and National Day ------

def test_art7_national_day_2025_with_mid_autumn_is_eight_days_off():
    # Wrong: ratings of late-September transactions default during the holiday.
    for day in range(1, 9):
        assert OFFICIAL.is_working_day(D(2025, 10, day)) == (False, "official")
    assert OFFICIAL.is_working_day(D(2025, 10, 9)) == (True, "official")


@pytest.mark.parametrize("day", [D(2025, 9, 28), D(2025, 10, 11), D(2025, 1, 26), D(2025, 2, 8),
                                 D(2026, 1, 4), D(2026, 2, 14), D(2026, 2, 28), D(2026, 5, 9),
                                 D(2026, 9, 20), D(2026, 10, 10)])
def test_art7_tiaoxiu_makeup_weekend_days_are_working_days(day):
    # Wrong: a make-up Saturday/Sunday is skipped and every deadline across it is a day late.
    assert day.weekday() >= 5
    assert OFFICIAL.is_working_day(day) == (True, "official")


def test_art7_spring_festival_2026_holiday_days():
    # Wrong: a citizen served before 春节 loses the days to rate while the hall is closed.
    for day in range(15, 24):
        assert OFFICIAL.is_working_day(D(2026, 2, day))[0] is False
    assert OFFICIAL.is_working_day(D(2026, 2, 24))[0] is True


def test_art7_default_deadline_across_national_day_2025_counts_makeup_saturday():
    # closed Tue 30 Sep: 1–8 Oct off; 9 Thu, 10 Fri, 11 Sat (调休), 13 Mon, 14 Tue.
    d = OFFICIAL.add_working_days(D(2025, 9, 30), 5)
    assert d.day == D(2025, 10, 14)
    assert d.at.isoformat() == "2025-10-14T23:59:59+08:00"
    assert d.sources == ("official",) and not d.fallback and d.warning is None


def test_art7_default_deadline_counts_makeup_sunday_before_national_day_2025():
    # closed Fri 26 Sep: 28 Sun (调休), 29, 30, then 9 and 10 Oct.
    assert OFFICIAL.add_working_days(D(2025, 9, 26), 5).day == D(2025, 10, 10)


def test_art7_default_deadline_across_spring_festival_2026():
    # closed Thu 12 Feb: 13 Fri, 14 Sat (调休), 15–23 off, 24, 25, 26.
    assert OFFICIAL.add_working_days(D(2026, 2, 12), 5).day == D(2026, 2, 26)


def test_art7_default_deadline_across_national_day_2026():
    # closed Wed 30 Sep: 1–7 Oct off; 8, 9, 10 Sat (调休), 12, 13.
    assert OFFICIAL.add_working_days(D(2026, 9, 30), 5).day == D(2026, 10, 13)


def test_art10_appeal_three_working_days_across_mid_autumn_2026():
    # received Thu 24 Sep: 25–27 off (中秋), 28, 29, 30. Wrong: a unit's appeal refused as late.
    assert OFFICIAL.add_working_days(D(2026, 9, 24), 3).day == D(2026, 9, 30)


def test_art12_rectification_fifteen_working_days_across_national_day_2026():
    # verified Mon 28 Sep 2026; wrong: a unit is shown overdue while it still has days.
    assert OFFICIAL.add_working_days(D(2026, 9, 28), 15).day == D(2026, 10, 23)


def test_art7_zero_working_days_is_the_end_of_that_day():
    d = OFFICIAL.add_working_days(D(2026, 10, 1), 0)
    assert d.day == D(2026, 10, 1) and d.at.isoformat() == "2026-10-01T23:59:59+08:00"


@pytest.mark.parametrize("n", [-1, 1001, 2.5, "5", True])
def test_art7_working_days_must_be_a_sane_whole_number(n):
    with pytest.raises(HcpError, match="working days must be a whole number"):
        OFFICIAL.add_working_days(D(2026, 1, 5), n)


# --- time zone and the end of the day ---------------------------------------------------------

def test_art7_a_utc_close_time_counts_from_its_shanghai_day():
    # 16:30 UTC on Fri 9 Oct 2026 is 00:30 on Sat 10 Oct (调休) in the hall: counting from the
    # UTC day would end the citizen's time a day early (15 Oct instead of 16 Oct).
    closed = datetime.datetime(2026, 10, 9, 16, 30, tzinfo=datetime.UTC)
    assert workdays.local_day(closed) == D(2026, 10, 10)
    assert OFFICIAL.add_working_days(closed, 5).day == D(2026, 10, 16)
    assert OFFICIAL.add_working_days(D(2026, 10, 9), 5).day == D(2026, 10, 15)


def test_art7_naive_times_are_refused():
    with pytest.raises(HcpError, match="no time zone"):
        workdays.local_day(datetime.datetime(2026, 9, 30, 17, 0))


def test_art7_the_whole_last_day_is_in_time_and_the_next_day_is_not():
    # Wrong: a citizen rating at 23:59:59.5 on the last day is overridden by a default.
    d = OFFICIAL.add_working_days(D(2025, 9, 30), 5)
    sh = workdays.SHANGHAI
    assert not d.passed(datetime.datetime(2025, 10, 14, 23, 59, 59, 999999, tzinfo=sh))
    assert d.passed(datetime.datetime(2025, 10, 15, 0, 0, tzinfo=sh))
    assert d.passed(datetime.datetime(2025, 10, 14, 16, 0, tzinfo=datetime.UTC))
    assert not d.passed(datetime.datetime(2025, 10, 14, 15, 59, tzinfo=datetime.UTC))


# --- no data: the Monday-Friday fallback, flagged loudly ---------------------------------------

def test_art7_year_end_beyond_the_package_falls_back_and_says_so(caplog):
    # Mon 28 Dec 2026: 29, 30, 31 official; 2027 unknown → Fri 1 Jan, Mon 4 Jan by Monday-Friday.
    with caplog.at_level(logging.WARNING, logger="haochaping.daemon.rules.workdays"):
        d = workdays.Calendar(None).add_working_days(D(2026, 12, 28), 5)
    assert d.day == D(2027, 1, 4)
    assert d.fallback and d.fallback_years == (2027,)
    assert d.sources == ("official", "fallback")
    assert "2027" in d.warning and "hcp calendar import" in d.warning
    assert d.to_dict()["calendar"]["fallback"] is True
    assert any("2027" in r.getMessage() for r in caplog.records)


def test_art7_a_date_with_no_data_carries_the_fallback_source():
    assert OFFICIAL.is_working_day(D(2027, 1, 1)) == (True, "fallback")
    assert OFFICIAL.is_working_day(D(2027, 1, 2)) == (False, "fallback")
    assert OFFICIAL.is_working_day(D(2003, 6, 2)) == (True, "fallback")


def test_art7_year_end_with_an_override_file_uses_it_and_is_not_flagged():
    # same day as above; the override's 元旦 (1–3 Jan) moves the deadline to Tue 5 Jan.
    d = _cal().add_working_days(D(2026, 12, 28), 5)
    assert d.day == D(2027, 1, 5)
    assert not d.fallback and d.sources == ("official", "override")
    assert d.to_dict()["calendar"]["override_file"] == "test.toml"


def test_art7_override_makeup_day_and_holiday_are_used():
    cal = _cal()
    assert cal.is_working_day(D(2027, 1, 31)) == (True, "override")       # a Sunday, 调休
    assert cal.is_working_day(D(2027, 2, 8)) == (False, "override")       # a Monday, 春节
    assert cal.is_working_day(D(2027, 3, 1)) == (True, "override")        # ordinary Monday
    assert cal.is_working_day(D(2027, 3, 6)) == (False, "override")       # ordinary Saturday
    assert cal.is_working_day(D(2028, 3, 6)) == (True, "fallback")        # year not in the file
    # closed Fri 5 Feb: 6–14 off, 15, 16, 17.
    assert cal.add_working_days(D(2027, 2, 5), 3).day == D(2027, 2, 17)


def test_art7_an_override_year_replaces_the_package_year_and_differences_are_shown():
    # An override for 2026 that forgets the 10 Oct make-up Saturday: the override wins, and
    # `check` shows where it differs from the package so hall IT can spot the slip.
    text = textwrap.dedent("""\
        [2026]
        notice = "test: 2026 National Day only"
        [[2026.holiday]]
        name = "国庆节"
        from = 2026-10-01
        to = 2026-10-07
        """)
    cal = _cal(text)
    assert cal.is_working_day(D(2026, 10, 10)) == (False, "override")
    row = cal.check([2026])[0]
    assert row["source"] == "override" and row["official"] is True
    assert "2026-10-10" in row["differs_from_official"]
    assert "2026-02-16" in row["differs_from_official"]   # 春节 missing from the override


def test_art7_check_reports_each_years_source():
    rows = {r["year"]: r for r in _cal().check([2025, 2026, 2027, 2028])}
    assert rows[2025]["source"] == "official" and "2025-10-11" in rows[2025]["makeup_days"]
    assert rows[2026]["source"] == "official" and "2026-02-28" in rows[2026]["makeup_days"]
    assert rows[2027]["source"] == "override"
    assert rows[2028]["source"] == "fallback" and "2028" in rows[2028]["warning"]


# --- the override file: validation names the line and the date ---------------------------------

@pytest.mark.parametrize("change,message", [
    (("makeup = [2027-01-31, 2027-02-20]", "makeup = [2027-02-01, 2027-02-20]"),
     "line 14: 春节: makeup day 2027-02-01 is a Monday"),
    (("to = 2027-02-14", "to = 2027-01-14"), "line 13: 春节: to 2027-01-14 is before from"),
    (("from = 2027-01-01\nto = 2027-01-03", "from = 2027-02-05\nto = 2027-02-06"),
     "line 12: 春节: 2027-02-06 is listed twice"),
    (("makeup = [2027-01-31, 2027-02-20]", "makeup = [2027-01-31, 2027-01-31]"),
     "line 14: 春节: makeup day 2027-01-31 is also a holiday or listed twice"),
    (("from = 2027-01-01\nto = 2027-01-03", "from = 2028-01-01\nto = 2028-01-02"),
     "line 7: 元旦: 2028-01-01 is outside 2027"),
    (("to = 2027-01-03", "to = 2027-12-03"), "longer than 31 days"),
    (("from = 2027-01-01", "from = \"2027-02-30\""),
     "line 7: 元旦: from = '2027-02-30' is not a date"),
    (("makeup = [2027-01-31, 2027-02-20]", "makeup = [2027-02-07]"),
     "makeup day 2027-02-07 is also a holiday"),
    (('notice = "test notice, invented dates"', 'notes = "x"'),
     "line 3: [2027] has unknown key 'notes'"),
    (('notice = "test notice, invented dates"', 'notice = ""'), "needs notice"),
    (("[2027]", "[27]"), "'27' is not a year table"),
    (("name = \"春节\"", "name = \"春节\"\nday = 2027-02-06"), "unknown key 'day' in a holiday"),
    (("[[2027.holiday]]\nname = \"元旦\"", "[2027.holiday\nname = \"元旦\""), "not valid TOML"),
])
def test_art7_a_bad_override_file_is_refused_naming_line_and_date(change, message):
    # Wrong: a typo in the holiday schedule silently shifts every deadline of a year.
    old, new = change
    assert old in OVERRIDE_2027
    with pytest.raises(HcpError) as e:
        workdays.parse_override(OVERRIDE_2027.replace(old, new, 1), "bad.toml")
    assert "bad.toml refused" in str(e.value)
    assert message in str(e.value)


def test_art7_the_unedited_example_file_is_refused_and_the_edited_one_accepted():
    with pytest.raises(HcpError, match="still the example"):
        workdays.parse_override(workdays.EXAMPLE_OVERRIDE)
    o = workdays.parse_override(workdays.EXAMPLE_OVERRIDE.replace("EXAMPLE: ", ""))
    assert o.years == [2027]


def test_art7_every_problem_is_listed_at_once():
    text = OVERRIDE_2027.replace("2027-01-31", "2027-02-01").replace('notice = "test notice, '
                                                                     'invented dates"', "")
    msg = str(pytest.raises(HcpError, workdays.parse_override, text).value)
    assert "needs notice" in msg and "2027-02-01 is a Monday" in msg


def test_art7_a_new_years_holiday_may_start_in_december_of_the_old_year():
    text = textwrap.dedent("""\
        [2030]
        notice = "test"
        [[2030.holiday]]
        name = "元旦"
        from = 2029-12-30
        to = 2030-01-01
        makeup = [2029-12-29]
        """)
    cal = _cal(text)
    assert cal.is_working_day(D(2029, 12, 29)) == (True, "override")
    assert cal.is_working_day(D(2029, 12, 31)) == (False, "override")


def test_art7_a_year_the_file_writes_in_escapes_is_read_not_a_traceback():
    # if this fails, `hcp calendar import` of a valid file whose year never appears as digits
    # (a quoted key in escapes, every date in the old year's December) dies with a TypeError
    # instead of installing it
    year = '"\\u0032\\u0030\\u0032\\u0037"'  # "2027", spelt with escapes
    o = workdays.parse_override(textwrap.dedent("""\
        [%s]
        notice = "test notice, invented dates"

        [[%s.holiday]]
        name = "元旦"
        from = 2026-12-31

        [[%s.holiday]]
        name = "测试"
        from = 2026-12-30
        """) % (year, year, year))
    assert o.years == [2027] and o.holidays(2026) == [D(2026, 12, 30), D(2026, 12, 31)]


def test_art7_install_validates_then_replaces_atomically(tmp_path):
    src, bad, target = tmp_path / "in.toml", tmp_path / "bad.toml", tmp_path / "etc" / "cal.toml"
    src.write_text(OVERRIDE_2027, encoding="utf-8")
    o, dropped = workdays.install_override(src, target)
    assert o.years == [2027] and dropped == []
    assert target.read_text(encoding="utf-8") == OVERRIDE_2027
    bad.write_text(OVERRIDE_2027.replace("2027-01-31", "2027-02-01"), encoding="utf-8")
    with pytest.raises(HcpError, match="2027-02-01"):
        workdays.install_override(bad, target)
    assert target.read_text(encoding="utf-8") == OVERRIDE_2027   # the good file stays
    other = tmp_path / "2030.toml"
    other.write_text('[2030]\nnotice = "t"\n[[2030.holiday]]\nname = "元旦"\nfrom = 2030-01-01\n',
                     encoding="utf-8")
    o, dropped = workdays.install_override(other, target)
    assert o.years == [2030] and dropped == [2027]
    assert [p.name for p in target.parent.iterdir()] == ["cal.toml"]   # no temp file left


def test_art7_load_uses_env_var_default_location_and_refuses_a_broken_file(tmp_path, monkeypatch):
    assert workdays.Calendar.load().override is None          # nothing installed: fine
    default = workdays.default_path()
    assert default == tmp_path / "config" / "haochaping" / "calendar.toml"
    default.parent.mkdir(parents=True)
    default.write_text(OVERRIDE_2027, encoding="utf-8")
    assert workdays.Calendar.load().override.years == [2027]
    assert workdays.is_working_day(D(2027, 1, 31)) == (True, "override")   # module-level API
    default.write_text(OVERRIDE_2027.replace("2027-01-31", "2027-01-30"), encoding="utf-8")
    os.utime(default, ns=(1, 1))                                # a changed file is re-read
    assert workdays.is_working_day(D(2027, 1, 31)) == (False, "override")
    assert workdays.is_working_day(D(2027, 1, 30)) == (True, "override")
    default.write_text("[2027]\n", encoding="utf-8")
    with pytest.raises(HcpError, match="refused"):
        workdays.Calendar.load()                                # broken: never silently ignored
    monkeypatch.setenv(workdays.ENV_VAR, str(tmp_path / "missing.toml"))
    with pytest.raises(HcpError, match="not found"):
        workdays.Calendar.load()                                # asked for it: must exist
