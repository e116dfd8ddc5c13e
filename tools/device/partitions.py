"""The partition table of an ESP32 MicroPython image or board, and the app image inside it.

A merged MicroPython .bin holds, from the chip's bootloader offset, the bootloader, the
partition table at flash offset 0x8000 and the app (MicroPython itself) at its app partition.
The table (ESP-IDF, docs "Partition Tables", gen_esp32part.py) is at most 0xC00 bytes of 32-byte
entries: magic 0xAA 0x50, type, subtype, offset, size (little-endian), a 16-byte label and
4 bytes of flags; then an entry starting 0xEB 0xEB whose last 16 bytes are the MD5 of the
entries before it; then 0xFF.

An image can take updates over the air when its table has `otadata` and two OTA app slots
(`ota_0`, `ota_1`): MicroPython's `ESP32_GENERIC-OTA`. The stock `ESP32_GENERIC` has one
`factory` app and cannot.

The terminal keeps its journal as a ring of raw 4 KB sectors (firmware/ring.py: no flash erase
while a citizen is choosing) when the table has a data partition labelled `hcpjournal` (subtype
0x40, 128 KB); no MicroPython image has one, so `with_journal` carves it from the end of `vfs`
and `journal_image` puts that table into a merged image (`hcp device flash --journal-partition`).

The app image (ESP-IDF "App Image Format"): a 24-byte header (magic 0xE9, segment count, ...,
the chip id at byte 12, `hash_appended` at byte 23), segments of 8-byte header (load address,
length) and data, a checksum byte padded to 16, then the SHA-256 of all that when
`hash_appended`. The first segment starts with the app description (magic 0xABCD5432), which
names the version and the project.
"""
from __future__ import annotations

import hashlib
import struct
from typing import TypedDict

from haochaping.daemon.errors import HcpError

TABLE_OFFSET = 0x8000
TABLE_LEN = 0xC00
ENTRY = struct.Struct("<2sBBII16sI")
MAGIC = b"\xaa\x50"
MD5_MAGIC = b"\xeb\xeb"
TYPE_APP = 0x00
TYPE_DATA = 0x01
SUB_FACTORY = 0x00
SUB_OTA_0 = 0x10
SUB_OTA_15 = 0x1F
SUB_DATA_OTA = 0x00
SUB_FAT = 0x81
SUB_SPIFFS = 0x82
SUB_LITTLEFS = 0x83
SUB_HCPJOURNAL = 0x40      # a custom data subtype (0x40-0xFE are free for applications)
JOURNAL_LABEL = "hcpjournal"
JOURNAL_SIZE = 0x20000     # 32 sectors: the default 32 KB of pending records (docs/firmware.md)
MIN_VFS = 0x80000          # what vfs must keep: config, the app (~200 KB of .mpy), an update
SECTOR = 0x1000
APP_MAGIC = 0xE9
APP_DESC_MAGIC = 0xABCD5432
# chip ids of the app image header (esp_chip_id_t), for the chips hall profiles use
CHIP_IDS = {"esp32": 0, "esp32s2": 2, "esp32c3": 5, "esp32s3": 9}


class Partition(TypedDict):
    """One entry of a partition table."""
    label: str
    type: int
    subtype: int
    offset: int
    size: int


class Layout(TypedDict):
    """What a partition table means for a terminal: its app slots, whether it has otadata, the
    file system partition (vfs), whether images can be updated over the air, and the journal
    ring's partition (hcpjournal) when there is one."""
    partitions: list[Partition]
    apps: list[str]
    otadata: bool
    vfs: Partition | None
    ota: bool
    journal: Partition | None


class AppImage(TypedDict):
    """An ESP app image: its length in bytes, chip id, and the app description's version and
    project name ("" when it has none)."""
    length: int
    chip_id: int
    version: str
    project: str


def parse_table(raw: bytes, name: str = "the partition table") -> Layout:
    """The layout from a table's bytes; HcpError when they are not a partition table (an empty
    flash reads 0xFF: that is not a table either)."""
    parts: list[Partition] = []
    at = 0
    md5_ok = False
    while at + ENTRY.size <= min(len(raw), TABLE_LEN):
        chunk = raw[at:at + ENTRY.size]
        magic = chunk[:2]
        if magic == MD5_MAGIC:
            md5_ok = chunk[16:32] == hashlib.md5(raw[:at]).digest()
            if not md5_ok:
                raise HcpError("%s is damaged: its MD5 does not match its entries" % name)
            break
        if magic != MAGIC:
            break
        _, ptype, sub, offset, size, label, _flags = ENTRY.unpack(chunk)
        parts.append({"label": label.rstrip(b"\0").decode("ascii", "replace"), "type": ptype,
                      "subtype": sub, "offset": offset, "size": size})
        at += ENTRY.size
    if not parts:
        raise HcpError("%s holds no partition table (no entry at its start)" % name)
    return layout(parts)


def layout(parts: list[Partition]) -> Layout:
    apps = [p["label"] for p in parts if p["type"] == TYPE_APP]
    ota_slots = [p for p in parts if p["type"] == TYPE_APP
                 and SUB_OTA_0 <= p["subtype"] <= SUB_OTA_15]
    otadata = any(p["type"] == TYPE_DATA and p["subtype"] == SUB_DATA_OTA for p in parts)
    vfs = next((p for p in parts if p["type"] == TYPE_DATA and p["label"] == "vfs"), None) or \
        next((p for p in parts if p["type"] == TYPE_DATA
              and p["subtype"] in (SUB_FAT, SUB_SPIFFS, SUB_LITTLEFS)), None)
    journal = next((p for p in parts if p["type"] == TYPE_DATA
                    and p["label"] == JOURNAL_LABEL), None)
    return {"partitions": parts, "apps": apps, "otadata": otadata, "vfs": vfs,
            "ota": otadata and len(ota_slots) >= 2, "journal": journal}


def image_table(data: bytes, offset: int, name: str = "the image") -> Layout:
    """The layout of a merged image written at flash `offset`."""
    at = TABLE_OFFSET - offset
    return parse_table(data[at:at + TABLE_LEN], "the partition table of %s" % name)


def describe(lay: Layout) -> str:
    """One line for hall IT: app slots, otadata, vfs size."""
    vfs = lay["vfs"]
    fs = ("vfs %d KB at 0x%x" % (vfs["size"] // 1024, vfs["offset"])) if vfs else \
        "no vfs partition"
    j = lay["journal"]
    if j is not None:
        fs += ", journal ring %s %d KB at 0x%x" % (j["label"], j["size"] // 1024, j["offset"])
    return "app slots %s, %s, %s" % (
        " ".join("%s (%d KB)" % (p["label"], p["size"] // 1024)
                 for p in lay["partitions"] if p["type"] == TYPE_APP),
        "otadata" if lay["otadata"] else "no otadata", fs)


def same_fs(a: Layout, b: Layout) -> bool:
    """True when the file system partition is where it was (the board's files survive)."""
    fa, fb = a["vfs"], b["vfs"]
    if fa is None or fb is None:
        return fa is fb
    return (fa["offset"], fa["size"], fa["subtype"]) == (fb["offset"], fb["size"], fb["subtype"])


def app_image(data: bytes, name: str = "the image") -> AppImage:
    """Walk an app image's header and segments: its length, chip, and description. HcpError
    when it is not one (or is cut short)."""
    if len(data) < 24 or data[0] != APP_MAGIC:
        raise HcpError("%s is not an ESP app image (it does not start with 0xE9)" % name)
    segments = data[1]
    chip_id = struct.unpack_from("<H", data, 12)[0]
    hashed = data[23] == 1
    if not 0 < segments <= 16:
        raise HcpError("%s is not an ESP app image (%d segments)" % (name, segments))
    at = 24
    for _ in range(segments):
        if at + 8 > len(data):
            raise HcpError("%s is cut short (a segment header past its end)" % name)
        length = struct.unpack_from("<I", data, at + 4)[0]
        at += 8 + length
        if at > len(data):
            raise HcpError("%s is cut short (a segment runs past its end)" % name)
    at = (at + 1 + 15) & ~15          # the checksum byte, padded to 16
    if hashed:
        at += 32
        if at > len(data) or hashlib.sha256(data[:at - 32]).digest() != data[at - 32:at]:
            raise HcpError("%s is damaged: its SHA-256 does not match" % name)
    if at > len(data):
        raise HcpError("%s is cut short" % name)
    version = project = ""
    if len(data) >= 32 + 80 and struct.unpack_from("<I", data, 32)[0] == APP_DESC_MAGIC:
        version = data[48:80].split(b"\0")[0].decode("ascii", "replace")
        project = data[80:112].split(b"\0")[0].decode("ascii", "replace")
    return {"length": at, "chip_id": chip_id, "version": version, "project": project}


def chip_name(chip_id: int) -> str:
    for k, v in CHIP_IDS.items():
        if v == chip_id:
            return k
    return "chip id %d" % chip_id


def ota_app(data: bytes, name: str) -> tuple[bytes, AppImage]:
    """The app image to send over the air, from either MicroPython's app-only image (what
    micropython.org calls .app-bin) or the merged .bin of an OTA build (the app is cut out of
    it at its first OTA slot). A merged image without OTA slots is refused: its MicroPython
    was built without the rollback the terminal relies on."""
    for offset in (0x1000, 0x0):
        at = TABLE_OFFSET - offset
        if len(data) > at + 2 and data[at:at + 2] == MAGIC and data[:1] == bytes([APP_MAGIC]):
            lay = image_table(data, offset, name)
            if not lay["ota"]:
                raise HcpError("%s has no OTA slots (%s): images over the air need the OTA "
                               "variant of MicroPython (ESP32_GENERIC-OTA)" % (name,
                                                                               describe(lay)))
            slot = next(p for p in lay["partitions"] if p["type"] == TYPE_APP
                        and SUB_OTA_0 <= p["subtype"] <= SUB_OTA_15)
            app = data[slot["offset"] - offset:]
            info = app_image(app, "the app in " + name)
            return app[:info["length"]], info
    if len(data) >= 36 and data[0] == APP_MAGIC and \
            struct.unpack_from("<I", data, 32)[0] == APP_DESC_MAGIC:
        info = app_image(data, name)
        return data[:info["length"]], info
    raise HcpError("%s is not a MicroPython image for an ESP32 (neither an app image nor a "
                   "merged .bin with a partition table)" % name)


def build_table(parts: list[tuple[str, int, int, int, int]]) -> bytes:
    """A partition table's bytes from (label, type, subtype, offset, size), with its MD5 entry,
    padded with 0xFF to TABLE_LEN (as gen_esp32part.py writes it)."""
    out = b"".join(ENTRY.pack(MAGIC, t, s, o, n, lab.encode().ljust(16, b"\0"), 0)
                   for lab, t, s, o, n in parts)
    out += MD5_MAGIC + b"\xff" * 14 + hashlib.md5(out).digest()
    return out + b"\xff" * (TABLE_LEN - len(out))


def entries(parts: list[Partition]) -> list[tuple[str, int, int, int, int]]:
    """(label, type, subtype, offset, size) per partition: what build_table takes."""
    return [(p["label"], p["type"], p["subtype"], p["offset"], p["size"]) for p in parts]


def with_journal(parts: list[Partition], size: int = JOURNAL_SIZE,
                 name: str = "the image") -> list[Partition]:
    """The table with the journal ring's partition (`hcpjournal`, data, subtype 0x40, `size`)
    carved from the end of `vfs`; the same table when it already has a fitting one. HcpError
    saying why when this table cannot take it."""
    lay = layout(parts)
    j = lay["journal"]
    if j is not None:
        if j["subtype"] != SUB_HCPJOURNAL or j["size"] < 8 * SECTOR or j["offset"] % SECTOR:
            raise HcpError("%s has an %s partition that is no journal ring (subtype 0x%02x, "
                           "%d KB at 0x%x)" % (name, JOURNAL_LABEL, j["subtype"],
                                               j["size"] // 1024, j["offset"]))
        return parts
    vfs = lay["vfs"]
    if vfs is None:
        raise HcpError("%s has no vfs partition to carve the %s partition from (%s)"
                       % (name, JOURNAL_LABEL, describe(lay)))
    if size % SECTOR or vfs["offset"] % SECTOR or vfs["size"] % SECTOR:
        raise HcpError("%s: vfs (0x%x, %d bytes) is not in whole 4 KB sectors"
                       % (name, vfs["offset"], vfs["size"]))
    if vfs["size"] - size < MIN_VFS:
        raise HcpError("%s: vfs is %d KB; taking %d KB for the journal ring would leave less "
                       "than the %d KB the terminal's files need" % (
                           name, vfs["size"] // 1024, size // 1024, MIN_VFS // 1024))
    if (len(parts) + 2) * ENTRY.size > TABLE_LEN:
        raise HcpError("%s: its partition table is full" % name)
    out: list[Partition] = []
    for p in parts:
        if p is vfs:
            p = {"label": p["label"], "type": p["type"], "subtype": p["subtype"],
                 "offset": p["offset"], "size": p["size"] - size}
        out.append(p)
    out.append({"label": JOURNAL_LABEL, "type": TYPE_DATA, "subtype": SUB_HCPJOURNAL,
                "offset": vfs["offset"] + vfs["size"] - size, "size": size})
    return out


def journal_image(data: bytes, offset: int, name: str = "the image") -> tuple[bytes, Layout]:
    """The merged image (written at flash `offset`) with its partition table replaced by one
    with the journal ring's partition (`with_journal`), and that layout."""
    lay = image_table(data, offset, name)
    parts = with_journal(lay["partitions"], name=name)
    at = TABLE_OFFSET - offset
    raw = build_table(entries(parts))
    out = data[:at] + raw + data[at + TABLE_LEN:]
    return out, image_table(out, offset, name)


def to_csv(parts: list[Partition]) -> str:
    """The table as ESP-IDF's partition CSV (gen_esp32part.py reads it back)."""
    names = {TYPE_APP: "app", TYPE_DATA: "data"}
    rows = ["# Name, Type, SubType, Offset, Size, Flags"]
    for p in parts:
        rows.append("%s, %s, 0x%02x, 0x%x, 0x%x," % (p["label"], names.get(p["type"],
                                                                          hex(p["type"])),
                                                     p["subtype"], p["offset"], p["size"]))
    return "\n".join(rows) + "\n"


def from_entries(parts: list[tuple[str, int, int, int, int]]) -> list[Partition]:
    return [{"label": lab, "type": t, "subtype": s, "offset": o, "size": n}
            for lab, t, s, o, n in parts]


# MicroPython's two layouts for 4 MiB of flash (ports/esp32/partitions-4MiB*.csv), for tests and
# the simulator
STOCK_4MIB = [("nvs", TYPE_DATA, 0x02, 0x9000, 0x6000), ("phy_init", TYPE_DATA, 0x01, 0xF000,
                                                          0x1000),
              ("factory", TYPE_APP, SUB_FACTORY, 0x10000, 0x1F0000),
              ("vfs", TYPE_DATA, SUB_FAT, 0x200000, 0x200000)]
OTA_4MIB = [("nvs", TYPE_DATA, 0x02, 0x9000, 0x4000), ("otadata", TYPE_DATA, SUB_DATA_OTA, 0xD000,
                                                        0x2000),
            ("phy_init", TYPE_DATA, 0x01, 0xF000, 0x1000),
            ("ota_0", TYPE_APP, SUB_OTA_0, 0x10000, 0x180000),
            ("ota_1", TYPE_APP, SUB_OTA_0 + 1, 0x190000, 0x180000),
            ("vfs", TYPE_DATA, SUB_FAT, 0x310000, 0x0F0000)]
