"""hcp forward status: is the link to the municipal store working?"""
from collections.abc import Callable

import click

from haochaping.daemon.hall import settings
from haochaping.tools.cli import cli
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
