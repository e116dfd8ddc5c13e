"""hcp terminals / hcp audit: watch the hall's terminals, and see who changed what, when."""
import json
import time

import click

from haochaping.daemon.hall import audit as audit_log
from haochaping.tools.cli import cli
from haochaping.tools.cli._options import CONFIG, hall_db
from haochaping.tools.device import fleet


@cli.command()
@CONFIG
@click.option("--offline-after", default=10, show_default=True, type=click.IntRange(min=0),
              help="Flag (!) terminals offline or never seen for longer than this (minutes).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def terminals(config_path: str, offline_after: int, as_json: bool) -> None:
    """List each terminal: window, online/offline, last seen, firmware, board, heap, backlog, WiFi.

    Online/offline comes from each terminal's retained status and its last will; a terminal
    offline (or never seen) for longer than --offline-after minutes is flagged with "!".

    \b
    Example:
      hcp terminals --config hall.toml
      hcp terminals --config hall.toml --json --offline-after 30
    """
    conn = hall_db(config_path)
    now = time.time()
    rows = fleet.terminal_rows(conn, now, offline_after * 60)
    if as_json:
        click.echo(json.dumps({"now": now, "offline_after_s": offline_after * 60,
                               "terminals": rows}, ensure_ascii=False))
        return
    if not rows:
        click.echo("no terminals yet: `hcp device provision --port P --terminal T001 ...`")
        return
    click.echo(fleet.format_rows(rows, now))
    flagged = [r["terminal"] for r in rows if r["flagged"]]
    if flagged:
        click.echo("\n! %d terminal(s) offline for more than %d min: %s — check power and WiFi"
                   % (len(flagged), offline_after, ", ".join(flagged)))


@cli.command()
@CONFIG
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1),
              help="How many entries, newest first.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines, for scripts.")
def audit(config_path: str, limit: int, as_json: bool) -> None:
    """Show the audit log: who paired, unpaired, provisioned or replaced what, and when.

    \b
    Example:
      hcp audit --config hall.toml --limit 20
    """
    conn = hall_db(config_path)
    rows = audit_log.entries(conn, limit=limit)
    for e in rows:
        if as_json:
            click.echo(json.dumps(e, ensure_ascii=False))
        else:
            detail = " ".join("%s=%s" % kv for kv in sorted(e["detail"].items()))
            click.echo("%s  %-12s %-10s %s" % (
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["at"])), e["actor"],
                e["action"], detail))
    if not rows and not as_json:
        click.echo("the audit log is empty")
