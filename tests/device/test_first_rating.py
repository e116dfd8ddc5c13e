"""From a new board to a first rating: `hcp device install` and `hcp device provision` on real
MicroPython (pty bridge), then the firmware as installed on the board (its .mpy files, its
/config.json) boots under MicroPython, joins the real mosquitto with its provisioned password,
shows the prompt the real hall daemon sends when the window finishes, and its rating is stored.
If this fails, a provisioned terminal would not work although each step says it succeeded."""
import json
import subprocess

import pytest
from click.testing import CliRunner

from haochaping.daemon.hall import api_client, db
from haochaping.hardware import profile as hw_profile
from haochaping.tools.cli import _register, cli
from haochaping.tools.sim import hall_kit, processes

from ..conftest import wait_until
from ..mpy import ROOT, micropython_binary
from .board import Board

_register()

pytestmark = pytest.mark.skipif(micropython_binary() is None, reason="micropython not installed")
STANDINS = next((p for p in (ROOT / "tools" / "sim" / "sim_device",
                             ROOT / "tests" / "device" / "stubs")
                 if (p / "machine.py").exists()), None)
PROFILE = "esp32-devkitc-buttons"


def _hcp(*args):
    r = CliRunner().invoke(cli, list(args), env={"HCP_WIFI_PASSWORD": "wifi-pw"})
    assert r.exit_code == 0, r.output
    return r.output


@pytest.mark.skipif(STANDINS is None, reason="no machine/network stand-ins")
def test_new_board_to_first_rating(tmp_path, run_broker):
    hall = hall_kit.create(str(tmp_path / "hall"), windows=("W01",))
    run_broker(hall_kit.broker_conf(hall), hall.mqtt.port)
    daemon = processes.DaemonProcess(hall).start()
    root = tmp_path / "board"
    root.mkdir()
    board = Board(tmp_path, root=root)
    proc = None
    try:
        _hcp("device", "install", "--port", board.port)
        _hcp("device", "provision", "--port", board.port, "--config", hall.path,
             "--terminal", "T050", "--window", "W01", "--profile", PROFILE,
             "--wifi-ssid", "hall-iot", "--broker-host", "127.0.0.1")
        board.unplug()                                   # off the bench, onto the counter
        key1 = hw_profile.load(PROFILE)[1]["keys"][0]
        proc = subprocess.Popen(
            [micropython_binary(), str(ROOT / "tests" / "device" / "first_rating_check.py"),
             str(STANDINS), str(root), str(key1)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        _expect(proc, "online")
        conn = db.connect(hall.hall.database)
        api = api_client.WindowApi(hall)
        api.start("W01", "A001")
        assert "T050" in api.finish("W01")["terminals"]
        _expect(proc, "rated")
        row = conn.execute("SELECT level, outcome FROM ratings WHERE terminal='T050'").fetchone()
        assert (row[0], row[1]) == (1, "counted")
        wait_until(lambda: _state(hall, "T050")["state"] == "online", what="status stored")
        st = _state(hall, "T050")
        assert st["window"] == "W01" and st["board"] == PROFILE and st["firmware"]
        proc.kill()                                      # power cut: the broker sends its will
        proc.wait()
        wait_until(lambda: _state(hall, "T050")["state"] == "offline", what="last will")
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        board.unplug()
        daemon.kill()


def _expect(proc, word):
    seen = []
    while True:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError("the terminal ended before %r: %s" % (word, "".join(seen)))
        if line.strip() == word:
            return
        seen.append(line)


def _state(hall, terminal):
    out = CliRunner().invoke(cli, ["terminals", "--config", hall.path, "--json"]).output
    return {r["terminal"]: r for r in json.loads(out)["terminals"]}[terminal]
