"""A MicroPython board on a pseudo-terminal, for mpremote: the unix port's `micropython` runs
with a pty as its stdin/stdout (so it answers the real raw REPL), and a bridge thread copies
bytes between that pty's master and the master of a second pty, whose slave path is the "USB
serial port" given to hcp/mpremote. Its file system is a VfsPosix on a temp folder (files can be
checked from the test) or littlefs on a RAM block device of a given size (a full file system),
mounted at / as on an ESP32, with /lib on sys.path.

Killing the board (`unplug()`) ends the process and closes the port's master: the port vanishes.
"""
import os
import pty
import select
import subprocess
import threading
import tty

from ..mpy import micropython_binary

STARTUP = """
import os, sys, vfs
vfs.umount('/')
%s
os.chdir('/')
sys.path[:] = ['', '.frozen', '/lib']
"""

POSIX = "vfs.mount(vfs.VfsPosix(%r), '/')"

LFS = """
class _RAM:
    def __init__(self, n):
        self.n = n
        self.d = bytearray(n * 512)
    def readblocks(self, b, buf, off=0):
        a = b * 512 + off
        buf[:] = self.d[a:a + len(buf)]
    def writeblocks(self, b, buf, off=None):
        a = b * 512 + (off or 0)
        self.d[a:a + len(buf)] = buf
    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return 512
        if op == 6:
            return 0
_bd = _RAM(%d)
vfs.VfsLfs2.mkfs(_bd)
vfs.mount(vfs.VfsLfs2(_bd), '/')
"""


class Board:
    def __init__(self, tmp, root=None, lfs_blocks=None):
        self.tmp = str(tmp)
        self.root = str(root) if root else None
        mount = POSIX % self.root if root else LFS % lfs_blocks
        script = os.path.join(self.tmp, "board-startup-%d.py" % id(self))
        with open(script, "w") as f:
            f.write(STARTUP % mount)
        dev_m, dev_s = pty.openpty()          # the board's own console
        tty.setraw(dev_s)
        self.port_m, self.port_s = pty.openpty()   # the USB serial port the host sees
        tty.setraw(self.port_s)
        self.port = os.ttyname(self.port_s)
        self.proc = subprocess.Popen([micropython_binary(), "-i", script], stdin=dev_s,
                                     stdout=dev_s, stderr=dev_s, cwd=self.tmp,
                                     start_new_session=True)
        os.close(dev_s)
        self.dev_m = dev_m
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self):
        fds = [self.dev_m, self.port_m]
        while not self.stop.is_set():
            try:
                ready, _, _ = select.select(fds, [], [], 0.05)
                for fd in ready:
                    data = os.read(fd, 4096)
                    if not data:
                        raise OSError("closed")
                    os.write(self.port_m if fd == self.dev_m else self.dev_m, data)
            except OSError:
                break

    def unplug(self):
        """The cable is pulled: the board process ends and the port goes away."""
        if self.stop.is_set():
            return                    # once only: closing an fd number twice hits whoever reuses it
        self.stop.set()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.thread.join(2)
        for fd in (self.dev_m, self.port_m, self.port_s):
            try:
                os.close(fd)
            except OSError:
                pass

    def files(self):
        """{relative path: bytes} of the board's file system (VfsPosix boards)."""
        out = {}
        for d, _dirs, names in os.walk(self.root):
            for n in names:
                p = os.path.join(d, n)
                with open(p, "rb") as f:
                    out["/" + os.path.relpath(p, self.root)] = f.read()
        return out
