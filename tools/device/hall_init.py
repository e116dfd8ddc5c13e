"""`hcp init`: a ready hall folder for hall IT, with random secrets and absolute paths.

    folder/
      hall.toml                    the daemon's config (0600: it holds the secrets)
      broker/                      mosquitto.conf, passwd, acl, data/ (hcp broker config's)

What hall.toml says is the documented schema (daemon/hall/settings.py); the secrets are random
(the daemon's broker password, one window-API token), so nothing from the README's example
reaches a real hall. The simulated halls of the demo and the tests are made the same way
(tools/sim/hall_kit.py), so they run what a hall runs.
"""
from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Mapping

from haochaping.daemon.errors import HcpError
from haochaping.daemon.hall import settings
from haochaping.daemon.hall.settings import HallConfig
from haochaping.tools.device import mosquitto_setup

DAEMON_USER = "hall-daemon"

HALL_TOML = """\
# The hall daemon's configuration, written by `hcp init`. Every key: `hcp daemon run --help`
# and README.md ("hall.toml"). Keep this file private (mode 0600): it holds secrets.
[hall]
id = "%(hall)s"
database = "%(database)s"

[mqtt]
host = "127.0.0.1"
port = %(port)d
username = "%(user)s"
password = "%(pw)s"

[sessions]
timeout_s = %(timeout)d              # how long a rating prompt stays open

[ingest]
batch_max = %(batch)d                # most messages per database commit

[api]
listen = "%(api)s"    # the window-system API and the console

[api.tokens]
%(caller)s = "%(token)s"
"""


def write_hall(folder: str, hall: str = "H01", mqtt_port: int = 1883,
               api_listen: str = "127.0.0.1:8780", broker_listen: str = "0.0.0.0",
               timeout_s: int = 120, batch_max: int = 1000, caller: str = "queue-system",
               extra_superusers: Iterable[str] = (),
               mobile: Mapping[str, str | int] | None = None,
               run_as: str | None = None) -> HallConfig:
    """Write folder/hall.toml and folder/broker/; return the loaded config. Refuses a folder
    that already has a hall.toml (its secrets are in use). extra_superusers: broker users
    with the daemon's rights and password (observers in tests). run_as: the system user
    mosquitto runs as (None: whoever runs this)."""
    folder = os.path.abspath(folder)
    path = os.path.join(folder, "hall.toml")
    if os.path.exists(path):
        raise HcpError("%s exists: this folder already holds a hall (its secrets are in use);"
                       " choose another folder" % path)
    os.makedirs(folder, exist_ok=True)
    pw = secrets.token_urlsafe(18)
    text = HALL_TOML % {"hall": hall, "database": os.path.join(folder, "hall.sqlite"),
                        "port": mqtt_port, "user": DAEMON_USER, "pw": pw, "api": api_listen,
                        "timeout": timeout_s, "batch": batch_max, "caller": caller,
                        "token": secrets.token_urlsafe(24)}
    settings.validate(settings.parse_toml(text, path))   # what it writes, it would accept
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    if mobile:   # the QR channel's phone page (daemon/hall/mobile.py): its [mobile] keys
        text += "\n[mobile]\n" + "".join("%s = %s\n" % (k, json.dumps(v))
                                         for k, v in mobile.items())
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    broker_users = {DAEMON_USER: pw, **dict.fromkeys(extra_superusers, pw)}
    mosquitto_setup.write_config(os.path.join(folder, "broker"), mqtt_port, hall, broker_users,
                                 extra_superusers=tuple(extra_superusers),
                                 listen=broker_listen, run_as=run_as)
    return settings.load(path)
