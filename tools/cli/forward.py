"""hcp forward status: is the link to the municipal store working?"""
import click

from haochaping.daemon import config

from . import cli
from .hall import CONFIG


@cli.group()
def forward():
    """Forwarding to the municipal store ([forward] in hall.toml)."""


@forward.command("status")
@CONFIG
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of words.")
def forward_status(config_path, as_json):
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
    from haochaping.daemon import forward as fw
    cfg = config.load(config_path)
    st = fw.open_status(cfg)
    if as_json:
        st["url"] = cfg["forward"]["url"]
        click.echo(fw.dumps(st))
        return
    if not cfg["forward"]["url"]:
        click.echo("forwarding is off: no [forward] url in %s" % cfg["path"])
    else:
        click.echo("store: %s (as hall %s)" % (cfg["forward"]["url"],
                                              cfg["forward"]["hall_id"] or cfg["hall"]["id"]))
    for line in fw.describe(st):
        click.echo(line)
