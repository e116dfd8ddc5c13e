"""`hcp device update`: build the update bundle from the device files, sign it with the hall
update key, hand it to the hall daemon (the hall folder's updates/ and hall.sqlite) and start a
rollout, canaries first (daemon/hall/updates.py runs it). `hcp device update-key` makes the key.
With an image (`--image`), the bundle is MicroPython itself: the app image cut out of an OTA
build's merged .bin, or its app-only image (tools/device/partitions.py).
"""
from __future__ import annotations

import os
import pathlib
import time
from typing import TypedDict

from haochaping.daemon.errors import HcpError
from haochaping.daemon.hall import db, updates
from haochaping.daemon.hall import settings as hall_settings
from haochaping.tools.device import bundle, fleet, partitions

PUBLIC_FILE = "update-key.pub"   # the modulus (hex), next to hall.toml: provisioning reads it


class RolloutResult(TypedDict):
    """What `hand_over` did: the bundle's kind (app or image), version, file and size, the
    rollout's id, how many terminals it names and how many go first."""
    kind: str
    version: str
    path: str
    bytes: int
    rollout: int
    terminals: int
    canary: int


def public_path(config_path: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(config_path)), PUBLIC_FILE)


def make_key(config_path: str, key: str | None = None) -> tuple[str, str]:
    """A new hall update key (private: --key or update-key.pem next to hall.toml) and its public
    part next to hall.toml (update-key.pub), which provisioning puts on every terminal."""
    hall_settings.load(config_path)
    path = bundle.key_path(config_path, key)
    k = bundle.make_key(path)
    pub = public_path(config_path)
    with open(pub, "w") as f:
        f.write(bundle.public_hex(k) + "\n")
    return path, pub


def public_key(config_path: str) -> str | None:
    """The hall update key's modulus (hex) from update-key.pub, or None when the hall has none."""
    try:
        with open(public_path(config_path)) as f:
            text = f.read().strip()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise HcpError("cannot read %s: %s" % (public_path(config_path), e.strerror or e)
                       ) from None
    if len(text) != 512 or any(c not in "0123456789abcdef" for c in text):
        raise HcpError("%s is not an update key's modulus (512 hex digits)"
                       % public_path(config_path))
    return text


def hand_over(config_path: str, everyone: bool = False, window: str | None = None,
              terminal: str | None = None, canary: int = 0, hold_s: float = 600,
              version: str | None = None, key: str | None = None,
              source: str | None = None, actor: str | None = None,
              image: str | None = None) -> RolloutResult:
    """Build, sign, check and record the bundle; start its rollout. Exactly one of everyone,
    window, terminal names the terminals. source: a folder with protocol/ and firmware/
    (default: this installation's). image: a MicroPython image file instead (an image bundle)."""
    if sum([everyone, window is not None, terminal is not None]) != 1:
        raise HcpError("name the terminals: --all, --window W or --terminal T (one of them)")
    cfg = hall_settings.load(config_path)
    k = bundle.load_key(bundle.key_path(config_path, key))
    pub = public_key(config_path)
    if pub is not None and pub != bundle.public_hex(k):
        raise HcpError("the update key %s is not the one the terminals were given (%s): they "
                       "would refuse the bundle" % (bundle.key_path(config_path, key),
                                                    public_path(config_path)))
    if image is not None:
        if source is not None:
            raise HcpError("--image and --source: one bundle is either the app or MicroPython")
        try:
            with open(image, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise HcpError("cannot read %s: %s" % (image, e.strerror or e)) from None
        app, info = partitions.ota_app(raw, image)
        ver = version or bundle.image_version(info, app)
        data = bundle.build_image(app, ver, k)
        kind = "image"
    else:
        files = bundle.compile_files(pathlib.Path(source) if source else None)
        ver = version or bundle.default_version(files)
        data = bundle.build(files, ver, k)
        kind = "app"
    _, mlen = bundle.read(data, bundle.public_hex(k))   # as a terminal will check it
    folder = os.path.join(cfg.folder or ".", "updates")
    os.makedirs(folder, exist_ok=True)
    path = os.path.abspath(os.path.join(folder, ver + ".bundle"))
    with open(path + ".new", "wb") as f:
        f.write(data)
    os.replace(path + ".new", path)
    conn = db.connect(cfg.hall.database)
    try:
        now = time.time()
        updates.add_bundle(conn, ver, path, data, mlen, now, kind)
        terms = updates.targets(conn, window, terminal)
        scope = ("window " + window) if window else ("terminal " + terminal) if terminal \
            else "all"
        rid = updates.start_rollout(conn, ver, terms, canary, hold_s, fleet.who(actor), scope,
                                    now)
        first = conn.execute("SELECT canary FROM update_rollouts WHERE id=?", (rid,)).fetchone()
    finally:
        conn.close()
    return {"kind": kind, "version": ver, "path": path, "bytes": len(data), "rollout": rid,
            "terminals": len(terms), "canary": first[0]}
