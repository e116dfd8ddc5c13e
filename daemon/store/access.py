"""One database transaction on either backend, for the store's rule jobs (defaults, appeals,
cases, scores). They take the store object that backends.open_store returns and run plain SQL
with %s placeholders, so the rules need no change to the backends themselves."""
import contextlib
import datetime

from haochaping.daemon.rules import workdays


class Tx:
    """The rule jobs' view of one open transaction (atomic(), or the one storing a batch)."""

    def __init__(self, conn, sqlite):
        self.conn, self.sqlite = conn, sqlite

    def q(self, sql, args=()):
        """Rows of a query."""
        if self.sqlite:
            sql = sql.replace("%s", "?")
        return self.conn.execute(sql, args).fetchall()

    def x(self, sql, args=()):
        """Run a statement; return the number of rows it changed."""
        if self.sqlite:
            sql = sql.replace("%s", "?")
        return self.conn.execute(sql, args).rowcount

    def xmany(self, sql, rows):
        """Run a statement once per row of parameters."""
        if self.sqlite:
            self.conn.executemany(sql.replace("%s", "?"), rows)
        else:
            self.conn.cursor().executemany(sql, rows)


@contextlib.contextmanager
def atomic(store, write=True):
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
    with store.pool.connection() as c, c.transaction():
        yield Tx(c, False)


def query(store, sql, args=()):
    """Rows of one read-only query."""
    with atomic(store, write=False) as t:
        return t.q(sql, args)


def when(ts):
    """Seconds since 1970 → an aware datetime in Asia/Shanghai."""
    return datetime.datetime.fromtimestamp(ts, workdays.SHANGHAI)


def shown(ts):
    """Seconds since 1970 → '2026-09-30 14:05' (Asia/Shanghai), '' for None."""
    return "" if ts is None else when(ts).strftime("%Y-%m-%d %H:%M")


def day_start(day):
    """00:00 Asia/Shanghai of a date, in seconds since 1970."""
    return datetime.datetime.combine(day, datetime.time(0, tzinfo=workdays.SHANGHAI)).timestamp()
