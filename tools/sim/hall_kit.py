"""A whole hall in one folder, for the demo, benchmarks and tests: hall.toml, the hall database
with terminals registered and paired, one device config per terminal, and the broker's config.

    folder/
      hall.toml  hall.sqlite  broker/{mosquitto.conf,passwd,acl,data/}  terminals/<T>.json
"""
import json
import os
import secrets

from haochaping.daemon.hall import settings, db, registry

from haochaping.tools.device import mosquitto_setup
from haochaping.tools.sim import processes


def create(folder, hall="H01", windows=("W01", "W02", "W03"), terminals_per_window=1,
           mqtt_port=None, api_port=None, timeout_s=120, extra_superusers=(), batch_max=1000):
    """Write everything; return the loaded config (its folder is `folder`)."""
    os.makedirs(os.path.join(folder, "terminals"), exist_ok=True)
    mqtt_port = mqtt_port or processes.free_port()
    api_port = api_port or processes.free_port()
    daemon_pw = secrets.token_urlsafe(18)
    api_token = secrets.token_urlsafe(24)
    users = {"hall-daemon": daemon_pw}
    for u in extra_superusers:
        users[u] = daemon_pw
    conf_path = os.path.join(folder, "hall.toml")
    with open(conf_path, "w") as f:
        f.write(HALL_TOML % dict(hall=hall, port=mqtt_port, pw=daemon_pw, api_port=api_port,
                                 token=api_token, timeout=timeout_s, batch=batch_max))
    os.chmod(conf_path, 0o600)
    cfg = settings.load(conf_path)
    conn = db.connect(cfg.hall.database)
    n = 0
    for w in windows:
        for _ in range(terminals_per_window):
            n += 1
            term = "T%03d" % n
            key = registry.add_terminal(conn, term)
            registry.pair(conn, w, term)
            pw = secrets.token_urlsafe(18)
            users[term] = pw
            write_device(folder, hall, term, w, key, "127.0.0.1", mqtt_port, pw)
    conn.close()
    mosquitto_setup.write_config(os.path.join(folder, "broker"), mqtt_port, hall, users,
                                 extra_superusers=extra_superusers)
    return cfg


def broker_conf(cfg):
    """The kit's mosquitto.conf: in broker/ next to hall.toml, as hall IT keeps it."""
    return os.path.join(cfg.folder, "broker", mosquitto_setup.CONF)


def write_device(folder, hall, terminal, window, key, host, port, password):
    path = os.path.join(folder, "terminals", terminal + ".json")
    with open(path, "w") as f:
        json.dump({"hall": hall, "terminal": terminal, "window": window, "key": key.hex(),
                   "mqtt": {"host": host, "port": port, "username": terminal,
                            "password": password},
                   "board": "simulated"}, f, indent=1)
    os.chmod(path, 0o600)
    return path


def devices(folder):
    d = os.path.join(folder, "terminals")
    out = []
    for name in sorted(os.listdir(d)):
        if name.endswith(".json"):
            with open(os.path.join(d, name)) as f:
                out.append(json.load(f))
    return out


HALL_TOML = """\
# hall daemon configuration (written by hcp)
[hall]
id = "%(hall)s"
database = "hall.sqlite"

[mqtt]
host = "127.0.0.1"
port = %(port)d
username = "hall-daemon"
password = "%(pw)s"

[sessions]
timeout_s = %(timeout)d

[ingest]
batch_max = %(batch)d

[api]
listen = "127.0.0.1:%(api_port)d"

[api.tokens]
window-system = "%(token)s"
"""
