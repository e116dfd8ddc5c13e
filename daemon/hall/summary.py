"""Counts from the hall database: per window, transactions, rated, and ratings by level."""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import TypedDict

from haochaping.protocol import levels


class WindowSummary(TypedDict):
    """One window's counts (a row of `hcp summary`, an item of its --json "windows")."""
    window: str
    transactions: int
    rated: int
    levels: dict[int, int]  # level code -> ratings that count at that level


def window_summary(conn: sqlite3.Connection, since_tx: int = 0) -> list[WindowSummary]:
    """Per window: transactions, rated, ratings by level (only transactions with an id above
    since_tx: one run's, when a simulation shares the hall with others)."""
    rows: dict[str, WindowSummary] = {}
    for r in conn.execute("SELECT window, COUNT(*) AS transactions, COUNT(rating_id) AS rated"
                          " FROM transactions WHERE id > ? GROUP BY window ORDER BY window",
                          (since_tx,)):
        rows[r["window"]] = {"window": r["window"], "transactions": r["transactions"],
                             "rated": r["rated"], "levels": {c[0]: 0 for c in levels.LEVELS}}
    for r in conn.execute("SELECT t.window, r.level, COUNT(*) AS n FROM transactions t"
                          " JOIN ratings r ON r.id=t.rating_id WHERE t.id > ?"
                          " GROUP BY t.window, r.level", (since_tx,)):
        rows[r["window"]]["levels"][r["level"]] = r["n"]
    return list(rows.values())


def outcome_counts(conn: sqlite3.Connection, since: float = 0) -> dict[str, int]:
    """Ratings by outcome, and messages refused (received at or after `since`)."""
    out = {r[0]: r[1] for r in conn.execute(
        "SELECT outcome, COUNT(*) FROM ratings WHERE received_at >= ? GROUP BY outcome",
        (since,))}
    out["rejected"] = conn.execute("SELECT COUNT(*) FROM rejected WHERE received_at >= ?",
                                   (since,)).fetchone()[0]
    return out


def last_transaction(conn: sqlite3.Connection) -> int:
    """The id of the hall's latest transaction (0: none yet)."""
    return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM transactions").fetchone()[0])


def format_summary(rows: Iterable[WindowSummary]) -> str:
    head = "%-8s %12s %6s  " % ("window", "transactions", "rated") + "  ".join(
        "%s" % lv[1] for lv in levels.LEVELS)
    lines = [head]
    for r in rows:
        lines.append("%-8s %12d %6d  " % (r["window"], r["transactions"], r["rated"]) + "  ".join(
            ("%" + str(_width(lv[1])) + "d") % r["levels"][lv[0]] for lv in levels.LEVELS))
    return "\n".join(lines)


def _width(name: str) -> int:
    return len(name) * 2  # CJK characters take two columns in a terminal
