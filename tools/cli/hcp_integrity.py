"""hcp integrity: the integrity detectors (第十一条 弄虚作假) over a period of the store."""
import click

from haochaping.tools.cli import cli
from haochaping.tools.cli.hcp_report import _open_existing
from haochaping.tools.cli.hcp_store import DB


@cli.group()
def integrity() -> None:
    """Catching 刷好评, self-rating and skipped prompts: internal findings with their evidence.

    \b
    Example:
      hcp integrity report --db store.sqlite --period 2026Q4 --out reports/
    """


@integrity.command("report")
@DB
@click.option("--period", required=True, help="2026Q4 (also 2026-10 or 2026).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for PERIOD-integrity.html and PERIOD-integrity.json.")
@click.option("--identity-key", type=click.Path(exists=True, dir_okay=False),
              help="The store's identity key: also compares real-name raters' phone numbers"
                   " (shown masked).")
def integrity_report(db: str, period: str, out_dir: str, identity_key: str | None) -> None:
    """Write the internal integrity report of a period (never part of the public report).

    Each finding names the window or staff number, the evidence in numbers and an explanation
    in Chinese; the thresholds are in docs/integrity.md. A finding is a reason to look, not a
    verdict.

    \b
    Example:
      hcp integrity report --db store.sqlite --period 2026Q4 --out reports/
    """
    from haochaping.daemon.store import identity
    from haochaping.daemon.store import integrity_report as lib
    st = _open_existing(db)
    if identity_key:
        st.identity = identity.IdentityKey.load(identity_key)
    try:
        rep = lib.report(st, period)
    finally:
        st.close()
    paths = lib.write(rep, out_dir)
    click.echo("integrity %s: %d transactions, %d rated, %d finding(s)" % (
        period, rep["transactions"], rep["rated"], len(rep["findings"])))
    for f in rep["findings"]:
        click.echo("  %s: %s" % (f["unit"], f["explanation"]))
    click.echo("  %s\n  %s" % (paths["html"], paths["json"]))


@integrity.command("today")
@click.option("--config", "config_path", default="hall.toml", show_default=True,
              type=click.Path(dir_okay=False), help="The hall's configuration file.")
def integrity_today(config_path: str) -> None:
    """Today's findings at this hall, from the hall database (the duty manager's view).

    \b
    Example:
      hcp integrity today --config hall.toml
    """
    from haochaping.daemon.hall import db, integrity_live, settings
    cfg = settings.load(config_path)
    conn = db.connect(cfg.hall.database)
    try:
        found = integrity_live.today(conn, cfg.hall.id)
    finally:
        conn.close()
    if not found:
        click.echo("今日未发现异常 (no findings today)")
    for f in found:
        click.echo("%s: %s" % (f["unit"], f["explanation"]))


@integrity.command("hall")
@click.option("--config", "config_path", default="hall.toml", show_default=True,
              type=click.Path(dir_okay=False), help="The hall's configuration file.")
@click.option("--period", required=True, help="A quarter (2026Q4), a month (2026-11) or a year.")
def integrity_hall(config_path: str, period: str) -> None:
    """A period's findings at this hall, from the hall database: all the detectors, with the
    hall's own (terminals offline while serving, staff numbers used as raters), which the
    store's `hcp integrity report` cannot have.

    \b
    Example:
      hcp integrity hall --config hall.toml --period 2026Q4
    """
    from haochaping.daemon.hall import db, integrity_live, settings
    cfg = settings.load(config_path)
    conn = db.connect(cfg.hall.database)
    try:
        found = integrity_live.period(conn, cfg.hall.id, period)
    finally:
        conn.close()
    if not found:
        click.echo("本期未发现异常 (no findings in %s)" % period)
    for f in found:
        click.echo("%s: %s" % (f["unit"], f["explanation"]))
