"""Hall -> store, end to end with real processes: mosquitto, the hall daemon (with its forwarder),
simulated terminals rating over MQTT, and the store over HTTPS on both backends. Whatever is
killed, the store ends with every record exactly once and the hall's backlog ends empty."""
import os
import signal
import sqlite3
import subprocess
import threading
import time

from click.testing import CliRunner

from haochaping.daemon import batches
from haochaping.daemon.hall import api_client, db, forward
from haochaping.daemon.hall.forward import Forwarder
from haochaping.tools.cli import _register, cli
from haochaping.tools.sim import hall_kit, processes
from tests.conftest import hall_query, wait_until

from .conftest import (
    backlog,
    delivered,
    forward_all,
    forwarding_hall,
    hall_day,
    hall_expected,
    store_has,
)

_register()


def _status(hall):
    r = CliRunner().invoke(cli, ["forward", "status", "--config", hall.path])
    assert r.exit_code == 0, r.output
    return r.output


def test_hundreds_of_transactions_and_ratings_reach_the_store_exactly_once(store, daemon, hall,
                                                                           hall_db):
    # if this fails, the city's reports miss or double-count what citizens rated in a hall
    did = hall_day(hall, 300)
    assert did["rated"] > 100 and did["reasons"] > 0
    delivered(store, hall_db)
    tx, ratings, reasons = hall_expected(hall_db)
    assert len(tx) == 300 and len(ratings) >= 250
    out = _status(hall)
    assert "backlog: none" in out and "last error: none" in out
    # what the municipal office browses: the counted ratings, with their 办件 and reason
    rows = store.query(lambda s: s.ratings("H01", 0))
    counted = [r for r in rows if r["outcome"] == "counted"]
    assert len(counted) == len({r["transaction"] for r in counted})
    assert all(r["ticket"] and r["channel"] == "PJQ" for r in counted)
    bad = hall_db("SELECT COUNT(*) FROM ratings WHERE reason IS NOT NULL")[0][0]
    assert sum(1 for r in rows if r["reason"]) == bad


def test_store_killed_repeatedly_mid_stream_ends_with_every_record_once(store, daemon, hall,
                                                                        hall_db):
    # if this fails, a crash or power cut of the city's store loses or doubles hall records
    def crash():
        store.proc.kill()
        time.sleep(0.3)  # down for a moment, while the hall keeps rating and queueing
        store.proc.start()
    _hall_day_with_faults(store, hall, 240, 2, crash)
    delivered(store, hall_db)
    assert "resolved since" in _status(hall) or "last error: none" in _status(hall)


def _hall_day_with_faults(store, hall, transactions, seed, fault):
    """A hall day (hall_day) during which `fault` strikes three times, each once the store has
    taken more ratings since the last."""
    done = threading.Event()

    def day():
        hall_day(hall, transactions, seed=seed)
        done.set()
    threading.Thread(target=day, daemon=True).start()
    for _ in range(3):
        before = store.query(lambda s: s.counts()["ratings"])
        wait_until(lambda before=before: (store.query(lambda s: s.counts()["ratings"]) > before
                                          or done.is_set()),
                   what="the store receiving")
        fault()
    assert done.wait(120)


def _batch_workers(store):
    """Pids of the store's worker processes (uvicorn's, daemon/store/workers.py)."""
    out = subprocess.run(["pgrep", "-P", str(store.proc.proc.pid), "-f", "spawn_main"],
                         capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_a_batch_worker_killed_mid_stream_is_replaced_and_every_record_arrives_once(
        store, daemon, hall, hall_db):
    # if this fails, one crashed worker process (out of memory, a bug) stops the city's store
    # taking batches, or loses or doubles the batch it was writing
    assert len(_batch_workers(store)) == 2

    def kill_a_worker():
        victim = _batch_workers(store)[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: victim not in _batch_workers(store) and len(_batch_workers(store)) == 2,
                   what="the workers started again")
    _hall_day_with_faults(store, hall, 240, 4, kill_a_worker)
    delivered(store, hall_db)
    assert "died (killed, or out of memory); started a new one" in store.proc.log_text()


def test_hall_daemon_killed_mid_forward_ends_with_every_record_once(store, daemon, hall, hall_db):
    # if this fails, a hall server crash while forwarding loses or doubles records at the city
    store.proc.kill()
    hall_day(hall, 150, seed=3)          # the store is down: everything waits in the hall
    waiting = backlog(hall_db)
    assert waiting == sum(len(kind) for kind in hall_expected(hall_db)) > 150
    assert "records waiting" in _status(hall)
    store.proc.start()
    wait_until(lambda: backlog(hall_db) < waiting, what="forwarding under way")
    daemon.kill()                         # mid-forward
    assert backlog(hall_db) > 0 or store_has(store) == hall_expected(hall_db)
    daemon.start()
    delivered(store, hall_db)


def test_a_batch_the_store_committed_but_the_hall_never_heard_of_is_sent_again_and_acked(
        store, hall, hall_db, tmp_path):
    # if this fails, an answer lost on the network makes the hall send records twice (doubled)
    # or give up on them (lost)
    conn = sqlite3.connect(hall.hall.database, isolation_level=None)
    conn.executescript("""
        INSERT INTO transactions (window, ticket, started_at, finished_at)
            VALUES ('W01', 'A1', 1, 2);
        INSERT INTO ratings (terminal, seq, level, token, rated_at, received_at, outcome)
            VALUES ('T001', 1, 2, '', 3, 4, 'unsolicited');""")
    conn.close()
    fw = Forwarder(hall)
    hconn = db.connect(hall.hall.database)
    bid, first, last, n, body = fw._build(hconn)
    c = store.client()
    assert c.post_batch(bid, bytes(body))["status"] == "stored"   # the store commits ...
    c.close()                                                     # ... the answer is lost
    assert forward.pending_batch(hconn)[0] == bid
    assert fw.step(hconn) == 0                                    # sent again: "duplicate"
    hconn.close()
    fw.client.close()
    assert backlog(hall_db) == 0
    assert store.query(lambda s: s.counts()) == {"batches": 1, "transactions": 1, "ratings": 1,
                                                 "reasons": 0}


def _refused_then_fixed(store, hall, words, fix, hall_id="H01"):
    """The hall forwards one transaction; the store refuses it; `fix()` mends hall.toml."""
    hall_db = hall_query(hall)
    b = processes.Mosquitto(hall_kit.broker_conf(hall), hall.mqtt.port).start()
    d = processes.DaemonProcess(hall).start()
    try:
        api = api_client.WindowApi(hall)
        api.start("W01", "A001")
        api.finish("W01")
        wait_until(lambda: hall_db("SELECT COUNT(*) FROM forward_batches WHERE last_error"
                                   " IS NOT NULL")[0][0] > 0, what="the refusal recorded")
        out = _status(hall)
        assert words in out and "records waiting" in out
        assert backlog(hall_db) == 1                   # kept for retry, not deleted
        assert store.query(lambda s: s.counts()["transactions"]) == 0
        d.kill()
        fix()
        d = processes.DaemonProcess(hall).start()
        wait_until(lambda: backlog(hall_db) == 0, what="delivered after the fix")
        assert store_has(store, hall_id) == hall_expected(hall_db, hall_id)
        assert "resolved since" in _status(hall)
    finally:
        d.kill()
        b.stop()


def _replace_in(path, old, new):
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace(old, new))


def test_a_hall_with_the_wrong_key_is_refused_and_keeps_its_records(store, tmp_path):
    # if this fails, a misconfigured hall silently loses records (or anyone can forge a hall)
    wrong = str(tmp_path / "wrong.key")
    batches.write_key_file(wrong, b"\x02" * 32)
    hall = forwarding_hall(str(tmp_path / "h"), store, key_file=wrong)
    _refused_then_fixed(store, hall, "bad signature",
                        lambda: _replace_in(hall.path, wrong, store.key_file))


def test_an_unknown_hall_is_refused_and_keeps_its_records(store, tmp_path):
    # if this fails, a hall not yet registered at the city loses what it forwards meanwhile
    hall = forwarding_hall(str(tmp_path / "h"), store, hall_id="H77")

    def register():
        key = str(tmp_path / "H77.key")
        batches.write_key_file(key, store.query(lambda s: s.add_hall("H77")))
        _replace_in(hall.path, store.key_file, key)
    _refused_then_fixed(store, hall, "unknown hall H77", register, hall_id="H77")


def test_a_record_the_store_refuses_stays_in_the_hall_with_the_reason(store, hall, hall_db):
    # if this fails, one bad row (a corrupted level) is deleted unseen instead of shown to IT
    # (or, kept at the head of the queue, holds up every record behind it)
    conn = sqlite3.connect(hall.hall.database, isolation_level=None)
    conn.execute("INSERT INTO ratings (terminal, seq, level, token, rated_at, received_at, outcome)"
                 " VALUES ('T001', 1, 9, '', 3, 4, 'unsolicited')")
    conn.close()
    fw = Forwarder(hall)
    hconn = db.connect(hall.hall.database)
    try:
        assert fw.step(hconn) == 0                 # refused alone: set apart, on at once
    finally:
        hconn.close()
        fw.close()
    out = _status(hall)
    assert "HTTP 422" in out and "level must be an integer 1..5" in out
    assert "quarantined: 1 record(s)" in out
    assert backlog(hall_db) == 0                   # nothing behind it waits
    assert hall_db("SELECT record, reason, state FROM forward_quarantine") == [
        ("H01:rating:T001:1", "record H01:rating:T001:1: level must be an integer 1..5", "held")]
    assert hall_db("SELECT COUNT(*) FROM ratings") == [(1,)]   # the record itself is kept


def test_every_batch_is_posted_once_when_nothing_fails(store, hall, hall_db):
    # if this fails, the hall posts each batch twice (the second answered "duplicate"): twice
    # the traffic and the store's work for nothing
    conn = sqlite3.connect(hall.hall.database, isolation_level=None)
    for i in range(1, 111):                        # 220 records: 5 batches of 50
        conn.execute("INSERT INTO transactions (id, window, ticket, started_at, finished_at)"
                     " VALUES (?, 'W01', ?, ?, ?)", (i, "A%03d" % i, 1790000000.0 + i,
                                                     1790000060.0 + i))
        conn.execute("INSERT INTO ratings (terminal, seq, level, token, rated_at, received_at,"
                     " outcome, transaction_id) VALUES ('T001', ?, ?, '', ?, ?, 'counted', ?)",
                     (i, i % 5 + 1, 1790000070.0 + i, 1790000071.0 + i, i))
    conn.close()
    forward_all(hall, hall_db, steps=100)          # one answer a step: more than enough
    assert backlog(hall_db) == 0
    assert store_has(store) == hall_expected(hall_db)
    assert hall_db("SELECT COUNT(*), SUM(attempts), COUNT(delivered_at) FROM forward_batches"
                   ) == [(5, 5, 5)]
    assert store.query(lambda s: s.counts()["batches"]) == 5
    assert "duplicate" not in store.proc.log_text()


def test_a_store_that_never_answers_does_not_hold_up_ratings(certs, tmp_path):
    # if this fails, a hung city link stops citizens' ratings from being stored and acked
    import socket
    import types
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)       # accepts connections, never says a word
    url = "https://127.0.0.1:%d" % hole.getsockname()[1]
    key = str(tmp_path / "H01.key")
    batches.write_key_file(key, b"k" * 32)
    hall = forwarding_hall(str(tmp_path / "h"), types.SimpleNamespace(
        url=url, ca=certs["ca"], key_file=key))
    hall_db = hall_query(hall)
    b = processes.Mosquitto(hall_kit.broker_conf(hall), hall.mqtt.port).start()
    d = processes.DaemonProcess(hall).start()
    try:
        hall_day(hall, 40, seed=4)       # every rating acked (drain inside) while the link hangs
        assert backlog(hall_db) == sum(len(kind) for kind in hall_expected(hall_db))
    finally:
        d.kill()
        b.stop()
        hole.close()
