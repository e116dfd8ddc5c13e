"""Property tests on the store (hypothesis, SQLite): default ratings never exceed one per
transaction whatever the order of runs, late ratings and times (第七条)."""
import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st_

from haochaping.daemon.store import backends, defaults, scores

from .conftest import Data, at

DAYS = ["2026-09-%02d 10:00" % d for d in range(1, 31)]
RUNS = ["2026-09-%02d 12:00" % d for d in range(1, 31)] + ["2026-10-%02d 12:00" % d
                                                           for d in range(1, 31)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(txs=st_.lists(st_.tuples(st_.sampled_from(DAYS), st_.one_of(st_.none(),
                                                                   st_.integers(1, 5))),
                     min_size=1, max_size=12),
       runs=st_.lists(st_.sampled_from(RUNS), min_size=1, max_size=5))
def test_art7_defaults_never_exceed_one_per_transaction(txs, runs):
    # if this fails, some sequence of job runs scores a transaction twice
    with tempfile.TemporaryDirectory() as d:
        s = backends.open_store(os.path.join(d, "s.sqlite"))
        try:
            s.add_hall("H01")
            data = Data(s)
            for day, level in txs:
                data.transaction(day, level=level)
            for when in runs:
                defaults.run_defaults(s, now=at(when))
            counted = s._query("SELECT tx_uid, COUNT(*) FROM ratings WHERE outcome = 'counted'"
                               " GROUP BY tx_uid", ())
            assert all(n == 1 for _tx, n in counted)
            got = {r[0] for r in s._query("SELECT tx_uid FROM ratings WHERE is_default = 1", ())}
            rated = {"H01:tx:%d" % (i + 1) for i, (_d, lv) in enumerate(txs) if lv is not None}
            assert not got & rated
            # whether the job ran or not, the scores are the same (the rule, not the job)
            latest = at(max(runs))
            for t in scores.transactions(s, "2026Q3", now=latest):
                if t["uid"] in got:
                    assert t["rating"].is_default
        finally:
            s.close()
