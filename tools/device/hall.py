"""The hall side of hall IT work: who is acting, provisioning and replacing terminals in the hall
database and at the broker at once, and the terminal list that `hcp terminals` shows."""
import getpass
import os
import time

from haochaping.daemon import audit, registry
from haochaping.daemon.errors import HcpError
from haochaping.protocol import topics
from haochaping.tools import broker

RESERVED = ("hall-daemon",)


def who(actor=None):
    """The person acting: --actor, else the user behind sudo, else the login user."""
    if actor:
        return actor
    for var in ("SUDO_USER", "USER", "LOGNAME"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def broker_folder(config_path, broker_dir=None):
    """The hall's broker folder: --broker-dir, else `broker/` next to hall.toml."""
    return broker_dir or os.path.join(os.path.dirname(os.path.abspath(config_path)), "broker")


def check_terminal_id(terminal):
    if not topics.valid_id(terminal):
        raise HcpError("terminal %r: use 1-32 of A-Z a-z 0-9 _ -" % terminal)
    if terminal in RESERVED:
        raise HcpError("terminal %r: that name is the daemon's broker user" % terminal)
