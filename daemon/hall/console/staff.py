"""Console accounts: window staff and duty managers (hcp staff add/disable/enable/set-pin/list).

PINs are stored only as scrypt hashes (salted, memory-hard), never logged, never in the audit
detail. A disabled account keeps its row (audit entries name it) but cannot sign in, and a
signed-in session of it ends at its next request. Changing a PIN ends the account's sessions too.
"""
import hashlib
import hmac
import secrets
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from haochaping.daemon.errors import HcpError
from haochaping.daemon.hall import audit
from haochaping.protocol import fields, topics

ROLES = ("staff", "manager")
PIN_MIN, PIN_MAX = 6, 32
# scrypt cost: about 16 MiB and a few tens of milliseconds per check on a small hall server
_N, _R, _P = 2 ** 14, 8, 1


Account = dict[str, Any]  # a console_staff row: number, name, role, pin_hash, ...


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return "scrypt$%d$%d$%d$%s$%s" % (_N, _R, _P, salt.hex(), digest.hex())


def check_pin(pin: str, stored: str) -> bool:
    """True if `pin` matches the stored hash (constant-time compare)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(pin.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                             p=int(p), dklen=len(digest) // 2)
    except (ValueError, AttributeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


_DUMMY = hash_pin("not-a-pin-000000", b"\0" * 16)


def _check_number(number: str) -> None:
    if not topics.valid_id(number):
        raise HcpError("staff number %r: use 1-32 of A-Z a-z 0-9 _ -" % number)


def _check_pin(pin: str) -> None:
    if not (PIN_MIN <= len(pin) <= PIN_MAX) or not pin.isprintable() or pin != pin.strip():
        raise HcpError("PIN: %d to %d characters (digits suit a keypad), no spaces at the ends"
                       % (PIN_MIN, PIN_MAX))


def add(conn: sqlite3.Connection, number: str, pin: str, role: str = "staff", name: str = "",
        actor: str = "hall-it", now: float | None = None) -> None:
    """Create an account. Raise HcpError if the number is taken or a value is wrong."""
    _check_number(number)
    _check_pin(pin)
    if role not in ROLES:
        raise HcpError("role %r: one of %s" % (role, ", ".join(ROLES)))
    try:  # the console shows it on every page: the field rules of everything else
        fields.text("name", name, 64)
    except ValueError as e:
        raise HcpError(str(e)) from None
    now = now or time.time()
    pin_hash = hash_pin(pin)
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        if conn.execute("SELECT 1 FROM console_staff WHERE number=?", (number,)).fetchone():
            raise HcpError("staff number %s exists already: `hcp staff set-pin` or "
                           "`hcp staff enable` it, or choose another number" % number)
        conn.execute("INSERT INTO console_staff (number, name, role, pin_hash, added_at,"
                     " pin_changed_at) VALUES (?,?,?,?,?,?)",
                     (number, name, role, pin_hash, now, now))
        audit.record(conn, actor, "staff.add", now=now, staff=number, role=role)


def _update(conn: sqlite3.Connection, number: str, sql: str, args: tuple[Any, ...], action: str,
            actor: str, now: float) -> None:
    _check_number(number)
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        if conn.execute("UPDATE console_staff SET " + sql + " WHERE number=?",
                        args + (number,)).rowcount == 0:
            raise HcpError("no staff number %s (`hcp staff list` shows them)" % number)
        audit.record(conn, actor, action, now=now, staff=number)


def disable(conn: sqlite3.Connection, number: str, actor: str = "hall-it",
            now: float | None = None) -> None:
    """The account can no longer sign in; its open sessions end at their next request."""
    now = now or time.time()
    _update(conn, number, "disabled_at=COALESCE(disabled_at, ?)", (now,), "staff.disable",
            actor, now)


def enable(conn: sqlite3.Connection, number: str, actor: str = "hall-it",
           now: float | None = None) -> None:
    now = now or time.time()
    _update(conn, number, "disabled_at=NULL", (), "staff.enable", actor, now)


def set_pin(conn: sqlite3.Connection, number: str, pin: str, actor: str = "hall-it",
            now: float | None = None) -> None:
    """A new PIN; every session signed in with the old one ends."""
    _check_pin(pin)
    now = now or time.time()
    _update(conn, number, "pin_hash=?, pin_changed_at=?", (hash_pin(pin), now), "staff.set-pin",
            actor, now)


def set_phone(conn: sqlite3.Connection, number: str, phone_mac: str | None,
              phone_tail: str = "", actor: str = "hall-it", now: float | None = None) -> None:
    """Record a staff member's phone number as its keyed hash and last 4 digits (phones.py),
    or forget it (phone_mac None). The integrity detectors name a staff member whose number
    rates as a citizen (第十一条); the number itself is never stored, logged or audited."""
    now = now or time.time()
    _update(conn, number, "phone_mac=?, phone_tail=?",
            (phone_mac, phone_tail if phone_mac else None),
            "staff.set-phone" if phone_mac else "staff.clear-phone", actor, now)


def phones(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    """(staff number, phone hash, last 4 digits) of every account with a phone recorded."""
    return [(r[0], r[1], r[2] or "") for r in conn.execute(
        "SELECT number, phone_mac, phone_tail FROM console_staff WHERE phone_mac IS NOT NULL"
        " ORDER BY number")]


def listing(conn: sqlite3.Connection) -> list[Account]:
    return [dict(r) for r in conn.execute(
        "SELECT number, name, role, added_at, disabled_at FROM console_staff ORDER BY number")]


def get(conn: sqlite3.Connection, number: str) -> Account | None:
    """The account row (dict) or None."""
    r = conn.execute("SELECT number, name, role, pin_hash, disabled_at, pin_changed_at"
                     " FROM console_staff WHERE number=?", (number,)).fetchone()
    return None if r is None else dict(r)


def verify(conn: sqlite3.Connection, number: str, pin: str) -> Account | None:
    """The account if the number exists, is enabled and the PIN matches, else None. Takes the
    same time for an unknown number as for a wrong PIN (no hint which numbers exist)."""
    acct = get(conn, number) if topics.valid_id(number) else None
    ok = check_pin(pin, acct["pin_hash"] if acct else _DUMMY)
    if acct is None or not ok or acct["disabled_at"] is not None:
        return None
    return acct


def demo_accounts(conn: sqlite3.Connection, windows: Iterable[str], base_url: str) -> list[str]:
    """For `hcp demo`: two staff per window, numbered as the scripted day's window system numbers
    them (S<nn>01, S<nn>02), and one manager, with random PINs. Returns the lines to print
    (addresses, numbers and PINs: a demo hall only)."""
    lines = []
    for n, w in enumerate(windows, 1):
        pins = []
        for k, name in ((1, "甲"), (2, "乙")):
            pins.append(("S%02d%02d" % (n, k), "%06d" % secrets.randbelow(10 ** 6)))
            add(conn, pins[-1][0], pins[-1][1], name="%s窗口%s" % (w, name), actor="hcp-demo")
        lines.append("window %s staff page: %s/window/%s  (staff number %s, PIN %s)"
                     % (w, base_url, w, pins[0][0], pins[0][1]))
    pin = "%06d" % secrets.randbelow(10 ** 6)
    add(conn, "M01", pin, role="manager", name="值班长", actor="hcp-demo")
    lines.append("duty manager page:   %s/hall  (staff number M01, PIN %s)" % (base_url, pin))
    return lines
