"""The store's rule jobs: default ratings (第七条) and the sweep that opens rectification cases
for bad reviews (第十二条), once (`hcp store run-defaults`) or on a schedule (`hcp store serve`)."""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from haochaping.daemon.store import cases, defaults, unit_months

if TYPE_CHECKING:
    from haochaping.daemon.rules.workdays import Calendar
    from haochaping.daemon.store.backends import Store

log = logging.getLogger(__name__)


def run_once(store: Store, now: float | None = None, calendar: Calendar | None = None,
             months: bool = True) -> defaults.JobsRun:
    """Defaults first (a default is never a bad review), then cases, then (months) the figures
    of the months the sweep closed (unit_months.py: explain reads them). Idempotent."""
    result = defaults.run_defaults(store, now, calendar)
    result["cases_opened"] = cases.open_new(store, now, calendar)
    if months:
        result["unit_months"] = unit_months.build(store, now, calendar)
    return result


def every(store: Store, seconds: float, stop: threading.Event) -> None:
    """Run the jobs now and then every `seconds` until `stop` is set; a failure is logged and
    tried again next time (the database may be away for a while)."""
    while not stop.is_set():
        try:
            result = run_once(store)
            if result.get("warning"):
                log.warning("rule jobs: %s", result["warning"])
        except Exception:
            log.exception("rule jobs failed; trying again in %d s", seconds)
        stop.wait(seconds)
