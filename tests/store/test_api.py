"""The store's HTTPS API against a real store process, on both backends: what is stored once,
what is refused with which error, and that the store keeps serving afterwards."""
import json
import socket
import ssl
from collections.abc import Callable
from typing import Any

import pytest

from haochaping.daemon import batches
from haochaping.daemon.hall.store_client import StoreRefused

from .conftest import encode_v1


def _records(n=3, hall="H01", start=1):
    out = []
    for i in range(start, start + n):
        out.append({"type": "transaction", "id": "%s:tx:%d" % (hall, i), "tx": i, "window": "W01",
                    "ticket": "A%03d" % i, "item": "530100-001", "staff": "S01",
                    "started_at": 1790000000.0 + i, "finished_at": 1790000060.0 + i})
        out.append({"type": "rating", "id": "%s:rating:T001:%d" % (hall, i), "terminal": "T001",
                    "seq": i, "level": i % 5 + 1, "outcome": "counted",
                    "transaction": "%s:tx:%d" % (hall, i), "rated_at": 1790000070.0 + i,
                    "received_at": 1790000071.0 + i})
    return out


def _post(store, batch_id, recs, hall="H01", key=None, body=None):
    c = store.client(hall, key)
    try:
        return c.post_batch(batch_id, body if body is not None else
                            encode_v1(hall, batch_id, recs))
    finally:
        c.close()


def _counts(store):
    return store.query(lambda s: s.counts())


def _serving(store):
    # the store still answers and still stores
    assert _post(store, "after", _records(1, start=900))["status"] == "stored"


def test_a_batch_is_stored_and_a_replay_is_acked_but_stored_once(store):
    # if this fails, a hall that resends after a lost answer doubles the city's ratings
    recs = _records(5)
    assert _post(store, "b1", recs) == {"status": "stored", "batch": "b1", "records": 10, "new": 10}
    assert _post(store, "b1", recs)["status"] == "duplicate"
    # the same records in another batch (the hall rebuilt it after a crash): acked, not stored
    assert _post(store, "b2", recs + _records(1, start=6))["new"] == 2
    c = _counts(store)
    assert (c["transactions"], c["ratings"], c["batches"]) == (6, 6, 2)


def test_a_batch_with_one_byte_changed_is_refused_401(store):
    # if this fails, anyone on the path can alter a citizen's rating on its way to the city
    body = encode_v1("H01", "b1", _records(2))
    sig = batches.signature(batches.read_key_file(store.key_file), "H01", "b1", body)
    forged = body.replace(b'"level":2', b'"level":5')
    assert forged != body
    c = store.client()
    status, doc = c.request("POST", "/v1/batches", forged, {
        "X-Hcp-Hall": "H01", "X-Hcp-Batch": "b1", "X-Hcp-Signature": sig})
    assert status == 401 and "bad signature" in doc["error"]
    assert _counts(store)["ratings"] == 0
    assert "bad signature" in store.proc.log_text()
    _serving(store)


def test_a_batch_signed_with_another_key_is_refused_401(store):
    # if this fails, a hall (or anyone) can post in another hall's name
    with pytest.raises(StoreRefused) as e:
        _post(store, "b1", _records(1), key=b"\x01" * 32)
    assert e.value.status == 401


def test_an_unknown_hall_is_refused_403(store):
    # if this fails, an unregistered machine can fill the city's store
    with pytest.raises(StoreRefused) as e:
        _post(store, "b1", _records(1, hall="H99"), hall="H99")
    assert e.value.status == 403 and "unknown hall H99" in e.value.reason
    assert "unknown hall H99" in store.proc.log_text()
    _serving(store)


def test_a_revoked_hall_is_refused_403_and_its_records_stay(store):
    # if this fails, a hall whose key leaked keeps posting in its name after revocation
    _post(store, "b1", _records(1))
    from click.testing import CliRunner

    from haochaping.tools.cli import _register, cli
    _register()
    r = CliRunner().invoke(cli, ["store", "revoke-hall", "--db", store.db, "--hall", "H01"])
    assert r.exit_code == 0, r.output
    with pytest.raises(StoreRefused) as e:
        _post(store, "b2", _records(1, start=2))
    assert e.value.status == 403
    assert _counts(store)["ratings"] == 1


@pytest.mark.parametrize("body,status,words", [
    (b'{"hall": "H01", "batch": "b1", "rec', 400, "not JSON"),
    (b'[1, 2]', 400, "must be an object"),
    (None, 422, "level must be an integer 1..5"),
    (None, 422, "expected 'H01:tx:1'"),
])
def test_a_malformed_batch_is_refused_with_its_reason(store, body, status, words):
    # if this fails, a broken hall's garbage lands in the city's reports
    recs = _records(1)
    if words.startswith("level"):
        recs[1]["level"] = 9
    elif words.startswith("expected"):
        recs[0]["id"] = "H02:tx:1"
    with pytest.raises(StoreRefused) as e:
        _post(store, "b1", recs, body=body)
    assert e.value.status == status and words in e.value.reason
    assert _counts(store)["ratings"] == 0
    _serving(store)


def test_a_batch_id_reused_for_other_records_is_refused_409(store):
    # if this fails, a hall bug that reuses batch ids silently loses the second batch
    _post(store, "b1", _records(1))
    with pytest.raises(StoreRefused) as e:
        _post(store, "b1", _records(1, start=2))
    assert e.value.status == 409


def _raw_tls(store):
    ctx = ssl.create_default_context(cafile=store.ca)
    port = int(store.url.rsplit(":", 1)[1])
    return ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=20),
                           server_hostname="127.0.0.1")


def _head(hall, batch, length, sig="00"):
    return ("POST /v1/batches HTTP/1.1\r\nHost: store\r\nContent-Type: application/json\r\n"
            "X-Hcp-Hall: %s\r\nX-Hcp-Batch: %s\r\nX-Hcp-Signature: %s\r\nContent-Length: %d\r\n"
            "\r\n" % (hall, batch, sig, length)).encode()


def _read_status(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


def test_a_truncated_body_is_refused_and_nothing_is_stored(store):
    # if this fails, a connection cut mid-upload stores half a batch or hangs the store
    body = encode_v1("H01", "b1", _records(3))
    sig = batches.signature(batches.read_key_file(store.key_file), "H01", "b1", body)
    s = _raw_tls(store)
    s.sendall(_head("H01", "b1", len(body), sig) + body[:len(body) // 2])
    s.shutdown(socket.SHUT_WR)
    s.close()
    _serving(store)
    assert _counts(store)["ratings"] == 1  # only the one from _serving
    assert "body truncated" in store.proc.log_text()


def test_a_50_mb_body_is_refused_413_without_being_read(store):
    # if this fails, one oversized (or hostile) post can exhaust the store's memory
    s = _raw_tls(store)
    s.sendall(_head("H01", "big", 50 * 1024 * 1024))
    assert _read_status(s) == 413
    try:
        chunk = b"x" * (1 << 20)
        for _ in range(50):
            s.sendall(chunk)
    except OSError:
        pass  # the store closed the connection: it does not read what it refused
    s.close()
    _serving(store)


def test_plain_http_to_the_tls_port_is_never_answered_in_clear_nor_stored(store):
    # if this fails, ratings and hall signatures could cross the city network in clear: the
    # store answers (and stores) a batch posted over plain HTTP on its HTTPS port. (uvicorn
    # does TLS in the server: a plain request gets its handshake refused, no answer at all;
    # the hand-written 400 "HTTPS only" went with the hand-written TLS.)
    host, _, port = store.url.split("//", 1)[1].rpartition(":")
    body = encode_v1("H01", "b1", _records(1))
    sig = batches.signature(batches.read_key_file(store.key_file), "H01", "b1", body)
    with socket.create_connection((host, int(port)), timeout=30) as s:
        try:
            s.sendall(_head("H01", "b1", len(body), sig) + body)
            answer = s.recv(65536)
        except ConnectionResetError:
            answer = b""
    assert not answer.startswith(b"HTTP/")
    assert _counts(store)["ratings"] == 0
    _serving(store)


def test_a_client_offering_only_tls_1_1_is_refused(store):
    # if this fails, the store accepts TLS 1.0/1.1, whose weaknesses let a network attacker
    # read or alter what a badly configured hall sends
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(store.ca)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    port = int(store.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw, \
            pytest.raises(ssl.SSLError) as e:
        ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    # refused by the store (its alert), not by this client's own library before it asked
    assert "NO_PROTOCOLS_AVAILABLE" not in str(e.value), e.value
    _serving(store)


def test_rater_identity_is_stored_only_with_consent_and_only_encrypted(store):
    # if this fails, a citizen's name and ID number lie readable in the city's database
    recs = _records(1)
    recs[0]["rater"] = {"consent": False,
                        "identity": {"name": "张三", "id_no": "530102199001011234"}}
    with pytest.raises(StoreRefused) as e:
        _post(store, "b1", recs)
    assert e.value.status == 422 and "consent" in e.value.reason
    recs[0]["rater"]["consent"] = True
    _post(store, "b2", recs)
    raw = store.query(lambda s: s._query("SELECT rater_enc FROM transactions", ()))[0][0]
    assert b"530102199001011234" not in bytes(raw) and "张三".encode() not in bytes(raw)
    assert store.query(lambda s: s.rater("H01:tx:1"))["id_no"] == "530102199001011234"
    assert "530102199001011234" not in store.proc.log_text()


def test_halls_posting_at_once_and_the_same_batch_twice_at_once_are_each_stored_once(store):
    # if this fails, a busy city (many halls, a hall retrying while its first post still runs)
    # loses or doubles records
    import threading
    key2 = store.query(lambda s: s.add_hall("H02"))
    answers, errors = [], []

    def post(hall, key, batch, recs):
        try:
            answers.append(_post(store, batch, recs, hall=hall, key=key))
        except Exception as e:  # collected and checked below
            errors.append(e)
    jobs = []
    for i in range(8):
        recs1 = _records(50, hall="H01", start=1 + 50 * (i // 2))  # pairs of identical batches
        recs2 = _records(50, hall="H02", start=1 + 50 * i)
        jobs.append(threading.Thread(target=post, args=("H01", None, "b%d" % (i // 2), recs1)))
        jobs.append(threading.Thread(target=post, args=("H02", key2, "c%d" % i, recs2)))
    for j in jobs:
        j.start()
    for j in jobs:
        j.join()
    assert errors == []
    assert sorted(a["status"] for a in answers) == ["duplicate"] * 4 + ["stored"] * 12
    assert sum(a["new"] for a in answers) == 4 * 100 + 8 * 100
    assert len(store.query(lambda s: s.uids("rating", "H01"))) == 200
    assert len(store.query(lambda s: s.uids("rating", "H02"))) == 400


# ------------------------------------------------------------------ version 2 (columns)
def _tables(recs):
    """The version-2 tables carrying the same records as _records() (version 1)."""
    out = {}
    for r in recs:
        name = {"transaction": "transactions", "rating": "ratings", "reason": "reasons"}[r["type"]]
        t = out.setdefault(name, {})
        for k, v in r.items():
            if k in ("type", "id"):
                continue
            if k == "transaction" and v is not None:
                v = int(v.rsplit(":", 1)[1])
            t.setdefault(k, []).append(v)
    return out


def _post_v2(store, batch_id, tables, hall="H01"):
    return _post(store, batch_id, None, hall=hall,
                 body=batches.encode_columns(hall, batch_id, tables))


def test_a_columnar_batch_is_stored_like_the_same_records_one_by_one(store):
    # if this fails, the compact format halls send stores other data than the records it carries
    recs = _records(4)
    recs.append({"type": "reason", "id": "H01:reason:T001:9", "terminal": "T001", "seq": 9,
                 "ref": 4, "reason": "服务态度", "rated_at": 1790000090.5})
    assert _post_v2(store, "c1", _tables(recs)) == {"status": "stored", "batch": "c1",
                                                    "records": 9, "new": 9}
    assert _post_v2(store, "c1", _tables(recs))["status"] == "duplicate"
    # the same records again as version 1: acknowledged, none stored twice
    assert _post(store, "v1", recs)["new"] == 0
    rows = store.query(lambda s: s.ratings("H01", 0))
    assert [(r["uid"], r["level"], r["transaction"], r["ticket"], r["channel"], r["reason"])
            for r in rows][-1] == ("H01:rating:T001:4", 5, "H01:tx:4", "A004", "PJQ", "服务态度")
    assert rows[0]["rated_at"] == 1790000071.0 and rows[0]["default"] == 0
    c = _counts(store)
    assert (c["transactions"], c["ratings"], c["reasons"], c["batches"]) == (4, 4, 1, 2)


def test_a_columnar_batch_with_a_record_twice_stores_it_once(store):
    # if this fails, a hall bug that repeats a row doubles a rating at the city
    t = _tables(_records(2) + _records(1))
    assert _post_v2(store, "c1", t)["records"] == 4
    assert _counts(store)["ratings"] == 2


@pytest.mark.parametrize("change,status,words", [
    (lambda b: b.update(v=3), 400, "unknown batch format version 3"),
    (lambda b: b["ratings"]["level"].__setitem__(1, 6), 422,
     "record H01:rating:T001:2: level must be an integer 1..5"),
    (lambda b: b["ratings"]["level"].__setitem__(0, True), 422, "level must be an integer"),
    (lambda b: b["ratings"]["seq"].pop(), 422, "every field must have one value per record"),
    (lambda b: b["ratings"].pop("outcome"), 422, "ratings: field outcome is missing"),
    (lambda b: b["ratings"].update(levle=[1, 1]), 422, "ratings: unknown fields levle"),
    (lambda b: b.update(ratingz={}), 422, "unknown fields in a version-2 body: ratingz"),
    (lambda b: b["ratings"]["terminal"].__setitem__(0, "T 1"), 422, "terminal must be an id"),
    (lambda b: b["ratings"]["outcome"].__setitem__(0, "won"), 422, "outcome must be one of"),
    (lambda b: b["ratings"]["rated_at"].__setitem__(0, "now"), 422, "rated_at must be a number"),
    # json.dumps writes NaN, which is not JSON: a time that sorts nowhere in the city's reports
    (lambda b: b["ratings"]["rated_at"].__setitem__(0, float("nan")), 400, "not JSON"),
    (lambda b: b["ratings"]["transaction"].__setitem__(0, "H01:tx:1"), 422,
     "transaction must be an integer 1..9007199254740991 or null"),
    (lambda b: b["transactions"]["ticket"].__setitem__(0, ""), 422,
     "record H01:tx:1: ticket must be a string of 1 to 64 characters"),
    (lambda b: b["transactions"].update(rater=[{"consent": False, "identity": {}}, None]), 422,
     "rater needs consent=true"),
    (lambda b: b.update(ratings=[1, 2]), 422, "ratings must be an object of arrays"),
])
def test_a_malformed_columnar_batch_is_refused_with_its_reason(store, change, status, words):
    # if this fails, a broken hall's garbage lands in the city's reports (or is refused unsaid)
    doc = {"v": 2, "hall": "H01", "batch": "c1"}
    doc.update(_tables(_records(2)))
    change(doc)
    body = json.dumps(doc, ensure_ascii=False).encode()
    with pytest.raises(StoreRefused) as e:
        _post(store, "c1", None, body=body)
    assert e.value.status == status and words in e.value.reason, e.value.reason
    assert _counts(store)["transactions"] == 0 and _counts(store)["ratings"] == 0
    _serving(store)


def test_a_copy_of_the_sqlite_file_alone_holds_a_batch_a_few_seconds_after_it_is_stored(
        store, tmp_path):
    # if this fails, the WAL is never copied into the database file: it grows without end, and
    # a backup of store.sqlite alone (without store.sqlite-wal) misses what the halls sent
    if store.db.startswith("postgresql://"):
        pytest.skip("the write-ahead log in question is SQLite's")
    import shutil
    import sqlite3
    import time
    assert _post(store, "w1", _records(5))["new"] == 10

    def copied():
        shutil.copyfile(store.db, tmp_path / "copy.sqlite")
        c = sqlite3.connect(tmp_path / "copy.sqlite")
        try:
            return c.execute("SELECT COUNT(*) FROM ratings").fetchone()[0]
        finally:
            c.close()
    deadline = time.time() + 10
    while copied() != 5 and time.time() < deadline:
        time.sleep(0.2)
    assert copied() == 5


def test_with_workers_0_the_serving_process_stores_batches_itself(store_db, certs, tmp_path):
    # if this fails, hall IT on a one-core box (`--workers 0`) gets a store that takes nothing
    import subprocess

    from .conftest import serve_store
    store = serve_store(store_db, certs, tmp_path / "store", ["--workers", "0"])
    try:
        kids = subprocess.run(["pgrep", "-P", str(store.proc.proc.pid)], capture_output=True,
                              text=True).stdout.split()
        assert kids == []
        assert _post(store, "z1", _records(4))["new"] == 8
        assert _post(store, "z1", _records(4))["status"] == "duplicate"
    finally:
        store.proc.kill()
    assert _counts(store)["ratings"] == 4


def _post_raw(store, batch_id, body):
    """Post a body as a hall would; (HTTP status, the answer's JSON)."""
    c = store.client()
    try:
        sig = batches.signature(batches.read_key_file(store.key_file), "H01", batch_id, body)
        return c.request("POST", "/v1/batches", body, {
            "Content-Type": "application/json", "X-Hcp-Hall": "H01", "X-Hcp-Batch": batch_id,
            "X-Hcp-Signature": sig})
    finally:
        c.close()


def test_a_record_out_of_the_stores_range_is_refused_422_naming_the_record_and_field(store):
    # if this fails, a hall (or hall IT) told "422" cannot tell which record to set apart or fix
    t = _tables(_records(3))
    t["ratings"]["seq"][1] = 2 ** 62 + 1
    status, doc = _post_raw(store, "r1", batches.encode_columns("H01", "r1", t))
    assert status == 422, doc
    assert doc["record"] == "H01:rating:T001:%d" % (2 ** 62 + 1) and doc["field"] == "seq"
    assert "seq must be an integer" in doc["error"]
    assert _counts(store)["ratings"] == 0 and _counts(store)["batches"] == 0
    _serving(store)


def test_a_nul_in_a_ticket_is_refused_422_naming_the_record_not_503(store):
    # if this fails, one NUL character in a ticket makes a PostgreSQL store answer "database
    # unavailable, retry later" for ever: the hall retries the same batch and everything waits;
    # both backends refuse it by the same field rule (protocol/fields.py) before storing
    t = _tables(_records(3))
    t["transactions"]["ticket"][1] = "A\x00002"
    status, doc = _post_raw(store, "n1", batches.encode_columns("H01", "n1", t))
    assert status == 422, doc
    assert doc["record"] == "H01:tx:2" and doc["field"] == "ticket"
    assert "NUL" in doc["error"]
    c = _counts(store)
    assert (c["transactions"], c["ratings"], c["batches"]) == (0, 0, 0)  # nothing of it
    # the same record seen before: the other way in (INSERT … unnest) refuses it alike
    assert _post_v2(store, "n0", _tables(_records(1, start=1)))["new"] == 2
    status, doc = _post_raw(store, "n2", batches.encode_columns("H01", "n2", t))
    assert (status, doc["record"], doc["field"]) == (422, "H01:tx:2", "ticket")
    assert _counts(store)["transactions"] == 1
    _serving(store)


class _DatabaseAway:
    """The store's PostgreSQL database taken away: every connection of the store cut and, while
    `refusing`, new ones refused (ALLOW_CONNECTIONS false), as in a failover or a restart."""

    def __init__(self, store_db: str) -> None:
        self.name = store_db.rsplit("/", 1)[1]

    def _admin(self, sql: str) -> None:
        import psycopg

        from .conftest import PG_ADMIN
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(sql)

    def cut(self, refusing: bool) -> None:
        import psycopg

        from tests.conftest import wait_until

        from .conftest import PG_ADMIN
        if refusing:
            self._admin("ALTER DATABASE %s ALLOW_CONNECTIONS false" % self.name)
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            # (found first, then cut one by one: only this test's own database is touched)
            cut = [r[0] for r in c.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s"
                                           " AND pid <> pg_backend_pid()", (self.name,))]
            assert cut
            for pid in cut:
                c.execute("SELECT pg_terminate_backend(%s)", (pid,))
            wait_until(lambda: not c.execute("SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s)",
                                             (cut,)).fetchall(), what="the connections gone")

    def back(self) -> None:
        self._admin("ALTER DATABASE %s ALLOW_CONNECTIONS true" % self.name)


def _answers_while(request: Callable[[], tuple[int, Any]], answer: int) -> list[tuple[int, Any]]:
    """request() again while it answers `answer` (at most 10 times); every answer."""
    answers = [request()]
    while answers[-1][0] == answer:
        assert len(answers) < 10, answers
        answers.append(request())
    return answers


def test_a_store_whose_database_connections_were_cut_stores_the_next_batch_at_once(store):
    # if this fails, after PostgreSQL restarts (every connection of the store cut) the store
    # refuses the hall's next batch — for good (a 4xx: the hall would set the records apart), or
    # with a 503 the hall must wait out — or stores it twice; the pool checks a connection as it
    # takes it and replaces a cut one
    if not store.db.startswith("postgresql://"):
        pytest.skip("a SQLite file cannot be taken away from a running store here")
    _post(store, "p0", _records(1))
    _DatabaseAway(store.db).cut(refusing=False)
    body = encode_v1("H01", "p1", _records(2, start=2))
    for _ in range(6):  # every process of the store in turn (uvicorn spreads the posts)
        status, doc = _post_raw(store, "p1", body)
        assert status == 200, doc
    assert _post_raw(store, "p1", body)[1] == {"status": "duplicate", "batch": "p1",
                                               "records": 4, "new": 0}
    assert _counts(store)["ratings"] == 3


def test_the_store_answers_503_only_while_its_database_is_away(store):
    # if this fails, a store whose database is away answers the hall with a 4xx (the hall sets
    # the records apart for good), a 500, or hangs; and once the database is back the batch is
    # stored once
    if not store.db.startswith("postgresql://"):
        pytest.skip("a SQLite file cannot be taken away from a running store here")
    _post(store, "p0", _records(1))
    away = _DatabaseAway(store.db)
    body = encode_v1("H01", "p1", _records(2, start=2))
    try:
        away.cut(refusing=True)
        status, doc = _post_raw(store, "p1", body)
        assert (status, doc) == (503, {"error": "store database unavailable, retry later"})
    finally:
        away.back()
    answers = _answers_while(lambda: _post_raw(store, "p1", body), 503)
    assert answers[-1] == (200, {"status": "stored", "batch": "p1", "records": 4, "new": 4})
    assert _post_raw(store, "p1", body)[1]["status"] == "duplicate"
    assert _counts(store)["ratings"] == 3


def test_an_appeal_looked_up_while_the_database_is_away_is_answered_503_not_500(store, tmp_path):
    # if this fails, a unit's office checking its appeal during a database outage gets a 500
    # ("the store is broken") instead of 503 ("retry later"), and its client gives up
    if not store.db.startswith("postgresql://"):
        pytest.skip("a SQLite file cannot be taken away from a running store here")
    from click.testing import CliRunner

    from haochaping.tools.cli import _register, cli
    _register()
    r = CliRunner().invoke(cli, ["appeal", "add-unit", "--db", store.db, "--unit", "H01",
                                 "--token-out", str(tmp_path / "t")])
    assert r.exit_code == 0, r.output
    auth = {"Authorization": "Bearer " + (tmp_path / "t").read_text().strip()}
    c = store.client()
    assert c.request("GET", "/v1/appeals/A1b2c3d4e5f60718", None, auth)[0] == 404
    away = _DatabaseAway(store.db)
    try:
        away.cut(refusing=True)
        assert c.request("GET", "/v1/appeals/A1b2c3d4e5f60718", None, auth) == (
            503, {"error": "store database unavailable, retry later"})
    finally:
        away.back()
    answers = _answers_while(lambda: c.request("GET", "/v1/appeals/A1b2c3d4e5f60718", None,
                                               auth), 503)
    c.close()
    assert answers[-1][0] == 404
