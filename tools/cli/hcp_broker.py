"""hcp broker: the hall's mosquitto config, password file and ACL, and reloading it."""
import os
import pwd

import click

from haochaping.daemon.errors import HcpError
from haochaping.daemon.hall import db, registry, settings
from haochaping.daemon.hall.settings import HallConfig
from haochaping.tools.cli import cli
from haochaping.tools.device import fleet, hall_ca, mosquitto_setup


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
@click.option("--port", type=click.IntRange(1, 65535),
              help="Listening port [hall.toml's, else 1883; 8883 with --tls-cert]; with --tls, the "
                   "plain listener's.")
@click.option("--listen", default="0.0.0.0", show_default=True,
              help="Address to listen on (the terminals' network).")
@click.option("--tls", "make_tls", is_flag=True,
              help="TLS for the hall: make (once) a hall CA and the broker's certificate in "
                   "OUT/tls, and listen with TLS on --tls-port.")
@click.option("--tls-port", type=click.IntRange(1, 65535), default=8883, show_default=True,
              help="With --tls: the TLS listener's port.")
@click.option("--tls-host", "tls_hosts", multiple=True,
              help="With --tls: a host name or IP address the broker's certificate is for "
                   "(repeat it) [this server's name, localhost, 127.0.0.1, --listen].")
@click.option("--plain", type=click.Choice(["localhost", "all", "none"]), default=None,
              help="With --tls: keep plain MQTT on --port for localhost only (the daemon on this "
                   "server; the default), on --listen too (while terminals move to TLS), or "
                   "not at all.")
@click.option("--new-server-cert", is_flag=True,
              help="With --tls: issue a new broker certificate (other --tls-host names, or "
                   "renewal); the hall CA stays.")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False),
              help="Your own server certificate (PEM), instead of --tls.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False),
              help="Its private key (PEM).")
@click.option("--tls-ca", type=click.Path(exists=True, dir_okay=False),
              help="CA certificate (PEM).")
@click.option("--run-as", help="System user mosquitto runs as [the current user].")
def config_cmd(out: str, config_path: str | None, hall: str | None, port: int | None, listen: str,
               make_tls: bool, tls_port: int, tls_hosts: tuple[str, ...], plain: str | None,
               new_server_cert: bool, tls_cert: str | None, tls_key: str | None,
               tls_ca: str | None, run_as: str | None) -> None:
    """Write mosquitto.conf, the password file and the ACL for a hall.

    Each terminal (broker user = terminal id) may publish and read only its own topics; the
    daemon's user reads and writes the hall's whole tree. Users already in the folder's password
    file are kept, so running it again is safe. Passwords are never printed.

    With --tls, the hall's WiFi carries no password in clear: the terminals and the daemon
    check the broker's certificate against the hall CA (OUT/tls/hall-ca.pem). The CA and the
    certificate are made once and never overwritten; `hcp device provision` puts the CA on each
    terminal.

    \b
    Example:
      hcp broker config --config hall.toml --out /etc/haochaping/broker
      hcp broker config --config hall.toml --out broker/ --tls --tls-host hall-srv \\
          --tls-host 10.0.0.2
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
    if make_tls and (tls_cert or tls_ca):
        raise HcpError("--tls makes the hall CA and the broker's certificate; --tls-cert/--tls-key"
                       " bring your own: give one or the other")
    if not make_tls:
        given = [o for o, v in (("--tls-host", tls_hosts), ("--plain", plain),
                                ("--new-server-cert", new_server_cert)) if v]
        if given:
            raise HcpError("%s go(es) with --tls" % ", ".join(given))
    listeners: list[mosquitto_setup.Listener] = []
    issued = None
    if make_tls:
        plain = plain or "localhost"
        port = port or (cfg.mqtt.port if cfg is not None and not cfg.mqtt.tls else 1883)
        if plain != "none" and port == tls_port:
            raise HcpError("--tls-port %d is also the plain listener's port: give another "
                           "--port, or --plain none" % tls_port)
        issued = hall_ca.ensure(out, hall, tls_hosts or None, listen, new_server_cert)
        listeners.append(mosquitto_setup.Listener(
            tls_port, listen, {"certfile": issued.files.cert, "keyfile": issued.files.key}))
        if plain != "none":
            listeners.append(mosquitto_setup.Listener(
                port, "127.0.0.1" if plain == "localhost" else listen))
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
            tls={"certfile": tls_cert, "keyfile": tls_key, "cafile": tls_ca}, keep_users=True,
            listeners=listeners)
    except OSError as e:
        raise HcpError("cannot write the broker config into %s: %s"
                       % (out, e.strerror or e)) from None
    known = mosquitto_setup.read_passwd(os.path.join(out, mosquitto_setup.PASSWD))
    if issued is None:
        click.echo("wrote %s (hall %s, port %d, %d users)" % (conf, hall, port, len(known)))
    else:
        _say_tls(conf, hall, len(known), tls_port, port, listen, plain or "localhost", issued,
                 run_as)
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


def _say_tls(conf: str, hall: str, users: int, tls_port: int, port: int, listen: str,
             plain: str, issued: hall_ca.Issued, run_as: str | None) -> None:
    f = issued.files
    mosquitto_setup.give_to(run_as, [f.cert, f.key])  # not the CA's key: mosquitto never needs it
    click.echo("wrote %s (hall %s, TLS on %s:%d, %d users)" % (conf, hall, listen, tls_port, users))
    click.echo("%s hall CA %s (its key %s, 0600: keep it off the broker's backups)"
               % ("made the" if issued.new_ca else "kept the", f.ca_cert, f.ca_key))
    click.echo("%s broker certificate %s for %s (terminals check the name %s)"
               % ("issued the" if issued.new_server else "kept the", f.cert,
                  ", ".join(issued.hosts), issued.hosts[0]))
    if plain == "none":
        click.echo("no plain MQTT listener")
    else:
        click.echo("plain MQTT on %s:%d (%s)" % (
            "127.0.0.1" if plain == "localhost" else listen, port,
            "the daemon on this server only" if plain == "localhost"
            else "for terminals not yet moved to TLS: drop it with --plain localhost later"))
    click.echo("the daemon over TLS: hall.toml [mqtt] tls = true, ca = \"%s\", port = %d"
               % (f.ca_cert, tls_port))
    if issued.new_ca:
        click.echo("terminals get the hall CA when provisioned: `hcp device provision` each one")


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
