"""hcp init: a ready hall folder (hall.toml with random secrets, the broker's config)."""
import os

import click

from haochaping.tools.cli import cli


@cli.command("init")
@click.option("--dir", "folder", required=True, type=click.Path(file_okay=False),
              help="The hall's folder (e.g. /etc/haochaping); made if missing.")
@click.option("--hall", required=True, help="The hall's id, e.g. H01 (the store knows it so).")
@click.option("--mqtt-port", type=click.IntRange(1, 65535), default=1883, show_default=True,
              help="The broker's port for terminals.")
@click.option("--broker-listen", default="0.0.0.0", show_default=True,
              help="The address the broker listens on (the terminals' network).")
@click.option("--api-listen", default="127.0.0.1:8780", show_default=True,
              help="HOST:PORT of the window API and the console.")
@click.option("--run-as", help="System user mosquitto runs as, e.g. mosquitto [whoever runs"
                               " this].")
def init_cmd(folder: str, hall: str, mqtt_port: int, broker_listen: str,
             api_listen: str, run_as: str | None) -> None:
    """Write a ready hall folder: hall.toml with random secrets, and the broker's config.

    hall.toml (mode 0600) gets a random broker password for the daemon and a random token for
    the queue system's calls; broker/ gets mosquitto.conf, the password file and the ACL, with
    absolute paths. Secrets are not printed: they are in hall.toml. A folder that already has a
    hall.toml is refused (its secrets are in use).

    \b
    Example:
      hcp init --dir /etc/haochaping --hall H01 --run-as mosquitto
    """
    import pwd

    from haochaping.daemon.errors import HcpError
    from haochaping.tools.device import hall_init
    if run_as:
        try:
            pwd.getpwnam(run_as)
        except KeyError:
            raise HcpError("--run-as %s: no such system user (Debian's mosquitto package"
                           " makes `mosquitto`)" % run_as) from None
    cfg = hall_init.write_hall(folder, hall, mqtt_port, api_listen, broker_listen,
                               run_as=run_as)
    broker = os.path.join(os.path.dirname(cfg.path), "broker")
    click.echo("hall %s in %s:" % (cfg.hall.id, os.path.dirname(cfg.path)))
    click.echo("  %s  (secrets: the queue system's token is under [api.tokens])" % cfg.path)
    user = run_as or pwd.getpwuid(os.getuid()).pw_name
    click.echo("  %s/  (mosquitto.conf, passwd, acl; mosquitto runs as %s)" % (broker, user))
    if user == "root":
        click.echo("  note: mosquitto would run as root, facing the terminals' network:"
                   " remove %s and run hcp init again with --run-as mosquitto"
                   % os.path.dirname(cfg.path))
    click.echo("Next:")
    click.echo("  mosquitto -c %s/mosquitto.conf    (or the haochaping-broker service)" % broker)
    click.echo("  hcp daemon run --config %s" % cfg.path)
    click.echo("  hcp device flash / install / provision --config %s   (docs/hall-it.md)"
               % cfg.path)
