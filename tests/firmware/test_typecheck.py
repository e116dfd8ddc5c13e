"""Proof 3: the device code (firmware/ and protocol/) type-checks with mypy against the real ESP32
MicroPython API (micropython-esp32-stubs, with the MicroPython stdlib stubs as typeshed), with no
errors. If it failed, a call that does not exist on the ESP32 (a CPython-only function, a wrong
`machine` signature) would stop the terminal at the window with an AttributeError."""
import pathlib
import shutil
import subprocess
import sys
import sysconfig

import pytest

from tests import mpy

SITE = pathlib.Path(sysconfig.get_paths()["purelib"])
# Not on the ESP32 build (or not built in): device code imports them only inside
# `try: ... except ImportError:` and falls back (hmac -> sign.py's own HMAC, ssd1306 -> no
# display).
OPTIONAL = ("hmac", "ssd1306")


def _stub_tree(tmp):
    """Install the stubs into a folder: typeshed (stdlib) + the ESP32 modules, no site-packages."""
    records = sorted(SITE.glob("micropython_esp32_stubs-*.dist-info/RECORD"))
    std = sorted(SITE.glob("micropython_stdlib_stubs-*.dist-info/RECORD"))
    if not records or not std:
        pytest.fail("micropython-esp32-stubs not installed; `make test` installs the dev extras")
    typeshed = tmp / "typeshed"
    shutil.copytree(SITE / "stdlib", typeshed / "stdlib")
    shutil.copytree(SITE / "stubs", typeshed / "stubs")
    stubs = tmp / "stubs"
    modules = set()
    for rec in records + std:
        for line in rec.read_text().splitlines():
            f = line.split(",")[0]
            if f.endswith(".pyi") and not f.startswith(("stdlib/", "stubs/")):
                dst = stubs / f
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(SITE / f, dst)
                modules.add(f[:-4].replace("/__init__", "").split("/")[0])
    src = tmp / "src" / "haochaping"
    src.mkdir(parents=True)
    (src / "__init__.py").write_text("")
    for part in ("protocol", "firmware"):
        (src / part).symlink_to(mpy.ROOT / part)
    ini = tmp / "mypy.ini"
    ini.write_text(
        "[mypy]\n"
        "mypy_path = %s:%s\n"
        "custom_typeshed_dir = %s\n"
        "no_site_packages = True\n"
        "follow_imports_for_stubs = True\n"
        "check_untyped_defs = True\n"
        "warn_unused_ignores = True\n"
        "cache_dir = %s\n"
        "\n# errors inside the stub packages are theirs, not ours\n"
        "[mypy-%s]\nignore_errors = True\n"
        "\n# modules the device may lack: imported only under `try: ... except ImportError:`\n"
        "[mypy-%s]\nignore_missing_imports = True\n"
        % (stubs, tmp / "src", typeshed, tmp / "cache",
           ",".join(sorted(m + "," + m + ".*" for m in modules)), ",".join(OPTIONAL)))
    return ini, src


def _mypy(ini, *args):
    return subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ini), *args],
                          capture_output=True, text=True, cwd=ini.parent)


def test_device_code_type_checks_against_the_esp32_stubs(tmp_path):
    ini, _ = _stub_tree(tmp_path)
    out = _mypy(ini, "-p", "haochaping.firmware", "-p", "haochaping.protocol")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Success" in out.stdout


def test_the_check_would_catch_a_call_the_esp32_does_not_have(tmp_path):
    ini, src = _stub_tree(tmp_path)
    bad = tmp_path / "src" / "badcall.py"
    bad.write_text("import machine\nimport time\n"
                   "machine.Pin(4).valu()\n"          # typo in a machine call
                   "time.monotonic()\n")             # CPython only, not on the ESP32
    out = _mypy(ini, str(bad))
    assert out.returncode != 0
    assert '"Pin" has no attribute "valu"' in out.stdout, out.stdout
    assert 'has no attribute "monotonic"' in out.stdout, out.stdout
