"""Updates of MicroPython itself (the image) over the air, on the terminal: the partition side.

Only a terminal flashed with an OTA layout (`otadata` and two app slots, MicroPython's
ESP32_GENERIC-OTA) can take one: `esp32.Partition(Partition.RUNNING).get_next_update()` is the
slot not running, and raises OSError on a stock image (one `factory` app, no otadata). The
update (firmware/update.py drives it, a step at a time from the key loop's housekeeping):

  write    the image, one 4 KB block per step: `writeblocks(n, block)` erases and programs it
  verify   read back a block per step, its SHA-256 against the signed manifest's
  switch   at a quiet moment: `switch V <slot>` in /image.state, `set_boot()`, reset
  trial    the bootloader boots the new image (pending verification); the same self-test as an
           app update (keys scanned, broker reached, status published), then
           `Partition.mark_app_valid_cancel_rollback()` and `ok V <slot>`
  rollback the self-test failed: `rollback V why`, the old slot set to boot, reset. A reset
           before the image confirmed itself (a crash, the watchdog, a power cut) makes the
           bootloader boot the old image by itself.

/image.state (hcpboot.IMAGE_STATE) is one line replaced whole, as /update.state. At boot
`recover` reads it against the slot that runs: a `switch` or `trial` line whose slot is not the
one running means the bootloader brought the old image back.
"""
from . import hcpboot

BLOCK = 4096
# `Partition(Partition.RUNNING)`: MicroPython takes the int constants RUNNING and BOOT as well as
# a label (ports/esp32/esp32_partition.c); micropython-esp32-stubs types the argument as str only,
# hence the `type: ignore[arg-type]` on those calls.
_CHIP_IDS = {"esp32": 0, "esp32s2": 2, "esp32c3": 5, "esp32s3": 9}


def running_label():
    """The label of the app slot running ("factory", "ota_0", ...), "" without esp32."""
    try:
        from esp32 import Partition
    except ImportError:
        return ""
    return Partition(Partition.RUNNING).info()[4]  # type: ignore[arg-type]


def next_slot():
    """The slot an update goes to. OSError on an image without OTA slots."""
    from esp32 import Partition
    return Partition(Partition.RUNNING).get_next_update()  # type: ignore[arg-type]


def release():
    """MicroPython's own version ("1.24.1"), for a terminal whose image did not come over the
    air: the version in the running image's app description (ESP-IDF's esp_app_desc_t, at byte
    32 of the image), else the interpreter's."""
    try:
        from esp32 import Partition
        head = bytearray(80)
        Partition(Partition.RUNNING).readblocks(0, head, 0)  # type: ignore[arg-type]
        if head[32:36] == b"\x32\x54\xcd\xab":
            v = bytes(head[48:80]).split(b"\0")[0].decode()
            return v[1:] if v.startswith("v") else v
    except (ImportError, OSError, ValueError):
        pass
    import sys
    return "%d.%d.%d" % sys.implementation.version[:3]


def version(root=""):
    """The image version to report: V when the running slot holds the image update V kept
    (`ok V <slot>`), else MicroPython's release."""
    st = hcpboot.read(root, hcpboot.IMAGE_STATE)
    if st and st[0] == "ok" and st[2] and st[2] == running_label():
        return st[1]
    return release()


def recover(root=""):
    """At boot: what happened to an image update since the last one. Returns (the state line
    as hcpboot.read gives it, True when it moved at this boot), after moving it on: `switch`
    on the new slot -> `trial`; `switch` or `trial` on the old slot -> `failed` (the
    bootloader rolled back); `trial` on the new slot -> it confirmed itself before a reset ->
    `ok`; `rollback` -> `failed`."""
    path = hcpboot.IMAGE_STATE
    st = hcpboot.read(root, path)
    if not st or st[0] not in ("switch", "trial", "rollback"):
        return st, False
    s, ver, slot = st[0], st[1], st[2]
    if s in ("switch", "trial"):
        running = running_label()
        if running != slot:
            hcpboot.write(root, "failed", ver, "the bootloader rolled back to " + running, path)
        elif s == "switch":
            hcpboot.write(root, "trial", ver, slot, path)
        else:
            hcpboot.write(root, "ok", ver, slot, path)
    elif s == "rollback":
        hcpboot.write(root, "failed", ver, st[2], path)
    return hcpboot.read(root, path), True


def header_problem(block, chip):
    """Why the first block is not an app image for this chip ("" when it is)."""
    if block[0] != 0xE9:
        return "image: not an ESP app image"
    want = _CHIP_IDS.get(chip)
    got = block[12] | block[13] << 8
    if want is not None and got != want:
        return "image: for another chip (id %d)" % got
    return ""


def switch(root, ver, slot):
    """Point the bootloader at the new image (it checks the image first: OSError when it is not
    bootable). The caller resets."""
    hcpboot.write(root, "switch", ver, slot.info()[4], hcpboot.IMAGE_STATE)
    slot.set_boot()


def confirm(root, ver):
    """The self-test passed on the new image: cancel the bootloader's rollback, keep it."""
    from esp32 import Partition
    try:
        Partition.mark_app_valid_cancel_rollback()
    except OSError:
        pass   # an image built without rollback: nothing to cancel
    hcpboot.write(root, "ok", ver, running_label(), hcpboot.IMAGE_STATE)


def roll_back(root, ver, why):
    """The self-test failed: back to the old image at the next boot (the caller resets). The
    bootloader would roll back the unconfirmed image anyway; set_boot makes it so on an image
    built without rollback too."""
    hcpboot.write(root, "rollback", ver, why, hcpboot.IMAGE_STATE)
    try:
        next_slot().set_boot()
    except OSError:
        pass
