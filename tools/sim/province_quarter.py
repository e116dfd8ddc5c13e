"""A quarter of one hall in a store, as the province would get it (harness): transactions on
every working day, citizens' ratings with a hall's mix of levels, reasons after bad reviews,
transactions left unrated (rated 基本满意 by default, 第七条, by the store's own job), and
appeals, some upheld (第十条: sent upward as corrections). Written the way a hall's batches are
(batches.parse_batch + store_batch), with chosen times, so that a whole quarter can be in the
past. Deterministic for a seed."""
from __future__ import annotations

import datetime
import hashlib
import json
import random
from typing import TYPE_CHECKING, Any

from haochaping.daemon import batches
from haochaping.daemon.rules import workdays
from haochaping.daemon.store import appeals, defaults
from haochaping.protocol import levels

if TYPE_CHECKING:
    from haochaping.daemon.store.backends import Store

DEPARTMENT = "11530102MB1234567X"     # a 统一社会信用代码 (18 characters)
REGION = "530102"
_LEVELS = (1, 1, 1, 1, 1, 2, 2, 2, 3, 4, 5)   # a hall's mix: ~18 % bad reviews here


def _at(day: datetime.date, seconds: float) -> float:
    return datetime.datetime.combine(day, datetime.time(0, tzinfo=workdays.SHANGHAI)
                                     ).timestamp() + seconds


def fill(store: Store, quarter: str = "2026Q3", per_day: int = 8, hall: str = "H01",
         seed: int = 1, appeals_upheld: int = 3) -> dict[str, Any]:
    """Write a quarter (e.g. 2026Q3) of hall `hall` into `store`; return what was written."""
    rnd = random.Random(seed)
    year, q = int(quarter[:4]), int(quarter[-1])
    first = datetime.date(year, 3 * q - 2, 1)
    last = datetime.date(year + (q == 4), 1 if q == 4 else 3 * q + 1, 1) - datetime.timedelta(1)
    if store.hall_key(hall) is None:
        store.add_hall(hall, "quarter hall")
    cal = workdays.default_calendar()
    tx = seq = 0
    bad: list[tuple[str, float]] = []
    made: dict[str, Any] = {"transactions": 0, "ratings": 0, "reasons": 0, "unrated": 0}
    day = first
    while day <= last:
        if cal.is_working_day(day)[0]:
            recs: list[dict[str, Any]] = []
            for i in range(per_day):
                tx += 1
                start = _at(day, 9 * 3600 + i * 1800 + rnd.randint(0, 600))
                finish = start + rnd.randint(120, 900)
                recs.append({"type": "transaction", "id": "%s:tx:%d" % (hall, tx), "tx": tx,
                             "window": "W0%d" % (1 + i % 3), "ticket": "A%03d" % (i + 1),
                             "item": "530100-XK-%03d" % (1 + i % 7), "staff": "S01%02d" % (i % 5),
                             "department": DEPARTMENT, "region": REGION,
                             "started_at": start, "finished_at": finish})
                made["transactions"] += 1
                if rnd.random() < 0.1:
                    made["unrated"] += 1
                    continue
                seq += 1
                rating_seq = seq
                level = rnd.choice(_LEVELS)
                t = finish + rnd.randint(5, 60)
                uid = "%s:rating:T001:%d" % (hall, seq)
                recs.append({"type": "rating", "id": uid, "terminal": "T001", "seq": seq,
                             "level": level, "outcome": "counted",
                             "transaction": "%s:tx:%d" % (hall, tx), "rated_at": t,
                             "received_at": t})
                made["ratings"] += 1
                if levels.is_bad(level):
                    bad.append((uid, t))
                    for r in rnd.sample([r[0] for r in levels.REASONS], rnd.randint(1, 2)):
                        seq += 1
                        recs.append({"type": "reason", "id": "%s:reason:T001:%d" % (hall, seq),
                                     "terminal": "T001", "seq": seq, "ref": rating_seq, "reason": r,
                                     "rated_at": t + 3})
                        made["reasons"] += 1
            bid = "%s-%s" % (hall, day.isoformat())
            body = json.dumps({"hall": hall, "batch": bid, "records": recs},
                              ensure_ascii=False).encode()
            h, b, parsed = batches.parse_batch(body, hall, bid)
            store.store_batch(h, b, hashlib.sha256(body).hexdigest(), parsed)
        day += datetime.timedelta(1)
    # the store's own 第七条 job, run as if two weeks after the quarter
    made["defaults"] = defaults.run_defaults(store, now=_at(last, 86400 * 15))["given"]
    upheld = 0
    for uid, t in bad[:appeals_upheld * 2]:
        a = appeals.file(store, uid, hall, "监控显示为误触", now=t + 600)
        if upheld < appeals_upheld:
            appeals.decide(store, a["id"], True, "核实为误评", now=t + 86400)
            upheld += 1
        else:
            appeals.decide(store, a["id"], False, "评价属实", now=t + 86400)
    made["upheld"] = upheld
    made["first_day"], made["last_day"] = first.isoformat(), last.isoformat()
    return made
