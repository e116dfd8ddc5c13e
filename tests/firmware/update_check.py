# Over-the-air update under power cuts (MicroPython only), on littlefs.
#
# A RAM block device formatted with vfs.VfsLfs2 (what ESP32 MicroPython uses) holds a terminal
# as `hcp device install` leaves it: /lib/hcpboot.mpy and the app in /lib/haochaping (v1). The
# terminal is then booted as /main.py boots it (hcpboot.recover, then the app imported from the
# flash), and takes an update offered with a bundle: its own firmware/update.py, loaded from the
# flash, fetches every chunk, verifies, stages, switches at a quiet moment, resets, runs the
# new version on trial, keeps it. A broken bundle (a module that raises at import) must be
# rolled back by itself.
#
# `cut` stops the flash after its k-th block write or erase (then, separately, the write hit by
# the cut lands half), for every k of the update; the power comes back, and then:
#   - the boot recovers without an error, and /lib/haochaping is exactly v1 or exactly the new
#     version (every file, by hash), never a mix;
#   - the app found there imports (the terminal boots);
#   - the update then finishes by itself: the new version on trial, then kept (or, for the
#     broken bundle, rolled back to v1 and reported failed).
#
# Usage: micropython update_check.py count <v1 dir> <bundle> <key file> <good|broken>
#        micropython update_check.py cut <v1 dir> <bundle> <key file> <good|broken> FROM TO STEP
# <key file>: the modulus in hex (the unix port dies on a 512-character argument).
# Run with MICROPYPATH=.frozen only: everything of the terminal comes from its flash.
import hashlib
import json
import os
import sys

import vfs

BLOCK = 4096
BLOCKS = 96
ROOT = "/flash"
EIO = -5


class Cut(Exception):
    pass


class Reset(Exception):
    pass


class RAMBlockDev:
    def __init__(self, data, limit=-1, torn=False):
        self.data = data
        self.limit = limit
        self.torn = torn
        self.count = 0
        self.refused = False

    def _power(self):
        return not (self.limit >= 0 and self.count >= self.limit)

    def readblocks(self, n, buf, off=0):
        a = n * BLOCK + off
        buf[:] = self.data[a:a + len(buf)]

    def writeblocks(self, n, buf, off=None):
        a = n * BLOCK + (off or 0)
        if not self._power():
            self.refused = True
            if self.torn:
                half = len(buf) // 2
                self.data[a:a + half] = buf[:half]
                self.torn = False
            return EIO
        self.data[a:a + len(buf)] = buf
        self.count += 1
        return 0

    def ioctl(self, op, arg):
        if op == 4:
            return BLOCKS
        if op == 5:
            return BLOCK
        if op == 6:
            if not self._power():
                self.refused = True
                return EIO
            self.count += 1
            return 0
        return 0


def mount(dev):
    vfs.mount(vfs.VfsLfs2(dev), ROOT)


def umount():
    try:
        vfs.umount(ROOT)
    except OSError:
        pass


def sha(data):
    return hashlib.sha256(data).digest()


def read(path):
    with open(path, "rb") as f:
        return f.read()


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
    state = 3   # UP: the self-test sees the broker reached and the status published


class App:
    """What the updater uses of the app: ids, clock, panel, journal, status, wake."""

    def __init__(self, clock):
        self.cfg = {"hall": "H1", "terminal": "T1"}
        self.term = "T1"
        self.ms = clock
        self.panel = Panel()
        self.journal = Journal()
        self.t_status = "hcp/v1/H1/T1/status"
        self.version = "0.2.0"
        self.wake = None
        self.update = None

    def status(self):
        return b"{}"


class Clock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t


def fresh_modules():
    for name in list(sys.modules):
        if name.startswith("haochaping"):
            del sys.modules[name]


def boot(dev, bundle, key, ver, mlen, clock):
    """One boot of the terminal, as /main.py: recover, import the app, run the update until it
    resets the chip (Reset) or settles. Returns the update's final text."""
    import hcpboot
    st = hcpboot.recover(ROOT)
    if dev.refused:
        raise Cut()
    fresh_modules()
    try:
        from haochaping.firmware import app as app_mod  # noqa: F401 (the app must import)
        from haochaping.firmware import update
    except Exception as e:  # a broken bundle
        if hcpboot.failed(ROOT, st, "boot: %s %s" % (type(e).__name__, e)):
            if dev.refused:
                raise Cut() from None
            raise Reset() from None
        raise
    update.QUIET_MS = 100
    app = App(clock)

    def reset():
        raise Reset()

    u = update.Updater(app, key, ROOT, Link(), reset)
    offer = b'{"v":1,"ver":"%s","size":%d,"mlen":%d}' % (ver.encode(), len(bundle), mlen)
    u.on_message(u.t_update, offer, True)
    for _ in range(20000):
        clock.t += 20
        u.tick(clock.t)
        for topic, payload, _retain in u.take_notes():
            if topic == u.t_fetch:
                m = json.loads(payload)
                at, n = m["at"], m["n"]
                chunk = bytes([len(ver)]) + ver.encode() + at.to_bytes(4, "big") + \
                    bundle[at:at + n]
                u.on_message(u.t_chunk, chunk, False)
        u.step(clock.t)
        if dev.refused:
            raise Cut()
        t = u.text()
        if t.split(" ")[0] in ("ok", "failed"):
            return t
    return "stuck: " + u.text()


def installed(prefix):
    """{path under haochaping/: sha256} of what is in /lib/haochaping."""
    out = {}
    base = ROOT + "/lib/haochaping"
    for part in ("protocol", "firmware"):
        try:
            names = os.listdir(base + "/" + part)
        except OSError:
            continue
        for n in names:
            out[part + "/" + n] = sha(read(base + "/" + part + "/" + n))
    return out


SWITCH_AT = [0]   # flash writes when the first reset came (the download and staging before it)


def run_update(dev, bundle, key, ver, mlen):
    """Boots until the update settles (at most 8). Returns (text, boots)."""
    clock = Clock()
    for n in range(8):
        try:
            return boot(dev, bundle, key, ver, mlen, clock), n + 1
        except Reset:
            if not SWITCH_AT[0]:
                SWITCH_AT[0] = dev.count
            continue
    return "no end after 8 boots", 8


def setup(v1dir):
    data = bytearray(BLOCK * BLOCKS)
    dev = RAMBlockDev(data)
    vfs.VfsLfs2.mkfs(dev)
    mount(dev)
    v1 = {}
    for part in ("protocol", "firmware"):
        d = v1dir + "/" + part
        for p in ("/lib", "/lib/haochaping", "/lib/haochaping/" + part):
            try:
                os.mkdir(ROOT + p)
            except OSError:
                pass
        for n in os.listdir(d):
            b = read(d + "/" + n)
            with open(ROOT + "/lib/haochaping/" + part + "/" + n, "wb") as f:
                f.write(b)
            v1[part + "/" + n] = sha(b)
    with open(ROOT + "/lib/hcpboot.mpy", "wb") as f:
        f.write(read(v1dir + "/firmware/hcpboot.mpy"))
    umount()
    return data, v1


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


def check(v1, v2, good):
    """After a cut and a reboot: the app folder is v1 or v2, whole; returns an error or None."""
    have = installed(ROOT)
    if have != v1 and have != v2:
        extra = [k for k in have if k not in v1 and k not in v2]
        return "the app is neither v1 nor v2: %d files, %d unknown" % (len(have), len(extra))
    return None


def main():
    mode, v1dir, bpath, keypath, kind = sys.argv[1:6]
    bundle = read(bpath)
    keyhex = read(keypath).decode().strip()
    key = bytes([int(keyhex[i:i + 2], 16) for i in range(0, len(keyhex), 2)])
    m, mlen = manifest_of(bundle)
    ver = m["version"]
    v2 = {}
    at = mlen + 256
    for name, size, _digest in m["files"]:
        v2[name] = sha(bundle[at:at + size])
        at += size
    base, v1 = setup(v1dir)
    sys.path.insert(0, ROOT + "/lib")
    want = ("ok " + ver) if kind == "good" else ("failed " + ver)
    want_app = v2 if kind == "good" else v1
    if mode == "count":
        data = bytearray(base)
        dev = RAMBlockDev(data)
        mount(dev)
        text, boots = run_update(dev, bundle, key, ver, mlen)
        ok = text.startswith(want) and installed(ROOT) == want_app
        print("writes %d switch_at %d boots %d files %d bytes %d state %s" % (
            dev.count, SWITCH_AT[0], boots, len(m["files"]), len(bundle),
            text.replace(" ", "_")))
        umount()
        print("update ok 0" if ok else "update FAILED: " + text)
        return
    lo, hi, step = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
    fails = 0
    n = 0
    k = lo
    while k < hi:
        for torn in (False, True):
            data = bytearray(base)
            dev = RAMBlockDev(data, k, torn)
            mount(dev)
            try:
                text, _ = run_update(dev, bundle, key, ver, mlen)
                print("k=%d: the update finished before the cut (%s)" % (k, text))
                fails += 1
                umount()
                continue
            except Cut:
                pass
            except OSError:  # the cut met outside the updater's own handling
                if not dev.refused:
                    raise
            umount()
            dev = RAMBlockDev(data)   # the power is back
            mount(dev)
            try:
                import hcpboot
                hcpboot.recover(ROOT)
                err = check(v1, v2, kind == "good")
                if err is None:
                    fresh_modules()
                    from haochaping.firmware import app as app_mod  # noqa: F401
            except Exception as e:
                err = None if kind != "good" and "broken" in str(e) else "boot: %r" % e
            if err is None:
                text, _ = run_update(dev, bundle, key, ver, mlen)
                if not text.startswith(want) or installed(ROOT) != want_app:
                    err = "after the cut the update ended with %r" % text
            if err:
                print("k=%d torn=%s: %s" % (k, torn, err))
                fails += 1
            umount()
        n += 1
        k += step
    print(("update ok %d" if not fails else "update FAILED %d") % n)


main()
