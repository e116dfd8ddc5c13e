"""`hcp rules` and `hcp calendar` driven through click's CliRunner, JSON parsed, effects checked
through the library. If these fail, an auditor checking a score or deadline by hand gets a wrong
answer, a traceback, or a fallback deadline without a warning."""
import json
import textwrap

import click
import pytest
from click.testing import CliRunner

from haochaping.daemon.rules import workdays
from haochaping.tools.cli import cli
from haochaping.tools.cli import hcp_calendar as calendar_cli  # noqa: F401  (registers `calendar`)
from haochaping.tools.cli import hcp_rules as rules_cli  # noqa: F401  (registers `rules`)

OVERRIDE_2027 = textwrap.dedent("""\
    [2027]
    notice = "test notice, invented dates"

    [[2027.holiday]]
    name = "元旦"
    from = 2027-01-01
    to = 2027-01-03
    """)


@pytest.fixture(autouse=True)
def _isolated_calendar(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv(workdays.ENV_VAR, raising=False)


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def run_json(*args):
    r = run(*args, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


# --- hcp rules score -----------------------------------------------------------------------------

@pytest.mark.parametrize("rated,total,average,final,rate_points,average_points", [
    ("19", "20", "9.5", 10, 3, 7),       # 95% and 9.5 exactly: the higher bands
    ("18", "20", "9.49", 6, 1, 5),       # just below both
    ("4", "5", "8", 6, 1, 5),            # 80% and 8 exactly
    ("79", "100", "6", 3, 0, 3),         # just below 80%, 6 exactly
    ("79", "100", "5.99", 0, 0, 0),
])
def test_art14_cli_score_json(rated, total, average, final, rate_points, average_points):
    out = run_json("rules", "score", "--rated", rated, "--total", total, "--average", average)
    assert (out["final"], out["rate_points"], out["average_points"]) == (
        final, rate_points, average_points)
    assert out["acceptance_rate"] == int(rated) / int(total)
    assert out["article"] == "第十四条"


def test_art14_cli_score_total_zero_is_no_data_not_zero():
    # Wrong: a window that served nobody is published with 0 points.
    out = run_json("rules", "score", "--rated", "0", "--total", "0")
    assert out["final"] is None and out["reason"] == "no data"
    r = run("rules", "score", "--rated", "0", "--total", "0")
    assert r.exit_code == 0 and "no data" in r.output


def test_art14_cli_score_human_readable_by_default():
    r = run("rules", "score", "--rated", "19", "--total", "20", "--average", "9.5")
    assert r.exit_code == 0
    assert "95.00%" in r.output and "final score 10 / 10" in r.output


@pytest.mark.parametrize("args,message", [
    (["--rated", "21", "--total", "20", "--average", "9"], "more than 20 transactions"),
    (["--rated", "1", "--total", "20"], "--average is needed"),
    (["--rated", "1", "--total", "20", "--average", "nine"], "not a number"),
    (["--rated", "1", "--total", "20", "--average", "11"], "from 0 to 10"),
    (["--rated", "-1", "--total", "20", "--average", "9"], "--rated"),
])
def test_art14_cli_score_bad_arguments_give_one_error_line_and_no_traceback(args, message):
    r = run("rules", "score", *args)
    assert r.exit_code != 0
    assert "Traceback" not in r.output
    assert message in r.output


# --- hcp rules deadline --------------------------------------------------------------------------

def test_art7_cli_deadline_across_national_day_2025_json():
    out = run_json("rules", "deadline", "--closed", "2025-09-30", "--working-days", "5")
    assert out["deadline"] == "2025-10-14T23:59:59+08:00"
    assert out["calendar"]["sources"] == ["official"] and out["calendar"]["fallback"] is False


def test_art7_cli_deadline_spring_festival_2026_human_readable():
    r = run("rules", "deadline", "--closed", "2026-02-12", "--working-days", "5")
    assert r.exit_code == 0
    assert "2026-02-26T23:59:59+08:00" in r.stdout and "official" in r.stdout


def test_art7_cli_deadline_with_an_offset_uses_the_shanghai_day():
    out = run_json("rules", "deadline", "--closed", "2026-10-09T16:30:00Z", "--working-days", "5")
    assert out["start"] == "2026-10-10" and out["deadline"] == "2026-10-16T23:59:59+08:00"


def test_art7_cli_deadline_fallback_is_flagged_in_json_and_on_stderr():
    # Wrong: a deadline over an unknown 元旦 is trusted as if it were official.
    r = run("rules", "deadline", "--closed", "2026-12-28", "--working-days", "5", "--json")
    out = json.loads(r.stdout)
    assert out["deadline"] == "2027-01-04T23:59:59+08:00"
    assert out["calendar"]["fallback"] is True and out["calendar"]["fallback_years"] == [2027]
    assert "WARNING" in r.stderr and "2027" in r.stderr


def test_art7_cli_deadline_uses_the_imported_override(tmp_path):
    src = tmp_path / "2027.toml"
    src.write_text(OVERRIDE_2027, encoding="utf-8")
    assert run("calendar", "import", str(src)).exit_code == 0
    out = run_json("rules", "deadline", "--closed", "2026-12-28", "--working-days", "5")
    assert out["deadline"] == "2027-01-05T23:59:59+08:00"
    assert out["calendar"]["fallback"] is False and "override" in out["calendar"]["sources"]


@pytest.mark.parametrize("args,message", [
    (["--closed", "2026-02-30", "--working-days", "5"], "not a date"),
    (["--closed", "2026-02-03T10:00", "--working-days", "5"], "no offset"),
    (["--closed", "2026-02-03", "--working-days", "-1"], "--working-days"),
    (["--closed", "2026-02-03"], "--working-days"),
])
def test_art7_cli_deadline_bad_arguments(args, message):
    r = run("rules", "deadline", *args)
    assert r.exit_code != 0 and "Traceback" not in r.output and message in r.output


# --- hcp calendar --------------------------------------------------------------------------------

def test_art7_cli_calendar_check_says_where_each_year_comes_from_and_fails_on_fallback():
    r = run("calendar", "check", "--year", "2025", "--year", "2027", "--json")
    out = json.loads(r.stdout)
    assert {y["year"]: y["source"] for y in out["years"]} == {2025: "official", 2027: "fallback"}
    assert out["fallback_years"] == [2027]
    assert r.exit_code == 1 and "WARNING" in r.stderr
    r = run("calendar", "check", "--year", "2026")
    assert r.exit_code == 0 and "2026-02-28" in r.stdout


def test_art7_cli_calendar_import_installs_and_check_sees_it(tmp_path):
    src = tmp_path / "2027.toml"
    src.write_text(OVERRIDE_2027, encoding="utf-8")
    out = run_json("calendar", "import", str(src))
    assert out["installed"] == str(workdays.default_path())
    assert workdays.Calendar.load().override.years == [2027]
    out = run_json("calendar", "check", "--year", "2027")
    assert out["years"][0]["source"] == "override" and out["fallback_years"] == []


def test_art7_cli_calendar_import_refuses_a_bad_file_naming_line_and_date(tmp_path):
    src = tmp_path / "bad.toml"
    src.write_text(OVERRIDE_2027 + "makeup = [2027-01-04]\n", encoding="utf-8")
    r = run("calendar", "import", str(src))
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "line 8" in r.output and "2027-01-04 is a Monday" in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not workdays.default_path().exists()


def test_art7_cli_calendar_import_to_an_explicit_file(tmp_path):
    src, target = tmp_path / "2027.toml", tmp_path / "etc" / "calendar.toml"
    src.write_text(OVERRIDE_2027, encoding="utf-8")
    r = run("calendar", "import", str(src), "--calendar-file", str(target))
    assert r.exit_code == 0 and target.exists()
    out = run_json("rules", "deadline", "--closed", "2026-12-31", "--working-days", "1",
                   "--calendar-file", str(target))
    assert out["deadline"] == "2027-01-04T23:59:59+08:00"


def test_art7_cli_calendar_example_is_refused_until_edited(tmp_path):
    r = run("calendar", "example")
    src = tmp_path / "example.toml"
    src.write_text(r.stdout, encoding="utf-8")
    assert "still the example" in run("calendar", "import", str(src)).output
    src.write_text(r.stdout.replace("EXAMPLE: ", ""), encoding="utf-8")
    assert run("calendar", "import", str(src)).exit_code == 0


# --- every command explains itself ---------------------------------------------------------------

def _commands(group, prefix):
    for name, cmd in group.commands.items():
        yield prefix + [name], cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, prefix + [name])


@pytest.mark.parametrize("path", [p for p, _ in _commands(cli, [])
                                  if p[0] in ("rules", "calendar")], ids=" ".join)
def test_every_rules_and_calendar_command_has_a_summary_and_an_example(path):
    r = run(*path, "--help")
    assert r.exit_code == 0
    assert "Example:" in r.output and "hcp " + path[0] in r.output.split("Example:")[1]


def test_the_commands_are_registered_on_the_hcp_entry_point():
    from haochaping.tools.cli import _register
    _register()
    assert {"rules", "calendar"} <= set(cli.commands)
