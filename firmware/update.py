"""Over-the-air updates of the app, on the terminal: download between prompts, verify, stage,
switch at a quiet moment, self-test on trial, keep or roll back (with hcpboot.py).

The daemon offers a bundle (retained, on the terminal's `update` topic; protocol/ota.py). The
terminal pulls it a chunk at a time, and only while no prompt is open (no session, nobody
choosing): `tick` asks for the next chunk, the link's reader hands it over (`on_message`, kept
in RAM), and the app's housekeeping writes it (`step`, at most one flash write per step, as
for the journal). Order:

  manifest  the manifest and its signature, in RAM; RSA checked a step at a time
  clean     the app before the last one (/prev, /bad) removed, a file per step
  files     each file appended to /next/haochaping/<part>/<name> a chunk at a time, its SHA-256
            checked against the manifest at its end (a wrong file is fetched again; a file that
            is already whole after a reboot is kept, so a download resumes)
  staged    the manifest written last (as .new, renamed): /next is whole
  switch    at a quiet moment (no prompt, no key for QUIET_MS, acks written): `switch V` in
            /update.state, then reset; hcpboot moves the folders before anything imports them
  trial     after the switch: the self-test passes when the key loop has run TRIAL_TICKS ticks
            and the link is up (CONNACK, SUBSCRIBE and the retained status, naming the new
            version, published); then `ok V`. Not within TRIAL_MS: `rollback V why`, reset.

An image bundle (MicroPython itself; its manifest says "kind":"image", protocol/ota.py) takes
the same path up to the signature, then (firmware/image.py does the partition side):

  image     the slot not running (esp32.Partition ... get_next_update()); none on a stock
            image: "unable V ...", the rollout records it. Then each 4 KB block written there,
            one `writeblocks` (an erase and a program) per step
  check     read back a block per step, SHA-256 against the manifest (wrong: fetched again,
            three times at most)
  staged    then, at a quiet moment, `switch V <slot>` in /image.state, set_boot(), reset
  trial     on the new image: the same self-test, then mark_app_valid_cancel_rollback(), `ok`;
            failed: `rollback`, the old slot set to boot, reset. A reset before it confirmed
            itself: the bootloader boots the old image.
A download cut by a reboot starts again from the image's first block (the offer is retained).

What the terminal is doing is in `text()`, carried by its retained status (`update`), which is
published again whenever it changes: "fetch V 35%", "check V 50%", "staged V", "trial V",
"ok V", "failed V <why>", "unable V <why>".
"""
import hashlib
import json
import os

from haochaping.protocol import ota, topics
from haochaping.protocol.compat import const

from . import hcpboot
from .clock import ticks_diff

_IDLE = const(0)
_MANIFEST = const(1)
_CHECK = const(2)
_CLEAN = const(3)
_FILES = const(4)
_STAGED = const(5)
_TRIAL = const(6)
_OK = const(7)
_FAILED = const(8)
_IMAGE = const(9)
_VERIFY = const(10)
_UNABLE = const(11)
_BLOCK = const(4096)     # image.BLOCK: the partition's erase block
_PANEL_IDLE = const(0)   # statemachine.IDLE

# plain ints: the simulator divides them by its time scale
ASK_MS = 3000        # a chunk asked for and not come after this long is asked for again
QUIET_MS = 30000     # the switch waits for this long without a key or a prompt
TRIAL_MS = 120000    # the self-test must pass within this long of the boot
TRIAL_TICKS = 100    # key-loop ticks the self-test wants to see (1 s at 10 ms)
_TRIES = const(3)    # a file whose hash is wrong this many times fails the update
_WRITE_AT = const(2048)  # chunks gathered in RAM and appended together: 4x fewer flash writes


def _reset():
    import machine
    machine.reset()


class Updater:
    def __init__(self, app, key, root="", link=None, reset=None):
        self.app = app
        self.key = key            # the hall update key's RSA modulus (bytes), from /config.json
        self.root = root
        self.link = link          # its state says whether the broker is reached (self-test)
        self.reset = reset or _reset
        hall, term = app.cfg["hall"], app.term
        self.t_update = topics.topic(hall, term, topics.UPDATE)
        self.t_fetch = topics.topic(hall, term, topics.FETCH)
        self.t_chunk = topics.topic(hall, term, topics.CHUNK)
        self.phase = _IDLE
        self.offer = {}           # type: dict
        self.ver = ""             # the version being fetched, staged or on trial
        self.why = ""             # why the last update failed
        self.buf = bytearray()    # manifest + signature while they come
        self.man = {}             # type: dict
        self.check = None         # ota.RsaCheck while the signature is checked
        self.todo = []            # paths to remove (clean)
        self.fi = 0               # index of the file being fetched
        self.got = 0              # bytes of it written
        self.sha = hashlib.sha256()
        self.tries = 0
        self.chunk = None         # (offset, data) come and not yet taken
        self.pend = bytearray()   # chunks of the current file taken, not yet written
        self.asked = None         # ticks of the last fetch, None when none is out
        self.notes = []           # (topic, payload, retain) for the link to publish
        self.ticks = 0
        self.quiet_at = app.ms()
        self.changes = -1
        self.errors = 0
        self.swept = False        # files in /next the manifest does not name: listed for removal
        self.trial_at = self.quiet_at
        self.image = False        # the bundle is MicroPython itself (firmware/image.py)
        self.slot = None          # esp32.Partition it goes to
        self.block = 0            # image blocks written (or checked)
        self.fill = 0             # bytes of the next block come
        self.blk = bytearray()    # the image block being filled (4 KB once an image comes)
        running = self._manifest_version(hcpboot.LIB)
        if running:
            app.version = running
        st = hcpboot.read(root)
        from . import image
        ist, moved = image.recover(root)
        app.image = image.version(root)
        if moved:
            st = ist              # an image update on trial, or come to an end at this boot
            self.image = True
        if st:
            self.ver = st[1]
            if st[0] == "trial":
                self.phase = _TRIAL
                self.trial_at = app.ms()
            elif st[0] == "ok":
                self.phase = _OK
            elif st[0] == "failed":
                self.phase = _FAILED
                self.why = st[2]

    # ------------------------------------------------------------ helpers

    def _manifest_version(self, folder):
        try:
            with open(self.root + folder + hcpboot.MANIFEST) as f:
                return json.load(f).get("version")
        except (OSError, ValueError, AttributeError):
            return None

    def _path(self, i):
        return self.root + hcpboot.NEXT + "/" + self.man["files"][i][0]

    def _offset(self, i):
        at = self.offer["mlen"] + ota.SIG_LEN
        for f in self.man["files"][:i]:
            at += f[1]
        return at

    def _fail(self, why):
        self.phase = _FAILED
        self.why = why[:40]
        self.chunk = None
        self.asked = None
        self.buf = bytearray()
        self.pend = bytearray()
        self.man = {}
        self._say()

    def _say(self):
        """Publish the status again: it carries text()."""
        self.notes.append((self.app.t_status, self.app.status(), True))
        w = self.app.wake
        if w is not None:
            w()

    def text(self):
        """The update state for the status ("" when nothing ever happened)."""
        p = self.phase
        if p == _IDLE:
            return ""
        if p in (_MANIFEST, _CHECK, _CLEAN):
            return "fetch %s 0%%" % self.ver
        if p == _FILES:
            size = self.offer["size"]
            return "fetch %s %d%%" % (self.ver, self._offset(self.fi) * 100 // size)
        if p == _IMAGE:
            return "fetch %s %d%%" % (self.ver, self._img_at() * 100 // self._img_size())
        if p == _VERIFY:
            return "check %s %d%%" % (self.ver, self.block * _BLOCK * 100 // self._img_size())
        if p == _UNABLE:
            return "unable %s %s" % (self.ver, self.why)
        if p == _STAGED:
            return "staged " + self.ver
        if p == _TRIAL:
            return "trial " + self.ver
        if p == _OK:
            return "ok " + self.ver
        return "failed %s %s" % (self.ver, self.why)

    def subscriptions(self):
        return [(self.t_update, 1), (self.t_chunk, 0)]

    def takes(self, topic):
        return topic == self.t_update or topic == self.t_chunk

    def take_notes(self):
        n = self.notes
        self.notes = []
        return n

    # ------------------------------------------------------------ from the link

    def on_message(self, topic, payload, retained=False):
        """An offer or a chunk. ValueError for a malformed one (the app counts it)."""
        if topic == self.t_update:
            offer = ota.decode_offer(payload)
            ph = self.phase
            busy = ph in (_MANIFEST, _CHECK, _CLEAN, _FILES, _STAGED, _IMAGE, _VERIFY)
            if offer is None:                # withdrawn: stop fetching, do not switch
                if busy:
                    self.phase = _IDLE
                    self._say()
                return
            if offer["ver"] in (self.app.version, self.app.image) or ph == _TRIAL:
                return                       # running it already; or finish the trial first
            if offer["ver"] == self.ver and (busy or ph in (_FAILED, _UNABLE)):
                return                       # being fetched, staged, or it failed here
            self.offer = offer
            self.swept = False
            self.image = False
            self.slot = None
            self.blk = bytearray()
            self.ver = offer["ver"]
            self.phase = _MANIFEST
            self.buf = bytearray()
            self.man = {}
            self.chunk = None
            self.asked = None
            self._say()
        elif topic == self.t_chunk:
            ver, at, data = ota.decode_chunk(payload)
            if ver != self.ver or self.asked is None or at != self._want():
                return                       # late, or for another version
            self.chunk = (at, bytes(data))
            self.asked = None

    def _img_size(self):
        return self.man["files"][0][1]

    def _img_at(self):
        """Bytes of the image come so far (written, or in the block being filled)."""
        return self.block * _BLOCK + self.fill

    def _want(self):
        """Offset of the next byte wanted."""
        if self.phase == _MANIFEST:
            return len(self.buf)
        if self.phase == _IMAGE:
            return self._offset(0) + self._img_at()
        return self._offset(self.fi) + self.got + len(self.pend)

    def _want_n(self):
        if self.phase == _MANIFEST:
            return min(ota.CHUNK, self.offer["mlen"] + ota.SIG_LEN - len(self.buf))
        if self.phase == _IMAGE:
            return min(ota.CHUNK, _BLOCK - self.fill, self._img_size() - self._img_at())
        return min(ota.CHUNK, self.man["files"][self.fi][1] - self.got - len(self.pend))

    # ------------------------------------------------------------ every key-loop tick

    def _quiet(self):
        p = self.app.panel
        return p.mode == _PANEL_IDLE and not p.token

    def _up(self):
        lk = self.link
        return lk is not None and lk.state == 3   # link.UP

    def tick(self, now):
        """No flash write here: ask for the next chunk; run the trial's self-test clock."""
        p = self.app.panel
        if p.changes != self.changes or not self._quiet():
            self.changes = p.changes
            self.quiet_at = now
        ph = self.phase
        if ph == _TRIAL:
            self.ticks += 1
            if ticks_diff(now, self.trial_at) >= TRIAL_MS:
                why = ("selftest: keys not scanned" if self.ticks < TRIAL_TICKS
                       else "selftest: broker not reached")
                if self.image:
                    from . import image
                    image.roll_back(self.root, self.ver, why)
                else:
                    hcpboot.write(self.root, "rollback", self.ver, why)
                self.reset()
            return
        if ph != _MANIFEST and ph != _FILES and ph != _IMAGE:
            return
        if self.chunk is not None or not self._quiet() or not self._up():
            return
        if ph == _FILES and self.fi >= len(self.man["files"]):
            return                           # every file is whole: step() writes the manifest
        if self.asked is not None and ticks_diff(now, self.asked) < ASK_MS:
            return
        n = self._want_n()
        if n <= 0:
            return
        self.asked = now
        self.notes.append((self.t_fetch, ota.encode_fetch(self.ver, self._want(), n), False))
        w = self.app.wake
        if w is not None:
            w()

    # ------------------------------------------------------------ housekeeping: flash writes

    def step(self, now):
        """One unit of work, at most one flash write (the app's housekeeping calls it when no
        journal work is due). Returns True when it did something."""
        try:
            return self._step(now)
        except OSError as e:
            self.errors += 1
            self.why = str(e)[:24]
            return True

    def _step(self, now):
        ph = self.phase
        if ph == _TRIAL:
            if self.ticks >= TRIAL_TICKS and self._up():
                if self.image:
                    from . import image
                    image.confirm(self.root, self.ver)
                    self.app.image = self.ver
                else:
                    hcpboot.write(self.root, "ok", self.ver)
                self.phase = _OK
                self._say()
                return True
            return False
        if ph == _MANIFEST:
            return self._manifest_chunk()
        if ph == _CHECK:
            c = self.check
            if c is None or not c.step():
                return True
            if not c.ok:
                self._fail("bad signature")
                return True
            try:
                m = ota.parse_manifest(bytes(self.buf[:self.offer["mlen"]]))
            except ValueError as e:
                self._fail(str(e))
                return True
            if m["version"] != self.ver or ota.bundle_size(m, self.offer["mlen"]) != \
                    self.offer["size"]:
                self._fail("manifest does not match the offer")
                return True
            self.man = m
            self.check = None
            if m.get("kind") == "image":
                return self._image_start()
            if self._manifest_version(hcpboot.NEXT) == self.ver:
                self.phase = _STAGED           # staged before a reboot
                self._say()
                return True
            self.todo = [self.root + hcpboot.PREV, self.root + hcpboot.BAD]
            self.phase = _CLEAN
            return True
        if ph == _CLEAN:
            return self._clean()
        if ph == _FILES:
            return self._file_chunk()
        if ph == _IMAGE:
            return self._image_chunk()
        if ph == _VERIFY:
            return self._image_check()
        if ph == _STAGED:
            return self._maybe_switch(now)
        return False

    # ------------------------------------------------------------ an image (MicroPython)

    def _image_start(self):
        from . import image
        try:
            slot = image.next_slot()
        except (OSError, ImportError):
            self.phase = _UNABLE
            self.why = "no OTA slot: a stock image, flash -OTA"
            self.man = {}
            self.buf = bytearray()
            self._say()
            return True
        if self._img_size() > slot.info()[3]:
            self._fail("image: larger than its slot")
            return True
        self.slot = slot
        self.image = True
        self.blk = bytearray(_BLOCK)
        self.tries = 0
        self._image_restart(_IMAGE)
        self._say()
        return True

    def _image_restart(self, phase):
        self.phase = phase
        self.block = 0
        self.fill = 0
        self.sha = hashlib.sha256()

    def _image_chunk(self):
        """Gather the next block; write it whole (the chip erases it first): one per step."""
        c = self.chunk
        blk = self.blk
        slot = self.slot
        if slot is None:
            return False
        if c is not None:
            self.chunk = None
            n = len(c[1])
            blk[self.fill:self.fill + n] = c[1]
            self.fill += n
        size = self._img_size()
        if self.fill < _BLOCK and self._img_at() < size:
            return False
        if not self.fill or not self._quiet():
            return False
        if self.block == 0:
            from . import image
            why = image.header_problem(blk, self.app.cfg.get("board", {}).get("chip"))
            if why:
                self._fail(why)
                return True
        for i in range(self.fill, _BLOCK):
            blk[i] = 0xFF             # past the image's end: as erased
        slot.writeblocks(self.block, blk)
        self.block += 1
        self.fill = 0
        if self.block * _BLOCK >= size:
            self._image_restart(_VERIFY)
            self._say()
        elif self.block % 64 == 0:
            self._say()               # every 256 KB
        return True

    def _image_check(self):
        """Read back a block per step; the SHA-256 of what is in the slot decides."""
        blk = self.blk
        slot = self.slot
        if slot is None:
            return False
        size = self._img_size()
        slot.readblocks(self.block, blk)
        n = min(_BLOCK, size - self.block * _BLOCK)
        self.sha.update(memoryview(blk)[:n])
        self.block += 1
        if self.block * _BLOCK < size:
            return True
        if ota.hexdigest_of(self.sha) == self.man["files"][0][2]:
            self.phase = _STAGED
            self._say()
            return True
        self.tries += 1
        if self.tries >= _TRIES:
            self._fail("image: hash after writing")
            return True
        self._image_restart(_IMAGE)
        return True

    def _manifest_chunk(self):
        c = self.chunk
        if c is None or not self._quiet():
            return False
        self.chunk = None
        self.buf += c[1]
        total = self.offer["mlen"] + ota.SIG_LEN
        if len(self.buf) >= total:
            mlen = self.offer["mlen"]
            self.check = ota.RsaCheck(self.key, bytes(self.buf[mlen:total]),
                                      bytes(self.buf[:mlen]))
            self.phase = _CHECK
        return False

    def _clean(self):
        """Remove one path of what is in the way: the app before the last one, and files in
        /next this manifest does not name. Then start (or resume) the files."""
        while self.todo:
            p = self.todo[-1]
            if not hcpboot.exists(p):
                self.todo.pop()
                continue
            if hcpboot.is_dir(p):
                names = os.listdir(p)
                if names:
                    for n in names:
                        self.todo.append(p + "/" + n)
                    continue
                os.rmdir(p)
            else:
                os.remove(p)
            self.todo.pop()
            return True
        if not self.swept:
            self.swept = True
            keep = [f[0] for f in self.man["files"]] + ["manifest.json"]
            base = self.root + hcpboot.NEXT
            for part in ota.PARTS:
                d = base + "/" + part
                if hcpboot.is_dir(d):
                    for n in os.listdir(d):
                        if part + "/" + n not in keep:
                            self.todo.append(d + "/" + n)
            if self.todo:
                return False
        for part in ota.PARTS:
            d = self.root + hcpboot.NEXT + "/" + part
            if not hcpboot.is_dir(d):
                hcpboot.mkdirs(d)
                return True
        self.phase = _FILES
        self.fi = 0
        self._start_file()
        self._say()
        return True

    def _start_file(self):
        """Skip the files already whole (a download resumed after a reboot)."""
        files = self.man["files"]
        while self.fi < len(files):
            if self._whole(self.fi):
                self.fi += 1
                continue
            break
        self.got = 0
        self.pend = bytearray()
        self.sha = hashlib.sha256()
        self.tries = 0

    def _whole(self, i):
        name, size, want = self.man["files"][i]
        p = self._path(i)
        try:
            if os.stat(p)[6] != size:
                return False
            h = hashlib.sha256()
            with open(p, "rb") as f:
                while True:
                    b = f.read(512)
                    if not b:
                        break
                    h.update(b)
        except OSError:
            return False
        return ota.hexdigest_of(h) == want

    def _file_chunk(self):
        files = self.man["files"]
        if self.fi >= len(files):
            return self._finish()
        name, size, want = files[self.fi]
        if size == 0 and self.got == 0:
            with open(self._path(self.fi), "wb"):
                pass
            self.fi += 1
            self._start_file()
            return True
        c = self.chunk
        if c is not None:
            self.chunk = None
            self.pend += c[1]
        done = self.got + len(self.pend) >= size
        if not self.pend or not self._quiet() or (len(self.pend) < _WRITE_AT and not done):
            return False
        with open(self._path(self.fi), "ab" if self.got else "wb") as f:
            f.write(self.pend)
        self.sha.update(self.pend)
        self.got += len(self.pend)
        self.pend = bytearray()
        if self.got >= size:
            if ota.hexdigest_of(self.sha) != want:
                self.tries += 1
                if self.tries >= _TRIES:
                    self._fail("hash of " + name)
                    return True
                self.got = 0
                self.sha = hashlib.sha256()
                return True
            self.fi += 1
            self._start_file()
            self._say()
        return True

    def _finish(self):
        """Every file is whole: write the manifest last (.new, renamed)."""
        p = self.root + hcpboot.NEXT + hcpboot.MANIFEST
        with open(p + ".new", "wb") as f:
            f.write(self.buf[:self.offer["mlen"]])
        try:
            os.rename(p + ".new", p)
        except OSError:
            os.remove(p)            # FAT: a manifest from an earlier try is in the way
            os.rename(p + ".new", p)
        self.buf = bytearray()
        self.phase = _STAGED
        self._say()
        return True

    def _maybe_switch(self, now):
        """At a quiet moment: acks written, then `switch V`, then reset (hcpboot switches)."""
        if not self._quiet() or ticks_diff(now, self.quiet_at) < QUIET_MS:
            return False
        j = self.app.journal
        if j.acks_due(1):
            j.write_acks()
            return True
        if self.image:
            from . import image
            try:
                image.switch(self.root, self.ver, self.slot)
            except OSError as e:      # the chip refuses it as a boot image
                why = "image: not bootable (%s)" % e
                hcpboot.write(self.root, "failed", self.ver, why, hcpboot.IMAGE_STATE)
                self._fail(why)
                return True
        else:
            hcpboot.write(self.root, "switch", self.ver)
        self.reset()
        return True
