"""ESP32 images built in the tests, byte for byte as ESP-IDF lays them out: an app image (header
with the chip id, segments, the first starting with the app description, checksum, SHA-256
appended) and a merged MicroPython .bin (bootloader at 0x1000, partition table at 0x8000, the
app at its first app slot)."""
import hashlib
import random
import struct

from haochaping.tools.device import partitions

DESC_MAGIC = 0xABCD5432


def app_image(version="v1.24.1", project="micropython", size=40 * 1024, chip_id=0, seed=1):
    """A valid ESP app image of about `size` bytes (incompressible)."""
    desc = struct.pack("<III", DESC_MAGIC, 0, 0) + bytes(4)
    desc += version.encode().ljust(32, b"\0") + project.encode().ljust(32, b"\0")
    desc += b"12:00:00".ljust(16, b"\0") + b"Nov 29 2024".ljust(16, b"\0")
    desc += b"v5.2.2".ljust(32, b"\0") + bytes(32) + bytes(80)
    body = random.Random(seed).randbytes(max(16, size - len(desc) - 64) & ~3)
    segs = [(0x3F400020, desc), (0x400D0020, body)]
    hdr = bytes([0xE9, len(segs), 2, 0x20]) + struct.pack("<I", 0x40081000)
    hdr += bytes([0xEE, 0, 0, 0]) + struct.pack("<HBHH", chip_id, 0, 0, 0xFFFF) + bytes(4) + b"\x01"
    out = bytearray(hdr)
    check = 0xEF
    for addr, data in segs:
        out += struct.pack("<II", addr, len(data)) + data
        for b in data:
            check ^= b
    out += bytes((-(len(out) + 1)) % 16) + bytes([check])
    out += hashlib.sha256(out).digest()
    return bytes(out)


def merged(app, layout=partitions.OTA_4MIB, chip_id=0, offset=0x1000):
    """A merged image as micropython.org publishes it, written at `offset`."""
    boot = app_image("v5.2.2", "bootloader", 0x5000, chip_id, seed=9)
    data = bytearray(b"\xff" * (0x10000 - offset))
    data[:len(boot)] = boot
    at = partitions.TABLE_OFFSET - offset
    data[at:at + partitions.TABLE_LEN] = partitions.build_table(layout)
    slot = next(p for p in layout if p[1] == partitions.TYPE_APP)[3]
    data[slot - offset:] = b""
    return bytes(data) + app
