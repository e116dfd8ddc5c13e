"""`hcp device flash` with the real esptool against the ESP32 ROM bootloader stand-in
(esp32-mock-bootloader) on a pseudo-terminal: chip check, write, rerun, port vanishing."""
import os
import pathlib
import random
import shutil
import struct
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from haochaping.daemon.errors import HcpError
from haochaping.tools.cli import _register, cli
from haochaping.tools.device import flash

_register()

MOCK = shutil.which("esp32-mock-bootloader") or os.path.join(os.path.dirname(sys.executable),
                                                              "esp32-mock-bootloader")
pytestmark = pytest.mark.skipif(not os.path.exists(MOCK),
                                reason="pip install esp32-mock-bootloader")


def make_image(path, chip_id=0, offset=0x1000, size=160 * 1024):
    """A merged-image layout like MicroPython's: ESP image header (with the chip id) at the
    start, a partition table at 0x8000 in flash; the rest incompressible bytes."""
    hdr = bytes([0xE9, 1, 2, 0x20]) + struct.pack("<I", 0x40080000)
    ext = bytes([0xEE, 0, 0, 0]) + struct.pack("<HBHH", chip_id, 0, 0, 0xFFFF) + bytes(5)
    seg = struct.pack("<II", 0x3FFF0000, 16) + bytes(range(16))
    body = hdr + ext + seg
    body += bytes((-(len(body) + 1)) % 16) + b"\xef"
    data = bytearray(body + random.Random(chip_id).randbytes(size - len(body)))
    data[0x8000 - offset:0x8000 - offset + 2] = b"\xaa\x50"
    path.write_bytes(bytes(data))
    return str(path)


class MockBoard:
    """esp32-mock-bootloader run --pty: the ROM bootloader of a chip on a pseudo-terminal."""

    def __init__(self, tmp_path, chip="esp32"):
        pf = tmp_path / ("port-%s-%d" % (chip, time.monotonic_ns()))
        self.proc = subprocess.Popen([MOCK, "run", "--pty", "--port-file", str(pf), "--chip", chip],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while not (pf.exists() and pf.read_text().strip()):
            assert time.time() < deadline and self.proc.poll() is None, \
                "mock bootloader did not start"
            time.sleep(0.05)
        self.port = pf.read_text().strip()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def board(tmp_path):
    made = []

    def make(chip="esp32"):
        b = MockBoard(tmp_path, chip)
        made.append(b)
        return b

    yield make
    for b in made:
        b.kill()



def _hall_with_backlog(tmp_path, n):
    """A hall whose terminal T007 last said it holds `n` undelivered ratings: (cfg, its open
    database connection)."""
    from haochaping.daemon.hall import db
    from haochaping.tools.sim import hall_kit
    cfg = hall_kit.create(str(tmp_path / "hall"), windows=("W01",))
    conn = db.connect(cfg.hall.database)
    conn.execute("INSERT INTO terminals (id, key, added_at) VALUES ('T007', x'00', 0)")
    conn.execute("INSERT INTO terminal_status (terminal, online, backlog, last_seen) VALUES"
                 " ('T007', 1, ?, 0)", (n,))
    return cfg, conn

def test_flash_checks_the_chip_writes_and_a_rerun_writes_nothing(tmp_path, board):
    b = board("esp32")
    img = make_image(tmp_path / "ESP32_GENERIC.bin")
    r = CliRunner().invoke(cli, ["device", "flash", "--port", b.port, "--firmware", img])
    assert r.exit_code == 0, r.output
    assert "wrote %d bytes at 0x1000 to the ESP32" % (160 * 1024) in r.output
    assert "flashing %s" % b.port in r.output   # the progress bar (a tty shows it filling)
    # the same image again: the board's flash already holds it (MD5 checked by the stub)
    r = CliRunner().invoke(cli, ["device", "flash", "--port", b.port, "--firmware", img])
    assert r.exit_code == 0, r.output
    assert "already holds this image" in r.output


def test_a_wrong_chip_is_refused_before_anything_is_written(tmp_path, board):
    b = board("esp32s3")
    img = make_image(tmp_path / "ESP32_GENERIC.bin", chip_id=0, offset=0x1000)
    r = CliRunner().invoke(cli, ["device", "flash", "--port", b.port, "--firmware", img])
    assert r.exit_code == 1
    assert "is an ESP32-S3, but" in r.output and "nothing was written" in r.output
    s3 = make_image(tmp_path / "ESP32_GENERIC_S3.bin", chip_id=9, offset=0)
    r = CliRunner().invoke(cli, ["device", "flash", "--port", b.port, "--firmware", s3])
    assert r.exit_code == 0, r.output
    assert "at 0x0 to the ESP32-S3" in r.output


def test_not_an_image_and_no_board(tmp_path):
    # if this fails, hall IT reads "flashing …" before a refusal, or is told to hold BOOT on a
    # board that is not even plugged in
    junk = tmp_path / "notes.bin"
    junk.write_bytes(b"hello" * 100)
    r = CliRunner().invoke(cli, ["device", "flash", "--port", "/dev/null", "--firmware", str(junk)])
    assert r.exit_code == 1 and "not an ESP firmware image" in r.output
    assert "flashing" not in r.output
    img = make_image(tmp_path / "ESP32_GENERIC.bin")
    r = CliRunner().invoke(cli, ["device", "flash", "--port", str(tmp_path / "ttyUSB9"),
                                 "--firmware", img])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "cannot open" in r.output and "plugged in" in r.output
    assert "hold BOOT" not in r.output and "flashing" not in r.output


def test_the_port_vanishing_mid_write_says_so_and_a_rerun_fixes_it(tmp_path, board):
    b = board("esp32")
    img = make_image(tmp_path / "ESP32_GENERIC.bin")
    seen = []

    def unplug(done, total):
        seen.append(done)
        if done > 0 and len(seen) >= 2:
            b.kill()                                             # the USB cable is pulled

    with pytest.raises(HcpError) as e:
        flash.flash(b.port, img, on_progress=unplug)
    assert "stopped answering during the write" in str(e.value)
    assert "run the same command" in str(e.value)
    again = board("esp32")                                       # plugged in again
    r = CliRunner().invoke(cli, ["device", "flash", "--port", again.port, "--firmware", img])
    assert r.exit_code == 0, r.output
    assert "verified" in r.output


def _merged(tmp_path, name, layout, seed=1):
    from haochaping.tools.device import partitions
    from tests import esp_images
    app = esp_images.app_image("v1.24.1", size=24 * 1024, seed=seed)
    path = tmp_path / name
    path.write_bytes(esp_images.merged(app, getattr(partitions, layout)))
    return str(path)


def test_flash_reports_the_layout_and_refuses_to_lose_the_file_system_unasked(tmp_path, board):
    # if this failed, hall IT would flash a board without learning whether it can ever take
    # MicroPython over the air, or would wipe a terminal's undelivered ratings by flashing an
    # image with another partition layout without being told
    b = board("esp32")
    stock = _merged(tmp_path, "ESP32_GENERIC-v1.24.1.bin", "STOCK_4MIB")
    r = CliRunner().invoke(cli, ["device", "flash", "--port", b.port, "--firmware", stock])
    assert r.exit_code == 0, r.output
    assert "factory (1984 KB), no otadata, vfs 2048 KB" in r.output
    assert "cannot be updated over the air" in r.output and "ESP32_GENERIC-OTA" in r.output
    ota = _merged(tmp_path, "ESP32_GENERIC-OTA-v1.24.1.bin", "OTA_4MIB")
    r = CliRunner().invoke(cli, ["device", "flash", "--port", b.port, "--firmware", ota])
    assert r.exit_code == 1, r.output
    assert "would be lost" in r.output and "Nothing was written" in r.output
    assert "Traceback" not in r.output
    # the board still holds the stock table: nothing was written
    with pytest.raises(flash.LayoutChange):
        flash.flash(b.port, ota)
    r = CliRunner().invoke(cli, ["device", "flash", "--port", b.port, "--firmware", ota,
                                 "--discard-files"])
    assert r.exit_code == 0, r.output
    assert "OTA layout: MicroPython itself can be updated over the air" in r.output
    assert "the partition layout changed" in r.output and "board's files are gone" in r.output
    # the same OTA image again: the layout is the board's own now, no flag needed
    r = CliRunner().invoke(cli, ["device", "flash", "--port", b.port, "--firmware", ota])
    assert r.exit_code == 0 and "already holds this image" in r.output, r.output


def test_a_layout_change_waits_for_the_terminals_backlog(tmp_path, board):
    # if this failed, hall IT could not move a terminal to the OTA image safely: either every
    # change would need --discard-files, or a terminal with undelivered ratings would be wiped
    cfg, conn = _hall_with_backlog(tmp_path, 3)
    b = board("esp32")
    stock = _merged(tmp_path, "stock.bin", "STOCK_4MIB")
    ota = _merged(tmp_path, "ota.bin", "OTA_4MIB")
    assert CliRunner().invoke(cli, ["device", "flash", "--port", b.port, "--firmware",
                                    stock]).exit_code == 0
    args = ["device", "flash", "--port", b.port, "--firmware", ota, "--config", cfg.path,
            "--terminal", "T007"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 1 and "T007 still holds 3 ratings not delivered" in r.output, r.output
    conn.execute("UPDATE terminal_status SET backlog=0")
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0 and "the partition layout changed" in r.output, r.output


def test_a_file_that_is_no_esp32_image_or_has_a_damaged_table_is_refused(tmp_path):
    # if this failed, a wrong download (a zip, an S3 image renamed, a truncated file) would be
    # written to a terminal, or refused with a traceback instead of a line saying why
    ota = bytearray(pathlib.Path(_merged(tmp_path, "ota.bin", "OTA_4MIB")).read_bytes())
    ota[0x8000 - 0x1000 + 20] ^= 0xFF                      # a label byte: the MD5 no longer fits
    bad = tmp_path / "damaged.bin"
    bad.write_bytes(bytes(ota))
    r = CliRunner().invoke(cli, ["device", "flash", "--port", "/dev/null", "--firmware",
                                 str(bad)])
    assert r.exit_code == 1 and "damaged: its MD5 does not match" in r.output, r.output
    assert "flashing" not in r.output


def test_the_journal_partition_table_is_built_with_its_md5_and_the_shipped_csvs_match():
    # if this fails, the table `hcp device flash --journal-partition` writes (or the CSV shipped
    # for a custom build) is not what the terminal's ring expects: the ESP32 bootloader refuses a
    # table whose MD5 is wrong (the board does not boot), or the terminal finds no hcpjournal
    # and keeps erasing flash while citizens choose
    from haochaping.tools.device import partitions as P
    for name, base in (("partitions-4MiB-hcpjournal.csv", P.STOCK_4MIB),
                       ("partitions-4MiB-ota-hcpjournal.csv", P.OTA_4MIB)):
        parts = P.with_journal(P.from_entries(base))
        raw = P.build_table(P.entries(parts))
        lay = P.parse_table(raw)                                  # checks the MD5 entry
        j = lay["journal"]
        vfs = lay["vfs"]
        assert j is not None and vfs is not None
        assert (j["type"], j["subtype"], j["size"]) == (P.TYPE_DATA, 0x40, 128 * 1024)
        assert j["offset"] == vfs["offset"] + vfs["size"] == 0x3E0000   # the end of 4 MiB
        assert P.with_journal(parts) == parts                       # already there: kept
        shipped = (P.__file__.rsplit("/", 1)[0] + "/" + name)
        text = pathlib.Path(shipped).read_text()
        assert text.split("# Name", 1)[1] == P.to_csv(parts).split("# Name", 1)[1], name


def test_the_journal_partition_needs_the_backlog_delivered_and_is_kept_on_reflash(tmp_path,
                                                                                  board):
    # if this fails, `--journal-partition` wipes a terminal's undelivered ratings without being
    # told to, or does not give the board the partition, or a later flash silently takes it away
    cfg, conn = _hall_with_backlog(tmp_path, 2)
    b = board("esp32")
    ota = _merged(tmp_path, "ESP32_GENERIC-OTA-v1.24.1.bin", "OTA_4MIB")
    assert CliRunner().invoke(cli, ["device", "flash", "--port", b.port, "--firmware",
                                    ota]).exit_code == 0
    r = CliRunner().invoke(cli, ["device", "flash", "--port", b.port, "--firmware", ota,
                                 "--journal-partition"])
    assert r.exit_code == 1 and "would be lost" in r.output and "Nothing was written" in r.output
    assert "vfs 832 KB at 0x310000, journal ring hcpjournal 128 KB at 0x3e0000" in r.output
    args = ["device", "flash", "--port", b.port, "--firmware", ota, "--journal-partition",
            "--config", cfg.path, "--terminal", "T007"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 1 and "T007 still holds 2 ratings not delivered" in r.output, r.output
    conn.execute("UPDATE terminal_status SET backlog=0")
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert "journal ring: hcpjournal 128 KB at 0x3e0000" in r.output
    assert "the partition layout changed" in r.output
    # the board holds the rewritten image, table and all: a rerun writes nothing
    r = CliRunner().invoke(cli, ["device", "flash", "--port", b.port, "--firmware", ota,
                                 "--journal-partition"])
    assert r.exit_code == 0 and "already holds this image" in r.output, r.output
    # the plain image would take the partition away again: refused, and told how to keep it
    r = CliRunner().invoke(cli, ["device", "flash", "--port", b.port, "--firmware", ota])
    assert r.exit_code == 1 and "add --journal-partition to keep its layout" in r.output, \
        r.output


def test_an_image_whose_table_cannot_take_the_journal_partition_is_refused(tmp_path):
    # if this fails, hall IT gets a board whose file system is too small to hold the app, or a
    # traceback, instead of a line saying why the journal ring does not fit this image
    from haochaping.tools.device import partitions as P
    from tests import esp_images
    app = esp_images.app_image("v1.24.1", size=24 * 1024)
    small = [e for e in P.OTA_4MIB if e[0] != "vfs"] + [("vfs", P.TYPE_DATA, P.SUB_FAT,
                                                          0x310000, 0x80000)]
    for layout, words in ((small, "vfs is 512 KB; taking 128 KB for the journal ring would "
                                  "leave less than the 512 KB"),
                          ([e for e in P.OTA_4MIB if e[0] != "vfs"], "has no vfs partition")):
        path = tmp_path / "odd.bin"
        path.write_bytes(esp_images.merged(app, layout))
        r = CliRunner().invoke(cli, ["device", "flash", "--port", "/dev/null", "--firmware",
                                     str(path), "--journal-partition"])
        assert r.exit_code == 1 and words in r.output, r.output
        assert "Traceback" not in r.output and "flashing" not in r.output
