"""hcp broker: the hall's mosquitto config, password file and ACL, and reloading it."""
import os
import pwd

import click

from haochaping.daemon.errors import HcpError
from haochaping.daemon.hall import db, registry, settings
from haochaping.daemon.hall.settings import HallConfig
from haochaping.tools.cli import cli
from haochaping.tools.device import fleet, mosquitto_setup


@cli.group()
def broker() -> None:
    """The hall's MQTT broker (mosquitto): config, passwords, ACL, reload.

    \b
    Example:
      hcp broker config --config hall.toml --out broker/
    """


UPGRADE_NOTE = (
    "client ids are now tied to user names: the daemon's session on the broker is named "
    "%(user)s from now on (hall.toml's [mqtt] client_id no longer matters to the broker). Its "
    "old session (%(old)s) would stay in %(data)s and collect every rating for no one, so set "
    "that file aside once, with the broker stopped:\n"
    "  systemctl stop haochaping-broker && mv %(data)s %(data)s.old && "
    "systemctl start haochaping-broker\n"
    "Nothing is lost: the terminals send their unacked ratings again and republish their "
    "status, and the daemon publishes every open prompt again when it reconnects.")


@broker.command("config")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for mosquitto.conf, passwd, acl (and data/, the pid file, the log).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="hall.toml: the hall id, port and the daemon's broker user and password.")
@click.option("--hall", help="Hall id (when there is no hall.toml yet).")
@click.option("--port", type=int, help="Listening port [hall.toml's, else 1883; 8883 with TLS].")
@click.option("--listen", default="0.0.0.0", show_default=True,
              help="Address to listen on (the terminals' network).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False),
              help="Server certificate (PEM).")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False),
              help="Its private key (PEM).")
@click.option("--tls-ca", type=click.Path(exists=True, dir_okay=False),
              help="CA certificate (PEM).")
@click.option("--run-as", help="System user mosquitto runs as [the current user].")
def config_cmd(out: str, config_path: str | None, hall: str | None, port: int | None, listen: str,
               tls_cert: str | None, tls_key: str | None, tls_ca: str | None,
               run_as: str | None) -> None:
    """Write mosquitto.conf, the password file and the ACL for a hall.

    Each terminal (broker user = terminal id) may publish and read only its own topics; the
    daemon's user reads and writes the hall's whole tree. Users already in the folder's password
    file are kept, so running it again is safe. Passwords are never printed.

    \b
    Example:
      hcp broker config --config hall.toml --out /etc/haochaping/broker
      hcp broker config --hall H01 --out broker/ --tls-cert srv.pem --tls-key srv.key
    """
    users: dict[str, str] = {}
    daemon_user = "hall-daemon"
    cfg: HallConfig | None = None
    if config_path:
        cfg = settings.load(config_path)
        if hall and hall != cfg.hall.id:
            raise HcpError("--hall %s differs from %s's hall id %s"
                           % (hall, config_path, cfg.hall.id))
        hall = cfg.hall.id
        port = port or cfg.mqtt.port
        daemon_user = cfg.mqtt.username or daemon_user
        if cfg.mqtt.password:
            users[daemon_user] = cfg.mqtt.password
    if not hall:
        raise HcpError("give --hall H01, or --config hall.toml")
    conn = db.connect(cfg.hall.database) if cfg is not None else None
    if conn is not None and registry.terminal_state(conn, daemon_user)[0] is not None:
        raise HcpError("%s is a terminal of this hall: the daemon needs a broker user of its own "
                       "([mqtt] username in %s)" % (daemon_user, config_path))
    if bool(tls_cert) != bool(tls_key):
        raise HcpError("TLS needs both --tls-cert and --tls-key")
    port = port or (8883 if tls_cert else 1883)
    if run_as:
        try:
            pwd.getpwnam(run_as)
        except KeyError:
            raise HcpError("--run-as %s: no such system user" % run_as) from None
    secret_note = None
    existing = mosquitto_setup.read_passwd(os.path.join(out, mosquitto_setup.PASSWD))
    if daemon_user not in users and daemon_user not in existing:
        users[daemon_user], secret_note = mosquitto_setup.new_password_file(out, daemon_user)
    old_conf = mosquitto_setup.read_conf(out)
    try:
        conf = mosquitto_setup.write_config(
            out, port, hall, users, daemon_user=daemon_user, listen=listen, run_as=run_as,
            tls={"certfile": tls_cert, "keyfile": tls_key, "cafile": tls_ca}, keep_users=True)
    except OSError as e:
        raise HcpError("cannot write the broker config into %s: %s"
                       % (out, e.strerror or e)) from None
    known = mosquitto_setup.read_passwd(os.path.join(out, mosquitto_setup.PASSWD))
    click.echo("wrote %s (hall %s, port %d, %d users)" % (conf, hall, port, len(known)))
    if secret_note:
        click.echo("the daemon's broker password is in %s: put it in hall.toml [mqtt] password"
                   % secret_note)
    if conn is not None:
        missing = fleet.without_broker_password(conn, known)
        if missing:
            click.echo("no broker password for %s: provision them again (`hcp device provision`)"
                       % ", ".join(missing))
    pid = mosquitto_setup.reload(out)
    new_conf = mosquitto_setup.read_conf(out)
    restart = mosquitto_setup.start_only_changes(old_conf, new_conf)
    if pid is None:
        click.echo("start it with: mosquitto -c %s" % conf)
    elif restart:
        click.echo("broker (pid %d) reloaded; restart it (systemctl restart haochaping-broker) to "
                   "apply: %s" % (pid, "; ".join(restart)))
    else:
        click.echo("broker (pid %d) reloaded" % pid)
    data = os.path.join(out, "data", "mosquitto.db")
    if mosquitto_setup.ties_client_ids_anew(old_conf, new_conf) and (pid or os.path.exists(data)):
        click.echo(UPGRADE_NOTE % {"user": daemon_user, "data": data,
                                   "old": cfg.mqtt.client_id if cfg else "hcp-daemon-<hall>"})


@broker.command("reload")
@click.option("--dir", "folder", required=True, type=click.Path(file_okay=False),
              help="The broker folder (with mosquitto.pid).")
def reload_cmd(folder: str) -> None:
    """Make a running broker re-read its password file and ACL (SIGHUP).

    \b
    Example:
      hcp broker reload --dir /etc/haochaping/broker
    """
    pid = mosquitto_setup.reload(folder)
    if pid is None:
        raise HcpError("no running broker for %s (no live pid in %s)"
                       % (folder, os.path.join(folder, mosquitto_setup.PID)))
    click.echo("broker (pid %d) reloaded" % pid)
