"""One database transaction on either backend, for the store's rule jobs (defaults, appeals,
cases, scores). They take the store object that backends.open_store returns and run plain SQL
with %s placeholders, so the rules need no change to the backends themselves."""
from __future__ import annotations

import contextlib
import datetime
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from haochaping.daemon.rules import workdays

if TYPE_CHECKING:
    import psycopg

    from haochaping.daemon.store.backends import Store

# A row as the database drivers return it: they type its values Any (here str, int, float,
# bytes or None, as the schema says).
Row = tuple[Any, ...]
# A row by column name, as the store's functions hand rows on (values as in Row).
Record = dict[str, Any]
# The parameters of one statement, one per %s.
Params = Sequence[object]


class Tx:
    """The rule jobs' view of one open transaction (atomic(), or the one storing a batch)."""

    def __init__(self, conn: sqlite3.Connection | psycopg.Connection[Row], sqlite: bool) -> None:
        self.conn, self.sqlite = conn, sqlite

    def q(self, sql: str, args: Params = ()) -> list[Row]:
        """Rows of a query."""
        if self.sqlite:
            sql = sql.replace("%s", "?")
        return self.conn.execute(sql, args).fetchall()

    def x(self, sql: str, args: Params = ()) -> int:
        """Run a statement; return the number of rows it changed."""
        if self.sqlite:
            sql = sql.replace("%s", "?")
        return self.conn.execute(sql, args).rowcount

    def xmany(self, sql: str, rows: Iterable[Params]) -> int:
        """Run a statement once per row of parameters (psycopg: pipelined, one round trip for
        them all); return the number of rows they changed together."""
        if isinstance(self.conn, sqlite3.Connection):  # (as self.sqlite says)
            return self.conn.executemany(sql.replace("%s", "?"), rows).rowcount
        cur = self.conn.cursor()
        cur.executemany(sql, rows)
        return cur.rowcount


@contextlib.contextmanager
def atomic(store: Store, write: bool = True) -> Iterator[Tx]:
    """A transaction: committed when the block ends, rolled back if it raises. SQLite: a
    writing one takes the write lock at once (BEGIN IMMEDIATE: no deadlock between two
    writers); a reading one does not, so a long report never holds up the halls' batches."""
    if store.dialect == "sqlite":
        c = store.conn
        with store.lock:
            c.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield Tx(c, True)
                c.execute("COMMIT")
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise
        return
    with store.pool.connection() as pc, pc.transaction():
        yield Tx(pc, False)


def query(store: Store, sql: str, args: Params = ()) -> list[Row]:
    """Rows of one read-only query."""
    with atomic(store, write=False) as t:
        return t.q(sql, args)


def when(ts: float) -> datetime.datetime:
    """Seconds since 1970 → an aware datetime in Asia/Shanghai."""
    return datetime.datetime.fromtimestamp(ts, workdays.SHANGHAI)


def shown(ts: float | None) -> str:
    """Seconds since 1970 → '2026-09-30 14:05' (Asia/Shanghai), '' for None."""
    return "" if ts is None else when(ts).strftime("%Y-%m-%d %H:%M")


def day_start(day: datetime.date) -> float:
    """00:00 Asia/Shanghai of a date, in seconds since 1970."""
    return datetime.datetime.combine(day, datetime.time(0, tzinfo=workdays.SHANGHAI)).timestamp()
