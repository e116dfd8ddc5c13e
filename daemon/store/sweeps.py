"""Where the rule jobs' sweeps got to (table store_sweeps), so that the hourly sweep reads the
rows that changed since the last one, not the whole table (docs/scale.md).

A sweep looks at the rows the store received since the last sweep started (less MARGIN_S: a
PostgreSQL batch that began before it committed after, and its rows carry the earlier time),
by the store's own clock (received_at), never the `now` a job is run for. Once a day
(FULL_EVERY_S) and on a store that never swept, a sweep reads every row, as before this
table: it finds what only the calendar could tell and the calendar could not (a hall clock
far off, a year not yet in the calendar), which the rows received since would not show.
A sweep that fails records nothing: the next one starts from the same place.
"""
from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

from haochaping.daemon.store import access

if TYPE_CHECKING:
    from haochaping.daemon.store.backends import Store

MARGIN_S = 600.0
FULL_EVERY_S = 86400.0

UPSERT_SQL = """
INSERT INTO store_sweeps (job, through, started_at, full_at) VALUES (%s, %s, %s, %s)
ON CONFLICT (job) DO UPDATE SET through = excluded.through, started_at = excluded.started_at,
  full_at = excluded.full_at
"""


@dataclasses.dataclass(frozen=True)
class Sweep:
    """One sweep of `job`: `since` is the received_at it reads from (0.0: every row);
    `through` the job's own mark from the last sweep (None: none)."""
    job: str
    clock: float            # the store's clock at this sweep's start
    since: float
    through: float | None
    full: bool
    full_at: float


def begin(store: Store, job: str) -> Sweep:
    clock = time.time()
    rows = access.query(store, "SELECT through, started_at, full_at FROM store_sweeps"
                               " WHERE job = %s", (job,))
    if not rows or rows[0][2] < clock - FULL_EVERY_S:
        return Sweep(job, clock, 0.0, rows[0][0] if rows else None, True, clock)
    through, started, full_at = rows[0]
    return Sweep(job, clock, started - MARGIN_S, through, False, full_at)


def done(t: access.Tx, sweep: Sweep, through: float | None = None) -> None:
    """Record the sweep (in the transaction that writes its results)."""
    t.x(UPSERT_SQL, (sweep.job, through, sweep.clock, sweep.full_at))
