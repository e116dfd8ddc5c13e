"""`hcp report quarterly` (第十一条) and `hcp rules explain` (第十四条) on the store's data."""
import datetime
import json
import os

import click

from haochaping.daemon.errors import HcpError
from haochaping.daemon.store.backends import PostgresStore, SqliteStore
from haochaping.tools.cli import cli
from haochaping.tools.cli.hcp_rules import rules
from haochaping.tools.cli.hcp_store import DB, _open

_TZ = datetime.timezone(datetime.timedelta(hours=8))


def _open_existing(db: str) -> SqliteStore | PostgresStore:
    """The store at `db`; a SQLite file must exist (a report of an empty new file helps no one)."""
    if not db.startswith(("postgresql://", "postgres://")) and not os.path.isfile(db):
        raise HcpError("no store database at %s: give the file `hcp store serve --db` uses, or"
                       " a postgresql:// URL" % db)
    return _open(db)


def _no_data_hint(st: SqliteStore | PostgresStore, period: str) -> str:
    span = st.span()
    if span is None:
        return "the store holds no transactions yet: halls forward them (`hcp forward status`)"
    first, last = (datetime.datetime.fromtimestamp(t, _TZ).date() for t in span)
    return ("nothing in %s: the store's transactions run from %s to %s; choose --period there"
            " (e.g. %dQ%d)" % (period, first, last, last.year, (last.month - 1) // 3 + 1))


@cli.group()
def report() -> None:
    """Reports from the municipal store (第十一条): quarterly, internal or --public (no PII).

    \b
    Example:
      hcp report quarterly --db store.sqlite --period 2026Q3 --out reports/ --public
    """


@report.command("quarterly")
@DB
@click.option("--period", required=True, help="2026Q3 (also 2026-07 or 2026).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for PERIOD.html, PERIOD.json and PERIOD-*.csv.")
@click.option("--public", is_flag=True,
              help="The variant for publication: departments and windows only, no staff"
                   " scores (files named PERIOD-public.*). No report ever holds a rater's"
                   " identity.")
def report_quarterly(db: str, period: str, out_dir: str, public: bool) -> None:
    """Write the quarterly report: an HTML page with charts, and CSV and JSON of its figures.

    Run `hcp store run-defaults` first so that default ratings are in; a transaction still
    inside its 5 working days makes its unit's score provisional.

    \b
    Example:
      hcp report quarterly --db store.sqlite --period 2026Q3 --out reports/
      hcp report quarterly --db store.sqlite --period 2026Q3 --out reports/ --public
    """
    from haochaping.daemon.store import quarterly as report_lib
    st = _open_existing(db)
    try:
        fig, paths = report_lib.quarterly(st, period, out_dir, public)
        hint = _no_data_hint(st, fig["period"]) if not fig["overall"]["total"] else None
    finally:
        st.close()
    click.echo("%s report %s: %d units, %d transactions" % (
        "public" if public else "internal", fig["period"], len(fig["units"]),
        fig["overall"]["total"]))
    for kind in ("html", "json"):
        click.echo("  %s" % paths[kind])
    click.echo("  %d CSV files next to them" % (len(paths) - 2))
    if hint:
        click.echo("note: " + hint, err=True)


@rules.command("explain")
@DB
@click.option("--unit", required=True,
              help="A department code (or hall id), window:HALL/WINDOW or staff:HALL/STAFF.")
@click.option("--period", required=True, help="2026Q3 (also 2026-07 or 2026).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def rules_explain(db: str, unit: str, period: str, as_json: bool) -> None:
    """How a unit's 第十四条 score was reached from the store's data, step by step.

    Counts per level, default ratings, ratings excluded by upheld appeals, acceptance rate,
    average, bands, final score.

    \b
    Example:
      hcp rules explain --db store.sqlite --unit H01 --period 2026Q3
      hcp rules explain --db store.sqlite --unit window:H01/W01 --period 2026Q3 --json
    """
    from haochaping.daemon.store import scores
    st = _open_existing(db)
    try:
        e = scores.explain(st, unit, period)
    finally:
        st.close()
    if as_json:
        click.echo(json.dumps(dict(e.to_dict(), article="第十四条"), ensure_ascii=False))
    else:
        click.echo(e.text)
