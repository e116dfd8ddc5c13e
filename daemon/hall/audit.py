"""The audit log: every change hall IT or staff make, with who and when (hcp audit)."""
import json
import time


def record(conn, actor, action, now=None, **detail):
    """Append one entry (inside the caller's transaction, if any). Never pass secrets."""
    conn.execute("INSERT INTO audit (at, actor, action, detail) VALUES (?,?,?,?)",
                 (now or time.time(), actor, action, json.dumps(detail, ensure_ascii=False,
                                                                  sort_keys=True)))


def entries(conn, since=None, limit=100):
    rows = conn.execute("SELECT at, actor, action, detail FROM audit WHERE at >= ?"
                        " ORDER BY id DESC LIMIT ?", (since or 0, limit)).fetchall()
    return [{"at": r[0], "actor": r[1], "action": r[2], "detail": json.loads(r[3])} for r in rows]
