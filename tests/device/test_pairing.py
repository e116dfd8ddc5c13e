"""Pair, unpair, replace a board, the audit log, and `hcp terminals`, against a real broker and
a real hall daemon process."""
import json
import stat

import paho.mqtt.client as paho
from click.testing import CliRunner

from haochaping.daemon.hall import db, registry
from haochaping.protocol import messages
from haochaping.tools.cli import _register, cli
from haochaping.tools.device import mosquitto_setup
from haochaping.tools.sim import hall_kit, processes

from ..conftest import wait_until

_register()


def _hcp(*args, env=None):
    r = CliRunner().invoke(cli, list(args), env=env)
    assert r.exit_code == 0, r.output
    return r.output


def _online(conn, terminal):
    row = conn.execute("SELECT online FROM terminal_status WHERE terminal=?",
                       (terminal,)).fetchone()
    return None if row is None else row[0]


def test_replace_moves_the_window_and_revokes_the_old_board_everywhere(tmp_path, run_broker,
                                                                        clients):
    hall = hall_kit.create(str(tmp_path / "hall"), windows=("W01", "W02"), terminals_per_window=2,
                          extra_superusers=("observer",))
    conf = hall.path
    port = hall.mqtt.port
    pw = {d["terminal"]: d["mqtt"]["password"] for d in hall_kit.devices(hall.folder)}
    keys = {d["terminal"]: bytes.fromhex(d["key"]) for d in hall_kit.devices(hall.folder)}
    # T001 and T002 rate W01 (a window may have several terminals)
    _hcp("pair", "--config", conf, "--window", "W01", "--terminal", "T003", "--actor", "alice")
    _hcp("unpair", "--config", conf, "--terminal", "T004", env={"SUDO_USER": "bob"})
    # the new board, provisioned as T005 (here by hand: registered and given a broker login)
    conn = db.connect(hall.hall.database)
    registry.add_terminal(conn, "T005")
    mosquitto_setup.set_users(str(tmp_path / "hall" / "broker"), {"T005": "pw-five-xxxxxxxx"})
    run_broker(hall_kit.broker_conf(hall), port)
    daemon = processes.DaemonProcess(hall).start()
    try:
        assert clients(port, "T001", pw["T001"], "t1-before").connect()
        out = _hcp("device", "replace", "--config", conf, "--old", "T001", "--new", "T005",
                   "--actor", "carol")
        assert "T005 replaces T001 at window W01" in out
        assert registry.terminals_of(conn, "W01") == ["T002", "T003", "T005"]
        # the broker refuses the old board, takes the new one
        assert not clients(port, "T001", pw["T001"], "t1-after").connect()
        assert clients(port, "T005", "pw-five-xxxxxxxx").connect()
        # the daemon refuses the old board's ratings as from an unknown terminal
        observer = clients(port, "observer", hall.mqtt.password)
        assert observer.connect()
        observer.publish("hcp/v1/H01/T001/rating",
                         messages.encode_rating(keys["T001"], "T001", 1, 1, "tok0123456789abc", 0))
        wait_until(lambda: conn.execute("SELECT reason FROM rejected WHERE terminal='T001'")
                   .fetchone() is not None, what="rejected rating")
        assert conn.execute("SELECT reason FROM rejected WHERE terminal='T001'").fetchone()[0] \
            == "unknown terminal"
        # running it again is safe
        assert "T005 replaces T001" in _hcp("device", "replace", "--config", conf, "--old", "T001",
                                            "--new", "T005", "--actor", "carol")

        # status: T002 online (retained status), T003 goes away and its last will says offline
        t2 = clients(port, "T002", pw["T002"])
        assert t2.connect()
        t2.c.publish("hcp/v1/H01/T002/status", messages.encode_status(
            "T002", True, "0.1.0", "esp32-devkitc-buttons", 61000, 3, -58), qos=1, retain=True)
        t3 = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="T003")
        t3.username_pw_set("T003", pw["T003"])
        t3.will_set("hcp/v1/H01/T003/status", messages.encode_status("T003", False), 1, True)
        t3.connect("127.0.0.1", port, keepalive=5)
        t3.loop_start()
        wait_until(t3.is_connected, what="T003 connected")
        t3.publish("hcp/v1/H01/T003/status", messages.encode_status(
            "T003", True, "0.1.0", "esp32-touch-ws2812", 50000, 0, -70), 1,
            True).wait_for_publish(5)
        wait_until(lambda: _online(conn, "T003") == 1, what="T003 online")
        t3.loop_stop()
        t3.socket().close()                      # the board loses power: the broker sends its will
        wait_until(lambda: _online(conn, "T003") == 0, what="T003's last will")
        wait_until(lambda: _online(conn, "T002") == 1, what="T002 online")
    finally:
        daemon.kill()

    listed = json.loads(_hcp("terminals", "--config", conf, "--json"))["terminals"]
    rows = {r["terminal"]: r for r in listed}
    assert "T001" not in rows                                # revoked
    assert rows["T002"]["state"] == "online" and rows["T002"]["window"] == "W01"
    assert (rows["T002"]["firmware"], rows["T002"]["board"], rows["T002"]["heap"],
            rows["T002"]["backlog"], rows["T002"]["rssi"]) == (
                "0.1.0", "esp32-devkitc-buttons", 61000, 3, -58)
    assert rows["T003"]["state"] == "offline" and not rows["T003"]["flagged"]
    assert rows["T004"]["window"] is None and rows["T004"]["state"] == "never seen"
    assert rows["T005"]["window"] == "W01"
    # offline for longer than the threshold: flagged
    later = json.loads(_hcp("terminals", "--config", conf, "--json", "--offline-after", "0"))
    flagged = sorted(r["terminal"] for r in later["terminals"] if r["flagged"])
    assert flagged == ["T003", "T004", "T005"]
    table = _hcp("terminals", "--config", conf, "--offline-after", "0")
    assert "! 3 terminal(s) offline" in table and "-58 dBm" in table

    log = [json.loads(line) for line in _hcp("audit", "--config", conf, "--json").splitlines()]
    actions = [(e["actor"], e["action"], e["detail"]) for e in reversed(log)]
    assert actions == [
        ("alice", "pair", {"terminal": "T003", "window": "W01"}),
        ("bob", "unpair", {"terminal": "T004", "window": "W02"}),
        ("carol", "replace", {"old": "T001", "new": "T005", "window": "W01"}),
    ]
    assert "carol" in _hcp("audit", "--config", conf)


def test_replace_refuses_an_unprovisioned_board(tmp_path):
    hall = hall_kit.create(str(tmp_path / "hall"), windows=("W01",))
    r = CliRunner().invoke(cli, ["device", "replace", "--config", hall.path, "--old", "T001",
                                 "--new", "T404"])
    assert r.exit_code == 1 and "provision the new board first" in r.output
    assert registry.terminals_of(db.connect(hall.hall.database), "W01") == ["T001"]


def test_terminal_add_registers_the_key_it_writes_to_a_private_file(tmp_path):
    hall = hall_kit.create(str(tmp_path / "hall"), windows=("W01",))
    out = tmp_path / "T009.json"
    output = _hcp("terminal", "add", "--config", hall.path, "--terminal", "T009", "--out",
                  str(out), "--actor", "dave")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    written = json.loads(out.read_text())
    assert (written["hall"], written["terminal"]) == ("H01", "T009")
    assert written["key"] not in output
    conn = db.connect(hall.hall.database)
    key = conn.execute("SELECT key FROM terminals WHERE id='T009'").fetchone()[0]
    assert bytes(key).hex() == written["key"]
    log = [json.loads(line) for line in _hcp("audit", "--config", hall.path, "--json").splitlines()]
    assert [(e["actor"], e["detail"]) for e in log if e["action"] == "register"] == [
        ("dave", {"terminal": "T009"})]
