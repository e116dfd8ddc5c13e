"""Over-the-air updates of the terminal's app: the bundle, its signature, and the messages that
carry it. Runs on the terminal (firmware/update.py) and on the hall (daemon/hall/updates.py,
tools/device/bundle.py): the common subset only.

The bundle (one file, served by the hall daemon, signed by hall IT):

    manifest (JSON, `mlen` bytes) | signature (SIG_LEN bytes) | file 1 | file 2 | ...

    manifest = {"v":1,"version":"0.2.0+1a2b3c4d","files":[["firmware/app.mpy",5120,"<sha256>"],
                ...]}

An image bundle (MicroPython itself, for a terminal whose partition table has OTA slots) has
the same shape with one file, the ESP app image, and the kind:

    manifest = {"v":1,"kind":"image","version":"1.24.1+1a2b3c4d",
                "files":[["image.bin",1605632,"<sha256>"]]}

A terminal from before image bundles refuses one at its manifest ("image.bin" is no module).

The signature is RSA PKCS#1 v1.5 with SHA-256 over the manifest bytes, made with the hall's
update key (a private key that only hall IT's tooling holds; the terminal has the public
modulus in /config.json `update_key`, exponent 65537). The manifest names every file with its
size and SHA-256, so one signature covers every byte. A terminal's own HMAC key cannot sign an
update: a terminal stolen from the hall gives away no way to update the others.

Verifying costs 16 modular squarings and one multiplication of 2048-bit numbers: `RsaCheck` does
one per call, so the key loop never waits for all of them at once.

Messages (topics.py):
  update  daemon -> terminal, retained: the offer {"v":1,"ver":V,"size":N,"mlen":M}, or empty
  fetch   terminal -> daemon, QoS 0: {"v":1,"ver":V,"at":offset,"n":length} (n <= CHUNK)
  chunk   daemon -> terminal, QoS 0, binary: len(V) (1 byte) | V | offset (4 bytes, big-endian) |
          the bundle's bytes [offset, offset + n)
The terminal pulls: it asks for the next chunk only when no prompt is open, so it sets the pace.
Nothing in the offer or a chunk needs a signature of its own: the manifest's signature and its
hashes decide what is kept.
"""
import binascii
import hashlib
import json

from . import fields

SIG_LEN = 256               # RSA-2048
CHUNK = 512                 # bundle bytes per chunk (a chunk packet stays far below mqtt.MAX_IN)
E = 65537
MAX_MANIFEST = 4096         # bytes: it stays in the terminal's RAM while the files come
MAX_FILES = 48
MAX_FILE = 65536            # bytes per file
MAX_IMAGE = 0x400000        # bytes of an image: the whole of a 4 MiB flash (the slot decides)
IMAGE = "image.bin"         # the one file of an image bundle
MAX_VERSION = 32
VERSION_CHARS = fields.ID_CHARS + ".+"
PARTS = ("protocol", "firmware")
NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
# DER of DigestInfo(SHA-256), RFC 8017 section 9.2 note 1
_DIGEST_INFO = b"\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20"


def version(name, v):
    """A bundle version: 1-32 of A-Z a-z 0-9 _ - . + (it goes into a status and a file)."""
    if type(v) is not str or not 0 < len(v) <= MAX_VERSION or not all(
            c in VERSION_CHARS for c in v):
        raise ValueError("%s: must be 1-%d of A-Z a-z 0-9 _ - . +" % (name, MAX_VERSION))
    return v


def file_path(p):
    """"firmware/app.mpy": one of PARTS, a lowercase module name, .mpy or .py. Nothing else can
    reach the terminal's file system: no "..", no absolute path, no other folder."""
    parts = p.split("/") if type(p) is str else []
    if len(parts) != 2 or parts[0] not in PARTS:
        raise ValueError("files: %r is not protocol/<name> or firmware/<name>" % (p,))
    name = parts[1]
    stem = name[:-4] if name.endswith(".mpy") else name[:-3] if name.endswith(".py") else ""
    if not stem or not all(c in NAME_CHARS for c in stem):
        raise ValueError("files: %r is not a module file (.mpy or .py)" % (p,))
    return p


def parse_manifest(data):
    """The manifest dict; ValueError naming what is wrong."""
    if len(data) > MAX_MANIFEST:
        raise ValueError("manifest: larger than %d bytes" % MAX_MANIFEST)
    try:
        m = json.loads(data)
    except Exception:  # ValueError on both runtimes; UnicodeError on bad bytes
        raise ValueError("manifest: not JSON") from None
    if type(m) is not dict or m.get("v") != 1:
        raise ValueError("manifest: not a version 1 manifest")
    version("version", m.get("version"))
    files = m.get("files")
    kind = m.get("kind", "app")
    if kind == "image":
        if type(files) is not list or len(files) != 1 or type(files[0]) is not list or \
                len(files[0]) != 3 or files[0][0] != IMAGE:
            raise ValueError("files: an image bundle has one file, %s" % IMAGE)
        fields.whole("size", files[0][1], 24, MAX_IMAGE)
        fields.hex_text("sha256", files[0][2], 64)
        return m
    if kind != "app":
        raise ValueError("kind: app or image")
    if type(files) is not list or not 0 < len(files) <= MAX_FILES:
        raise ValueError("files: 1..%d entries" % MAX_FILES)
    seen = []
    for f in files:
        if type(f) is not list or len(f) != 3:
            raise ValueError("files: each entry is [path, size, sha256]")
        file_path(f[0])
        if f[0] in seen:
            raise ValueError("files: %s twice" % f[0])
        seen.append(f[0])
        fields.whole("size", f[1], 0, MAX_FILE)
        fields.hex_text("sha256", f[2], 64)
    return m


def bundle_size(m, mlen):
    n = mlen + SIG_LEN
    for f in m["files"]:
        n += f[1]
    return n


def digest_info(data):
    """What an RSA PKCS#1 v1.5 SHA-256 signature of `data` must decrypt to (k = SIG_LEN)."""
    t = _DIGEST_INFO + hashlib.sha256(data).digest()
    return b"\x00\x01" + b"\xff" * (SIG_LEN - len(t) - 3) + b"\x00" + t


class RsaCheck:
    """Verify sig (SIG_LEN bytes) over data with modulus `n` (bytes) in steps: call step() until
    it returns True, then read `ok`. Each step is one modular multiplication."""

    def __init__(self, n, sig, data):
        self.n = int.from_bytes(n, "big")
        self.s = int.from_bytes(sig, "big")
        self.want = digest_info(data)
        self.x = self.s
        self.i = 0
        self.ok = False
        if len(n) != SIG_LEN or len(sig) != SIG_LEN or self.s >= self.n:
            self.i = 17         # malformed: done, not ok

    def step(self):
        if self.i < 16:         # 65537 = 2^16 + 1: sixteen squarings ...
            self.x = self.x * self.x % self.n
        elif self.i == 16:      # ... and one multiplication
            self.x = self.x * self.s % self.n
            self.ok = self.x.to_bytes(SIG_LEN, "big") == self.want
        self.i += 1
        return self.i >= 17


def rsa_verify(n, sig, data):
    c = RsaCheck(n, sig, data)
    while not c.step():
        pass
    return c.ok


# ---------------------------------------------------------------- messages


def _load(payload, limit=512):
    if len(payload) > limit:
        raise ValueError("payload too large")
    try:
        msg = json.loads(payload)
    except Exception:
        raise ValueError("not JSON") from None
    if type(msg) is not dict or msg.get("v") != 1:
        raise ValueError("not a version 1 message")
    return msg


def encode_offer(ver, size, mlen):
    return ('{"v":1,"ver":%s,"size":%d,"mlen":%d}' % (json.dumps(ver), size, mlen)).encode()


def decode_offer(payload):
    """The offer dict, or None for an empty payload (no update offered)."""
    if not payload:
        return None
    m = _load(payload)
    version("ver", m.get("ver"))
    fields.whole("mlen", m.get("mlen"), 2, MAX_MANIFEST)
    fields.whole("size", m.get("size"), m["mlen"] + SIG_LEN,
                 MAX_MANIFEST + SIG_LEN + max(MAX_FILES * MAX_FILE, MAX_IMAGE))
    return m


def encode_fetch(ver, at, n):
    return ('{"v":1,"ver":%s,"at":%d,"n":%d}' % (json.dumps(ver), at, n)).encode()


def decode_fetch(payload):
    m = _load(payload)
    version("ver", m.get("ver"))
    fields.whole("at", m.get("at"), 0)
    fields.whole("n", m.get("n"), 1, CHUNK)
    return m


def encode_chunk(ver, at, data):
    v = ver.encode()
    return bytes([len(v)]) + v + at.to_bytes(4, "big") + data


def decode_chunk(payload):
    """(version, offset, data); ValueError if malformed."""
    if len(payload) < 6:
        raise ValueError("chunk: too short")
    n = payload[0]
    if len(payload) < 5 + n or len(payload) > 5 + n + CHUNK:
        raise ValueError("chunk: bad length")
    ver = bytes(payload[1:1 + n]).decode()
    at = int.from_bytes(payload[1 + n:5 + n], "big")
    return ver, at, payload[5 + n:]


def hexdigest(data):
    return hexdigest_of(hashlib.sha256(data))


def hexdigest_of(h):
    """The hex digest of a hashlib object (MicroPython's have no hexdigest())."""
    return binascii.hexlify(h.digest()).decode()
