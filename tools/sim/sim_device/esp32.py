# Stand-in for the ESP32 `esp32` module's Partition (updates of the image over the air), for the
# unix port of MicroPython (tests, simulation). Never installed on a terminal.
#
# setup(folder, ota=True, slot_size=...) gives the "chip" a flash: one file per app slot in
# `folder` (ota_0.bin and ota_1.bin, or factory.bin for a stock image) and `otadata` (the
# bootloader's record: which slot to boot and each slot's state). Without setup the chip has a
# stock image (factory only): get_next_update() raises OSError(ENOENT), as on the chip.
#
# As hostile as the chip and its bootloader (ESP-IDF with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE,
# as MicroPython's OTA variant is built):
# - writeblocks(n, buf) erases the blocks first and programs them; with an offset it only
#   programs, and programming can only clear bits (NOR flash: data AND buf) - a caller that
#   forgot to erase gets garbage, as on the chip. Writing the running slot raises OSError.
# - set_boot() checks the image first (esp_image_verify: magic 0xE9, this chip's id, segments,
#   checksum, appended SHA-256) and raises OSError when it would not boot; else the slot is
#   recorded as the one to boot, state "new".
# - boot() is the bootloader at a reset: a slot in state "new" boots as "pending"; a slot
#   still "pending" (not confirmed by mark_app_valid_cancel_rollback() before this reset)
#   becomes "aborted" and the other valid slot boots; an image that does not verify is skipped.
# - power cuts: CUT[0] = k makes the k-th flash operation from now (an erase, a program, an
#   otadata write) raise PowerCut instead; TORN[0] = True makes that write land half first.
#   power_ok() lets a harness's other flash (littlefs for the files) share the same count.
import os

RUNNING = 1
BOOT = 0
TYPE_APP = 0
TYPE_DATA = 1
HEAP_DATA = 4
_BLOCK = 4096
_ENOENT = 2
_EIO = 5
_EACCES = 13
CHIP_ID = [0]          # the chip's id in app image headers (ESP32: 0)
CUT = [-1]             # flash operations until a power cut (-1: none)
TORN = [False]         # the write the cut hits lands half
OPS = [0]              # flash operations so far
ROLLBACK = [True]      # the bootloader rolls back unconfirmed images
_FLASH = {"folder": None, "slots": ["factory"], "size": 0, "running": "factory", "data": {}}
JOURNAL = "hcpjournal"     # the journal ring's data partition (setup(journal=...)), subtype 0x40


class PowerCut(Exception):
    pass


def power_ok():
    """Count one flash operation; False when the power is cut at it (CUT)."""
    if CUT[0] == 0:
        return False
    OPS[0] += 1
    if CUT[0] > 0:
        CUT[0] -= 1
    return True


def _op():
    if not power_ok():
        raise PowerCut()


def _path(label):
    return _FLASH["folder"] + "/" + label + ".bin"


def _read_otadata():
    try:
        with open(_FLASH["folder"] + "/otadata") as f:
            words = f.read().split()
    except OSError:
        return None
    states = {}
    for w in words[1:]:
        k, v = w.split("=")
        states[k] = v
    return words[0], states


def _write_otadata(boot, states):
    _op()
    p = _FLASH["folder"] + "/otadata"
    with open(p + ".new", "w") as f:
        f.write(boot + " " + " ".join(k + "=" + v for k, v in states.items()) + "\n")
    os.rename(p + ".new", p)   # two sectors with sequence numbers on the chip: old or new


def setup(folder, ota=True, slot_size=0x180000, journal=0):
    """Give the chip a flash in `folder` (kept between boots: a new process calls setup again
    with the same folder), then boot it. `journal`: the size of the `hcpjournal` data partition
    (the table `hcp device flash --journal-partition` writes), 0 for none (MicroPython's own
    tables)."""
    _FLASH["folder"] = folder
    _FLASH["slots"] = ["ota_0", "ota_1"] if ota else ["factory"]
    _FLASH["size"] = slot_size
    _FLASH["data"] = {JOURNAL: journal} if journal else {}
    try:
        os.mkdir(folder)
    except OSError:
        pass
    for label in _FLASH["slots"] + list(_FLASH["data"]):
        try:
            os.stat(_path(label))
        except OSError:
            with open(_path(label), "wb") as f:
                f.write(b"\xff" * _size(label))
    if ota and _read_otadata() is None:
        with open(folder + "/otadata", "w") as f:
            f.write("ota_0 ota_0=valid ota_1=empty\n")
    boot()


def _size(label):
    return _FLASH["data"].get(label, _FLASH["size"])


def image_ok(data):
    """esp_image_verify, in short: True when `data` is a bootable app image for this chip."""
    if len(data) < 24 or data[0] != 0xE9 or (data[12] | data[13] << 8) != CHIP_ID[0]:
        return False
    at = 24
    check = 0xEF
    for _ in range(data[1]):
        if at + 8 > len(data):
            return False
        n = int.from_bytes(data[at + 4:at + 8], "little")
        seg = data[at + 8:at + 8 + n]
        if len(seg) != n:
            return False
        for b in seg:
            check ^= b
        at += 8 + n
    at = (at + 16) & ~15
    if at > len(data) or data[at - 1] != check:
        return False
    if data[23] == 1:
        import hashlib
        return data[at:at + 32] == hashlib.sha256(data[:at]).digest()
    return True


def _slot_bytes(label):
    with open(_path(label), "rb") as f:
        return f.read()


def boot():
    """The bootloader at a reset: choose the slot that runs (see the top)."""
    if _FLASH["folder"] is None or "factory" in _FLASH["slots"]:
        _FLASH["running"] = "factory"
        return
    sel, states = _read_otadata()
    other = "ota_1" if sel == "ota_0" else "ota_0"
    st = states.get(sel, "empty")
    if st == "pending" and ROLLBACK[0]:
        states[sel] = "aborted"
        st = "aborted"
    if st in ("aborted", "invalid", "empty") or not image_ok(_slot_bytes(sel)):
        sel, other = other, sel
    elif st == "new":
        states[sel] = "pending" if ROLLBACK[0] else "valid"
    _FLASH["running"] = sel
    with open(_FLASH["folder"] + "/otadata", "w") as f:   # the bootloader's own write
        f.write(sel + " " + " ".join(k + "=" + v for k, v in states.items()) + "\n")


def running_desc():
    """(version, project) from the running image's app description: what a harness uses to
    make an image behave (a "broken" project fails its self-test)."""
    if _FLASH["folder"] is None:
        return "", ""
    with open(_path(_FLASH["running"]), "rb") as f:
        head = f.read(112)
    return (head[48:80].split(b"\0")[0].decode(), head[80:112].split(b"\0")[0].decode())


class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0
    TYPE_DATA = 1

    def __init__(self, id, block_size=_BLOCK):
        if id == RUNNING:
            id = _FLASH["running"]
        elif id == BOOT:
            ota = _read_otadata() if _FLASH["folder"] is not None else None
            id = ota[0] if ota else _FLASH["running"]
        if id not in _FLASH["slots"] and id not in _FLASH["data"]:
            raise ValueError("partition not found")
        self.label = id
        self.block_size = block_size

    def info(self):
        if self.label in _FLASH["data"]:   # carved from the end of vfs, at the end of 4 MiB
            n = _FLASH["data"][self.label]
            return (TYPE_DATA, 0x40, 0x400000 - n, n, self.label, False)
        i = _FLASH["slots"].index(self.label)
        sub = 0 if self.label == "factory" else 0x10 + i
        return (TYPE_APP, sub, 0x10000 + i * _FLASH["size"], _FLASH["size"], self.label, False)

    def get_next_update(self):
        if "factory" in _FLASH["slots"]:
            raise OSError(_ENOENT)
        return Partition("ota_1" if self.label == "ota_0" else "ota_0")

    def readblocks(self, n, buf, off=0):
        if _FLASH["folder"] is None:            # no setup: a stock chip whose slot is not kept
            for i in range(len(buf)):
                buf[i] = 0xFF
            return
        with open(_path(self.label), "rb") as f:
            f.seek(n * self.block_size + off)
            data = f.read(len(buf))
        buf[:len(data)] = data

    def writeblocks(self, n, buf, off=None):
        if self.label == _FLASH["running"]:
            raise OSError(_EACCES)
        a = n * self.block_size + (off or 0)
        if a + len(buf) > _size(self.label):
            raise OSError(_EIO)
        with open(_path(self.label), "r+b") as f:
            if off is None:                     # erase first, a block at a time
                for b in range(len(buf) // self.block_size):
                    _op()
                    f.seek(a + b * self.block_size)
                    f.write(b"\xff" * self.block_size)
            f.seek(a)
            old = f.read(len(buf))
            new = bytes([old[i] & buf[i] for i in range(len(buf))])
            if not power_ok():
                if TORN[0]:
                    f.seek(a)
                    f.write(new[:len(new) // 2])
                raise PowerCut()
            f.seek(a)
            f.write(new)

    def ioctl(self, op, arg=0):
        if op == 4:
            return _size(self.label) // self.block_size
        if op == 5:
            return self.block_size
        if op == 6:
            self.writeblocks(arg, b"\xff" * self.block_size)
            return 0
        return 0

    def set_boot(self):
        if not image_ok(_slot_bytes(self.label)):
            raise OSError(-5379)   # ESP_ERR_OTA_VALIDATE_FAILED
        ota = _read_otadata()
        states = ota[1] if ota else {}
        states[self.label] = "new"
        _write_otadata(self.label, states)

    @classmethod
    def mark_app_valid_cancel_rollback(cls):
        if not ROLLBACK[0]:
            raise OSError(-261)
        ota = _read_otadata()
        if ota is None:
            return
        sel, states = ota
        run = _FLASH["running"]
        if states.get(run) == "pending":
            states[run] = "valid"
            _write_otadata(run, states)

    @staticmethod
    def find(type=TYPE_APP, subtype=0xFF, label=None):
        names = _FLASH["data"] if type == TYPE_DATA else _FLASH["slots"]
        return [Partition(x) for x in names if label in (None, x)]
