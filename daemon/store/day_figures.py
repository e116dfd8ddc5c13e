"""第十四条 at a province's scale: each closed day's figures per unit, kept (tables figure_days,
unit_days) so that a quarter's scores and report read a few rows per unit and day instead of
every transaction of the quarter again (docs/scale.md). scores.unit_scores computes them.

A day is *closed* once its transactions' 第七条 deadline has passed, by the caller's `now` and
by the store's clock: each of its transactions is then rated by its citizen or by default, and
its figures change only when the store learns something about that day afterwards:

  a batch brings one of its transactions, or a rating of one (a hall offline)  touch_batch
  the sweep finds one of its ratings late (第七条)                    defaults.mark_late
  an appeal against one of its ratings is upheld (第十条)             appeals.decide
  the archive removes it                                              archive.py

Each of these raises the hall-day's version in its own database transaction (touch), and
figures computed at an older version are computed again when next read. A computation reads
the versions before the transactions, so a change committed while it runs leaves the hall-day
stale rather than fresh. Hall-days, not days: the halls' batches for one day never wait on
one another's row lock. A day closes at least 5 calendar days after it began, so a batch
touches only days older than 4 days: a hall forwarding as it goes touches nothing.
"""
from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from haochaping.daemon.rules import scoring
from haochaping.daemon.store import access
from haochaping.protocol import levels

if TYPE_CHECKING:
    from haochaping.daemon.store.backends import Store

# a day may be closed only after 5 calendar days; a day's end is its start plus one
MAY_BE_CLOSED_S = 4 * 86400.0
_CHUNK = 500
_LEVELS = tuple(code for code, _n, _p, _b in levels.LEVELS)

TOUCH_SQL = ("INSERT INTO figure_days (hall, day, version, fresh) VALUES (%s, %s, 1, 0)"
             " ON CONFLICT (hall, day) DO UPDATE SET version = figure_days.version + 1")
SAVED_SQL = ("INSERT INTO figure_days (hall, day, version, fresh) VALUES (%s, %s, %s, %s)"
             " ON CONFLICT (hall, day) DO UPDATE SET fresh = excluded.fresh")
ROW_SQL = ("INSERT INTO unit_days (hall, day, unit, kind, c1, c2, c3, c4, c5, x1, x2, x3, x4,"
           " x5, defaults) VALUES (%s)" % ", ".join(["%s"] * 15))

# one unit's ratings on a hall-day: {Rating: how many}
Counts = collections.Counter[scoring.Rating]
# (hall, day) → {unit: (kind, counts)}
HallDays = dict[tuple[str, str], dict[str, tuple[str, Counts]]]


def day_of(ts: float) -> str:
    """The day (Asia/Shanghai) a transaction finished: '2025-10-09'."""
    return access.when(ts).date().isoformat()


def touch(t: access.Tx, hall_days: Iterable[tuple[str, str]]) -> None:
    """Whatever the figures of these hall-days were computed from has changed."""
    for hall, day in sorted(set(hall_days)):
        t.x(TOUCH_SQL, (hall, day))


def touch_txs(t: access.Tx, tx_uids: Iterable[str], now: float) -> None:
    """The hall-days of these stored transactions (those old enough to be closed) changed."""
    keys = sorted(set(tx_uids))
    found: set[tuple[str, str]] = set()
    for i in range(0, len(keys), _CHUNK):
        part = keys[i:i + _CHUNK]
        found.update((hall, day_of(f)) for hall, f in t.q(
            "SELECT hall, finished_at FROM transactions WHERE uid IN (%s) AND finished_at < %%s"
            % ", ".join(["%s"] * len(part)), [*part, now - MAY_BE_CLOSED_S]))
    touch(t, found)


def touch_batch(t: access.Tx, hall: str, tx_uids: Sequence[str], tx_finished: Sequence[float],
                rating_txs: Iterable[str | None], now: float) -> None:
    """In the transaction storing a batch: the hall-days it changes, of its old transactions
    and of the transactions of its ratings stored before it."""
    old = now - MAY_BE_CLOSED_S
    touch(t, ((hall, day_of(f)) for f in tx_finished if f < old))
    earlier = set(rating_txs) - set(tx_uids)
    earlier.discard(None)
    if earlier:
        touch_txs(t, [u for u in earlier if u is not None], now)


def state(store: Store, first: str, last: str
          ) -> tuple[set[str], dict[tuple[str, str], tuple[int, int]]]:
    """(the days from first to last computed for every hall, {(hall, day): (version, fresh)})."""
    done: set[str] = set()
    versions: dict[tuple[str, str], tuple[int, int]] = {}
    for hall, day, version, fresh in access.query(
            store, "SELECT hall, day, version, fresh FROM figure_days WHERE day >= %s AND"
                   " day <= %s", (first, last)):
        if hall == "":
            done.add(day)
        else:
            versions[(hall, day)] = (version, fresh)
    return done, versions


def stored(store: Store, first: str, last: str) -> Iterable[tuple[str, str, str, str, Counts]]:
    """(hall, day, unit, kind, counts) of every unit's stored figures from first to last."""
    for row in access.query(store, "SELECT hall, day, unit, kind, c1, c2, c3, c4, c5, x1, x2,"
                                   " x3, x4, x5, defaults FROM unit_days WHERE day >= %s AND"
                                   " day <= %s", (first, last)):
        yield row[0], row[1], row[2], row[3], _counts(row[4:])


def save(store: Store, computed: HallDays, days: Iterable[str],
         versions: Mapping[tuple[str, str], tuple[int, int]]) -> None:
    """Keep the figures computed for these hall-days (each at the version read before its
    transactions were), and mark `days` computed for every hall."""
    with access.atomic(store) as t:
        for (hall, day), units in computed.items():
            t.x("DELETE FROM unit_days WHERE day = %s AND hall = %s", (day, hall))
            t.xmany(ROW_SQL, [(hall, day, unit, kind, *_columns(counts))
                              for unit, (kind, counts) in sorted(units.items())])
            version = versions.get((hall, day), (0, 0))[0]
            t.x(SAVED_SQL, (hall, day, version, version))
        for day in sorted(set(days)):
            t.x("INSERT INTO figure_days (hall, day, version, fresh) VALUES ('', %s, 0, 0)"
                " ON CONFLICT (hall, day) DO NOTHING", (day,))


def forget(t: access.Tx, before_day: str) -> None:
    """The figures of every day before this one (archive.py: their rows left the store)."""
    t.x("DELETE FROM unit_days WHERE day < %s", (before_day,))
    t.x("DELETE FROM figure_days WHERE day < %s", (before_day,))


def _columns(counts: Counts) -> list[int]:
    odd = [r for r in counts if r.is_default and (r.excluded or r.level != levels.DEFAULT_LEVEL)]
    assert not odd, odd  # an appeal is only ever upheld against a citizen's rating
    return ([counts[scoring.Rating(c)] for c in _LEVELS]
            + [counts[scoring.Rating(c, excluded=True)] for c in _LEVELS]
            + [counts[scoring.Rating(levels.DEFAULT_LEVEL, is_default=True)]])


def _counts(cols: Sequence[Any]) -> Counts:
    n = len(_LEVELS)
    out: Counts = collections.Counter()
    for i, code in enumerate(_LEVELS):
        if cols[i]:
            out[scoring.Rating(code)] = cols[i]
        if cols[n + i]:
            out[scoring.Rating(code, excluded=True)] = cols[n + i]
    if cols[2 * n]:
        out[scoring.Rating(levels.DEFAULT_LEVEL, is_default=True)] = cols[2 * n]
    return out
