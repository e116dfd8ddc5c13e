"""`hcp device setup`, `ports` and `log`: hall IT's first board, with real MicroPython on a pty
as the board (tests/device/board.py)."""
import json
import os
import pty
import select
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

from haochaping.daemon.hall import db, registry
from haochaping.tools.cli import _register, cli
from haochaping.tools.device import ports
from haochaping.tools.sim import hall_kit

from ..mpy import micropython_binary
from .board import Board

_register()
pytestmark = pytest.mark.skipif(micropython_binary() is None, reason="micropython not installed")
PROFILE = "esp32-devkitc-buttons"


@pytest.fixture
def hall(tmp_path):
    return hall_kit.create(str(tmp_path / "hall"), windows=("W01",))


@pytest.fixture
def board(tmp_path):
    root = tmp_path / "b1"
    root.mkdir()
    b = Board(tmp_path, root=root)
    yield b
    b.unplug()


def _hcp(*args, env=None):
    r = CliRunner().invoke(cli, [str(a) for a in args], env=env)
    assert "Traceback" not in r.output, r.output
    return r


def test_setup_takes_a_bare_micropython_board_to_a_provisioned_terminal(hall, board):
    # if this fails, hall IT must learn three commands and their order for every new board
    r = _hcp("device", "setup", "--port", board.port, "--config", hall.path, "--terminal",
             "T050", "--window", "W01", "--profile", PROFILE, "--wifi-ssid", "hall-iot",
             "--broker-host", "127.0.0.1", env={"HCP_WIFI_PASSWORD": "wifi-pw-123"})
    assert r.exit_code == 0, r.output
    assert "1/2 installing" in r.output and "2/2 provisioning" in r.output
    assert "T050" in r.output and "hcp device log" in r.output
    conf = json.loads(board.files()["/config.json"])
    assert conf["terminal"] == "T050" and conf["wifi_password"] == "wifi-pw-123"
    assert registry.terminals_of(db.connect(hall.hall.database), "W01") == ["T001", "T050"]


def test_setup_without_a_terminal_names_everything_missing_at_once(hall, board):
    # if this fails, hall IT fixes one missing option per attempt, or an empty WiFi password is
    # written when the command runs from a script
    r = _hcp("device", "setup", "--port", board.port, "--config", hall.path,
             "--profile", PROFILE, env={"HCP_WIFI_PASSWORD": None})
    assert r.exit_code == 1
    for what in ("--terminal", "--wifi-ssid", "--broker-host", "HCP_WIFI_PASSWORD"):
        assert what in r.output, r.output
    assert "/config.json" not in board.files()


def test_ports_are_named_by_the_usb_bridge_boards_carry():
    # if this fails, hall IT with three USB devices plugged in cannot tell which is the board
    cp = ports.describe("/dev/ttyUSB0", 0x10C4, 0xEA60, "CP2102 USB to UART Bridge")
    assert cp["likely_esp"] and "ESP32" in cp["what"] and cp["usb"] == "10c4:ea60"
    assert ports.describe("/dev/ttyACM0", 0x303A, 0x1001, "")["likely_esp"]
    other = ports.describe("/dev/ttyUSB1", 0x067B, 0x2303, "PL2303 Serial Port")
    assert not other["likely_esp"] and other["what"] == "PL2303 Serial Port"
    assert _hcp("device", "ports").exit_code == 0


def test_log_shows_the_boards_console_and_says_when_the_port_goes(board, tmp_path):
    # if this fails, hall IT cannot see why a terminal does not come online, or gets a
    # traceback when the cable is pulled
    def speak():
        time.sleep(0.5)
        os.write(board.dev_m, b"print('wifi: joined hall-iot')\r")
        time.sleep(1.0)
        board.unplug()
    threading.Thread(target=speak, daemon=True).start()
    r = _hcp("device", "log", "--port", board.port, "--seconds", "20")
    assert "wifi: joined hall-iot" in r.output, r.output
    assert r.exit_code == 1 and "went away" in r.output
    r = _hcp("device", "log", "--port", str(tmp_path / "ttyUSB9"), "--seconds", "1")
    assert r.exit_code == 1 and "plugged in" in r.output


def _read(fd):
    """What the process wrote to its terminal so far (b"" once it closed it)."""
    if not select.select([fd], [], [], 0.5)[0]:
        return b""
    try:
        return os.read(fd, 4096)
    except OSError:   # EIO: the process is gone
        time.sleep(0.1)
        return b""


def test_setup_at_a_terminal_asks_for_what_is_missing(hall, board):
    # if this fails, hall IT at the keyboard is sent back to the docs for every missing option,
    # or an Enter at the WiFi password gives the board an empty one without a word
    main, sub = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "HCP_WIFI_PASSWORD"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "haochaping.tools.cli", "device", "setup", "--port", board.port,
         "--config", hall.path, "--profile", PROFILE, "--window", "W01"],
        stdin=sub, stdout=sub, stderr=sub, env=env, close_fds=True)
    os.close(sub)
    seen = b""
    try:
        for prompt, answer in ((b"terminal: ", b"T051"), (b"wifi ssid: ", b"hall-iot"),
                               (b"broker host: ", b"127.0.0.1"),
                               (b"(Enter alone: the WiFi has none): ", b"wifi-pw-456")):
            deadline = time.monotonic() + 30
            while prompt not in seen:
                assert time.monotonic() < deadline and proc.poll() is None, seen
                seen += _read(main)
            seen = seen.split(prompt, 1)[1]
            os.write(main, answer + b"\r")
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:   # read on: a full pty blocks
            seen += _read(main)
        assert proc.wait(1) == 0, seen
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main)
    conf = json.loads(board.files()["/config.json"])
    assert (conf["terminal"], conf["wifi_ssid"], conf["wifi_password"]) == (
        "T051", "hall-iot", "wifi-pw-456")
