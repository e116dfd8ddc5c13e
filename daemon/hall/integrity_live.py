"""Today's integrity findings at one hall, live from the hall database (the duty manager's
view; the store's `hcp integrity report` is the period's). The hall knows more than the store:
a transaction ended without 请评价 is seen as such here, not only as an unrated one."""
from __future__ import annotations

import sqlite3
import time

from haochaping.daemon.rules import integrity
from haochaping.daemon.rules.integrity import Case, Finding, Thresholds

_SQL = """
SELECT t.window, t.staff, t.finished_at, r.level, r.received_at, r.terminal, r.seq
FROM transactions t LEFT JOIN ratings r ON r.id = t.rating_id
WHERE t.finished_at >= ? AND t.finished_at < ?
"""


def day_cases(conn: sqlite3.Connection, hall: str, start: float, end: float) -> list[Case]:
    reasons: dict[tuple[str, int], list[str]] = {}
    for terminal, ref, reason in conn.execute(
            "SELECT s.terminal, s.ref, s.reason FROM reasons s JOIN ratings r"
            " ON r.terminal = s.terminal AND r.seq = s.ref JOIN transactions t"
            " ON t.rating_id = r.id WHERE t.finished_at >= ? AND t.finished_at < ?",
            (start, end)):
        reasons.setdefault((terminal, ref), []).append(reason)
    return [{"hall": hall, "window": w, "staff": staff, "finished_at": finished, "level": level,
             "delay": None if received is None else received - finished,
             "reasons": tuple(sorted(reasons.get((term, seq), ()))) if term else (),
             "phone": ""}
            for w, staff, finished, level, received, term, seq in conn.execute(_SQL,
                                                                              (start, end))]


def today(conn: sqlite3.Connection, hall: str, now: float | None = None,
          t: Thresholds | None = None) -> list[Finding]:
    """Findings over today's transactions (midnight to midnight, Beijing time)."""
    now = time.time() if now is None else now
    start = now - (now + 8 * 3600) % 86400
    return integrity.findings(day_cases(conn, hall, start, start + 86400), t)
