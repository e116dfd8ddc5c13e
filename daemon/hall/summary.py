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


def window_summary(conn: sqlite3.Connection) -> list[WindowSummary]:
    rows: dict[str, WindowSummary] = {}
    for r in conn.execute("SELECT window, COUNT(*) AS transactions, COUNT(rating_id) AS rated"
                          " FROM transactions GROUP BY window ORDER BY window"):
        rows[r["window"]] = {"window": r["window"], "transactions": r["transactions"],
                             "rated": r["rated"], "levels": {c[0]: 0 for c in levels.LEVELS}}
    for r in conn.execute("SELECT t.window, r.level, COUNT(*) AS n FROM transactions t"
                          " JOIN ratings r ON r.id=t.rating_id GROUP BY t.window, r.level"):
        rows[r["window"]]["levels"][r["level"]] = r["n"]
    return list(rows.values())


def outcome_counts(conn: sqlite3.Connection) -> dict[str, int]:
    out = {r[0]: r[1] for r in conn.execute(
        "SELECT outcome, COUNT(*) FROM ratings GROUP BY outcome")}
    out["rejected"] = conn.execute("SELECT COUNT(*) FROM rejected").fetchone()[0]
    return out


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
