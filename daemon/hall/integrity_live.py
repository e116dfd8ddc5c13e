"""Today's integrity findings at one hall, live from the hall database (the duty manager's
view; the store's `hcp integrity report` is the period's). The hall knows more than the store:
a transaction ended without 请评价 is seen as such here, not only as an unrated one; it knows
whether the window's terminals were online when each service ended (their retained status,
logged on every change); and it can compare a real-name phone rater's number with the staff's
(both as keyed hashes, daemon/hall/phones.py: no number is read or written here)."""
from __future__ import annotations

import bisect
import datetime
import sqlite3
import time

from haochaping.daemon.hall.console import staff as staff_lib
from haochaping.daemon.rules import integrity, scoring
from haochaping.daemon.rules.integrity import Case, Finding, StaffPhone, Thresholds

_BEIJING = datetime.timezone(datetime.timedelta(hours=8))
_SQL = """
SELECT t.window, t.staff, t.finished_at, r.level, r.received_at, r.terminal, r.seq,
       r.press_delay_ms, m.phone_mac, t.token, t.prompt_closed_by
FROM transactions t LEFT JOIN ratings r ON r.id = t.rating_id
LEFT JOIN mobile_raters m ON m.rating_id = r.id
WHERE t.finished_at >= ? AND t.finished_at < ?
"""


class _Online:
    """Whether a terminal was online at a time, from terminal_status_log (its changes)."""

    def __init__(self, conn: sqlite3.Connection, end: float) -> None:
        self.at: dict[str, list[float]] = {}
        self.state: dict[str, list[bool]] = {}
        for term, at, online in conn.execute(
                "SELECT terminal, at, online FROM terminal_status_log WHERE at < ?"
                " ORDER BY terminal, at", (end,)):
            self.at.setdefault(term, []).append(at)
            self.state.setdefault(term, []).append(bool(online))

    def online(self, terminal: str, when: float) -> bool | None:
        """Its last known state at `when`; None before its first status."""
        i = bisect.bisect_right(self.at.get(terminal, []), when) - 1
        return self.state[terminal][i] if i >= 0 else None


def _offline(terms: list[str], when: float, seen: _Online) -> bool | None:
    """Every terminal offline as the service ended (True), one online (False), or not known."""
    states = [seen.online(t, when) for t in terms]
    if any(s for s in states):
        return False
    if states and all(s is False for s in states):
        return True
    return None


def day_cases(conn: sqlite3.Connection, hall: str, start: float, end: float) -> list[Case]:
    reasons: dict[tuple[str, int], list[str]] = {}
    for terminal, ref, reason in conn.execute(
            "SELECT s.terminal, s.ref, s.reason FROM reasons s JOIN ratings r"
            " ON r.terminal = s.terminal AND r.seq = s.ref JOIN transactions t"
            " ON t.rating_id = r.id WHERE t.finished_at >= ? AND t.finished_at < ?",
            (start, end)):
        reasons.setdefault((terminal, ref), []).append(reason)
    shown: dict[str, list[str]] = {}
    for token, terminal in conn.execute(
            "SELECT p.token, p.terminal FROM prompt_terminals p JOIN transactions t"
            " ON t.token = p.token WHERE t.finished_at >= ? AND t.finished_at < ?",
            (start, end)):
        shown.setdefault(token, []).append(terminal)
    paired: dict[str, list[str]] = {}
    for window, terminal in conn.execute("SELECT window, terminal FROM pairings"):
        paired.setdefault(window, []).append(terminal)
    seen = _Online(conn, end)
    out: list[Case] = []
    for (w, staff, finished, level, received, term, seq, press_ms, mac, token,
         closed_by) in conn.execute(_SQL, (start, end)):
        if closed_by == "no-terminal":
            offline: bool | None = True       # no terminal paired: nobody could rate it
        else:   # the terminals prompted; a transaction ended with no prompt: the window's now
            offline = _offline(shown.get(token, []) if token else paired.get(w, []),
                               finished, seen)
        out.append({"hall": hall, "window": w, "staff": staff, "finished_at": finished,
                    "level": level, "delay": None if received is None else received - finished,
                    "press_delay": None if press_ms is None else press_ms / 1000,
                    "reasons": tuple(sorted(reasons.get((term, seq), ()))) if term else (),
                    "phone": "", "phone_mac": mac or "", "terminal_offline": offline})
    return out


def staff_phones(conn: sqlite3.Connection, hall: str) -> list[StaffPhone]:
    """The staff numbers recorded with `hcp staff set-phone`, as keyed hashes."""
    return [{"hall": hall, "staff": number, "mac": mac, "tail": tail}
            for number, mac, tail in staff_lib.phones(conn)]


def between(conn: sqlite3.Connection, hall: str, start: float, end: float,
            t: Thresholds | None = None) -> list[Finding]:
    """Findings over the transactions finished in [start, end)."""
    return integrity.findings(day_cases(conn, hall, start, end), t, staff_phones(conn, hall))


def today(conn: sqlite3.Connection, hall: str, now: float | None = None,
          t: Thresholds | None = None) -> list[Finding]:
    """Findings over today's transactions (midnight to midnight, Beijing time)."""
    now = time.time() if now is None else now
    start = now - (now + 8 * 3600) % 86400
    return between(conn, hall, start, start + 86400, t)


def period(conn: sqlite3.Connection, hall: str, text: str,
           t: Thresholds | None = None) -> list[Finding]:
    """Findings over a period like 2026Q4, 2026-11 or 2026 (Beijing days): the hall's own
    detectors (terminals offline, staff numbers) at a quarter's depth, which the store's
    report cannot have. Raises HcpError for a period it cannot read."""
    first, last = scoring.parse_period(text)
    start = datetime.datetime.combine(first, datetime.time(), _BEIJING).timestamp()
    end = datetime.datetime.combine(last + datetime.timedelta(days=1), datetime.time(),
                                    _BEIJING).timestamp()
    return between(conn, hall, start, end, t)
