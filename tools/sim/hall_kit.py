"""A whole hall in one folder, for the demo, benchmarks and tests: hall.toml, the hall database
with terminals registered and paired, one device config per terminal, and the broker's config.

    folder/
      hall.toml  hall.sqlite  broker/{mosquitto.conf,passwd,acl,data/}  terminals/<T>.json
"""
from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from typing import TypedDict

from haochaping.daemon.hall import db, registry, settings
from haochaping.daemon.hall.settings import HallConfig
from haochaping.tools.device import hall_init, mosquitto_setup
from haochaping.tools.sim import processes


class DeviceMqtt(TypedDict):
    host: str
    port: int
    username: str
    password: str


class DeviceFile(TypedDict):
    """terminals/<T>.json: one terminal as the kit registered it (write_device)."""
    hall: str
    terminal: str
    window: str
    key: str  # hex
    mqtt: DeviceMqtt
    board: str


def create(folder: str, hall: str = "H01", windows: Sequence[str] = ("W01", "W02", "W03"),
           terminals_per_window: int = 1, mqtt_port: int | None = None,
           api_port: int | None = None, timeout_s: int = 120,
           extra_superusers: Sequence[str] = (), batch_max: int = 1000,
           mobile: bool = False) -> HallConfig:
    """Write everything (the hall as `hcp init` writes one, on free ports, with its terminals
    registered and paired; mobile: with the QR channel's phone page on a free port); return the
    loaded config (its folder is `folder`)."""
    mqtt_port = mqtt_port or processes.free_port()
    api_port = api_port or processes.free_port()
    cfg = hall_init.write_hall(folder, hall, mqtt_port, "127.0.0.1:%d" % api_port,
                               broker_listen="127.0.0.1", timeout_s=timeout_s,
                               batch_max=batch_max, caller="window-system",
                               extra_superusers=extra_superusers,
                               mobile=None if not mobile else {
                                   "listen": "127.0.0.1:%d" % processes.free_port(),
                                   # every simulated phone comes from this one address
                                   "per_address_per_minute": 100000})
    os.makedirs(os.path.join(folder, "terminals"), exist_ok=True)
    conn = db.connect(cfg.hall.database)
    users: dict[str, str] = {}
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
    mosquitto_setup.set_users(os.path.join(folder, "broker"), users)
    return cfg


def broker_conf(cfg: HallConfig) -> str:
    """The kit's mosquitto.conf: in broker/ next to hall.toml, as hall IT keeps it."""
    return os.path.join(cfg.folder, "broker", mosquitto_setup.CONF)


def forward_to(cfg: HallConfig, url: str, ca: str, key_file: str, batch_size: int = 50,
               retry_max_s: int = 1) -> HallConfig:
    """Make the kit's hall forward to the store at `url` (its CA, the hall's key file): a
    [forward] section in hall.toml, sending at once and retrying quickly. Returns the config."""
    with open(cfg.path, "a") as f:
        f.write(FORWARD_TOML % {"url": url, "ca": ca, "key": key_file, "batch": batch_size,
                                "retry": retry_max_s})
    return settings.load(cfg.path)


def write_device(folder: str, hall: str, terminal: str, window: str, key: bytes, host: str,
                 port: int, password: str) -> str:
    path = os.path.join(folder, "terminals", terminal + ".json")
    dev: DeviceFile = {"hall": hall, "terminal": terminal, "window": window, "key": key.hex(),
                       "mqtt": {"host": host, "port": port, "username": terminal,
                                "password": password},
                       "board": "simulated"}
    with open(path, "w") as f:
        json.dump(dev, f, indent=1)
    os.chmod(path, 0o600)
    return path


def devices(folder: str) -> list[DeviceFile]:
    d = os.path.join(folder, "terminals")
    out: list[DeviceFile] = []
    for name in sorted(os.listdir(d)):
        if name.endswith(".json"):
            with open(os.path.join(d, name)) as f:
                out.append(json.load(f))
    return out



FORWARD_TOML = """
[forward]
url = "%(url)s"
ca = "%(ca)s"
key_file = "%(key)s"
batch_size = %(batch)d
max_wait_s = 0
retry_max_s = %(retry)d
"""
