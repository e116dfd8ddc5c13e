"""Over-the-air updates, the hall's side: bundles, rollouts (canaries first), and the chunks the
terminals ask for (protocol/ota.py, docs/firmware.md "Updates over the air").

hall IT's `hcp device update` builds and signs a bundle (tools/device/bundle.py), copies it to
the hall folder's updates/ and records it and a rollout here. The daemon never holds the update
key: it offers what it was given, and the terminals check the signature.

A rollout: the terminals it names, the first `canary` of them (online ones first) offered the
bundle at once. Every tick of the daemon (`advance`) looks at what their statuses say:
  - a target is `ok` when its status names the new version as running (fw) and kept (update
    "ok V"); `failed` when it says "failed V ..." (it rolled back by itself);
  - a canary failing halts the rollout: every offer not yet taken is withdrawn;
  - once every canary is ok, online and running V for `hold_s`, the rest are offered;
  - when every target is ok or failed the rollout is done (the offers cleared).
Offers are retained messages on each terminal's `update` topic (published again on every
reconnect of the daemon). Chunks are served only from bundles recorded here.

An image bundle (MicroPython itself, kind "image") rolls out the same way; a target is `ok`
when its status names the new version as its image (`img`). A terminal without OTA slots (a
stock image) says "unable V ...": the target is `unable`, which neither halts the rollout nor
counts as a healthy canary (a rollout whose canaries are all unable halts: nothing proves the
image).
"""
from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Sequence
from typing import TypedDict

from haochaping.daemon.errors import HcpError
from haochaping.protocol import ota, topics

log = logging.getLogger(__name__)

ACTIVE = ("canary", "rollout")
# (topic, payload): a retained offer to publish (b"": withdrawn)
Offer = tuple[str, bytes]


class RolloutRow(TypedDict):
    """One rollout as `hcp device update --status` shows it."""
    id: int
    version: str
    state: str
    created_at: float
    actor: str
    scope: str
    canary: int
    hold_s: float
    note: str
    targets: dict[str, str]   # terminal -> waiting | offered | ok | failed | unable
    kind: str                 # app | image


def add_bundle(conn: sqlite3.Connection, version: str, path: str, data: bytes, mlen: int,
               now: float, kind: str = "app") -> None:
    """Record a bundle (its file already written at `path`). The same version twice must be
    the same bytes."""
    sha = hashlib.sha256(data).hexdigest()
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT sha256 FROM update_bundles WHERE version=?",
                           (version,)).fetchone()
        if row is not None and row[0] != sha:
            raise HcpError("version %s is already recorded with other files: give this build "
                           "another --version" % version)
        conn.execute("INSERT OR IGNORE INTO update_bundles (version, path, size, mlen, sha256,"
                     " added_at, kind) VALUES (?,?,?,?,?,?,?)", (version, path, len(data), mlen,
                                                                sha, now, kind))


def targets(conn: sqlite3.Connection, window: str | None = None,
            terminal: str | None = None) -> list[str]:
    """Active terminals: all, those paired with `window`, or `terminal` alone."""
    if terminal is not None:
        row = conn.execute("SELECT id FROM terminals WHERE id=? AND revoked_at IS NULL",
                           (terminal,)).fetchone()
        if row is None:
            raise HcpError("terminal %s is not registered in this hall" % terminal)
        return [terminal]
    if window is not None:
        out = [r[0] for r in conn.execute(
            "SELECT p.terminal FROM pairings p JOIN terminals t ON t.id=p.terminal"
            " WHERE p.window=? AND t.revoked_at IS NULL ORDER BY p.terminal", (window,))]
        if not out:
            raise HcpError("no terminal is paired with window %s" % window)
        return out
    out = [r[0] for r in conn.execute(
        "SELECT id FROM terminals WHERE revoked_at IS NULL AND id != 'QR' ORDER BY id")]
    if not out:
        raise HcpError("no terminals in this hall yet")
    return out


def start_rollout(conn: sqlite3.Connection, version: str, terms: Sequence[str], canary: int,
                  hold_s: float, actor: str, scope: str, now: float) -> int:
    """A rollout of `version` to `terms`, the first `canary` (online ones first) going first.
    An earlier rollout still running is cancelled (its offers are replaced). Returns its id."""
    if canary < 0:
        raise HcpError("--canary: a number of terminals, 0 or more")
    online = {r[0] for r in conn.execute("SELECT terminal FROM terminal_status WHERE online=1")}
    order = sorted(terms, key=lambda t: (t not in online, t))
    first = set(order[:canary]) if canary < len(order) else set()
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        if conn.execute("SELECT 1 FROM update_bundles WHERE version=?",
                        (version,)).fetchone() is None:
            raise HcpError("no bundle for version %s" % version)
        conn.execute("UPDATE update_rollouts SET state='cancelled', state_at=?, note=?"
                     " WHERE state IN ('canary','rollout')",
                     (now, "replaced by a rollout of %s" % version))
        cur = conn.execute(
            "INSERT INTO update_rollouts (version, created_at, actor, scope, canary, hold_s,"
            " state, state_at) VALUES (?,?,?,?,?,?,?,?)",
            (version, now, actor, scope, len(first), hold_s,
             "canary" if first else "rollout", now))
        rid = cur.lastrowid
        assert rid is not None
        conn.executemany("INSERT INTO update_targets (rollout, terminal, canary) VALUES (?,?,?)",
                         [(rid, t, int(t in first)) for t in order])
        conn.execute("INSERT INTO audit (at, actor, action, detail) VALUES (?,?,?,?)",
                     (now, actor, "update", '{"version": "%s", "scope": "%s", "canary": %d,'
                      ' "terminals": %d}' % (version, scope, len(first), len(order))))
    return rid


def _offer(conn: sqlite3.Connection, version: str) -> bytes:
    size, mlen = conn.execute("SELECT size, mlen FROM update_bundles WHERE version=?",
                              (version,)).fetchone()
    return ota.encode_offer(version, size, mlen)


def _kind(conn: sqlite3.Connection, version: str) -> str:
    row = conn.execute("SELECT kind FROM update_bundles WHERE version=?", (version,)).fetchone()
    return str(row[0]) if row else "app"


def _judge(conn: sqlite3.Connection, rid: int, version: str, now: float) -> None:
    """Targets' states from what their statuses say."""
    image = _kind(conn, version) == "image"
    rows = conn.execute(
        "SELECT t.terminal, t.state, s.firmware, s.update_state, s.image FROM update_targets t"
        " LEFT JOIN terminal_status s ON s.terminal=t.terminal"
        " WHERE t.rollout=? AND t.state IN ('waiting','offered')", (rid,)).fetchall()
    for term, state, fw, upd, img in rows:
        upd = upd or ""
        new, detail = None, ""
        if (image and img == version) or (   # an image version is reported once kept
                not image and fw == version and (upd in ("", "ok " + version)
                                                 or state == "waiting")):
            new = "ok"
        elif state == "offered" and upd.startswith("failed %s " % version):
            new, detail = "failed", upd[len("failed %s " % version):]
        elif state == "offered" and upd.startswith("unable %s " % version):
            new, detail = "unable", upd[len("unable %s " % version):]
        if new:
            conn.execute("UPDATE update_targets SET state=?, state_at=?, detail=? WHERE"
                         " rollout=? AND terminal=?", (new, now, detail, rid, term))
            log.log(logging.WARNING if new == "failed" else logging.INFO,
                    "update %s on %s: %s %s", version, term, new, detail)


def _publish(out: list[Offer], hall: str, which: Sequence[str], payload: bytes) -> None:
    for term in which:
        out.append((topics.topic(hall, term, topics.UPDATE), payload))


def _offered(conn: sqlite3.Connection, out: list[Offer], hall: str, rid: int, offer: bytes,
             which: Sequence[str], now: float) -> None:
    conn.executemany("UPDATE update_targets SET state='offered', offered_at=?, state_at=?"
                     " WHERE rollout=? AND terminal=?", [(now, now, rid, t) for t in which])
    _publish(out, hall, which, offer)


def advance(conn: sqlite3.Connection, hall: str, now: float) -> list[Offer]:
    """One step of every running rollout, in the caller's transaction; returns the retained
    offers to publish after the commit."""
    out: list[Offer] = []
    for r in conn.execute("SELECT id, version, state, hold_s FROM update_rollouts WHERE state IN"
                          " ('canary','rollout')").fetchall():
        rid, version, state, hold_s = r[0], r[1], r[2], r[3]
        _judge(conn, rid, version, now)
        tg = conn.execute("SELECT t.terminal, t.canary, t.state, t.state_at, t.detail,"
                          " s.online, s.firmware, s.image FROM update_targets t LEFT JOIN"
                          " terminal_status s ON s.terminal=t.terminal WHERE t.rollout=?",
                          (rid,)).fetchall()
        offer = _offer(conn, version)
        runs = "image" if _kind(conn, version) == "image" else "firmware"
        if state == "canary":
            canaries = [t for t in tg if t["canary"]]
            failed = [t for t in canaries if t["state"] == "failed"]
            able = [t for t in canaries if t["state"] != "unable"]
            if failed or not able:
                note = ("canary %s: %s" % (failed[0]["terminal"], failed[0]["detail"]) if failed
                        else "no canary can take image updates (stock image: flash "
                             "ESP32_GENERIC-OTA over USB)")
                conn.execute("UPDATE update_rollouts SET state='halted', state_at=?, note=?"
                             " WHERE id=?", (now, note, rid))
                _publish(out, hall, [t["terminal"] for t in tg if t["state"] != "ok"], b"")
                log.warning("update %s halted: %s", version, note)
                continue
            _offered(conn, out, hall, rid, offer,
                     [t["terminal"] for t in canaries if t["state"] == "waiting"], now)
            healthy = all(t["state"] == "ok" and t["online"] and t[runs] == version
                          and now - t["state_at"] >= hold_s for t in able)
            if not healthy:
                continue
            conn.execute("UPDATE update_rollouts SET state='rollout', state_at=? WHERE id=?",
                         (now, rid))
            log.info("update %s: the canaries stayed healthy, offering it to the rest", version)
        rest = [t["terminal"] for t in tg if t["state"] == "waiting"]
        _offered(conn, out, hall, rid, offer, rest, now)
        if all(t["state"] in ("ok", "failed", "unable") for t in tg):
            bad = [t["terminal"] for t in tg if t["state"] == "failed"]
            unable = [t["terminal"] for t in tg if t["state"] == "unable"]
            note = "; ".join(([("rolled back on %s" % ", ".join(bad))] if bad else [])
                             + ([("no OTA slot (stock image) on %s" % ", ".join(unable))]
                                if unable else []))
            conn.execute("UPDATE update_rollouts SET state='done', state_at=?, note=? WHERE id=?",
                         (now, note, rid))
            _publish(out, hall, [t["terminal"] for t in tg], b"")
            log.info("update %s done (%d terminals, %d rolled back)", version, len(tg), len(bad))
    return out


def offers(conn: sqlite3.Connection, hall: str) -> list[Offer]:
    """Every offer standing (for a reconnect of the daemon)."""
    out: list[Offer] = []
    for rid, version in conn.execute("SELECT id, version FROM update_rollouts WHERE state IN"
                                     " ('canary','rollout')").fetchall():
        offer = _offer(conn, version)
        for (term,) in conn.execute("SELECT terminal FROM update_targets WHERE rollout=? AND"
                                    " state='offered'", (rid,)):
            out.append((topics.topic(hall, term, topics.UPDATE), offer))
    return out


class Bundles:
    """The bundles' bytes, read once per version, for serving chunks."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}

    def get(self, conn: sqlite3.Connection, version: str) -> bytes | None:
        if version not in self._data:
            row = conn.execute("SELECT path, sha256 FROM update_bundles WHERE version=?",
                               (version,)).fetchone()
            if row is None:
                return None
            try:
                with open(row[0], "rb") as f:
                    data = f.read()
            except OSError as e:
                log.error("update bundle %s cannot be read: %s", row[0], e)
                return None
            if hashlib.sha256(data).hexdigest() != row[1]:
                log.error("update bundle %s has changed since it was recorded", row[0])
                return None
            self._data[version] = data
        return self._data[version]

    def chunk(self, conn: sqlite3.Connection, hall: str, terminal: str,
              payload: bytes | bytearray) -> tuple[str, bytes]:
        """The answer to a terminal's fetch: (chunk topic, payload). ValueError for a request
        that cannot be served (malformed, an unknown version, past the end)."""
        req = ota.decode_fetch(payload)
        data = self.get(conn, req["ver"])
        if data is None:
            raise ValueError("fetch: no bundle for version %s" % req["ver"])
        at, n = req["at"], req["n"]
        if at >= len(data):
            raise ValueError("fetch: offset %d past the bundle's end (%d)" % (at, len(data)))
        return (topics.topic(hall, terminal, topics.CHUNK),
                ota.encode_chunk(req["ver"], at, data[at:at + n]))


def rollouts(conn: sqlite3.Connection, limit: int = 5) -> list[RolloutRow]:
    out: list[RolloutRow] = []
    for r in conn.execute("SELECT * FROM update_rollouts ORDER BY id DESC LIMIT ?", (limit,)):
        tg = {t[0]: t[1] for t in conn.execute(
            "SELECT terminal, state FROM update_targets WHERE rollout=? ORDER BY terminal",
            (r["id"],))}
        out.append({"id": r["id"], "version": r["version"], "state": r["state"],
                    "created_at": r["created_at"], "actor": r["actor"], "scope": r["scope"],
                    "canary": r["canary"], "hold_s": r["hold_s"], "note": r["note"],
                    "targets": tg, "kind": _kind(conn, r["version"])})
    return out

