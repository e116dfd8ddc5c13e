"""`hcp calendar`: where working-day data comes from, and the override file for new years."""
import datetime
import json
from collections.abc import Mapping
from typing import Any

import click

from haochaping.daemon.rules import workdays
from haochaping.tools.cli import cli
from haochaping.tools.cli.hcp_rules import CALENDAR_FILE, JSON


@cli.group()
def calendar() -> None:
    """Working-day calendar: check it, import overrides.

    \b
    Example:
      hcp calendar check
      hcp calendar example > 2027.toml   # edit it from the State Council notice, then:
      hcp calendar import 2027.toml
    """


def _default_years(cal: workdays.Calendar) -> list[int]:
    this = datetime.datetime.now(workdays.SHANGHAI).year
    years = {this - 1, this, this + 1}
    if cal.override:
        years.update(cal.override.years)
    return sorted(years)


@calendar.command("check")
@click.option("--year", "years", type=click.IntRange(1900, 2200), multiple=True,
              help="Year to check (repeatable) [default: last, this and next year, and every "
                   "year in the override file].")
@CALENDAR_FILE
@JSON
def check(years: tuple[int, ...], calendar_file: str | None, as_json: bool) -> None:
    """Say, per year, whether working days come from official data, the override file, or the
    Monday-Friday fallback. Exit status 1 if a checked year falls back.

    \b
    Example:
      hcp calendar check --year 2026 --year 2027
    """
    cal = workdays.Calendar.load(calendar_file)
    rows = cal.check(sorted(set(years)) or _default_years(cal))
    fallback = [r["year"] for r in rows if r["source"] == workdays.FALLBACK]
    if as_json:
        click.echo(json.dumps({"package": workdays.PACKAGE,
                               "override_file": cal.override.path if cal.override else None,
                               "years": rows, "fallback_years": fallback}, ensure_ascii=False))
    else:
        click.echo("official data: %s; override file: %s"
                   % (workdays.PACKAGE, cal.override.path if cal.override else "none"))
        for r in rows:
            click.echo("%d  %s" % (r["year"], _describe(r)))
    if fallback:
        click.echo("WARNING: " + workdays.FALLBACK_WARNING % ", ".join(map(str, fallback)),
                   err=True)
        click.get_current_context().exit(1)


def _describe(r: Mapping[str, Any]) -> str:
    """One year's row of Calendar.check() (a JSON object), in words."""
    if r["source"] == workdays.OFFICIAL:
        return "official (调休 make-up days: %s)" % (", ".join(r["makeup_days"]) or "none")
    if r["source"] == workdays.OVERRIDE:
        text = "override: %s; %d holidays, make-up days: %s" % (
            r["notice"], r["holidays"], ", ".join(r["makeup_days"]) or "none")
        if r.get("differs_from_official"):
            text += "; differs from the official data on %s" % ", ".join(
                r["differs_from_official"])
        return text
    return "FALLBACK Monday-Friday: no data"


@calendar.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@CALENDAR_FILE
@JSON
def import_(file: str, calendar_file: str | None, as_json: bool) -> None:
    """Validate an override file and install it (it replaces the installed one). A bad file is
    refused with every problem's line and date, and the installed file is left as it was.

    \b
    Example:
      hcp calendar import 2027.toml
    """
    override, dropped = workdays.install_override(file, calendar_file)
    rows = workdays.Calendar(override).check(override.years)
    if as_json:
        click.echo(json.dumps({"installed": override.path, "years": rows, "dropped_years": dropped},
                              ensure_ascii=False))
        return
    click.echo("installed %s" % override.path)
    for r in rows:
        click.echo("%d  %s" % (r["year"], _describe(r)))
    if dropped:
        click.echo("WARNING: the previous file also had %s, which this one drops"
                   % ", ".join(map(str, dropped)), err=True)


@calendar.command("example")
def example() -> None:
    """Print an example override file to edit (its dates are NOT the real schedule).

    \b
    Example:
      hcp calendar example > 2027.toml
    """
    click.echo(workdays.EXAMPLE_OVERRIDE, nl=False)
