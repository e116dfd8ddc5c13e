"""`hcp rules`: check a 好差评 rule by hand (第十四条 scores, working-day deadlines)."""
import datetime
import json
from fractions import Fraction

import click

from haochaping.daemon.rules import scoring, workdays
from haochaping.tools.cli import cli

JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
CALENDAR_FILE = click.option(
    "--calendar-file", type=click.Path(dir_okay=False),
    help="Calendar override file [default: $%s, else ~/.config/haochaping/calendar.toml]."
    % workdays.ENV_VAR)


@cli.group()
def rules() -> None:
    """Check a 好差评 rule by hand: 第十四条 scores and working-day deadlines.

    \b
    Example:
      hcp rules score --rated 19 --total 20 --average 9.5
      hcp rules deadline --closed 2025-09-30 --working-days 5 --json
    """


def _average(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Fraction | None:
    if value is None:
        return None
    try:
        return Fraction(value.strip())
    except (ValueError, ZeroDivisionError):
        raise click.BadParameter("%r is not a number like 9.5" % value) from None


@rules.command("score")
@click.option("--rated", type=click.IntRange(min=0), required=True,
              help="Transactions rated by the citizen (default ratings not included).")
@click.option("--total", type=click.IntRange(min=0), required=True,
              help="All transactions of the unit in the period.")
@click.option("--average", callback=_average,
              help="Mean points of the counted ratings, defaults at 6 (needed unless --total 0).")
@JSON
def score(rated: int, total: int, average: Fraction | None, as_json: bool) -> None:
    """The 第十四条 final score from acceptance rate and average.

    Rate: ≥ 95% → 3, 80% to < 95% → 1, < 80% → 0. Average: ≥ 9.5 → 7, 8 to < 9.5 → 5,
    6 to < 8 → 3, < 6 → 0. A boundary value goes to the higher band. --total 0 has no score.

    \b
    Example:
      hcp rules score --rated 19 --total 20 --average 9.5
      hcp rules score --rated 0 --total 0 --json      # {"final": null, "reason": "no data", ...}
    """
    if total > 0 and average is None:
        raise click.UsageError("--average is needed when --total is above 0")
    if rated > total:
        raise click.BadParameter("%d rated is more than %d transactions" % (rated, total),
                                 param_hint="--rated")
    s = scoring.score_from(rated, total, average)
    if as_json:
        click.echo(json.dumps(dict(s.to_dict(), article="第十四条"), ensure_ascii=False))
    else:
        click.echo(s.text())


def parse_day(_ctx: click.Context, _param: click.Parameter,
              value: str | None) -> datetime.date | None:
    """YYYY-MM-DD, or an ISO date-time with its offset (taken as its Asia/Shanghai day)."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            return datetime.date.fromisoformat(value)
        when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("%r is not a date like 2026-10-09" % value) from None
    if when.tzinfo is None:
        raise click.BadParameter("%r has a time but no offset: add +08:00 or Z" % value)
    return workdays.local_day(when)


@rules.command("deadline")
@click.option("--closed", required=True, callback=parse_day, metavar="YYYY-MM-DD",
              help="The day the transaction closed (or the rating was received, for appeals).")
@click.option("--working-days", type=click.IntRange(0, workdays.MAX_WORKING_DAYS), required=True,
              help="5 default rating (第七条), 3 appeal, 10 appeal decision (第十条), "
                   "15 rectification (第十二条).")
@CALENDAR_FILE
@JSON
def deadline(closed: datetime.date, working_days: int, calendar_file: str | None,
             as_json: bool) -> None:
    """The deadline N working days after a day, holidays and 调休 make-up days included.

    It is 23:59:59 Asia/Shanghai of the N-th working day after the day; the answer says where
    the working-day data came from, and warns when a year had none (Monday-Friday fallback).

    \b
    Example:
      hcp rules deadline --closed 2025-09-30 --working-days 5
      hcp rules deadline --closed 2026-12-28 --working-days 5 --json   # 2027: flagged fallback
    """
    cal = workdays.Calendar.load(calendar_file)
    d = cal.add_working_days(closed, working_days)
    if d.warning:
        click.echo("WARNING: " + d.warning, err=True)
    if as_json:
        click.echo(json.dumps(d.to_dict(), ensure_ascii=False))
        return
    click.echo("%s  (%d working days after %s, end of day Asia/Shanghai)"
               % (d.at.isoformat(), working_days, closed.isoformat()))
    click.echo("calendar: %s (%s%s)" % (", ".join(d.sources), workdays.PACKAGE,
                                        "; override " + d.override_file if d.override_file else ""))
