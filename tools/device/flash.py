"""`hcp device flash`: write a MicroPython image with esptool (as a library), after checking
that the chip on the port is the one the image was built for.

A MicroPython release for an ESP chip is one merged image (bootloader, partition table, the
firmware), written at the chip's bootloader offset (0x1000 on the ESP32, 0 on the ESP32-S3).
Its first header says which chip it is for (the ESP image header's chip id, byte 12). Its
partition table (at 0x8000, tools/device/partitions.py) says whether MicroPython itself can later
be updated over the air (an OTA layout: otadata and two app slots) and where the file system is.
The board's own table is read before anything is written: when the image keeps the file system
where it is, its files (config, journal, installed files) survive; when the layout changes they
are lost, and the write is refused unless the caller says that is fine (`new_layout_ok`: the
terminal's backlog is delivered, or hall IT said to discard it).
"""
from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, TypedDict

from haochaping.daemon.errors import HcpError
from haochaping.tools.device import partitions

if TYPE_CHECKING:
    from esp_pylib.logger import EspLogBase
    from esptool.loader import ESPLoader

log = logging.getLogger(__name__)

ESP_IMAGE_MAGIC = 0xE9
PARTITION_TABLE_OFFSET = 0x8000
PARTITION_MAGIC = b"\xaa\x50"

# on_progress(done, total) of the write, in esptool's units
Progress = Callable[[int, int], None]


class FlashResult(TypedDict):
    """What `flash()` did: the chip's name, where the image went, its size, whether the board
    already held it (then nothing was written), the image's partition layout, the board's
    before (None: no table, a blank flash) and whether the file system was lost."""
    chip: str
    offset: int
    bytes: int
    skipped: bool
    layout: partitions.Layout
    board_layout: partitions.Layout | None
    fs_lost: bool


class LayoutChange(HcpError):
    """The image moves the file system: the board's config and journal would be lost."""


def _chip_classes() -> dict[str, type[ESPLoader]]:
    from esptool.targets import CHIP_DEFS
    chips: dict[str, type[ESPLoader]] = CHIP_DEFS
    return chips


def image_chip(data: bytes, name: str = "the image") -> tuple[type[ESPLoader], int]:
    """(esptool chip class, flash offset) for a merged MicroPython image; HcpError otherwise."""
    if len(data) < 24 or data[0] != ESP_IMAGE_MAGIC:
        raise HcpError("%s is not an ESP firmware image (it does not start with 0xE9): use the "
                       ".bin from micropython.org for your board" % name)
    chip_id = struct.unpack_from("<H", data, 12)[0]
    for cls in _chip_classes().values():
        if getattr(cls, "IMAGE_CHIP_ID", None) == chip_id and not getattr(cls, "IS_STUB", False):
            offset: int = cls.BOOTLOADER_FLASH_OFFSET
            pt = PARTITION_TABLE_OFFSET - offset
            if data[pt:pt + 2] != PARTITION_MAGIC:
                raise HcpError("%s is an %s image but not a whole MicroPython firmware (no "
                               "partition table at 0x%x): use the merged .bin from "
                               "micropython.org" % (name, cls.CHIP_NAME, PARTITION_TABLE_OFFSET))
            partitions.image_table(data, offset, name)   # a damaged table: refused here
            return cls, offset
    raise HcpError("%s is for an unknown chip (id %d)" % (name, chip_id))


def _esplog(on_progress: Progress | None) -> EspLogBase:
    from esp_pylib.logger import EspLogBase

    class _Log(EspLogBase):
        """esptool's output goes to our log; its progress bars to our callback."""

        def print(self, *args: object, **kwargs: object) -> None:
            log.debug("esptool: %s", " ".join(str(a) for a in args))

        def err(self, *args: object, suggestion: str | None = None) -> None:
            log.info("esptool error: %s", " ".join(str(a) for a in args))

        def warn(self, *args: object, suggestion: str | None = None) -> None:
            log.info("esptool warning: %s", " ".join(str(a) for a in args))

        def note(self, *args: object) -> None:
            log.debug("esptool note: %s", " ".join(str(a) for a in args))

        def hint(self, *args: object) -> None:
            log.debug("esptool hint: %s", " ".join(str(a) for a in args))

        def debug(self, *args: object) -> None:
            log.debug("esptool: %s", " ".join(str(a) for a in args))

        def set_verbosity(self, mode: int | str) -> None:
            pass

        def progress_bar(self, cur_iter: int, total_iters: int, prefix: str = "",
                         suffix: str = "", bar_length: int = 30) -> None:
            if on_progress and total_iters:
                on_progress(cur_iter, total_iters)

    return _Log()


def load_image(image_path: str) -> tuple[bytes, type[ESPLoader], int]:
    """(image, esptool chip class, flash offset); HcpError when it cannot be read or is not a
    whole MicroPython image. Checked before anything touches the board."""
    try:
        with open(image_path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise HcpError("cannot read %s: %s" % (image_path, e.strerror or e)) from None
    cls, offset = image_chip(data, image_path)
    return data, cls, offset


def check_port(port: str) -> None:
    """HcpError saying what to do when a local serial port is missing or not ours to open
    (URLs such as rfc2217:// are left to pyserial)."""
    if "://" in port:
        return
    if not os.path.exists(port):
        raise HcpError("cannot open %s: no such port. Is the board plugged in (and its cable one "
                       "that carries data)? `ls /dev/ttyUSB* /dev/ttyACM*` lists the ports"
                       % port)
    if not os.access(port, os.R_OK | os.W_OK):
        raise HcpError("cannot open %s: permission denied. Add yourself to the dialout group "
                       "(sudo usermod -aG dialout $USER, then log in again)" % port)


def flash(port: str, image_path: str, on_progress: Progress | None = None, baud: int = 460800,
          connect_mode: str = "default-reset", new_layout_ok: bool = False) -> FlashResult:
    """Check the chip and the board's partition table, write the image, verify it, reset the
    board. Return what was done (FlashResult). Every failure is an HcpError that says what to
    do; nothing is written when the chip does not match, nor (LayoutChange) when the image
    moves the file system and `new_layout_ok` is False."""
    import serial
    from esp_pylib.logger import EspLog
    from esptool import cmds
    from esptool.util import FatalError

    data, cls, offset = load_image(image_path)
    lay = partitions.image_table(data, offset, image_path)
    check_port(port)
    previous = EspLog.instance
    EspLog.set_logger(_esplog(on_progress))
    stage = "connect"
    try:
        try:
            esp = cmds.detect_chip(port, connect_mode=connect_mode)
        except serial.SerialException as e:
            raise HcpError("cannot open %s: %s. Is the board plugged in, and is no serial monitor "
                           "using the port?" % (port, e)) from None
        except FatalError as e:
            if "could not open" in str(e).lower():   # esptool's words for a port it cannot open
                raise HcpError("cannot open %s: %s. Is the board plugged in, and is no serial "
                               "monitor using the port?" % (port, str(e).splitlines()[0])) from None
            raise HcpError("no ESP bootloader answers on %s (%s). Hold BOOT, tap EN/RST, release "
                           "BOOT, then run the same command again"
                           % (port, str(e).splitlines()[0])) from None
        with esp:
            if esp.IMAGE_CHIP_ID != cls.IMAGE_CHIP_ID:
                raise HcpError("the board on %s is an %s, but %s is MicroPython for %s: nothing "
                               "was written. Use the image for %s" % (
                                   port, esp.CHIP_NAME, image_path, cls.CHIP_NAME, esp.CHIP_NAME))
            stage = "write"
            esp = cmds.run_stub(esp)
            if baud and baud != esp.ESP_ROM_BAUD:
                try:
                    esp.change_baud(baud)
                except (FatalError, serial.SerialException, OSError, NotImplementedError):
                    log.info("staying at %d baud", esp.ESP_ROM_BAUD)
            cmds.attach_flash(esp)
            board = board_layout(esp)
            lost = board is not None and not partitions.same_fs(board, lay)
            if board is not None and lost and not new_layout_ok:
                raise LayoutChange(
                    "%s changes the partition layout of the board on %s (now: %s; the image: "
                    "%s): its file system, with the terminal's config and journal of ratings not "
                    "yet delivered, would be lost. Nothing was written. Let the terminal deliver "
                    "its backlog first and name it (--config hall.toml --terminal T...: its "
                    "backlog must be 0), or add --discard-files; then run `hcp device install` "
                    "and `hcp device provision` again" % (
                        image_path, port, partitions.describe(board), partitions.describe(lay)))
            skipped = _already_there(esp, offset, data)
            if not skipped:
                cmds.write_flash(esp, [(offset, data)], flash_size="keep")
            stage = "reset"
            cmds.reset_chip(esp, "hard-reset")
        return {"chip": esp.CHIP_NAME, "offset": offset, "bytes": len(data), "skipped": skipped,
                "layout": lay, "board_layout": board, "fs_lost": lost and not skipped}
    except HcpError:
        raise
    except (FatalError, serial.SerialException, OSError, struct.error) as e:
        if stage == "reset":
            raise HcpError("the image is written and verified, but the board on %s did not take "
                           "the reset (%s): press its EN/RST button" % (port, e)) from None
        raise HcpError("the board on %s stopped answering during the %s (%s): it may not boot "
                       "until flashed. Plug it in again and run the same command" % (
                           port, "write" if stage == "write" else "connection",
                           str(e).strip() or type(e).__name__)) from None
    finally:
        if previous is not None:
            EspLog.set_logger(previous)
        else:
            EspLog._reset()


def board_layout(esp: ESPLoader) -> partitions.Layout | None:
    """The partition table on the board's flash (esptool `read_flash 0x8000 0xC00`), or None
    when there is none (a new board: the flash reads 0xFF)."""
    raw = esp.read_flash(partitions.TABLE_OFFSET, partitions.TABLE_LEN)
    if raw[:2] != partitions.MAGIC:
        return None
    return partitions.parse_table(raw, "the partition table on the board")


def check_backlog(config_path: str, terminal: str) -> int:
    """The terminal's backlog as its last status told the hall daemon; HcpError unless it is 0
    (ratings not yet delivered would be lost with the board's file system)."""
    from haochaping.daemon.hall import db
    from haochaping.daemon.hall import settings as hall_settings
    cfg = hall_settings.load(config_path)
    conn = db.connect(cfg.hall.database)
    try:
        row = conn.execute("SELECT backlog, online FROM terminal_status WHERE terminal=?",
                           (terminal,)).fetchone()
    finally:
        conn.close()
    if row is None or row[0] is None:
        raise HcpError("the hall has no status from %s: it cannot tell whether its ratings were "
                       "delivered. Let it come online, or add --discard-files" % terminal)
    if row[0]:
        raise HcpError("%s still holds %d ratings not delivered (`hcp terminals`): let it "
                       "deliver them first, or add --discard-files to lose them" % (terminal,
                                                                                  row[0]))
    return 0


def _already_there(esp: ESPLoader, offset: int, data: bytes) -> bool:
    """True when the flash already holds this image (MD5 by the stub): a rerun writes nothing."""
    import hashlib
    try:
        return esp.flash_md5sum(offset, len(data)) == hashlib.md5(data).hexdigest()
    except Exception:  # any failure here only means: write it
        return False
