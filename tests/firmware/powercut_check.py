# Proof 4 (MicroPython only): power cut at every instant, on littlefs.
#
# A RAM block device formatted with vfs.VfsLfs2 (what ESP32 MicroPython uses) stops accepting
# block writes after the k-th one. For every k over a scripted day of presses, bad-review
# reasons, acks and compactions, the flash is "rebooted" (remounted from the bytes as they were)
# and the journal recovered. Then:
#   - every rating/reason the citizen was thanked for is delivered (acked) or pending;
#   - nothing else is there, except the one record whose write was in flight at the cut
#     (the citizen pressed it; the thank-you had not been shown yet);
#   - no record is pending twice, and a record whose ack was stored does not come back;
#   - the journal is readable and the next seq is above every seq ever confirmed.
#
# The same for the journal ring on a raw partition (firmware/ring.py), with `ring` first: the
# NOR stand-in (tools/sim/sim_device/norflash.py, on MICROPYPATH) refuses the k-th program or
# erase, and with a torn cut programs half its bytes or erases half its sector (the lower half
# for even k, the upper for odd k).
#
# Usage: micropython powercut_check.py [ring] count PRESSES [JOURNAL_MAX] -> the day's stats
#        micropython powercut_check.py [ring] cut FROM TO STEP PRESSES -> every k in the range
# Prints "powercut ok <ks covered> ..." or failures.
import sys

import vfs

from haochaping.firmware import app as app_mod
from haochaping.firmware import journal
from haochaping.protocol import messages

RING = len(sys.argv) > 1 and sys.argv[1] == "ring"
if RING:
    del sys.argv[1]
    import norflash

    from haochaping.firmware import ring
RING_SECTOR = [1024]
RING_SECTORS = [10]  # of 1 KB (SPI NOR has 4 KB): the ring wraps every few dozen records
RING_KEEP = [3]

BLOCK = 4096
BLOCKS = [24]   # 24 x 4 KB for the cut runs; `count` with an ESP32-sized journal uses more
KEY = b"k" * 32
TOK = "0123456789abcdef"
CFG = {"key": KEY, "terminal": "T1", "hall": "H1", "journal": "/flash/journal",
       "journal_max": 2048, "seq_start": 1}
EIO = -5


class RAMBlockDev:
    """Extended block protocol (readblocks/writeblocks with offset, ioctl 6 = erase)."""

    def __init__(self, data, limit=-1, torn=False):
        self.data = data
        self.limit = limit    # writes accepted before the power goes; -1 = never
        self.torn = torn      # the write hit by the cut lands half
        self.writes = 0
        self.erases = 0
        self.refused = False  # a write or erase was refused: the firmware has met the cut

    def _power(self):
        return not (self.limit >= 0 and self.writes + self.erases >= self.limit)

    def readblocks(self, n, buf, off=0):
        a = n * BLOCK + off
        buf[:] = self.data[a:a + len(buf)]

    def writeblocks(self, n, buf, off=None):
        a = n * BLOCK + (off or 0)
        if not self._power():
            self.refused = True
            if self.torn and self.limit >= 0:
                half = len(buf) // 2
                self.data[a:a + half] = buf[:half]
                self.torn = False
            return EIO
        self.data[a:a + len(buf)] = buf
        self.writes += 1
        return 0

    def ioctl(self, op, arg):
        if op == 4:
            return BLOCKS[0]
        if op == 5:
            return BLOCK
        if op == 6:
            if not self._power():
                self.refused = True
                return EIO
            self.erases += 1
            return 0
        return 0


class Clock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t


class Log:
    """What the citizen was shown, and what was in flight when the power went."""

    def __init__(self, dev):
        self.dev = dev
        self.confirmed = []
        self.inflight = 0
        self.inflight_acks = []
        self.per_rating = []
        self.per_reason = []
        self.per_ack = []
        self.compactions = 0
        self.refused = 0
        self.unwritten = []  # acks held in RAM, not yet written, when the power went
        self.ring_stalls = 0  # ring: erases a rating waited for

    def count(self):
        return self.dev.writes + self.dev.erases


def _cut(dev):
    return dev.cut if RING else dev.refused


class Day(app_mod.App):
    """The app, reporting to the Log what it confirmed to the citizen."""

    def __init__(self, clock, log):
        self.log = log
        j = ring.Ring(log.dev, CFG["journal_max"], 1, RING_KEEP[0]) if RING else None
        app_mod.App.__init__(self, CFG, clock, j)

    def _power(self):
        """The app keeps going after a flash error (it refuses the rating and says so in its
        status); when the error is the power cut, the day ends here."""
        if _cut(self.log.dev):
            self.log.unwritten = list(self.journal._acks)
            raise OSError("power cut")

    def tick(self):
        app_mod.App.tick(self)
        self._power()

    def on_message(self, topic, payload, retained=False):
        app_mod.App.on_message(self, topic, payload, retained)
        self._power()

    def rating(self, level, token, delay=None):
        log = self.log
        log.inflight = self.journal.next_seq
        w = log.count()
        seq = app_mod.App.rating(self, level, token, delay)
        self._power()
        log.per_rating.append(log.count() - w)
        log.inflight = 0
        log.compactions = self.journal.compactions
        if seq is not None:
            log.confirmed.append(seq)
        else:
            log.refused += 1
        return seq

    def reason(self, ref, reason):
        log = self.log
        log.inflight = self.journal.next_seq
        w = log.count()
        seq = app_mod.App.reason(self, ref, reason)
        self._power()
        log.per_reason.append(log.count() - w)
        log.inflight = 0
        if seq is not None:
            log.confirmed.append(seq)
        return seq


def mount(dev, fmt):
    if RING:
        return
    if fmt:
        vfs.VfsLfs2.mkfs(dev)
    fs = vfs.VfsLfs2(dev)
    vfs.mount(fs, "/flash")


def umount():
    if RING:
        return
    try:
        vfs.umount("/flash")
    except OSError:
        pass


def run_day(log, clock, delivered, presses):
    """The scripted day, from boot. Raises OSError at the power cut."""
    day = Day(clock, log)
    x = 12345
    now = 1700000000
    for i in range(presses):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        if i % 4 != 3:  # most presses follow a session; some have none (unsolicited)
            tok = "%016x" % (i + 1) + TOK
            day.on_message(day.t_session, messages.encode_session(KEY, "T1", tok, "W1", "S1",
                                                                  now + 600, now))
        clock.t += 1000
        day.press(1 + x % 5)
        if x % 7 == 0:
            clock.t += 500
            day.press(1 + (x >> 8) % 5)   # a correction
        for _ in range(40):  # 4 s: the choice is committed
            clock.t += 100
            day.tick()
        if day.panel.mode == 4:  # REASON: answer most of the time
            clock.t += 1500
            if x % 3:
                day.press(1 + (x >> 4) % 4)
        for _ in range(150):
            clock.t += 100
            day.tick()
        now += 60
        offline = presses // 3 <= i < presses * 9 // 10  # long enough to fill the journal
        if (x % 3 == 0 and not offline) or i == presses - 1:  # the daemon acks, in a batch
            got = [s for s, p in day.outbox(0, 50)]
            if RING and i < presses - 1:
                # on the ring the daemon holds back every third of the 40 newest seqs till a
                # later ack: acks come out of order, sectors are erased with holes behind them
                got = [s for s in got if s % 3 or s < got[-1] - 40]
            if got:
                log.inflight_acks = got
                w = log.count()
                day.on_message(day.t_ack, messages.encode_ack(KEY, "T1", got, now))
                log.per_ack.append(log.count() - w)
                log.inflight_acks = []
                delivered.extend(got)
    log.unwritten = list(day.journal._acks)  # the day ends (power off) with these in RAM
    log.ring_stalls = getattr(day.journal, "stalls", 0)


def check_after_cut(day, delivered):  # day: the Log
    """Reboot on the flash as the cut left it; return an error text or None."""
    if RING:  # the power is back: a device without a cut, on the same bytes
        j = ring.Ring(norflash.NorFlash(data=day.dev.data, erase_ms=0, prog_us=0, read_us=0,
                                        sector=day.dev.sector), CFG["journal_max"], 1,
                      RING_KEEP[0])
    else:
        j = journal.Journal(CFG["journal"], CFG["journal_max"], CFG["journal_max"] // 16)
    pending = j.pending
    read = [r[0] for r in j.records()]
    if read != pending:
        return "journal records %r do not match pending %r" % (read, pending)
    if len(set(pending)) != len(pending):
        return "a record is pending twice"
    # littlefs commits whole; on the raw ring only the program cut by the power may be torn
    if j.dropped > (1 if RING and day.dev.cut else 0):
        return "recovery dropped %d damaged records" % j.dropped
    if RING and day.dev.rewrites:
        return "the ring programmed a 0 -> 1 bit %d times (needs an erase)" % day.dev.rewrites
    confirmed = set(day.confirmed)
    # an ack cut halfway may be stored in part (one line per 12 seqs): the daemon has them all
    have = set(pending) | set(delivered) | set(day.inflight_acks)
    lost = confirmed - have
    if lost:
        return "confirmed records lost: %r" % sorted(lost)
    extra = have - confirmed - {day.inflight}
    if extra:
        return "records never confirmed appeared: %r" % sorted(extra)
    # acks are written a dozen at a time: those still in RAM at the cut come back (resent, the
    # daemon dedups); a written ack never does
    back = set(pending) & set(delivered) - set(day.inflight_acks) - set(day.unwritten)
    if back:
        return "records whose ack was stored came back: %r" % sorted(back)
    top = max(list(confirmed) + list(delivered) + [0])
    if j.next_seq <= top:
        return "next seq %d would reuse a confirmed seq %d" % (j.next_seq, top)
    j.ack(list(pending))  # the daemon acks the backlog; then there is room again
    s = j.add_rating(1, "", 0)
    if s <= top:
        return "seq reused after the cut"
    return None


def one(limit, torn, presses):
    if RING:
        data = bytearray(b"\xff" * (RING_SECTOR[0] * RING_SECTORS[0]))
        dev = norflash.NorFlash(data=data, erase_ms=0, prog_us=0, read_us=0,
                                sector=RING_SECTOR[0])
        dev.torn_high = limit % 2 == 1
    else:
        data = bytearray(BLOCK * BLOCKS[0])
        dev = RAMBlockDev(data)
    mount(dev, True)
    umount()
    dev.limit = limit
    dev.torn = torn
    dev.writes = dev.erases = 0
    mount(dev, False)
    clock = Clock()
    day = Log(dev)
    delivered = []
    cut = False
    try:
        run_day(day, clock, delivered, presses)
    except OSError:
        cut = True
    umount()
    if not RING:
        mount(RAMBlockDev(data), False)
    err = check_after_cut(day, delivered)
    umount()
    return cut, err, day, delivered


def main():
    presses = int(sys.argv[2]) if sys.argv[1] == "count" else int(sys.argv[5])
    if sys.argv[1] == "count" and len(sys.argv) > 3:
        CFG["journal_max"] = int(sys.argv[3])
        BLOCKS[0] = 64
        RING_SECTORS[0] = 32
        RING_SECTOR[0] = 4096
        RING_KEEP[0] = 3
    if sys.argv[1] == "count":
        cut, err, day, delivered = one(-1, False, presses)
        print("writes %d ratings %d delivered %d compactions %d worst_per_rating %d "
              "mean_per_rating_x10 %d worst_per_reason %d worst_per_ack %d acks %d refused %d"
              % (day.dev.writes + day.dev.erases, len(day.confirmed), len(delivered),
                 day.compactions, max(day.per_rating),
                 sum(day.per_rating) * 10 // len(day.per_rating), max(day.per_reason),
                 max(day.per_ack), len(day.per_ack), day.refused))
        if RING:
            print("ring erases %d copied_sectors %d stalls %d" % (
                day.dev.erases, day.compactions, day.ring_stalls))
        print(err if err else "powercut ok 0")
        return
    lo, hi, step = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    n = 0
    fails = 0
    k = lo
    while k < hi:
        for torn in (False, True):
            cut, err, day, delivered = one(k, torn, presses)
            if not cut:
                print("k=%d: the day finished before the cut" % k)
                fails += 1
            elif err:
                print("k=%d torn=%s: %s" % (k, torn, err))
                fails += 1
        n += 1
        k += step
    print(("powercut ok %d" if not fails else "powercut FAILED %d") % n)


main()
