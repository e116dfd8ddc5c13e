"""hcp daemon / window / pair / unpair / terminal: run the hall and tell it what happens."""
from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import click

from haochaping.daemon.errors import HcpError
from haochaping.daemon.hall import db, registry, settings, summary
from haochaping.tools.cli import cli
from haochaping.tools.cli._options import ACTOR, CONFIG, hall_db, write_or_check

if TYPE_CHECKING:
    from haochaping.daemon.hall.api_client import WindowApi


@cli.group()
def daemon() -> None:
    """Run the hall daemon (MQTT ingest, prompts, window API)."""


@daemon.command("run")
@CONFIG
def daemon_run(config_path: str) -> None:
    """Run the hall daemon until SIGTERM or Ctrl-C.

    \b
    Example:
      hcp daemon run --config hall.toml
    \b
    hall.toml:
      [hall]
      id = "H01"
      database = "hall.sqlite"
      [mqtt]
      host = "127.0.0.1"
      port = 1883
      username = "hall-daemon"
      password = "..."
      # tls = true, ca = "broker/tls/hall-ca.pem", port = 8883: TLS (hcp broker config --tls)
      [api]
      listen = "127.0.0.1:8780"
      [api.tokens]
      queue-system = "a-long-random-token"
    """
    from haochaping.daemon.hall.service import HallDaemon
    cfg = settings.load(config_path)
    logging.getLogger(__name__).info("config: %s", settings.redacted(cfg))
    try:
        d = HallDaemon(cfg)
    except OSError as e:
        raise HcpError("cannot start: %s" % e) from None
    d.run()


@daemon.command("openapi")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the document to this file (default: print it).")
@click.option("--check", is_flag=True,
              help="Exit non-zero if --out differs from what the code says (for CI).")
def daemon_openapi(out: str | None, check: bool) -> None:
    """The window API's OpenAPI document, generated from the code (what a queue-system vendor
    integrates with; the daemon also serves it at /openapi.json).

    \b
    Example:
      hcp daemon openapi --out docs/window-openapi.json
      hcp daemon openapi --out docs/window-openapi.json --check
    """
    from haochaping.daemon.hall import api
    text = json.dumps(api.spec(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    write_or_check(text, out, check, "hcp daemon openapi")


@cli.group()
def window() -> None:
    """What a queue system does: call a ticket, finish the service (opens the rating prompt)."""


def _api(config_path: str) -> WindowApi:
    from haochaping.daemon.hall.api_client import WindowApi
    return WindowApi(settings.load(config_path))


@window.command("start")
@CONFIG
@click.option("--window", "window_id", required=True, help="Window id, e.g. W01.")
@click.option("--ticket", required=True, help="Queue ticket or 办件编号 being served.")
@click.option("--item", default="", help="事项编码 of the service item.")
@click.option("--staff", default="", help="Staff number at the window.")
def window_start(config_path: str, window_id: str, ticket: str, item: str, staff: str) -> None:
    """A ticket is called to a window (closes any prompt still open there).

    \b
    Example:
      hcp window start --config hall.toml --window W01 --ticket A017 --staff S08
    """
    r = _api(config_path).start(window_id, ticket, item, staff)
    click.echo("window %s: serving ticket %s (transaction %d)"
               % (window_id, ticket, r["transaction"]))


@window.command("finish")
@CONFIG
@click.option("--window", "window_id", required=True, help="Window id, e.g. W01.")
def window_finish(config_path: str, window_id: str) -> None:
    """The service ends: the window's terminals ask the citizen to rate it.

    \b
    Example:
      hcp window finish --config hall.toml --window W01
    """
    r = _api(config_path).finish(window_id)
    if not r["terminals"]:
        click.echo("window %s: finished, but no terminal is paired with it (`hcp pair`)"
                   % window_id)
    else:
        click.echo("window %s: rating prompt open on %s for %d s" % (
            window_id, ", ".join(r["terminals"]), r["prompt_timeout_s"]))


@window.command("state")
@CONFIG
@click.option("--window", "window_id", required=True, help="Window id, e.g. W01.")
def window_state(config_path: str, window_id: str) -> None:
    """Show what a window's current transaction is doing (JSON).

    \b
    Example:
      hcp window state --config hall.toml --window W01
    """
    click.echo(json.dumps(_api(config_path).state(window_id), ensure_ascii=False))


@window.command("qr")
@CONFIG
@click.option("--window", "window_ids", multiple=True,
              help="Window id, e.g. W03 (repeat for several; none: every paired window).")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="card.png (the code), card.svg (a card with the window's name and"
                   " instructions) or cards.html (a printable sheet, one card per window).")
def window_qr(config_path: str, window_ids: tuple[str, ...], out: str) -> None:
    """Write a window's desk card (评价二维码): its URL opens the prompt open at scan time.

    \b
    Examples:
      hcp window qr --config hall.toml --window W03 --out card.png
      hcp window qr --config hall.toml --out cards.html      (every window, print it)
    """
    from haochaping.daemon.hall import qrcodes
    cfg = settings.load(config_path)
    kind = out.rpartition(".")[2].lower()
    if kind not in ("png", "svg", "html"):
        raise HcpError("--out: a .png, .svg or .html file, got %s" % out)
    conn = db.connect(cfg.hall.database)
    try:
        cards = qrcodes.desk_cards(conn, cfg, window_ids)
    finally:
        conn.close()
    if kind != "html" and len(cards) != 1:
        raise HcpError("a .%s holds one window's card: give one --window (or write a .html"
                       " sheet for all)" % kind)
    if kind == "png":
        data = qrcodes.png(cards[0][1])
    elif kind == "svg":
        data = qrcodes.card_svg(cfg.hall.id, *cards[0])
    else:
        data = qrcodes.sheet(cfg.hall.id, cards).encode()
    try:
        with open(out, "wb") as f:
            f.write(data)
    except OSError as e:
        raise HcpError("cannot write %s: %s" % (out, e.strerror)) from e
    for w, url in cards:
        click.echo("window %s: %s" % (w, url))
    click.echo("wrote %s" % out)


@cli.command()
@CONFIG
@click.option("--window", "window_id", required=True, help="Window id, e.g. W01.")
@click.option("--terminal", required=True, help="Terminal id, e.g. T001.")
@ACTOR
def pair(config_path: str, window_id: str, terminal: str, actor: str | None) -> None:
    """Pair a terminal with a window (a window may have several terminals).

    \b
    Example:
      hcp pair --config hall.toml --window W01 --terminal T001
    """
    from haochaping.tools.device.fleet import who
    registry.pair(hall_db(config_path), window_id, terminal, actor=who(actor))
    click.echo("terminal %s now rates window %s" % (terminal, window_id))


@cli.command()
@CONFIG
@click.option("--terminal", required=True, help="Terminal id, e.g. T001.")
@ACTOR
def unpair(config_path: str, terminal: str, actor: str | None) -> None:
    """Take a terminal off its window.

    \b
    Example:
      hcp unpair --config hall.toml --terminal T001
    """
    from haochaping.tools.device.fleet import who
    registry.unpair(hall_db(config_path), terminal, actor=who(actor))
    click.echo("terminal %s is no longer paired" % terminal)


@cli.command()
@CONFIG
def pairings(config_path: str) -> None:
    """List which terminals rate which windows.

    \b
    Example:
      hcp pairings --config hall.toml
    """
    rows = registry.pairings(hall_db(config_path))
    for r in rows:
        click.echo("%-10s %s" % (r["window"], r["terminal"]))
    if not rows:
        click.echo("no pairings yet: `hcp pair --window W01 --terminal T001`")


@cli.command("summary")
@CONFIG
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
def summary_cmd(config_path: str, as_json: bool) -> None:
    """Per window: transactions, rated, and ratings by level.

    \b
    Example:
      hcp summary --config hall.toml
    """
    conn = hall_db(config_path)
    rows = summary.window_summary(conn)
    if as_json:
        click.echo(json.dumps({"windows": rows, "outcomes": summary.outcome_counts(conn)},
                              ensure_ascii=False))
    else:
        click.echo(summary.format_summary(rows))


@cli.group()
def terminal() -> None:
    """Register terminals with the hall daemon."""


@terminal.command("add")
@CONFIG
@click.option("--terminal", "terminal_id", required=True, help="Terminal id, e.g. T001.")
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="Where to write the terminal's secrets (JSON, mode 600) for provisioning.")
@ACTOR
def terminal_add(config_path: str, terminal_id: str, out: str, actor: str | None) -> None:
    """Register a terminal and generate its signing key (written to --out, never printed).

    \b
    Example:
      hcp terminal add --config hall.toml --terminal T001 --out T001.json
    """
    cfg = settings.load(config_path)
    from haochaping.tools.device import fleet
    fleet.add_terminal(db.connect(cfg.hall.database), cfg.hall.id, terminal_id, out,
                       fleet.who(actor))
    click.echo("terminal %s registered; its key is in %s (keep it secret). Next: `hcp pair`."
               % (terminal_id, out))
