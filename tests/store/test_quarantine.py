"""A record the store refuses never blocks the queue (issue 13): the hall splits the refused batch
until the refused record is alone, delivers the rest, sets the record apart in its quarantine
for hall IT (status, list, show, retry, drop; an alert; the health answer), and still posts
every batch once. Real parts: the store as a process over HTTPS on SQLite and PostgreSQL, the hall's
own forwarder on a real hall database, the hall daemon with its broker for the alert."""
import http.server
import json
import sqlite3
import threading

import paho.mqtt.client as paho
from click.testing import CliRunner

from haochaping.daemon.hall import api_client, audit, db
from haochaping.protocol import topics
from haochaping.tools.cli import _register, cli
from haochaping.tools.sim import hall_kit, processes
from tests.conftest import hall_query, wait_until

from .conftest import backlog, forward_all, forwarding_hall, hall_expected, store_has

_register()
OUT_OF_RANGE = 2 ** 62 + 1  # a seq beyond the store's range (docs/store.md): refused, 422


def _run(*args):
    r = CliRunner().invoke(cli, list(args))
    assert "Traceback" not in r.output, r.output
    return r


def _postgres(store):
    return store.db.startswith("postgresql://")


def _write(hall, sql, *args):
    """Write into the hall database directly, as a broken terminal, an import or a hand edit
    might (the hall's own entry points check what they take in)."""
    c = sqlite3.connect(hall.hall.database, isolation_level=None)
    try:
        c.execute(sql, args)
    finally:
        c.close()


def _served(hall, n, bad_seq_at=(), nul_ticket_at=()):
    """n finished transactions, each with its rating (2n records, in this order in the outbox);
    the rating of transaction i in bad_seq_at gets a seq out of the store's range, the ticket of
    transaction i in nul_ticket_at a NUL character. Returns the refused record ids."""
    refused = []
    for i in range(1, n + 1):
        ticket = "A%03d" % i
        if i in nul_ticket_at:
            ticket = "A\x00%03d" % i
            refused.append("H01:tx:%d" % i)
        _write(hall, "INSERT INTO transactions (id, window, ticket, started_at, finished_at)"
               " VALUES (?, 'W01', ?, ?, ?)", i, ticket, 1790000000.0 + i, 1790000060.0 + i)
        seq = OUT_OF_RANGE + i if i in bad_seq_at else i
        if i in bad_seq_at:
            refused.append("H01:rating:T001:%d" % seq)
        _write(hall, "INSERT INTO ratings (terminal, seq, level, token, rated_at, received_at,"
               " outcome, transaction_id) VALUES ('T001', ?, ?, '', ?, ?, 'counted', ?)",
               seq, i % 5 + 1, 1790000070.0 + i, 1790000071.0 + i, i)
    return sorted(refused)


def _without(expected, refused):
    tx, ratings, reasons = expected
    return ([t for t in tx if t not in refused], [r for r in ratings if r[0] not in refused],
            [r for r in reasons if r not in refused])


def _held(hall_db):
    return sorted(r[0] for r in hall_db("SELECT record FROM forward_quarantine"
                                        " WHERE state = 'held'"))


def _stored_once(store):
    """Every record the store holds came in exactly one stored batch (none carried twice)."""
    def q(s):
        carried = s._query("SELECT COALESCE(SUM(records), 0), COALESCE(SUM(new_records), 0)"
                           " FROM batches", ())[0]
        c = s.counts()
        return tuple(carried), c["transactions"] + c["ratings"] + c["reasons"]
    carried, held = store.query(q)
    assert carried == (held, held)


def _posted_once(store, hall_db):
    """No batch was posted twice: every delivered batch in one attempt, no "duplicate"."""
    assert hall_db("SELECT COUNT(*) FROM forward_batches WHERE delivered_at IS NOT NULL"
                   " AND attempts != 1") == [(0,)]
    assert "duplicate" not in store.proc.log_text()


def test_a_record_the_store_refuses_is_quarantined_and_every_other_record_is_delivered_once(
        store, hall, hall_db):
    # if this fails, one bad record (a NUL in a ticket, a seq out of range) stops a hall's whole
    # forwarding for good: everything behind it waits, and the city's reports go stale
    nul = (40,)   # refused on both backends by the field rules (protocol/fields.py)
    refused = _served(hall, 60, bad_seq_at=(15, 52), nul_ticket_at=nul)  # batches of 50
    forward_all(hall, hall_db)
    assert backlog(hall_db) == 0                       # the queue moved on
    assert _held(hall_db) == refused                   # each refused record set apart, alone
    assert store_has(store) == _without(hall_expected(hall_db), refused)
    _stored_once(store)
    _posted_once(store, hall_db)
    reasons = dict(hall_db("SELECT record, reason FROM forward_quarantine"))
    assert "seq must be an integer" in reasons["H01:rating:T001:%d" % (OUT_OF_RANGE + 15)]
    assert "NUL" in reasons["H01:tx:40"] and "ticket" in reasons["H01:tx:40"]
    # hall IT sees it: status counts them, list names them with the store's reason
    r = _run("forward", "status", "--config", hall.path)
    assert "quarantined: %d record(s)" % len(refused) in r.output, r.output
    assert json.loads(_run("forward", "status", "--config", hall.path, "--json").output
                      )["quarantined"] == len(refused)
    r = _run("forward", "quarantine", "list", "--config", hall.path)
    assert r.exit_code == 0 and all(uid in r.output for uid in refused), r.output
    assert "seq must be an integer" in r.output


def test_a_quarantined_record_is_delivered_once_retried_after_its_fix(store, hall, hall_db):
    # if this fails, hall IT can see a refused record but never get it to the city, even after
    # fixing it (or a retry before the fix loses it)
    nul = (3,)   # refused on both backends by the field rules (protocol/fields.py)
    refused = _served(hall, 6, bad_seq_at=(5,), nul_ticket_at=nul)
    forward_all(hall, hall_db)
    assert _held(hall_db) == refused
    ids = dict(hall_db("SELECT record, id FROM forward_quarantine"))
    bad = "H01:rating:T001:%d" % (OUT_OF_RANGE + 5)
    r = _run("forward", "quarantine", "show", "--config", hall.path, str(ids[bad]))
    assert r.exit_code == 0 and "seq must be an integer" in r.output and "ratings" in r.output
    assert str(OUT_OF_RANGE + 5) in r.output
    # retried before it is fixed: refused again, back in the quarantine, one more attempt
    r = _run("forward", "quarantine", "retry", "--config", hall.path, str(ids[bad]),
             "--actor", "it-li")
    assert r.exit_code == 0, r.output
    assert backlog(hall_db) == 1
    forward_all(hall, hall_db)
    assert _held(hall_db) == refused
    assert hall_db("SELECT attempts FROM forward_quarantine WHERE id = ?", ids[bad]) == [(2,)]
    # fixed in the hall database, retried: delivered, once
    _write(hall, "UPDATE ratings SET seq = 5 WHERE seq = ?", OUT_OF_RANGE + 5)
    if nul:
        _write(hall, "UPDATE transactions SET ticket = 'A003' WHERE id = 3")
        assert _run("forward", "quarantine", "retry", "--config", hall.path,
                    str(ids["H01:tx:3"]), "--actor", "it-li").exit_code == 0
    assert _run("forward", "quarantine", "retry", "--config", hall.path, str(ids[bad]),
                "--actor", "it-li").exit_code == 0
    forward_all(hall, hall_db)
    assert backlog(hall_db) == 0 and _held(hall_db) == []
    assert store_has(store) == hall_expected(hall_db)
    _stored_once(store)
    assert sorted(hall_db("SELECT state FROM forward_quarantine")) == [("delivered",)] * len(ids)
    conn = db.connect(hall.hall.database)
    retries = [e for e in audit.entries(conn) if e["action"] == "forward.quarantine.retry"]
    conn.close()
    assert len(retries) == 2 + len(nul) and {e["actor"] for e in retries} == {"it-li"}
    assert {e["detail"]["record"] for e in retries} == {bad, *(["H01:tx:3"] if nul else [])}
    assert "quarantined: none" in _run("forward", "status", "--config", hall.path).output
    r = _run("forward", "quarantine", "retry", "--config", hall.path, str(ids[bad]))
    assert r.exit_code == 1 and "not held" in r.output   # delivered: nothing left to retry


def test_a_quarantined_record_is_dropped_only_with_a_reason_and_an_audit_entry(store, hall,
                                                                                hall_db):
    # if this fails, a record the city will never take can be dropped by nobody knows whom, for
    # no stated reason, or stays counted as waiting for ever
    refused = _served(hall, 4, bad_seq_at=(2,))
    forward_all(hall, hall_db)
    (qid,) = [r[0] for r in hall_db("SELECT id FROM forward_quarantine")]
    r = _run("forward", "quarantine", "drop", "--config", hall.path, str(qid))
    assert r.exit_code == 2 and "--reason" in r.output           # no reason: nothing dropped
    r = _run("forward", "quarantine", "drop", "--config", hall.path, str(qid), "--reason", " ")
    assert r.exit_code == 1 and "needs a reason" in r.output
    assert _held(hall_db) == refused
    r = _run("forward", "quarantine", "drop", "--config", hall.path, str(qid),
             "--reason", "terminal T001 journal corrupted; rating re-entered by hand",
             "--actor", "it-wang")
    assert r.exit_code == 0, r.output
    assert _held(hall_db) == []
    assert "no record is held" in _run("forward", "quarantine", "list", "--config",
                                       hall.path).output
    assert "dropped" in _run("forward", "quarantine", "list", "--config", hall.path,
                             "--all").output
    assert "quarantined: none" in _run("forward", "status", "--config", hall.path).output
    conn = db.connect(hall.hall.database)
    (entry,) = [e for e in audit.entries(conn) if e["action"] == "forward.quarantine.drop"]
    conn.close()
    assert entry["actor"] == "it-wang" and entry["detail"]["record"] == refused[0]
    assert "journal corrupted" in entry["detail"]["reason"]
    # the hall keeps the record itself; the store never gets it
    assert hall_db("SELECT COUNT(*) FROM ratings WHERE seq = ?", OUT_OF_RANGE + 2) == [(1,)]
    assert store_has(store) == _without(hall_expected(hall_db), refused)
    forward_all(hall, hall_db)
    assert store_has(store) == _without(hall_expected(hall_db), refused)


class _Webhook(http.server.BaseHTTPRequestHandler):
    got: list = []

    def do_POST(self):
        self.got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_quarantined_record_raises_an_alert_and_shows_in_the_hall_health(store, tmp_path):
    # if this fails, a record set apart waits unseen: nobody is told, and the hall's health
    # answer says all is well
    _Webhook.got = []
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    hall = forwarding_hall(str(tmp_path / "h"), store)
    with open(hall.path, "a") as f:
        f.write('\n[alerts]\nwebhook = "http://127.0.0.1:%d/alerts"\n' % hook.server_address[1])
    refused = _served(hall, 3, bad_seq_at=(2,))
    b = processes.Mosquitto(hall_kit.broker_conf(hall), hall.mqtt.port).start()
    seen = []
    watcher = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="alert-watcher")
    # its own broker user: the broker names a session after its user, so the daemon's user
    # here would take the daemon's own session away
    watcher.username_pw_set("observer", hall.mqtt.password)
    watcher.on_message = lambda c, u, m: seen.append(json.loads(m.payload))
    watcher.connect("127.0.0.1", hall.mqtt.port)
    watcher.loop_start()
    d = None
    try:
        wait_until(watcher.is_connected, what="the alert watcher connected")
        watcher.subscribe(topics.alerts("H01"), qos=1)
        d = processes.DaemonProcess(hall).start()
        hall_db = hall_query(hall)
        wait_until(lambda: backlog(hall_db) == 0, what="everything forwarded or set apart")
        assert _held(hall_db) == refused
        wait_until(lambda: _Webhook.got and seen, what="the alert by webhook and MQTT")
        for alert in (_Webhook.got[0], seen[0]):
            assert alert["kind"] == "forward-quarantine" and alert["record"] == refused[0]
            assert alert["table"] == "ratings" and "seq must be an integer" in alert["reason"]
            assert alert["quarantined"] == 1 and alert["hall"] == "H01"
        assert api_client.WindowApi(hall).health()["quarantined"] == 1
        assert store_has(store) == _without(hall_expected(hall_db), refused)
    finally:
        if d is not None:
            d.kill()
        watcher.loop_stop()
        watcher.disconnect()
        b.stop()
        hook.shutdown()




def test_every_held_record_is_retried_at_once_after_a_fix_that_covers_them_all(store, hall,
                                                                               hall_db):
    # if this fails, after a store-wide refusal is fixed hall IT must retry hundreds of records
    # one ID at a time
    refused = _served(hall, 6, bad_seq_at=(2, 4, 6))
    forward_all(hall, hall_db)
    assert _held(hall_db) == refused
    for i in (2, 4, 6):
        _write(hall, "UPDATE ratings SET seq = ? WHERE seq = ?", i, OUT_OF_RANGE + i)
    r = _run("forward", "quarantine", "retry", "--config", hall.path)
    assert r.exit_code == 1 and "--all" in r.output
    r = _run("forward", "quarantine", "retry", "--config", hall.path, "--all", "--actor", "it-li")
    assert r.exit_code == 0 and "3 held record(s)" in r.output, r.output
    forward_all(hall, hall_db)
    assert backlog(hall_db) == 0 and _held(hall_db) == []
    assert store_has(store) == hall_expected(hall_db)
    conn = db.connect(hall.hall.database)
    retries = [e for e in audit.entries(conn) if e["action"] == "forward.quarantine.retry"]
    conn.close()
    assert len(retries) == 3
