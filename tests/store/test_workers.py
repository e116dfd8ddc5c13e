"""The store's worker processes (uvicorn's, daemon/store/workers.py) in a real `hcp store serve`,
on both backends: a worker that dies is replaced at once, whether or not a batch is coming, and
no batch is lost or stored twice around it."""
import os
import signal
import subprocess

from haochaping.daemon.hall.store_client import StoreUnavailable
from tests.conftest import wait_until

from .conftest import encode_v1


def _batch_workers(store):
    """Pids of the store's worker processes (spawned children of `hcp store serve`)."""
    out = subprocess.run(["pgrep", "-P", str(store.proc.proc.pid), "-f", "spawn_main"],
                         capture_output=True, text=True).stdout
    return sorted(int(p) for p in out.split())


def _body(batch, first, n):
    """A batch of n transactions (numbered from `first`), each with its counted rating."""
    recs = []
    for i in range(first, first + n):
        t = 1790000000.0 + i
        recs.append({"type": "transaction", "id": "H01:tx:%d" % i, "tx": i, "window": "W01",
                     "ticket": "A%d" % i, "started_at": t, "finished_at": t + 60})
        recs.append({"type": "rating", "id": "H01:rating:T001:%d" % i, "terminal": "T001",
                     "seq": i, "level": 1 + i % 5, "outcome": "counted",
                     "transaction": "H01:tx:%d" % i, "rated_at": t + 70, "received_at": t + 71})
    return encode_v1("H01", batch, recs)


def _post_until_answered(client, batch, body):
    """Post as a hall does: again after a 503 (a worker died under the batch) until answered."""
    answers = []

    def answered():
        try:
            answers.append(client.post_batch(batch, body))
        except StoreUnavailable:
            return False
        return True
    wait_until(answered, what="batch %s answered" % batch)
    return answers[-1]


def test_a_batch_worker_killed_while_the_store_is_idle_is_replaced_before_the_next_batch(store):
    # if this fails, a batch worker that died (out of memory, killed by mistake) leaves the
    # city's store short of workers until a hall's batch fails on it: that batch is refused and
    # waits for the hall's retry, and a quiet store never gets back to full strength
    c = store.client()
    first = _body("w1", 1, 20)
    assert c.post_batch("w1", first)["status"] == "stored"
    before = _batch_workers(store)
    assert len(before) == 2
    victim = before[0]
    os.kill(victim, signal.SIGKILL)
    # no batch is posted meanwhile: the store must notice and start the workers by itself
    wait_until(lambda: victim not in _batch_workers(store) and len(_batch_workers(store)) == 2,
               what="the dead worker replaced with no batch coming")
    assert "store worker process %d died" % victim in store.proc.log_text()
    # back at full strength: on a new connection (a hall's connection to the dead worker died
    # with it; the hall reconnects) the next batch is stored at its first attempt, the batch
    # from before the kill is answered as a duplicate, and each record is there once
    c.close()
    c = store.client()
    assert c.post_batch("w2", _body("w2", 21, 20))["status"] == "stored"
    assert c.post_batch("w1", first) == {"status": "duplicate", "batch": "w1", "records": 40,
                                         "new": 0}
    c.close()
    assert store.query(lambda s: s.counts()) == {"batches": 2, "transactions": 40,
                                                 "ratings": 40, "reasons": 0}


def test_a_batch_posted_as_a_worker_dies_is_stored_once_after_the_hall_retries(store):
    # if this fails, a batch that reached the store just as a worker died is lost (the hall
    # drops it) or stored twice (the hall's retry doubles its records)
    c = store.client()
    victim = _batch_workers(store)[0]
    os.kill(victim, signal.SIGKILL)
    first = _post_until_answered(c, "w1", _body("w1", 1, 20))    # 503 while the pool restarts
    assert first["status"] in ("stored", "duplicate") and first["records"] == 40
    wait_until(lambda: victim not in _batch_workers(store) and len(_batch_workers(store)) == 2,
               what="the workers back at full strength")
    assert c.post_batch("w1", _body("w1", 1, 20))["status"] == "duplicate"
    assert c.post_batch("w2", _body("w2", 21, 20))["status"] == "stored"
    c.close()
    assert store.query(lambda s: s.counts()) == {"batches": 2, "transactions": 40,
                                                 "ratings": 40, "reasons": 0}
    assert store.query(lambda s: s.uids("transaction", "H01")) == sorted(
        "H01:tx:%d" % i for i in range(1, 41))


def _gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"   # a zombie has exited
    except FileNotFoundError:
        return True


def test_workers_stop_by_themselves_when_the_serving_process_alone_is_killed(store):
    # if this fails, a store whose serving process was killed (the OOM killer picks the
    # biggest) leaves its workers serving with nobody to replace them, and holding the port, so
    # that the service manager's restart cannot listen on it
    kids = _batch_workers(store)
    assert len(kids) == 2
    store.proc.proc.kill()          # the serving process only, not its workers
    store.proc.proc.wait()
    wait_until(lambda: all(_gone(p) for p in kids), what="the orphaned workers gone")
    assert "serving process %d is gone: this worker stops" % store.proc.proc.pid \
        in store.proc.log_text()
    store.proc.start()              # the port is free again
    c = store.client()
    try:
        assert c.post_batch("o1", _body("o1", 1, 3))["status"] == "stored"
    finally:
        c.close()
