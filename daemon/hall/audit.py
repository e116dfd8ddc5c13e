"""The audit log: every change hall IT or staff make, with who and when (hcp audit)."""
from __future__ import annotations

import json
import sqlite3
import time
from typing import Any, TypedDict


class AuditEntry(TypedDict):
    """One entry as `entries` returns it (and `hcp audit --json` prints it)."""
    at: float
    actor: str
    action: str
    detail: dict[str, Any]  # the JSON object `record` was given


def record(conn: sqlite3.Connection, actor: str, action: str, now: float | None = None,
           **detail: object) -> None:
    """Append one entry (inside the caller's transaction, if any). Never pass secrets."""
    conn.execute("INSERT INTO audit (at, actor, action, detail) VALUES (?,?,?,?)",
                 (now or time.time(), actor, action, json.dumps(detail, ensure_ascii=False,
                                                                  sort_keys=True)))


def entries(conn: sqlite3.Connection, since: float | None = None,
            limit: int = 100) -> list[AuditEntry]:
    rows = conn.execute("SELECT at, actor, action, detail FROM audit WHERE at >= ?"
                        " ORDER BY id DESC LIMIT ?", (since or 0, limit)).fetchall()
    return [{"at": r[0], "actor": r[1], "action": r[2], "detail": json.loads(r[3])} for r in rows]
