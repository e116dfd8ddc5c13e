"""The store's rules (第六条, 第七条, 第十条–第十四条) against real stores on both backends.

Fixtures come from tests/store (certificates, a fresh SQLite file or PostgreSQL database, the
store as a real HTTPS process, a hall that forwards to it). `Data` writes records the way a
hall's batch does (batches.parse_batch + store_batch), with chosen times, so that deadlines in
the past can be tested; the real chain (hall daemon + terminals + forwarder) is used where the
test is about data that flowed through it."""
import datetime
import hashlib
import itertools

import pytest
from click.testing import CliRunner

from haochaping.daemon import batches
from haochaping.daemon.rules import workdays
from haochaping.daemon.store import backends, identity
from haochaping.tools.cli import _register, cli
from tests.store.conftest import encode_v1

_register()
_batches = itertools.count(1)


def at(text):
    """'2026-09-01 09:00' (Asia/Shanghai) → seconds since 1970."""
    return datetime.datetime.fromisoformat(text).replace(tzinfo=workdays.SHANGHAI).timestamp()


def recent(seconds=60):
    """A minute ago, as '2026-11-25 17:20' in Asia/Shanghai (within any filing deadline)."""
    t = datetime.datetime.now(workdays.SHANGHAI) - datetime.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%d %H:%M")


def when(text):
    return datetime.datetime.fromtimestamp(at(text), workdays.SHANGHAI)


class Data:
    """Transactions and ratings of hall H01, stored as a hall's batches would be."""

    def __init__(self, st, hall="H01", department="D1"):
        self.st, self.hall, self.department = st, hall, department
        self.tx = 0
        self.seq = 0

    def transaction(self, finished, level=None, window="W01", staff="S0101", rater=None,
                    reason=None, rated=None):
        """One 办件 finished at `finished` ('2026-09-01 09:05'), optionally rated (counted) at
        `rated` (default: a minute later) with a bad-review reason. Returns (tx id, rating id)."""
        tx = self.transaction_record(finished, window, staff, rater)
        recs = [tx]
        rating_uid = None
        if level is not None:
            t = at(rated) if rated else at(finished) + 60
            rating = self.rating_record(tx["id"], level, t)
            rating_uid = rating["id"]
            recs.append(rating)
            if reason:
                self.seq += 1
                recs.append({"type": "reason", "id": "%s:reason:T001:%d" % (self.hall, self.seq),
                             "terminal": "T001", "seq": self.seq, "ref": self.seq - 1,
                             "reason": reason, "rated_at": t + 5})
        self.put(recs)
        return tx["id"], rating_uid

    def transaction_record(self, finished, window="W01", staff="S0101", rater=None):
        """The record of the next 办件, finished at `finished`, not stored yet (put() it)."""
        self.tx += 1
        tx = {"type": "transaction", "id": "%s:tx:%d" % (self.hall, self.tx), "tx": self.tx,
              "window": window, "ticket": "A%04d" % self.tx, "staff": staff,
              "department": self.department, "region": "530102",
              "started_at": at(finished) - 300, "finished_at": at(finished)}
        if rater is not None:
            tx["rater"] = {"consent": True, "identity": rater}
        return tx

    def rating(self, tx, level, received, outcome="counted"):
        """A citizen's rating of transaction `tx` ("H01:tx:1"), received by the hall at
        `received` ('2026-10-14 09:00', or seconds), in a batch of its own. Returns its id."""
        rec = self.rating_record(tx, level, received, outcome)
        self.put([rec])
        return rec["id"]

    def rating_record(self, tx, level, received, outcome="counted"):
        """The record of the next rating (pressed and received at `received`), not stored yet."""
        self.seq += 1
        t = received if isinstance(received, (int, float)) else at(received)
        return {"type": "rating", "id": "%s:rating:T001:%d" % (self.hall, self.seq),
                "terminal": "T001", "seq": self.seq, "level": level, "outcome": outcome,
                "transaction": tx, "rated_at": t, "received_at": t}

    def put(self, recs):
        batch = "b%d" % next(_batches)
        body = encode_v1(self.hall, batch, recs)
        h, b, parsed = batches.parse_batch(body, self.hall, batch)
        return self.st.store_batch(h, b, hashlib.sha256(body).hexdigest(), parsed)


@pytest.fixture
def st(store_db, tmp_path):
    """An open store (both backends) with hall H01 and an identity key."""
    key = str(tmp_path / "identity.key")
    s = backends.open_store(store_db, identity.IdentityKey.load(key, create=True))
    s.add_hall("H01", "五华区政务服务中心")
    s.key_path = key
    yield s
    s.close()


@pytest.fixture
def data(st):
    return Data(st)


def hcp(*args, ok=True):
    """Run `hcp …` in-process; returns the result (exit code 0 unless ok=False)."""
    r = CliRunner().invoke(cli, [str(a) for a in args])
    if ok:
        assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    return r


