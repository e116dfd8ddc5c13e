"""What the pages show, read from the hall database on the page's own read connection (WAL lets
it read while the daemon's writer thread writes). Only levels, never rater data (第六条)."""
import datetime
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from haochaping.daemon.hall import registry, windows
from haochaping.daemon.rules.workdays import SHANGHAI
from haochaping.protocol import levels

ALERTS_SHOWN = 12  # today's newest bad reviews on the manager page; the rest are counted
View = dict[str, Any]  # what a page's state call and event stream send, as JSON


def reader(path: str) -> sqlite3.Connection:
    """A connection for reads only (the writer thread owns writes)."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA query_only=ON")
    return conn


def day_start(now: float) -> float:
    """Midnight Asia/Shanghai of the day `now` falls on, as a timestamp."""
    d = datetime.datetime.fromtimestamp(now, SHANGHAI).date()
    return datetime.datetime(d.year, d.month, d.day, tzinfo=SHANGHAI).timestamp()


def same_window(conn: sqlite3.Connection, window: str) -> str | None:
    """The hall's window that `window` names but for upper and lower case (w01: W01), if one."""
    alike = [w for w in all_windows(conn) if w.lower() == window.lower()]
    return alike[0] if len(alike) == 1 else None


def all_windows(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT window FROM pairings UNION"
                                       " SELECT window FROM transactions ORDER BY 1")]


def terminals(conn: sqlite3.Connection, window: str) -> list[dict[str, Any]]:
    """[{id, online, last_seen}] for the window's paired terminals."""
    out = []
    for t in registry.terminals_of(conn, window):
        st = conn.execute("SELECT online, last_seen FROM terminal_status WHERE terminal=?",
                          (t,)).fetchone()
        last = conn.execute("SELECT MAX(received_at) FROM ratings WHERE terminal=?",
                            (t,)).fetchone()[0]
        seen = max(x for x in (st["last_seen"] if st else None, last, 0) if x is not None)
        out.append({"id": t, "online": bool(st and st["online"]), "last_seen": seen or None})
    return out


def window_view(conn: sqlite3.Connection, window: str, now: float) -> View:
    """The staff page's live state. `show` is what the big status box says:
    waiting | serving | prompt | rated | not-rated | offline."""
    st = windows.window_state(conn, window)
    terms = terminals(conn, window)
    st["terminals"] = terms
    online = any(t["online"] for t in terms)
    state = st["state"]
    show = {"idle": "waiting", "serving": "serving", "prompting": "prompt"}.get(state, state)
    if show in ("waiting", "serving", "prompt") and not online:
        show = "offline"
    st["show"] = show
    st["item"] = st["expires_at"] = None
    if st.get("transaction") is not None:
        tx = conn.execute("SELECT item, prompt_expires_at, prompt_closed_at FROM transactions"
                          " WHERE id=?", (st["transaction"],)).fetchone()
        st["item"] = tx["item"]
        if state == "prompting":
            st["expires_at"] = tx["prompt_expires_at"]
    st["level_name"] = levels.name(st["level"]) if st.get("level") else None
    st["now"] = now
    return st


def hall_view(conn: sqlite3.Connection, now: float,
              signed_in: Mapping[str, Sequence[tuple[str, str]]] | None = None) -> View:
    """The duty manager's page: every window and terminal, today's counts, bad-review alerts."""
    since = day_start(now)
    names = {r[0]: r[1] for r in conn.execute("SELECT number, name FROM console_staff")}
    signed_in = signed_in or {}
    rows = []
    for w in all_windows(conn):
        v = window_view(conn, w, now)
        rows.append({"window": w, "show": v["show"], "ticket": v.get("ticket"),
                     "level": v.get("level"), "terminals": v["terminals"],
                     "staff": [{"number": n, "name": nm} for n, nm in signed_in.get(w, [])]})
    counts = {str(lv[0]): 0 for lv in levels.LEVELS}
    for r in conn.execute("SELECT r.level, COUNT(*) FROM transactions t JOIN ratings r"
                          " ON r.id=t.rating_id WHERE t.finished_at >= ? GROUP BY r.level",
                          (since,)):
        counts[str(r[0])] = r[1]
    finished, rated = conn.execute(
        "SELECT COUNT(*), COUNT(rating_id) FROM transactions WHERE finished_at >= ?"
        " AND (prompt_closed_at IS NOT NULL OR rating_id IS NOT NULL)", (since,)).fetchone()
    alerts = []
    where = _BAD_TODAY % ",".join("?" * len(_BAD))
    for r in conn.execute(
            "SELECT r.id, r.level, r.reason, r.received_at, r.channel, t.window, t.staff, t.ticket,"
            " a.acked_by, a.acked_at FROM ratings r JOIN transactions t ON t.id=r.transaction_id"
            " LEFT JOIN console_alert_acks a ON a.rating=r.id WHERE " + where +
            " ORDER BY r.id DESC LIMIT ?", (since,) + _BAD + (ALERTS_SHOWN,)):
        alerts.append({"id": r["id"], "level": r["level"], "level_name": levels.name(r["level"]),
                       "reason": r["reason"], "at": r["received_at"], "window": r["window"],
                       "staff": r["staff"], "staff_name": names.get(r["staff"], ""),
                       "ticket": r["ticket"], "acked_by": r["acked_by"],
                       "acked_by_name": names.get(r["acked_by"], "") if r["acked_by"] else "",
                       "acked_at": r["acked_at"], "channel": r["channel"]})
    total, open_ = conn.execute(
        "SELECT COUNT(*), COUNT(*) - COUNT(a.rating) FROM ratings r"
        " LEFT JOIN console_alert_acks a ON a.rating=r.id WHERE " + where,
        (since,) + _BAD).fetchone()
    return {"now": now, "day_start": since, "windows": rows, "counts": counts,
            "finished": finished, "rated": rated,
            "rate": (rated / finished) if finished else None, "alerts": alerts,
            "alerts_total": total, "alerts_open": open_}


_BAD = tuple(lv[0] for lv in levels.LEVELS if lv[3])  # the levels that make an alert
_BAD_TODAY = "r.outcome='counted' AND r.received_at >= ? AND r.level IN (%s)"


def bad_rating(conn: sqlite3.Connection, rating: int) -> sqlite3.Row | None:
    """A counted bad rating (what the manager page alerts on): its window, staff, level."""
    return conn.execute(
        "SELECT r.id, r.level, t.window, t.staff, t.ticket FROM ratings r JOIN transactions t"
        " ON t.id=r.transaction_id WHERE r.id=? AND r.outcome='counted' AND r.level IN (%s)"
        % ",".join("?" * len(_BAD)), (rating,) + _BAD).fetchone()
