"""`hcp device provision` end to end: real MicroPython on a pty as the board, a real mosquitto
and the hall daemon as a real process. The new terminal's credentials connect and may publish
only on its own topics, its signed ratings are stored; after `device replace` the old board's
credentials are refused; a vanished port and a rerun; secrets never printed."""
import json

import pytest
from click.testing import CliRunner

from haochaping.daemon.errors import HcpError
from haochaping.daemon.hall import db, registry
from haochaping.firmware import config as device_config
from haochaping.protocol import messages
from haochaping.tools.cli import _register, cli
from haochaping.tools.device import install, provision
from haochaping.tools.sim import hall_kit, processes

from ..conftest import wait_until
from ..mpy import micropython_binary
from .board import Board

_register()

pytestmark = pytest.mark.skipif(micropython_binary() is None, reason="micropython not installed")

PROFILE = "esp32-devkitc-buttons"
WIFI_PW = "wifi-secret-9f3a"


@pytest.fixture
def hall(tmp_path):
    return hall_kit.create(str(tmp_path / "hall"), windows=("W01", "W02"),
                          extra_superusers=("observer",))


@pytest.fixture
def new_board(tmp_path):
    made = []

    def make(name="b1", fresh=True):
        root = tmp_path / name
        root.mkdir(exist_ok=True)
        b = Board(tmp_path, root=root)
        made.append(b)
        if fresh:
            install.install(b.port)
        return b

    yield make
    for b in made:
        b.unplug()


def _provision(hall, board, terminal, *extra, ok=True):
    args = ["device", "provision", "--port", board.port, "--config", hall.path,
            "--terminal", terminal, "--profile", PROFILE, "--actor", "erin"] + list(extra)
    r = CliRunner().invoke(cli, args, env={"HCP_WIFI_PASSWORD": WIFI_PW})
    if ok:
        assert r.exit_code == 0, r.output
    return r


def _device_conf(board):
    return json.loads(board.files()["/config.json"])


def test_provision_registers_pairs_and_gives_broker_access_to_own_topics_only(
        hall, new_board, run_broker, clients):
    port = hall.mqtt.port
    run_broker(hall_kit.broker_conf(hall), port)
    daemon = processes.DaemonProcess(hall).start()
    try:
        b = new_board()
        r = _provision(hall, b, "T010", "--window", "W01", "--wifi-ssid", "hall-iot",
                       "--broker-host", "127.0.0.1")
        assert "is terminal T010 of hall H01" in r.output and "paired with window W01" in r.output
        conf = _device_conf(b)
        for secret in (conf["key"], conf["password"], WIFI_PW):
            assert secret not in r.output
        # the firmware's own validator accepts it, with the board profile inside
        checked = device_config.validate(dict(conf))
        assert checked["board"]["name"] == PROFILE and checked["wifi_password"] == WIFI_PW
        assert (conf["hall"], conf["terminal"], conf["username"], conf["port"]) == (
            "H01", "T010", "T010", port)
        conn = db.connect(hall.hall.database)
        assert bytes(conn.execute("SELECT key FROM terminals WHERE id='T010'").fetchone()[0]) \
            == bytes.fromhex(conf["key"])
        assert registry.terminals_of(conn, "W01") == ["T001", "T010"]

        # its broker credentials work, for its own topics only
        observer = clients(port, "observer", hall.mqtt.password)
        assert observer.connect()
        observer.subscribe("hcp/v1/H01/+/rating")
        t10 = clients(port, "T010", conf["password"])
        assert t10.connect()
        t10.publish("hcp/v1/H01/T001/rating", b"forged")
        rating = messages.encode_rating(bytes.fromhex(conf["key"]), "T010", 1, 2, "", 0)
        t10.publish("hcp/v1/H01/T010/rating", rating)
        assert [t for t, _p in observer.received()] == ["hcp/v1/H01/T010/rating"]
        # and the daemon knows its key: the signed rating is stored
        wait_until(lambda: conn.execute("SELECT COUNT(*) FROM ratings WHERE terminal='T010'")
                   .fetchone()[0] == 1, what="T010's rating stored")

        # a rerun changes nothing: same key, same password
        r = _provision(hall, b, "T010", "--window", "W01")
        assert "its key and password kept" in r.output
        assert _device_conf(b) == conf

        # the board breaks; a new one is provisioned as T011 and takes its place
        b2 = new_board("b2")
        _provision(hall, b2, "T011", "--wifi-ssid", "hall-iot", "--broker-host", "127.0.0.1")
        r = CliRunner().invoke(cli, ["device", "replace", "--config", hall.path, "--old", "T010",
                                     "--new", "T011", "--actor", "erin"])
        assert r.exit_code == 0, r.output
        assert registry.terminals_of(conn, "W01") == ["T001", "T011"]
        assert not clients(port, "T010", conf["password"], "t10-after").connect()
        assert clients(port, "T011", _device_conf(b2)["password"]).connect()
        # a replaced id is not given to another board
        r = _provision(hall, b, "T010", ok=False)
        assert r.exit_code == 1 and "was revoked" in r.output
    finally:
        daemon.kill()
    actions = [(e["actor"], e["action"], e["detail"].get("terminal", e["detail"].get("new")))
               for e in reversed(json.loads("[%s]" % ",".join(CliRunner().invoke(
                   cli, ["audit", "--config", hall.path, "--json"]).output.split("\n")[:-1])))]
    assert ("erin", "register", "T010") in actions
    assert ("erin", "provision", "T010") in actions
    assert ("erin", "pair", "T010") in actions
    assert ("erin", "replace", "T011") in actions


def test_a_registered_terminal_is_not_taken_over_by_another_board(hall, new_board):
    b = new_board()
    r = _provision(hall, b, "T001", "--wifi-ssid", "x", "--broker-host", "10.0.0.2", ok=False)
    assert r.exit_code == 1 and "already registered with another board's key" in r.output
    assert "/config.json" not in b.files()
    # the same board after a wipe: --again gives new secrets, seq numbers above the daemon's
    conn = db.connect(hall.hall.database)
    conn.execute("INSERT INTO ratings (terminal, seq, level, token, rated_at, received_at, outcome)"
                 " VALUES ('T001', 41, 1, '', 0, 0, 'unsolicited')")
    old_key = bytes(conn.execute("SELECT key FROM terminals WHERE id='T001'").fetchone()[0])
    _provision(hall, b, "T001", "--again", "--wifi-ssid", "x", "--broker-host", "10.0.0.2")
    conf = _device_conf(b)
    assert bytes.fromhex(conf["key"]) != old_key
    assert bytes(conn.execute("SELECT key FROM terminals WHERE id='T001'").fetchone()[0]) \
        == bytes.fromhex(conf["key"])
    if "seq_start" in device_config.DEFAULTS:
        assert conf["seq_start"] == 42


def test_refusals_that_change_nothing(hall, new_board, tmp_path):
    bare = new_board("bare", fresh=False)
    r = _provision(hall, bare, "T020", "--wifi-ssid", "x", "--broker-host", "10.0.0.2", ok=False)
    assert r.exit_code == 1 and "hcp device install" in r.output
    b = new_board()
    r = _provision(hall, b, "T020", ok=False)
    assert r.exit_code == 1 and "--wifi-ssid and --broker-host" in r.output
    r = CliRunner().invoke(cli, ["device", "provision", "--port", b.port, "--config", hall.path,
                                 "--terminal", "T020", "--profile", "no-such-board"])
    assert r.exit_code == 1 and "no profile named" in r.output
    conn = db.connect(hall.hall.database)
    assert registry.terminal_state(conn, "T020") == (None, False)


def test_provision_without_a_wifi_password_refuses_rather_than_write_an_empty_one(hall, new_board):
    # if this fails, HCP_WIFI_PASSWORD unset in a script gives the board an empty WiFi password,
    # exit 0 and "shows online once it joins": the terminal never joins
    b = new_board()
    args = ["device", "provision", "--port", b.port, "--config", hall.path, "--terminal", "T021",
            "--profile", PROFILE, "--wifi-ssid", "hall-iot", "--broker-host", "10.0.0.2"]
    for env in ({"HCP_WIFI_PASSWORD": None}, {"HCP_WIFI_PASSWORD": ""}):
        r = CliRunner().invoke(cli, args, env=env)
        assert r.exit_code == 1 and "HCP_WIFI_PASSWORD" in r.output, r.output
        assert "--open-wifi" in r.output and "online" not in r.output
        assert "/config.json" not in b.files()
        assert registry.terminal_state(db.connect(hall.hall.database), "T021") == (None, False)
    r = CliRunner().invoke(cli, args + ["--open-wifi"], env={"HCP_WIFI_PASSWORD": None})
    assert r.exit_code == 0, r.output   # a hall WiFi without a password, said so
    assert _device_conf(b)["wifi_password"] == ""


def test_the_port_vanishing_mid_provision_and_a_rerun(hall, new_board, tmp_path):
    b = new_board()

    def unplug(i, what):
        if what == "writing the device config":
            b.unplug()

    with pytest.raises(HcpError) as e:
        provision.provision(b.port, hall.path, "T030", PROFILE, window="W02",
                            wifi_ssid="hall-iot", wifi_password=WIFI_PW, broker_host="10.0.0.2",
                            on_step=unplug)
    assert "stopped answering" in str(e.value) and "run the same command" in str(e.value)
    conn = db.connect(hall.hall.database)
    assert registry.terminal_state(conn, "T030") == (None, False)   # nothing half-registered
    again = Board(tmp_path, root=tmp_path / "b1")
    try:
        done = provision.provision(again.port, hall.path, "T030", PROFILE, window="W02",
                                   wifi_ssid="hall-iot", wifi_password=WIFI_PW,
                                   broker_host="10.0.0.2")
    finally:
        again.unplug()
    assert done["terminal"] == "T030"
    assert registry.terminals_of(conn, "W02") == ["T002", "T030"]


def test_a_hall_that_moves_to_tls_gives_its_terminals_the_hall_ca(hall, new_board):
    # if this failed, terminals provisioned after `hcp broker config --tls` would keep sending
    # their password in clear, to a port that no longer takes it
    import base64

    from haochaping.tools.device import hall_ca
    b = new_board()
    _provision(hall, b, "T010", "--wifi-ssid", "hall-iot", "--broker-host", "10.0.0.2")
    plain = _device_conf(b)
    assert "tls_ca" not in plain and plain["port"] == hall.mqtt.port
    broker = hall_kit.broker_conf(hall).rsplit("/", 1)[0]
    r = CliRunner().invoke(cli, ["broker", "config", "--config", hall.path, "--out", broker,
                                 "--tls", "--tls-host", "hall-srv", "--tls-host", "10.0.0.2"])
    assert r.exit_code == 0, r.output
    r = _provision(hall, b, "T010")
    assert "TLS to the broker (hall CA)" in r.output and "its key and password kept" in r.output
    conf = _device_conf(b)
    assert base64.b64decode(conf["tls_ca"]) == hall_ca.ca_der(broker)
    assert (conf["tls_name"], conf["port"], conf["broker"]) == ("hall-srv", 8883, "10.0.0.2")
    assert conf["password"] == plain["password"]
    assert device_config.validate(dict(conf))["tls_ca"] == hall_ca.ca_der(broker)
