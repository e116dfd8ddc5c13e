"""Retention: the store's rows of whole quarters before a month, exported to CSV files and
removed, with each quarter's report figures kept in the store (`hcp store archive`).

What goes, in one database transaction after the files are written and synced:
  transactions   finished before the month
  ratings        of those transactions, and unbound ones (no transaction in the store) rated
                 before the month
  reasons        of those ratings, and unbound ones rated before the month
  cases, case_events, appeals   of those transactions and ratings
What stays: halls, batches (replays are still answered), province_items (the delivery log),
and in archived_reports each archived quarter's figures (quarterly.figures), which
`hcp report quarterly` and the trend of later reports read instead of the rows.

Refused while a case of those rows is open or an appeal pending: the figures would change.
The counts removed must equal the counts written, or nothing is removed.
"""
from __future__ import annotations

import csv
import datetime
import hashlib
import json
import os
import sqlite3
import time
from typing import TYPE_CHECKING, Any, TypedDict

from haochaping.daemon.errors import HcpError
from haochaping.daemon.store import access, quarterly, scores, unit_months

if TYPE_CHECKING:
    from haochaping.daemon.rules.workdays import Calendar
    from haochaping.daemon.store.backends import Store

# each table's rows to archive, as a condition with one %s: the first day kept (seconds);
# in the order they are deleted (a condition may read the tables deleted after it)
_TX = "SELECT uid FROM transactions WHERE finished_at < %s"
_RATING = ("(tx_uid IN (%s) OR (rated_at < %%s AND NOT EXISTS (SELECT 1 FROM transactions t"
           " WHERE t.uid = ratings.tx_uid)))" % _TX)
WHERE: dict[str, tuple[str, int]] = {
    "case_events": ("case_id IN (SELECT id FROM cases WHERE tx_uid IN (%s))" % _TX, 1),
    "cases": ("tx_uid IN (%s)" % _TX, 1),
    "appeals": ("rating_uid IN (SELECT uid FROM ratings WHERE %s)" % _RATING, 2),
    "reasons": ("(EXISTS (SELECT 1 FROM ratings WHERE ratings.hall = reasons.hall AND"
                " ratings.terminal = reasons.terminal AND ratings.seq = reasons.ref_seq AND %s)"
                " OR (reasons.rated_at < %%s AND NOT EXISTS (SELECT 1 FROM ratings WHERE"
                " ratings.hall = reasons.hall AND ratings.terminal = reasons.terminal AND"
                " ratings.seq = reasons.ref_seq)))" % _RATING, 3),
    "ratings": (_RATING, 2),
    "transactions": ("finished_at < %s", 1),
}


class Archived(TypedDict):
    """archive(): what was written and removed."""
    before: str                     # YYYY-MM, the first month kept
    rows: dict[str, int]            # per table: rows written to its file and removed
    files: dict[str, str]           # per table (and "manifest"): the path written
    periods: list[str]              # quarters whose figures are kept in archived_reports


def month_start(text: str) -> datetime.date:
    """'2023-01' → 2023-01-01; only the first month of a quarter (figures are kept per
    quarter, 第十一条)."""
    try:
        day = datetime.date.fromisoformat(text + "-01")
    except ValueError:
        raise HcpError("--before must be a month as YYYY-MM, not %r" % text) from None
    if day.month not in (1, 4, 7, 10):
        raise HcpError("--before %s: must be the first month of a quarter (YYYY-01, -04, -07"
                       " or -10): the store keeps the archived quarters' report figures" % text)
    return day


def _periods(store: Store, cutoff: float) -> list[str]:
    """The quarters (from 2020Q3) with a transaction before cutoff."""
    first = access.query(store, "SELECT MIN(finished_at) FROM transactions WHERE finished_at"
                                " < %s", (cutoff,))[0][0]
    if first is None:
        return []
    day = access.when(max(first, scores.bounds("2020Q3")[2])).date()
    end = access.when(cutoff).date()
    out = []
    y, q = day.year, (day.month - 1) // 3 + 1
    while datetime.date(y, 3 * q - 2, 1) < end:
        out.append("%dQ%d" % (y, q))
        y, q = (y, q + 1) if q < 4 else (y + 1, 1)
    return out


def archive(store: Store, before: str, out_dir: str, now: float | None = None,
            calendar: Calendar | None = None) -> Archived:
    now = time.time() if now is None else now
    cutoff = access.day_start(month_start(before))
    if cutoff > now:
        raise HcpError("--before %s is not in the past" % before)
    busy = access.query(store, "SELECT COUNT(*) FROM cases WHERE status = 'open' AND %s"
                        % WHERE["cases"][0], (cutoff,))[0][0]
    pending = access.query(store, "SELECT COUNT(*) FROM appeals WHERE status = 'pending' AND %s"
                           % WHERE["appeals"][0], (cutoff, cutoff))[0][0]
    if busy or pending:
        raise HcpError("cannot archive before %s: %d rectification case(s) still open and %d"
                       " appeal(s) pending there (their figures would change); close them"
                       " first" % (before, busy, pending))
    os.makedirs(out_dir, exist_ok=True)
    periods = [p for p in _periods(store, cutoff) if quarterly.kept(store, p) is None]
    figures = {p: quarterly.figures(store, p, False, now, calendar) for p in periods}
    rows: dict[str, int] = {}
    files: dict[str, str] = {}
    digests: dict[str, str] = {}
    with access.atomic(store) as t:
        for table, (where, n) in WHERE.items():
            path = os.path.join(out_dir, "%s-before-%s.csv" % (table, before))
            sql = _sql(t, "SELECT * FROM %s WHERE %s" % (table, where))
            cur: Any
            if isinstance(t.conn, sqlite3.Connection):
                cur = t.conn.cursor()
            else:  # a server-side cursor: a year of rows is not held in memory at once
                cur = t.conn.cursor(name="hcp_archive_" + table)
            cur.execute(sql, (cutoff,) * n)
            cols = [d[0] for d in cur.description or ()]
            count = 0
            h = hashlib.sha256()
            with open(path, "w", encoding="utf-8", newline="") as f:
                w = csv.writer(f, lineterminator="\n")
                w.writerow(cols)
                while chunk := cur.fetchmany(10000):
                    w.writerows([_cell(v) for v in r] for r in chunk)
                    count += len(chunk)
                f.flush()
                os.fsync(f.fileno())
            cur.close()
            with open(path, "rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
            rows[table], files[table], digests[table] = count, path, h.hexdigest()
        for table, (where, n) in WHERE.items():
            gone = t.x("DELETE FROM %s WHERE %s" % (table, where), (cutoff,) * n)
            if gone != rows[table]:
                raise HcpError("archive: %d %s rows removed but %d written (rows arrived"
                               " meanwhile?); nothing was removed, run it again"
                               % (gone, table, rows[table]))
        unit_months.forget(t, month_start(before))
        for p, fig in figures.items():
            t.x("INSERT INTO archived_reports (period, figures, archived_at) VALUES"
                " (%s, %s, %s)", (p, json.dumps(fig, ensure_ascii=False), now))
        manifest = os.path.join(out_dir, "manifest-before-%s.json" % before)
        with open(manifest, "w", encoding="utf-8") as f:
            json.dump({"before": before, "archived_at": now, "rows": rows, "sha256": digests,
                       "periods": periods, "figures": figures}, f, ensure_ascii=False, indent=1)
            f.flush()
            os.fsync(f.fileno())
        files["manifest"] = manifest
    return {"before": before, "rows": rows, "files": files, "periods": periods}


def _sql(t: access.Tx, sql: str) -> str:
    return sql.replace("%s", "?") if t.sqlite else sql


def _cell(v: object) -> object:
    """bytes (a sealed identity) as \\x and hex, so that the CSV stays text."""
    if isinstance(v, memoryview):
        v = bytes(v)
    return "\\x" + v.hex() if isinstance(v, bytes) else v
