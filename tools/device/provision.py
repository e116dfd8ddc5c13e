"""`hcp device provision`: make a board a terminal of this hall, in one go.

Order, so that a rerun after any failure finishes the job and never leaves two truths:
1. check everything that can be checked without changing anything (hall config, broker folder,
   board profile, the board's chip, that the firmware is installed, the terminal id's state);
2. write /config.json on the board (as config.json.new, renamed; its hash checked). The board
   carries the terminal's secrets from here on: a rerun reads them back instead of making new
   ones, as long as the hall database does not hold another key for this terminal;
3. register the terminal (its key) in the hall database, give it a broker password (password
   file, reload), pair it with its window, one audit entry.
Key, broker password and WiFi password are never printed or logged.

When the hall's broker listens with TLS on the hall CA (`hcp broker config --tls`), the config
carries the CA (DER, base64), the name the broker's certificate must carry and the TLS port.
"""
import base64
import json
import secrets
import sqlite3
from collections.abc import Callable
from typing import Any, TypedDict

from haochaping.daemon.errors import HcpError
from haochaping.daemon.hall import audit, db, registry
from haochaping.daemon.hall import settings as hall_config
from haochaping.daemon.hall.settings import HallConfig
from haochaping.firmware import config as device_config
from haochaping.hardware import profile as hw_profile
from haochaping.hardware import validate as hw_validate
from haochaping.tools.device import fleet, hall_ca, install, mosquitto_setup, rollout
from haochaping.tools.device import serial_session as session_mod

CONFIG_PATH = "/config.json"
STEPS = ("checking the board", "writing the device config", "registering with the hall daemon",
         "adding to the broker", "pairing")
KEPT = ("keepalive", "journal", "journal_max")

# The device config (/config.json), as JSON: firmware/config.py is its schema.
DeviceConfig = dict[str, Any]


class ProvisionResult(TypedDict):
    """What `provision()` did (never a secret): the hall, the terminal, its window (None: not
    paired), the board profile's name, whether new secrets were made, whether /config.json
    changed, the broker's pid when it was reloaded, whether the board restarted, and the first
    rating seq the terminal uses."""
    hall: str
    terminal: str
    window: str | None
    board: str
    new_secrets: bool
    config_written: bool
    broker_reloaded: int | None
    rebooted: bool
    seq_start: int
    tls: bool


class Tls(TypedDict):
    """What a terminal needs for TLS to this hall's broker: the device config's tls_ca and
    tls_name, and the TLS listener's port."""
    tls_ca: str
    tls_name: str
    port: int


def broker_tls(broker_dir: str) -> Tls | None:
    """The TLS settings for terminals when the broker listens with TLS on the hall CA; None when
    it listens in plain text only."""
    port = mosquitto_setup.tls_port(broker_dir)
    if port is None:
        return None
    if not hall_ca.has_ca(broker_dir):
        raise HcpError("the broker in %s listens with TLS on a certificate of your own "
                       "(--tls-cert): terminals can only be given the hall CA that `hcp broker "
                       "config --tls` makes" % broker_dir)
    return {"tls_ca": base64.b64encode(hall_ca.ca_der(broker_dir)).decode(),
            "tls_name": hall_ca.server_name(broker_dir), "port": port}


def _seq_start(conn: sqlite3.Connection, terminal: str) -> int:
    """Above every seq the daemon holds for this terminal (a board re-provisioned after a wipe
    must not reuse them: the daemon would take its ratings for duplicates)."""
    row = conn.execute("SELECT MAX(m) FROM (SELECT MAX(seq) m FROM ratings WHERE terminal=?"
                       " UNION ALL SELECT MAX(seq) FROM reasons WHERE terminal=?)",
                       (terminal, terminal)).fetchone()
    return (row[0] or 0) + 1


def _board_profile(name: str) -> hw_profile.Profile:
    _path, board = hw_profile.load(name)
    hw_validate.require_valid(board, "board profile %s" % name)
    errs = device_config.board_errors(board)
    if errs:
        raise HcpError("the firmware would refuse board profile %s: %s" % (name, "; ".join(errs)))
    return board


def provision(port: str, config_path: str, terminal: str, profile: str,
              window: str | None = None, wifi_ssid: str | None = None,
              wifi_password: str | None = None, broker_host: str | None = None,
              broker_port: int | None = None, broker_dir: str | None = None,
              actor: str | None = None, again: bool = False, reset: bool = True,
              on_step: Callable[[int, str], None] | None = None,
              open_wifi: bool = False) -> ProvisionResult:
    """Provision the board on `port` as `terminal`. Return a summary (no secrets in it).
    open_wifi: the hall's WiFi has no password (else one must be given or be on the board)."""
    if open_wifi:
        if wifi_password:
            raise HcpError("--open-wifi means the WiFi has no password: give one or the other")
        wifi_password = ""
    cfg = hall_config.load(config_path)
    hall = cfg.hall.id
    fleet.check_terminal_id(terminal)
    if window is not None:
        registry._check_id("window", window)
    bdir = fleet.broker_folder(config_path, broker_dir)
    mosquitto_setup.require_folder(bdir)
    if terminal in mosquitto_setup.superusers(bdir):  # before anything is written to the board
        raise HcpError("%s is the daemon's broker user: choose another terminal id" % terminal)
    board = _board_profile(profile)
    update_key = rollout.public_key(config_path)   # the hall update key's public part, if any
    tls = broker_tls(bdir)
    actor = fleet.who(actor)
    conn = db.connect(cfg.hall.database)
    state, _rated = registry.terminal_state(conn, terminal)
    if state == "revoked":
        raise HcpError("terminal %s was revoked (replaced); give this board a new id" % terminal)

    def step(i: int) -> None:
        if on_step:
            on_step(i, STEPS[i])

    step(0)
    with session_mod.Session(port) as s:
        try:
            chip = session_mod.chip_of(s.info)
            if chip is not None and chip != board["chip"]:
                raise HcpError("the board on %s is an %s, but profile %s is for an %s: choose "
                               "the profile of this board" % (port, chip.upper(), profile,
                                                              board["chip"].upper()))
            have = s.hashes(paths=[install.MAIN, install.LIB + "/firmware/main.mpy"])
            if len(have) < 2:
                raise HcpError("the terminal's files are not on the board on %s: run `hcp device "
                               "install --port %s` first" % (port, port))
            raw = s.read(CONFIG_PATH)
            old = _parse(raw)
            key, password, fresh = _secrets(conn, hall, terminal, state, old, again)
            conf = _device_config(cfg, hall, terminal, board, old, key, password, wifi_ssid,
                                  wifi_password, broker_host, broker_port,
                                  _seq_start(conn, terminal) if fresh else 1, tls,
                                  update_key)
            data = json.dumps(conf, separators=(",", ":")).encode()
            step(1)
            if raw != data:
                s.write(CONFIG_PATH, data)
                if s.hashes(paths=[CONFIG_PATH]).get(CONFIG_PATH) != session_mod.sha256(data):
                    raise HcpError("the config on the board on %s differs after writing it: run "
                                   "the same command again" % port)
            step(2)
            _register(conn, terminal, key, state, fresh, actor)
            step(3)
            mosquitto_setup.set_users(bdir, {terminal: password})
            pid = mosquitto_setup.reload(bdir)
            step(4)
            if window is not None:
                registry.pair(conn, window, terminal, actor=actor)
            with conn:
                audit.record(conn, actor, "provision", terminal=terminal, window=window,
                             board=board["name"], port=port, new_secrets=fresh)
            rebooted = s.reset() if reset else False
        except session_mod.DeviceGone as e:
            raise HcpError("%s while provisioning %s. Plug it in again and run the same command: "
                           "it continues where it stopped" % (e, terminal)) from None
    return {"hall": hall, "terminal": terminal, "window": window, "board": board["name"],
            "new_secrets": fresh, "config_written": raw != data, "broker_reloaded": pid,
            "rebooted": rebooted, "seq_start": conf.get("seq_start", 1), "tls": tls is not None}


def _parse(raw: bytes | None) -> DeviceConfig | None:
    if raw is None:
        return None
    try:
        old = json.loads(raw)
    except ValueError:
        return None
    return old if isinstance(old, dict) else None


def _own_secrets(old: DeviceConfig | None, hall: str, terminal: str) -> tuple[bytes, str] | None:
    """(key, broker password) from the board's own config when it is this terminal's of this
    hall; None when it is not, or they are missing or malformed."""
    if old is None or old.get("hall") != hall or old.get("terminal") != terminal:
        return None
    password = old.get("password")
    if not (isinstance(password, str) and password):
        return None
    try:
        return bytes.fromhex(old["key"]), password
    except (ValueError, TypeError, KeyError):
        return None


def _secrets(conn: sqlite3.Connection, hall: str, terminal: str, state: str | None,
             old: DeviceConfig | None, again: bool) -> tuple[bytes, str, bool]:
    """(key bytes, broker password, fresh?) — reused from the board's own config when it is this
    terminal's and the hall agrees, new otherwise (and only where that breaks nothing)."""
    mine = _own_secrets(old, hall, terminal)
    row = conn.execute("SELECT key FROM terminals WHERE id=?", (terminal,)).fetchone()
    db_key = bytes(row[0]) if row else None
    if state == "active":
        if mine is not None and mine[0] == db_key and not again:
            return mine[0], mine[1], False
        if not again:
            raise HcpError(
                "terminal %s is already registered with another board's key. If this board "
                "replaces it: provision it with a new id, then `hcp device replace --old %s "
                "--new <new id>`. If it is the same board after its flash was wiped: add --again "
                "(new key and broker password; the old ones stop working)" % (terminal, terminal))
    elif mine is not None and not again:
        return mine[0], mine[1], False               # a rerun after the config was written
    return secrets.token_bytes(32), secrets.token_urlsafe(24), True


def _device_config(cfg: HallConfig, hall: str, terminal: str, board: hw_profile.Profile,
                   old: DeviceConfig | None, key: bytes, password: str, wifi_ssid: str | None,
                   wifi_password: str | None, broker_host: str | None, broker_port: int | None,
                   seq_start: int, tls: Tls | None = None,
                   update_key: str | None = None) -> DeviceConfig:
    old = old or {}
    # the port follows the broker: a board moved to TLS (or back) does not keep the old one
    old_port = old.get("port") if bool(old.get("tls_ca")) == (tls is not None) else None
    conf: DeviceConfig = {
        "wifi_ssid": wifi_ssid or old.get("wifi_ssid"),
        "wifi_password": (wifi_password if wifi_password is not None
                          else old.get("wifi_password", "")),
        "broker": broker_host or old.get("broker"),
        "port": broker_port or (tls["port"] if tls else old_port or cfg.mqtt.port),
        "hall": hall, "terminal": terminal, "username": terminal, "password": password,
        "key": key.hex(), "board": board,
    }
    if tls is not None:
        conf["tls_ca"], conf["tls_name"] = tls["tls_ca"], tls["tls_name"]
    for k in KEPT:
        if k in old and old.get("terminal") == terminal:
            conf[k] = old[k]
    if update_key:   # over-the-air updates: bundles signed with this key only
        conf["update_key"] = update_key
    if seq_start > 1 and "seq_start" in device_config.DEFAULTS:
        conf["seq_start"] = max(seq_start, old.get("seq_start", 1) if isinstance(
            old.get("seq_start"), int) else 1)
    missing = [o for k, o in (("wifi_ssid", "--wifi-ssid"), ("broker", "--broker-host"))
               if not conf[k]]
    if wifi_password is None and "wifi_password" not in old:
        missing.append("the WiFi password (HCP_WIFI_PASSWORD=..., or --open-wifi for a WiFi"
                       " without one)")
    if missing:
        raise HcpError("give %s (the board has no earlier config to take them from)"
                       % " and ".join(missing))
    try:
        device_config.validate(dict(conf))
    except device_config.ConfigError as e:
        raise HcpError("the firmware would refuse this config: %s" % "; ".join(e.args[0])) from None
    return conf


def _register(conn: sqlite3.Connection, terminal: str, key: bytes, state: str | None,
              fresh: bool, actor: str) -> None:
    if state is None:
        registry.add_terminal(conn, terminal, key=key, actor=actor)
    elif fresh:
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE terminals SET key=? WHERE id=? AND revoked_at IS NULL",
                         (key, terminal))
            audit.record(conn, actor, "rekey", terminal=terminal)
