# A flash chip stand-in for the unix port of MicroPython: littlefs on a RAM block device as slow as
# SPI NOR flash, with errors on demand. MicroPython only (vfs).
#
# On the ESP32 an erase or a program stalls the CPU that asked for it (the flash cache is off
# meanwhile): the key loop waits. So does this stand-in: it busy-sleeps ERASE_MS per 4 KB block
# erase, PROG_US per 256 bytes programmed (at least 50 us a call), READ_US per 4 KB read. Typical
# SPI NOR figures (W25Q32JV datasheet: sector erase 45 ms typical, 400 ms max; page program
# 0.4 ms typical).
#
#   dev = SlowFlash(blocks=64, erase_ms=45); dev.mount("/flash")
#   dev.fail(2)      # the next 2 writes or erases fail with EIO (OSError 5)
import time

import vfs

BLOCK = 4096
_EIO = -5


class SlowFlash:
    def __init__(self, blocks=64, erase_ms=45, prog_us=400, read_us=100):
        self.data = bytearray(BLOCK * blocks)
        self.blocks = blocks
        self.erase_ms = erase_ms
        self.prog_us = prog_us
        self.read_us = read_us
        self.erases = 0
        self.writes = 0
        self.failures = 0
        self._fail = 0
        self.busy_us = 0            # time spent stalled in flash operations

    def fail(self, n=1):
        self._fail = n

    def _failing(self):
        if self._fail:
            self._fail -= 1
            self.failures += 1
            return True
        return False

    def _stall_us(self, us):
        self.busy_us += us
        time.sleep_us(us)

    def readblocks(self, n, buf, off=0):
        a = n * BLOCK + off
        buf[:] = self.data[a:a + len(buf)]
        self._stall_us(self.read_us * len(buf) // BLOCK)

    def writeblocks(self, n, buf, off=None):
        if self._failing():
            return _EIO
        a = n * BLOCK + (off or 0)
        self.data[a:a + len(buf)] = buf
        self.writes += 1
        self._stall_us(max(50, self.prog_us * len(buf) // 256))
        return 0

    def ioctl(self, op, arg):
        if op == 4:
            return self.blocks
        if op == 5:
            return BLOCK
        if op == 6:
            if self._failing():
                return _EIO
            self.erases += 1
            self._stall_us(self.erase_ms * 1000)
            return 0
        return 0

    def mount(self, path):
        vfs.VfsLfs2.mkfs(self)
        vfs.mount(vfs.VfsLfs2(self), path)

    def remount(self, path):
        """After a 'reboot': the same bytes, mounted again."""
        try:
            vfs.umount(path)
        except OSError:
            pass
        vfs.mount(vfs.VfsLfs2(self), path)
