# An update of MicroPython itself (the image) over the air, under real MicroPython (unix port),
# with the esp32.Partition stand-in (tools/sim/sim_device/esp32.py: file-backed app slots, the
# rollback bootloader, power cuts) and the terminal's files on littlefs (a RAM block device).
#
# The terminal runs image v1 in ota_0 and is offered an image bundle: its own
# firmware/update.py and firmware/image.py fetch it chunk by chunk, write it into ota_1 a block
# at a time, read it back, switch (set_boot, reset), run the new image on trial and keep it.
# How an image behaves is read from its app description's project name (esp32.running_desc):
#   "micropython"  works
#   "nolink"       boots, but never reaches the broker: the self-test fails, rollback
#   "crash"        resets at once at every boot (a panic before the app): never confirms
#
# Usage: micropython image_check.py run <bundle> <key file> <slot dir> [stock]
#        micropython image_check.py cut <bundle> <key file> <slot dir> FROM TO
# Prints "result <update text> running <slot> image <version> boots <n> ops <n> switch_at <n>";
# `cut` cuts the power at every flash operation k in FROM..TO (clean, then torn), powers up
# again, checks the chip boots a whole image, and lets the update go on; one line per k
# ("k=<k> ..." on trouble) and "cut ok <n>" / "cut FAILED <n>" at the end.
import json
import os
import sys

import esp32
import vfs

BLOCK = 4096
BLOCKS = 32
ROOT = "/flash"
EIO = -5


class Reset(Exception):
    pass


class RAMBlockDev:
    """The file system's flash: its writes and erases count with the image's (esp32.power_ok),
    so a cut lands anywhere in the sequence."""

    def __init__(self, data):
        self.data = data
        self.refused = False

    def readblocks(self, n, buf, off=0):
        a = n * BLOCK + off
        buf[:] = self.data[a:a + len(buf)]

    def writeblocks(self, n, buf, off=None):
        if not esp32.power_ok():
            self.refused = True
            return EIO
        a = n * BLOCK + (off or 0)
        self.data[a:a + len(buf)] = buf
        return 0

    def ioctl(self, op, arg):
        if op == 4:
            return BLOCKS
        if op == 5:
            return BLOCK
        if op == 6:
            if not esp32.power_ok():
                self.refused = True
                return EIO
            return 0
        return 0


class Panel:
    mode = 0
    token = ""
    changes = 0


class Journal:
    def acks_due(self, n=1):
        return False

    def write_acks(self):
        pass


class Link:
    def __init__(self, up):
        self.state = 3 if up else 1


class App:
    def __init__(self, clock):
        self.cfg = {"hall": "H1", "terminal": "T1", "board": {"chip": "esp32"}}
        self.term = "T1"
        self.ms = clock
        self.panel = Panel()
        self.journal = Journal()
        self.t_status = "hcp/v1/H1/T1/status"
        self.version = "0.2.0"
        self.image = ""
        self.wake = None
        self.update = None

    def status(self):
        return b"{}"


class Clock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t


def read(path):
    with open(path, "rb") as f:
        return f.read()


def manifest_of(bundle):
    depth = 0
    for i in range(len(bundle)):
        c = bundle[i]
        if c == 123:
            depth += 1
        elif c == 125:
            depth -= 1
            if depth == 0:
                return json.loads(bundle[:i + 1]), i + 1
    raise ValueError("no manifest")


def boot(dev, bundle, key, clock):
    """One boot: the bootloader, then the app with its updater, until it resets or settles."""
    esp32.boot()
    from haochaping.firmware import update
    update.QUIET_MS = 100
    _version, project = esp32.running_desc()
    if project == "crash":
        raise Reset()                    # a panic before the app: the chip resets
    app = App(clock)

    def reset():
        raise Reset()

    u = update.Updater(app, key, ROOT, Link(project != "nolink"), reset)
    if dev.refused:
        raise esp32.PowerCut()
    m, mlen = manifest_of(bundle)
    offer = b'{"v":1,"ver":"%s","size":%d,"mlen":%d}' % (m["version"].encode(), len(bundle),
                                                         mlen)
    u.on_message(u.t_update, offer, True)
    ver = m["version"].encode()
    for _ in range(40000):
        clock.t += 20
        u.tick(clock.t)
        for topic, payload, _retain in u.take_notes():
            if topic == u.t_fetch:
                req = json.loads(payload)
                at, n = req["at"], req["n"]
                u.on_message(u.t_chunk, bytes([len(ver)]) + ver + at.to_bytes(4, "big")
                             + bundle[at:at + n], False)
        u.step(clock.t)
        if dev.refused:
            raise esp32.PowerCut()
        t = u.text()
        if t.split(" ")[0] in ("ok", "failed", "unable"):
            return t, app.image
    return "stuck: " + u.text(), app.image


SWITCH_AT = [0]


def run_update(dev, bundle, key):
    clock = Clock()
    for n in range(8):
        try:
            text, img = boot(dev, bundle, key, clock)
            return text, img, n + 1
        except Reset:
            if not SWITCH_AT[0]:
                SWITCH_AT[0] = esp32.OPS[0]
    return "no end after 8 boots", "", 8


def fresh(slots, stock, v1):
    """A terminal as `hcp device flash` (OTA image v1 in ota_0) and install leave it."""
    for n in os.listdir(slots) if exists(slots) else []:
        os.remove(slots + "/" + n)
    esp32.setup(slots, ota=not stock, slot_size=BLOCK * 24)
    with open(slots + ("/factory.bin" if stock else "/ota_0.bin"), "r+b") as f:
        f.write(v1)
    esp32.boot()
    data = bytearray(BLOCK * BLOCKS)
    dev = RAMBlockDev(data)
    vfs.VfsLfs2.mkfs(dev)
    return data


def exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def mount(data):
    dev = RAMBlockDev(data)
    vfs.mount(vfs.VfsLfs2(dev), ROOT)
    return dev


def umount():
    try:
        vfs.umount(ROOT)
    except OSError:
        pass


def running_image():
    with open(esp32._path(esp32._FLASH["running"]), "rb") as f:
        return f.read()


def main():
    mode, bpath, keypath, slots = sys.argv[1:5]
    bundle = read(bpath)
    keyhex = read(keypath).decode().strip()
    key = bytes([int(keyhex[i:i + 2], 16) for i in range(0, len(keyhex), 2)])
    v1 = read(slots + ".v1")
    stock = len(sys.argv) > 5 and sys.argv[5] == "stock"
    if mode == "run":
        data = fresh(slots, stock, v1)
        dev = mount(data)
        esp32.OPS[0] = 0
        text, img, boots = run_update(dev, bundle, key)
        umount()
        print("result %s running %s image %s boots %d ops %d switch_at %d" % (
            text.replace(" ", "_"), esp32._FLASH["running"], img or "-", boots, esp32.OPS[0],
            SWITCH_AT[0]))
        return
    lo, hi = int(sys.argv[5]), int(sys.argv[6])
    m, mlen = manifest_of(bundle)
    v2 = bundle[mlen + 256:]
    fails = 0
    for k in range(lo, hi):
        for torn in (False, True):
            data = fresh(slots, False, v1)
            dev = mount(data)
            esp32.CUT[0] = k
            esp32.TORN[0] = torn
            try:
                text, _, _ = run_update(dev, bundle, key)
                print("k=%d: the update ended before the cut (%s)" % (k, text))
                fails += 1
                umount()
                esp32.CUT[0] = -1
                continue
            except esp32.PowerCut:
                pass
            except OSError:
                if not dev.refused:
                    raise
            umount()
            esp32.CUT[0] = -1                # the power is back
            dev = mount(data)
            text, img, _ = run_update(dev, bundle, key)
            run = running_image()
            err = ""
            if not esp32.image_ok(run):
                err = "boots an image that does not verify"
            elif run[:len(v1)] != v1 and run[:len(v2)] != v2:
                err = "runs neither v1 nor v2"
            elif text.startswith("ok ") and (run[:len(v2)] != v2 or img != m["version"]):
                err = "ok, but not running v2 (%s)" % img
            elif text.startswith("failed ") and run[:len(v1)] != v1:
                err = "failed, but not back on v1"
            elif not text.startswith(("ok ", "failed ")):
                err = "the update did not end: " + text
            if err:
                print("k=%d torn=%s: %s" % (k, torn, err))
                fails += 1
            else:
                print("k=%d torn=%s %s %s" % (k, torn, text.split(" ")[0], esp32._FLASH["running"]))
            umount()
    print(("cut ok %d" if not fails else "cut FAILED %d") % (hi - lo))


main()
