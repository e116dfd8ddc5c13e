"""The hall side of hall IT work: who is acting, provisioning and replacing terminals in the hall
database and at the broker at once, and the terminal list that `hcp terminals` shows."""
import getpass
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Container, Sequence
from typing import TypedDict

from haochaping.daemon.errors import HcpError
from haochaping.daemon.hall import registry
from haochaping.daemon.hall.ingest import KEEP_PER_MINUTE
from haochaping.protocol import topics
from haochaping.tools.device import mosquitto_setup

RESERVED = ("hall-daemon",)


class TerminalRow(TypedDict):
    """One active terminal as `hcp terminals` shows it (and prints with --json). `state` is
    "online", "offline" or "never seen"; `last_seen` a Unix time; firmware to rssi are what its
    last status said (None before the first)."""
    terminal: str
    window: str | None
    state: str
    last_seen: float | None
    firmware: str | None
    board: str | None
    heap: int | None
    backlog: int | None
    rssi: int | None
    flagged: bool
    config_errors: list[str]
    rejected: int               # messages from it the daemon refused (rejected_counts)
    last_rejected: str | None   # the reason of the last one
    update: str | None          # what an over-the-air update is doing there ("ok 0.3.0", ...)
    image: str | None           # the MicroPython it runs ("1.24.1", or an image update's version)


def who(actor: str | None = None) -> str:
    """The person acting: --actor, else the user behind sudo, else the login user."""
    if actor:
        return actor
    for var in ("SUDO_USER", "USER", "LOGNAME"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def broker_folder(config_path: str, broker_dir: str | None = None) -> str:
    """The hall's broker folder: --broker-dir, else `broker/` next to hall.toml."""
    return broker_dir or os.path.join(os.path.dirname(os.path.abspath(config_path)), "broker")


def check_terminal_id(terminal: str) -> None:
    if not topics.valid_id(terminal):
        raise HcpError("terminal %r: use 1-32 of A-Z a-z 0-9 _ -" % terminal)
    if terminal in RESERVED:
        raise HcpError("terminal %r: that name is the daemon's broker user" % terminal)


def add_terminal(conn: sqlite3.Connection, hall: str, terminal: str, out: str,
                 actor: str) -> None:
    """Register a terminal with a fresh signing key, and write its secrets for provisioning by
    hand to `out` ({"hall", "terminal", "key"} as JSON, mode 600; never printed)."""
    folder = os.path.dirname(os.path.abspath(out))
    try:  # a file first: a key registered but written nowhere would be lost
        fd, tmp = tempfile.mkstemp(prefix=".hcp-", dir=folder)   # mode 600
    except OSError as e:
        raise HcpError("cannot write %s: %s; nothing was registered" % (out, e.strerror or e)
                       ) from None
    try:  # an existing --out (say, the key of a terminal registered before) stays as it was
        with os.fdopen(fd, "w") as f:
            key = registry.add_terminal(conn, terminal, actor=actor)
            json.dump({"hall": hall, "terminal": terminal, "key": key.hex()}, f)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise


def without_broker_password(conn: sqlite3.Connection, known: Container[str]) -> list[str]:
    """The active terminals (sorted) that are not among `known`, the users of the hall broker's
    password file: they cannot log in until provisioned again."""
    return [r[0] for r in conn.execute("SELECT id FROM terminals WHERE revoked_at IS NULL"
                                       " ORDER BY id") if r[0] not in known]


def replace(conn: sqlite3.Connection, broker_dir: str, old: str, new: str,
            actor: str) -> tuple[str | None, int | None]:
    """Move `old`'s pairing to `new` and revoke `old` at the daemon and at the broker: its
    ratings are refused as from an unknown terminal, its broker login is refused (the broker is
    reloaded). Safe to run again: a half-done replace (say, the broker folder was unwritable)
    is finished. Return (window or None, broker pid reloaded or None)."""
    window: str | None = registry.replace(conn, old, new, actor)
    try:
        mosquitto_setup.remove_users(broker_dir, [old])
    except OSError as e:
        raise HcpError("%s is revoked at the daemon, but its broker password could not be removed "
                       "(%s): fix that and run the same command again"
                       % (old, e.strerror or e)) from None
    return window, mosquitto_setup.reload(broker_dir)


def terminal_rows(conn: sqlite3.Connection, now: float | None = None,
                  offline_after_s: float = 600) -> list[TerminalRow]:
    """Every active terminal: its window, online state, last seen, what its status said, and
    whether it is flagged (offline, or never seen, for longer than offline_after_s)."""
    now = now or time.time()
    last_rating = dict(conn.execute(
        "SELECT terminal, MAX(received_at) FROM ratings GROUP BY terminal").fetchall())
    refused = {r[0]: (r[1], r[2]) for r in conn.execute(
        "SELECT terminal, total, last_reason FROM rejected_counts")}
    rows = conn.execute(
        "SELECT t.id, t.added_at, p.window, s.online, s.firmware, s.board, s.heap, s.backlog,"
        " s.rssi, s.last_seen, s.errors, s.update_state, s.image FROM terminals t"
        " LEFT JOIN pairings p ON p.terminal=t.id"
        " LEFT JOIN terminal_status s ON s.terminal=t.id"
        " WHERE t.revoked_at IS NULL ORDER BY p.window IS NULL, p.window, t.id").fetchall()
    out: list[TerminalRow] = []
    for r in rows:
        seen = max([v for v in (r["last_seen"], last_rating.get(r["id"])) if v] or [0]) or None
        online = bool(r["online"]) if r["online"] is not None else False
        since = seen if seen else r["added_at"]
        flagged = (not online) and now - since > offline_after_s
        out.append({
            "terminal": r["id"], "window": r["window"],
            "state": "online" if online else ("offline" if seen else "never seen"),
            "last_seen": seen, "firmware": r["firmware"], "board": r["board"],
            "heap": r["heap"], "backlog": r["backlog"], "rssi": r["rssi"],
            "flagged": flagged or bool(r["errors"]),
            "config_errors": json.loads(r["errors"]) if r["errors"] else [],
            "rejected": refused.get(r["id"], (0, None))[0],
            "last_rejected": refused.get(r["id"], (0, None))[1],
            "update": r["update_state"],
            "image": r["image"],
        })
    return out


def _ago(now: float, t: float | None) -> str:
    if not t:
        return "-"
    s = max(0, int(now - t))
    if s < 120:
        return "%ds ago" % s
    if s < 7200:
        return "%dm ago" % (s // 60)
    if s < 172800:
        return "%dh ago" % (s // 3600)
    return "%dd ago" % (s // 86400)


def format_rows(rows: Sequence[TerminalRow], now: float | None = None) -> str:
    now = now or time.time()
    head = ("", "TERMINAL", "WINDOW", "STATE", "LAST SEEN", "FIRMWARE", "MICROPYTHON", "BOARD",
            "HEAP", "BACKLOG", "RSSI", "UPDATE")
    table: list[tuple[str, ...]] = [head]
    for r in rows:
        table.append(("!" if r["flagged"] else "", r["terminal"], r["window"] or "-", r["state"],
                      _ago(now, r["last_seen"]), r["firmware"] or "-", r["image"] or "-",
                      r["board"] or "-",
                      "-" if r["heap"] is None else "%dK" % (r["heap"] // 1024),
                      "-" if r["backlog"] is None else str(r["backlog"]),
                      "-" if r["rssi"] is None else "%d dBm" % r["rssi"],
                      r["update"] or "-"))
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in table]
    for r in rows:
        if r["config_errors"]:
            lines.append("! %s cannot rate, its config is wrong: %s (fix it with `hcp device"
                         " provision`)" % (r["terminal"], "; ".join(r["config_errors"])))
    for r in rows:
        if r["rejected"]:
            lines.append("  %s: %d message(s) refused, the last: %s (table `rejected` keeps"
                         " the first %d a minute)" % (r["terminal"], r["rejected"],
                                                      r["last_rejected"], KEEP_PER_MINUTE))
    return "\n".join(lines)
