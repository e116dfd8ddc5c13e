# A raw flash partition stand-in (what esp32.Partition gives the journal ring, firmware/ring.py)
# for the unix port of MicroPython and CPython: NOR semantics and SPI NOR timing, a power cut on
# demand. Not named esp32.py: the esp32 module stand-in belongs to the updates over the air.
#
# NOR: an erase sets a 4 KB sector to 0xFF; a program can only clear bits (new = old & data),
# as the chip does. `rewrites` counts programs that asked for a 0 -> 1 bit (a bug in the caller:
# the chip would silently keep the 0). Extended block protocol, as esp32.Partition:
# readblocks(n, buf, off), writeblocks(n, buf, off) (with an offset: program only; without:
# erase then program, the simple protocol), ioctl(4) sectors, ioctl(5) sector size, ioctl(6, n)
# erase.
#
# Timing (like slowflash.py): busy-sleeps ERASE_MS per sector erase, PROG_US per 256 bytes
# programmed (at least 50 us a call), READ_US per 4 KB read; W25Q32JV: sector erase 45 ms
# typical, 400 ms max; page program 0.4 ms typical.
#
# Power cut: after `limit` programs + erases the next one is refused (OSError EIO), and with
# `torn` it lands in part: half of a program's bytes, half of an erase's sector (`torn_high`:
# the upper half, else the lower). Every later one is refused too.
#
#   dev = NorFlash(sectors=16, erase_ms=45)
#   dev.fail(2)      # the next 2 programs or erases fail with EIO
try:
    import time
    _sleep_us = time.sleep_us  # type: ignore[attr-defined]
except AttributeError:  # CPython
    def _sleep_us(us):
        time.sleep(us / 1e6)

SECTOR = 4096


class NorFlash:
    def __init__(self, sectors=16, erase_ms=45, prog_us=400, read_us=100, data=None,
                 sector=SECTOR):
        self.sector = sector      # 4 KB on SPI NOR; smaller only to make a test's ring wrap
        self.data = data if data is not None else bytearray(b"\xff" * (sector * sectors))
        self.sectors = len(self.data) // sector
        self.erase_ms = erase_ms
        self.prog_us = prog_us
        self.read_us = read_us
        self.erases = 0
        self.writes = 0
        self.rewrites = 0
        self.failures = 0
        self.busy_us = 0
        self.limit = -1           # programs + erases before the power goes; -1: never
        self.torn = False
        self.torn_high = False
        self.cut = False          # the power went: everything since was refused
        self._fail = 0

    def fail(self, n=1):
        self._fail = n

    def _refused(self):
        if self._fail:
            self._fail -= 1
            self.failures += 1
            return True
        if self.limit >= 0 and self.writes + self.erases >= self.limit:
            self.cut = True
            return True
        return False

    def _stall_us(self, us):
        self.busy_us += us
        _sleep_us(us)

    def readblocks(self, n, buf, off=0):
        a = n * self.sector + off
        buf[:] = self.data[a:a + len(buf)]
        self._stall_us(self.read_us * len(buf) // 4096)

    def _program(self, a, buf, k):
        d = self.data
        for i in range(k):
            old = d[a + i]
            if buf[i] & ~old & 0xFF:
                self.rewrites += 1
            d[a + i] = old & buf[i]

    def writeblocks(self, n, buf, off=None):
        if off is None:
            r = self.ioctl(6, n)
            if r:
                return r
            off = 0
        a = n * self.sector + off
        if a + len(buf) > (n + 1) * self.sector:
            raise ValueError("norflash: a program crosses a sector")
        if self._refused():
            if self.cut and self.torn:
                self.torn = False
                self._program(a, buf, len(buf) // 2)
            raise OSError(5)
        self._program(a, buf, len(buf))
        self.writes += 1
        self._stall_us(max(50, self.prog_us * len(buf) // 256))
        return 0

    def ioctl(self, op, arg):
        if op == 4:
            return self.sectors
        if op == 5:
            return self.sector
        if op == 6:
            sz = self.sector
            a = arg * sz
            if self._refused():
                if self.cut and self.torn:
                    self.torn = False
                    h = sz // 2
                    lo = a + h if self.torn_high else a
                    self.data[lo:lo + h] = b"\xff" * h
                raise OSError(5)
            self.data[a:a + sz] = b"\xff" * sz
            self.erases += 1
            self._stall_us(self.erase_ms * 1000)
            return 0
        return 0
