"""A MicroPython board on a USB serial port, driven through mpremote's raw REPL (as a library).

Every failure becomes one of our errors with what to do next: the port cannot be opened, the
board stopped answering (unplugged mid-way), its file system is full. Device-side helpers are
sent once per session; each chunk written feeds the firmware's watchdog when the firmware was
running (it starts an 8 s WDT that keeps running after Ctrl-C interrupts it).
"""
from __future__ import annotations

import ast
import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypedDict

from haochaping.daemon.errors import HcpError

if TYPE_CHECKING:
    from mpremote.transport_serial import SerialTransport

log = logging.getLogger(__name__)

CHUNK = 512

# Device-side helpers (MicroPython): sent once after entering the raw REPL.
HELPERS = """
import os, sys, gc, hashlib, binascii
_w = None
if 'haochaping.firmware.main' in sys.modules:
    try:
        import machine
        _w = machine.WDT(timeout=8000)
    except Exception:
        _w = None
def _feed():
    if _w is not None:
        _w.feed()
def _sha(p):
    h = hashlib.sha256()
    b = bytearray(512)
    with open(p, 'rb') as f:
        while True:
            n = f.readinto(b)
            if not n:
                break
            h.update(b if n == 512 else b[:n])
            _feed()
    return binascii.hexlify(h.digest()).decode()
def _hashes(paths, tops):
    out = {}
    def walk(d):
        try:
            es = list(os.ilistdir(d))
        except OSError:
            return
        for e in es:
            p = d + '/' + e[0]
            if e[1] & 0x4000:
                walk(p)
            else:
                out[p] = _sha(p)
    for t in tops:
        walk(t)
    for p in paths:
        try:
            out[p] = _sha(p)
        except OSError:
            pass
    print(repr(out))
def _mkdirs(p):
    c = ''
    for part in p.split('/')[1:-1]:
        c += '/' + part
        try:
            os.mkdir(c)
        except OSError:
            pass
def _open(p):
    global _fh
    _mkdirs(p)
    _fh = open(p + '.new', 'wb')
def _put(b):
    _fh.write(b)
    _feed()
def _done(p):
    _fh.close()
    os.chdir('/')
    r = p.lstrip('/')
    try:
        os.rename(r + '.new', r)
    except OSError:
        os.remove(r)
        os.rename(r + '.new', r)
def _rm(p):
    try:
        os.remove(p)
    except OSError:
        pass
def _rmdirs(t):
    try:
        es = list(os.ilistdir(t))
    except OSError:
        return
    for e in es:
        if e[1] & 0x4000:
            _rmdirs(t + '/' + e[0])
    try:
        os.rmdir(t)
    except OSError:
        pass
def _free():
    s = os.statvfs('/')
    print(repr((s[0], s[3])))
def _info():
    i = sys.implementation
    print(repr({'name': i.name, 'version': list(i.version[:3]), 'mpy': getattr(i, '_mpy', 0),
                'machine': getattr(i, '_machine', sys.platform), 'platform': sys.platform}))
"""


class BoardInfo(TypedDict, total=False):
    """What a board says about its MicroPython (`_info()` above); any key may be missing when
    the board is not running our helpers' MicroPython."""
    name: str
    version: list[int]
    mpy: int
    machine: str
    platform: str


class DeviceGone(HcpError):
    """The board stopped answering: unplugged, reset, or the port went away."""


class DeviceFull(HcpError):
    """The board's file system has no room left."""


class Session:
    """One raw-REPL session with a board. Use as a context manager."""

    def __init__(self, port: str) -> None:
        self.port: str = port
        self.t: SerialTransport | None = None
        self.info: BoardInfo = {}            # what the board said when the session began

    # ---------------------------------------------------------------- connecting
    def __enter__(self) -> Session:
        import serial
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport
        try:
            self.t = SerialTransport(self.port, baudrate=115200)
        except (TransportError, serial.SerialException, OSError) as e:
            raise HcpError("cannot open %s (%s): is the board plugged in, and is no serial monitor "
                           "(or another hcp) using it?" % (self.port, e)) from None
        # Ctrl-C stops the running firmware; no soft reset (it would start main.py again on a
        # board, and end the process of a unix-port stand-in). Opening the port may reset an
        # ESP32 board (DTR/RTS): a Ctrl-C sent while it boots is lost, so try a few times.
        for attempt in range(3):
            try:
                self.t.enter_raw_repl(soft_reset=False, timeout_overall=4)
                break
            except (TransportError, serial.SerialException, OSError) as e:
                if attempt == 2 or isinstance(e, (serial.SerialException, OSError)):
                    self.close()
                    raise HcpError("no MicroPython answers on %s (%s): flash it first (`hcp "
                                   "device flash --port %s --firmware IMAGE.bin`), or press its "
                                   "reset button and run the same command again"
                                   % (self.port, e, self.port)) from None
        self.run(HELPERS)
        self.info = self.eval("_info()")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self.t is None:
            return
        with contextlib.suppress(Exception):  # the port may already be gone
            if self.t.in_raw_repl:
                self.t.exit_raw_repl()
        with contextlib.suppress(Exception):
            self.t.close()
        self.t = None

    # ---------------------------------------------------------------- running code
    def run(self, code: str) -> bytes:
        """Run code on the board; return its output (bytes). Errors become ours."""
        import serial
        from mpremote.transport import TransportError, TransportExecError
        assert self.t is not None, "run() is for an open session (inside `with Session(...)`)"
        try:
            return self.t.exec(code)
        except TransportExecError as e:
            err = e.error_output or ""
            if "ENOSPC" in err or "OSError: 28" in err or "[Errno 28]" in err:
                raise DeviceFull("the file system of the board on %s is full" % self.port) from None
            last = err.strip().splitlines()[-1] if err.strip() else "error"
            raise HcpError("the board on %s refused a command: %s" % (self.port, last)) from None
        except (TransportError, serial.SerialException, OSError, ValueError) as e:
            raise DeviceGone("the board on %s stopped answering (%s)" % (
                self.port, str(e) or type(e).__name__)) from None

    def eval(self, expr_call: str) -> Any:
        """Run a helper that prints a repr; return the Python value (whatever the board sent)."""
        out = self.run(expr_call).decode("utf-8", "replace").strip()
        try:
            return ast.literal_eval(out)
        except (ValueError, SyntaxError):
            raise HcpError("unexpected answer from the board on %s: %r"
                           % (self.port, out[:80])) from None

    # ---------------------------------------------------------------- files
    def hashes(self, paths: Iterable[str] = (), tops: Iterable[str] = ()) -> dict[str, str]:
        """{path: sha256 hex} of the given files (those that exist) and every file under tops."""
        hashes: dict[str, str] = self.eval("_hashes(%r, %r)" % (list(paths), list(tops)))
        return hashes

    def free(self) -> tuple[int, int]:
        """Free bytes on the board's file system, and its block size."""
        bsize, bfree = self.eval("_free()")
        return bsize * bfree, bsize

    def write(self, path: str, data: bytes,
              on_chunk: Callable[[int], None] | None = None) -> None:
        """Write a file atomically (path.new, then rename over path)."""
        self.run("_open(%r)" % path)
        for i in range(0, len(data), CHUNK):
            chunk = data[i:i + CHUNK]
            self.run("_put(%r)" % bytes(chunk))
            if on_chunk:
                on_chunk(len(chunk))
        self.run("_done(%r)" % path)

    def read(self, path: str) -> bytes | None:
        """A file's bytes, or None if it is not there."""
        out = self.run("try:\n f=open(%r,'rb')\n print(repr(f.read()))\n f.close()\n"
                       "except OSError:\n print('None')" % path).decode().strip()
        data: bytes | None = ast.literal_eval(out)
        return data

    def remove(self, path: str) -> None:
        self.run("_rm(%r)" % path)

    def remove_empty_dirs(self, top: str) -> None:
        self.run("_rmdirs(%r)" % top)

    def reset(self) -> bool:
        """Restart the board (real boards only) so that it boots what was installed."""
        if "ESP32" not in str(self.info.get("machine", "")).upper():
            return False
        if self.t is not None:
            with contextlib.suppress(Exception):  # the board resets under our feet: expected
                self.t.exec_raw_no_follow("import machine\nmachine.reset()")
        return True


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chip_of(info: BoardInfo) -> str | None:
    """'esp32s3', 'esp32', or None (not an ESP32: e.g. the unix-port stand-in in tests)."""
    m = str(info.get("machine", "")).upper().replace("-", "")
    if "ESP32S3" in m:
        return "esp32s3"
    if "ESP32" in m:
        return "esp32"
    return None
