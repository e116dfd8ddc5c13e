"""hcp forward status: is the link to the municipal store working? hcp forward quarantine: the
records the store refused, set apart for hall IT to fix and retry, or to drop."""
import datetime
import json
from collections.abc import Callable
from typing import Any

import click

from haochaping.daemon.errors import HcpError
from haochaping.daemon.hall import settings
from haochaping.tools.cli import cli
from haochaping.tools.cli._options import ACTOR, hall_db
from haochaping.tools.cli.hcp_bench import bench
from haochaping.tools.cli.hcp_hall import CONFIG


@cli.group()
def forward() -> None:
    """Forwarding to the municipal store ([forward] in hall.toml)."""


@forward.command("status")
@CONFIG
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of words.")
def forward_status(config_path: str, as_json: bool) -> None:
    """Backlog, oldest waiting record, last success and last error, in words.

    Reads the hall database; works whether or not the daemon is running.

    \b
    Example:
      hcp forward status --config hall.toml
    \b
    hall.toml:
      [forward]
      url = "https://store.city.local:8443"
      ca = "city-ca.pem"            # the CA that signed the store's certificate
      key_file = "H01.key"          # from `hcp store add-hall --key-out`
      batch_size = 500              # records per batch at most
      max_wait_s = 2                # a record waits at most this long for its batch to fill
    """
    from haochaping.daemon.hall import forward as fw
    cfg = settings.load(config_path)
    st = fw.open_status(cfg)
    if as_json:
        st["url"] = cfg.forward.url
        click.echo(fw.dumps(st))
        return
    if not cfg.forward.url:
        click.echo("forwarding is off: no [forward] url in %s" % cfg.path)
    else:
        click.echo("store: %s (as hall %s)" % (cfg.forward.url,
                                              cfg.forward.hall_id or cfg.hall.id))
    for line in fw.describe(st):
        click.echo(line)


@forward.group("quarantine")
def quarantine() -> None:
    """Records the store refused (HTTP 422), set apart so that the rest moves on.

    \b
    What to do with one:
      hcp forward quarantine list --config hall.toml
      hcp forward quarantine show --config hall.toml 3     # why, and the record as stored
      (fix the record in hall.sqlite, or have the store's rules fixed), then
      hcp forward quarantine retry --config hall.toml 3    # back in the queue
    or, when it must never reach the store:
      hcp forward quarantine drop --config hall.toml 3 --reason "test data"
    """


def _when(t: float | None) -> str:
    return "-" if t is None else datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def _line(q: dict[str, Any]) -> str:
    return "%d  %s  %s  %s  %d attempt(s)  %s" % (
        q["id"], q["record"], q["state"], _when(q["quarantined_at"]), q["attempts"], q["reason"])


@quarantine.command("list")
@CONFIG
@click.option("--all", "every", is_flag=True,
              help="Also the records retried, delivered after a retry, or dropped.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def quarantine_list(config_path: str, every: bool, as_json: bool) -> None:
    """The records held: id, record, state, when refused, attempts, the store's reason.

    \b
    Example:
      hcp forward quarantine list --config hall.toml
    """
    from haochaping.daemon.hall import forward as fw
    rows = fw.quarantine_list(hall_db(config_path), every)
    for q in rows:
        click.echo(json.dumps(q, ensure_ascii=False, sort_keys=True) if as_json else _line(q))
    if not rows and not as_json:
        click.echo("the quarantine is empty" if every else "no record is held")


@quarantine.command("show")
@CONFIG
@click.argument("qid", metavar="ID", type=int)
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of words.")
def quarantine_show(config_path: str, qid: int, as_json: bool) -> None:
    """One record: why the store refused it, and its fields as the hall holds them (control
    characters escaped, as \\u0000 for a NUL).

    \b
    Example:
      hcp forward quarantine show --config hall.toml 3
    """
    from haochaping.daemon.hall import forward as fw
    q = fw.quarantine_show(hall_db(config_path), qid)
    if as_json:
        click.echo(json.dumps(q, ensure_ascii=False, sort_keys=True))
        return
    click.echo("record:      %s (hall table %s)" % (q["record"], q["hall_table"]))
    click.echo("state:       %s" % q["state"])
    click.echo("refused:     %s, HTTP %d, %d attempt(s), batch %s" % (
        _when(q["quarantined_at"]), q["status"], q["attempts"], q["batch"]))
    click.echo("reason:      %s" % q["reason"])
    click.echo("queued:      %s" % _when(q["queued_at"]))
    if q["decided_at"] is not None:
        click.echo("decided:     %s by %s%s" % (_when(q["decided_at"]), q["decided_by"],
                                               ": " + q["note"] if q["note"] else ""))
    if q["fields"] is None:
        click.echo("fields:      the hall no longer has this record")
    else:
        for k, v in q["fields"].items():
            click.echo("  %-10s %s" % (k, json.dumps(v, ensure_ascii=False)))


@quarantine.command("retry")
@CONFIG
@click.argument("qid", metavar="[ID]", type=int, required=False)
@click.option("--all", "every", is_flag=True,
              help="Every held record (after a fix at the store that refused them all).")
@ACTOR
def quarantine_retry(config_path: str, qid: int | None, every: bool, actor: str | None) -> None:
    """Put a held record (or --all) back in the queue, once its cause is fixed (audited, one
    entry per record). Refused again, it comes back to the quarantine with one more attempt.

    \b
    Example:
      hcp forward quarantine retry --config hall.toml 3
      hcp forward quarantine retry --config hall.toml --all
    """
    from haochaping.daemon.hall import forward as fw
    from haochaping.tools.device.fleet import who
    if (qid is None) == (not every):
        raise HcpError("give the ID of one held record (`hcp forward quarantine list`) or --all")
    conn = hall_db(config_path)
    ids: list[int] = [q["id"] for q in fw.quarantine_list(conn)] if qid is None else [qid]
    for i in ids:
        q = fw.quarantine_retry(conn, i, who(actor))
        if not every:
            click.echo("record %s is back in the queue for the store" % q["record"])
    if every:
        click.echo("%d held record(s) back in the queue for the store" % len(ids))


@quarantine.command("drop")
@CONFIG
@click.argument("qid", metavar="ID", type=int)
@click.option("--reason", required=True, help="Why it must never reach the store (audited).")
@ACTOR
def quarantine_drop(config_path: str, qid: int, reason: str, actor: str | None) -> None:
    """Give up forwarding a held record (audited, with your reason). It stays in the hall's
    own tables; the store never gets it.

    \b
    Example:
      hcp forward quarantine drop --config hall.toml 3 --reason "test data from the demo"
    """
    from haochaping.daemon.hall import forward as fw
    from haochaping.tools.device.fleet import who
    q = fw.quarantine_drop(hall_db(config_path), qid, who(actor), reason)
    click.echo("record %s dropped: it will not be forwarded" % q["record"])


@bench.command("forward")
@click.option("--records", type=click.IntRange(100), default=200000, show_default=True,
              help="Records in the hall's backlog (half transactions, half ratings).")
@click.option("--backend", type=click.Choice(["sqlite", "postgres"]), default="sqlite",
              show_default=True)
@click.option("--batch-size", type=click.IntRange(1, 10000), default=10000, show_default=True)
@click.option("--pg", "pg_url", default="postgresql://postgres@127.0.0.1:5432/postgres",
              show_default=True, help="PostgreSQL server; the bench creates and drops its own"
              " databases there.")
@click.option("--repeat", type=click.IntRange(1, 20), default=3, show_default=True,
              help="Rounds of (raw insert, forwarding), each into fresh databases; each side's"
              " best round counts, every round is listed.")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON line.")
def bench_forward(records: int, backend: str, batch_size: int, pg_url: str, repeat: int,
                  as_json: bool) -> None:
    """Forwarding rate hall -> HTTPS -> store vs the raw bulk insert of the same backend.

    Prints one JSON line: raw_rows_per_s, forward_rows_per_s, ratio, lost, duplicated, and
    the figures of every round.

    \b
    Example:
      hcp bench forward --records 200000 --backend sqlite --json
    """
    import json

    from haochaping.tools.bench import forward_rate as b
    say: Callable[[str], None] = ((lambda m: None) if as_json
                                  else (lambda m: click.echo(m, err=True)))
    r = b.forward(records, backend, batch_size, pg_url, progress=say, repeat=repeat)
    click.echo(json.dumps(r, sort_keys=True))
