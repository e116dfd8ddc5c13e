"""A phone rater's consented identity (第六条) reaches the store as a `rater` record, so that the
bad review's rectification case is real-name and its follow-up (回访) reaches the citizen: the
hall daemon as a process with its phone page, the store over HTTPS on SQLite and PostgreSQL,
the hall's own forwarder on a real hall database, `hcp` as a process."""
import base64
import glob
import os
import sqlite3
import subprocess
import sys

from haochaping.daemon import batches
from haochaping.daemon.hall import db, forward, phone_ratings
from haochaping.daemon.hall.forward import Forwarder, RaterSealer
from haochaping.daemon.hall.store_client import StoreRefused
from haochaping.daemon.store import cases
from haochaping.tools.sim import processes
from tests.conftest import wait_until
from tests.hall.test_qr_channel import add_mobile, open_prompt, phone_hall, phone_token_path

from .conftest import backlog, delivered, forward_all, serve_store

NAME, PHONE = "欧阳明珠", "13987654321"


def _hcp(*args):
    """`hcp -v …` as a real process (its log on stderr): (exit code, stdout, stderr)."""
    r = subprocess.run([sys.executable, "-m", "haochaping.tools.cli", "-v"]
                       + [str(a) for a in args], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


def _case(store, rating_uid):
    return store.query(lambda s: cases.get(s, cases.case_id(rating_uid)))


def _rater_enc(store, tx_uid):
    rows = store.query(lambda s: s._query("SELECT rater_enc FROM transactions WHERE uid = %s",
                                          (tx_uid,)))
    return None if not rows or rows[0][0] is None else bytes(rows[0][0])


def _files_hold(paths, *secrets):
    """The secrets found in clear (UTF-8) in any of these files."""
    found = set()
    for path in paths:
        if os.path.isfile(path):
            with open(path, "rb") as f:
                raw = f.read()
            found |= {s for s in secrets if s.encode() in raw}
    return found


def _store_rows_hold(store, *secrets):
    """The secrets found in clear in any row of the store's tables (either backend)."""
    def q(s):
        tables = [r[0] for r in s._query(
            "SELECT name FROM sqlite_master WHERE type = 'table'" if s.dialect == "sqlite" else
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'", ())]
        return repr([s._query("SELECT * FROM %s" % t, ()) for t in tables])
    rows = store.query(q)
    return {s for s in secrets if s in rows}


def test_a_phone_bad_review_with_a_real_name_reaches_the_store_and_its_case_shows_the_contact(
        store, hall, terminals, hall_db):
    # if this fails, a citizen who left a name and phone on the phone page after a bad review
    # is never called back (RULES.md: 实名差评回访整改率 100%; the page promises 我们整改后会回访),
    # or an anonymous one is taken for real-name, or the name and phone lie readable on the hall
    # PC, in a kept batch, in the store's database or in a log
    with phone_hall(hall, terminals) as (cfg, api, terms, phone):
        open_prompt(api, terms, "W01", "A001")
        page = phone_token_path(phone, cfg, "W01")
        assert phone.post(page, {"level": "5"})[0] == 303
        assert phone.post(page + "/more", {"reason": "attitude", "name": NAME, "phone": PHONE,
                                           "consent": "yes"})[0] == 303
        open_prompt(api, terms, "W02", "B001")
        page2 = phone_token_path(phone, cfg, "W02")
        assert phone.post(page2, {"level": "4"})[0] == 303
        assert phone.post(page2 + "/more", {"reason": "efficiency"})[0] == 303
        wait_until(lambda: hall_db("SELECT COUNT(*) FROM reasons")[0][0] == 2, what="reasons")
        delivered(store, hall_db)
        wait_until(lambda: backlog(hall_db) == 0, what="the rater record delivered")
    (real_tx, real_seq), = hall_db("SELECT transaction_id, seq FROM ratings r JOIN"
                                   " mobile_raters m ON m.rating_id = r.id")
    (anon_tx, anon_seq), = hall_db("SELECT transaction_id, seq FROM ratings WHERE terminal = 'QR'"
                                   " AND id NOT IN (SELECT rating_id FROM mobile_raters)")
    assert hall_db("SELECT record FROM forward_quarantine") == []
    real = _case(store, "H01:rating:QR:%d" % real_seq)
    anon = _case(store, "H01:rating:QR:%d" % anon_seq)
    assert real["real_name"] is True and anon["real_name"] is False
    assert _rater_enc(store, "H01:tx:%d" % anon_tx) is None
    # the follow-up: the contact on the terminal, for the one who calls, and never in the log
    code, stdout, stderr = _hcp("cases", "follow-up", "--db", store.db, real["id"],
                                "--show-contact", "--identity-key", store.identity_key)
    assert code == 0 and NAME in stdout and PHONE in stdout, stdout + stderr
    assert NAME not in stderr and PHONE not in stderr
    code, stdout, stderr = _hcp("cases", "follow-up", "--db", store.db, anon["id"],
                                "--show-contact", "--identity-key", store.identity_key)
    assert code == 1 and "anonymous" in stdout + stderr
    code, stdout, stderr = _hcp("cases", "list", "--db", store.db, "--json")
    assert code == 0 and NAME not in stdout + stderr and PHONE not in stdout + stderr
    # a real-name case cannot close without its follow-up (第十二条), an anonymous one can
    code, stdout, stderr = _hcp("cases", "close", "--db", store.db, real["id"], "--result", "x")
    assert code == 1 and "follow-up" in stdout + stderr
    # never in clear at rest or in a log: the hall's folder (hall.sqlite and its WAL, where
    # forward_batches kept the batch bytes; daemon.log), the store's database and its log
    hall_files = glob.glob(os.path.join(cfg.folder, "*"))
    assert _files_hold(hall_files, NAME, PHONE) == set()
    store.proc.terminate()
    assert NAME not in store.proc.log_text() and PHONE not in store.proc.log_text()
    assert _store_rows_hold(store, NAME, PHONE) == set()
    assert _files_hold(glob.glob(store.db + "*"), NAME, PHONE) == set()


def _hall_db_with_raters(cfg, n, unfinished=()):
    """A hall database with n finished transactions, each with a phone's counted bad review and
    its rater's sealed name and phone (as the phone page leaves them); the transactions in
    `unfinished` are never finished (so never forwarded). Returns the identities by tx."""
    conn = db.connect(cfg.hall.database)
    key = phone_ratings.read_identity_key(cfg.mobile.identity_key_file)
    identities = {}
    try:
        for i in range(1, n + 1):
            finished = None if i in unfinished else 1790000060.0 + i
            conn.execute("INSERT INTO transactions (id, window, ticket, started_at, finished_at)"
                         " VALUES (?, 'W01', ?, ?, ?)", (i, "A%03d" % i, 1790000000.0 + i,
                                                         finished))
            rid = conn.execute(
                "INSERT INTO ratings (terminal, seq, level, token, rated_at, received_at,"
                " outcome, transaction_id, channel) VALUES ('QR', ?, 5, '', ?, ?, 'counted', ?,"
                " 'QR')", (i, 1790000070.0 + i, 1790000070.0 + i, i)).lastrowid
            identities[i] = {"name": "%s%d" % (NAME, i), "phone": "1398765%04d" % i}
            conn.execute("INSERT INTO mobile_raters (rating_id, sealed, consent_at) VALUES"
                         " (?, ?, ?)", (rid, phone_ratings.seal(key, cfg.hall.id, i, identities[i]),
                                        1790000080.0 + i))
    finally:
        conn.close()
    return identities


class _ForgingSealer(RaterSealer):
    """A hall that sends transaction `forged`'s identity sealed under another key (a forged or
    corrupted record): everything else as the real forwarder seals it."""

    def __init__(self, real, forged):
        super().__init__(real.identity_key, real.mobile_hall, real.hall, real.batch_key)
        self.forged = forged

    def __call__(self, tx, seq, sealed):
        if tx == self.forged:
            return batches.seal_rater(os.urandom(32), batches.rater_uid(self.hall, tx),
                                      {"name": "x", "phone": "1"})
        return super().__call__(tx, seq, sealed)


def test_a_forged_identity_and_one_whose_transaction_never_came_are_quarantined_alone(
        store, hall, hall_db):
    # if this fails, one rater record the store cannot take (forged, or its 办件 never
    # delivered) holds up every rating behind it, or is dropped without hall IT knowing, or
    # the store keeps an identity it could not vouch for
    cfg = add_mobile(hall)
    identities = _hall_db_with_raters(cfg, 12, unfinished=(9,))
    fw = Forwarder(cfg)
    fw.raters = _ForgingSealer(fw.raters, forged=4)
    forward_all(cfg, hall_db, fw)
    assert backlog(hall_db) == 0
    held = hall_db("SELECT record, hall_table, status, reason FROM forward_quarantine"
                   " WHERE state = 'held' ORDER BY record")
    assert [r[:3] for r in held] == [("H01:rater:4", "mobile_raters", 422),
                                     ("H01:rater:9", "mobile_raters", 422)]
    assert "sealed does not open" in held[0][3] and "not in the store" in held[1][3]
    # every other record delivered: each real-name case shows its own citizen
    s = store.open()
    try:
        for i, identity in identities.items():
            got = s.rater("H01:tx:%d" % i)
            assert got == (None if i in (4, 9) else identity), i
        c = cases.get(s, cases.case_id("H01:rating:QR:4"))
        assert c["real_name"] is False     # the forged one made nothing real-name
    finally:
        s.close()
    # hall IT sees what was held, and never the identity
    show = forward.quarantine_show(sqlite3.connect(cfg.hall.database), 1)
    assert show["fields"]["tx"] in (4, 9) and "sealed" not in show["fields"]
    assert identities[4]["name"] not in repr(show)


def test_an_identity_the_hall_cannot_open_is_set_apart_and_the_rest_delivered(
        store, hall, hall_db):
    # if this fails, a phone rater's identity sealed under a key the hall no longer has (hall
    # IT replaced [mobile] identity_key_file) stops the hall's whole forwarding, or is sent
    # or dropped without anyone knowing
    cfg = add_mobile(hall)
    identities = _hall_db_with_raters(cfg, 5)
    conn = sqlite3.connect(cfg.hall.database, isolation_level=None)
    conn.execute("UPDATE mobile_raters SET sealed = ? WHERE rating_id = (SELECT id FROM ratings"
                 " WHERE seq = 3)", (phone_ratings.seal(os.urandom(32), "H01", 3, identities[3]),))
    conn.close()
    forward_all(cfg, hall_db)
    assert backlog(hall_db) == 0
    held = hall_db("SELECT record, status, reason FROM forward_quarantine WHERE state = 'held'")
    assert [r[:2] for r in held] == [("H01:rater:3", 0)]
    assert "does not open with [mobile] identity_key_file" in held[0][2]
    s = store.open()
    try:
        for i, identity in identities.items():
            assert s.rater("H01:tx:%d" % i) == (None if i == 3 else identity), i
    finally:
        s.close()


def _post(store, bid, tables):
    c = store.client()
    try:
        return c.post_batch(bid, batches.encode_columns("H01", bid, tables))
    finally:
        c.close()


def _tx(n, t0=1790000000.0):
    return {"tx": list(n), "window": ["W01"] * len(n), "ticket": ["A%d" % i for i in n],
            "started_at": [t0 + i for i in n], "finished_at": [t0 + 60 + i for i in n]}


def _bad_reviews(n, t0=1790000000.0):
    return {"terminal": ["QR"] * len(n), "seq": list(n), "level": [5] * len(n),
            "outcome": ["counted"] * len(n), "transaction": list(n),
            "rated_at": [t0 + 70 + i for i in n], "received_at": [t0 + 70 + i for i in n],
            "channel": ["QR"] * len(n)}


def _raters(key, n, identity=None, hall="H01"):
    return {"tx": list(n), "consent_at": [1790000090.0 + i for i in n],
            "sealed": [batches.seal_rater(key, batches.rater_uid(hall, i),
                                          identity or {"name": NAME, "phone": PHONE})
                       for i in n]}


def test_a_rater_after_its_case_opened_makes_it_real_name_once_however_often_it_comes(store):
    # if this fails, a real-name bad review whose identity came in a later batch (the usual
    # way: the citizen types the name after the rating) stays anonymous and is never called
    # back; or a re-sent batch or record stores the identity twice or replaces it
    key = batches.read_key_file(store.key_file)
    assert _post(store, "b1", {"transactions": _tx([1, 2]),
                               "ratings": _bad_reviews([1, 2])})["new"] == 4
    assert _case(store, "H01:rating:QR:1")["real_name"] is False
    body = batches.encode_columns("H01", "b2", {"raters": _raters(key, [1])})
    c = store.client()
    try:
        assert c.post_batch("b2", body) == {"status": "stored", "batch": "b2", "records": 1,
                                            "new": 1}
        assert _case(store, "H01:rating:QR:1")["real_name"] is True
        assert _case(store, "H01:rating:QR:2")["real_name"] is False
        enc = _rater_enc(store, "H01:tx:1")
        assert store.query(lambda s: s.rater("H01:tx:1")) == {"name": NAME, "phone": PHONE}
        # the same batch again (a hall that crashed before marking it delivered)
        assert c.post_batch("b2", body)["status"] == "duplicate"
    finally:
        c.close()
    # the same record in a new batch (split and re-sent), sealed anew, even with other
    # content: nothing stored twice, nothing replaced
    assert _post(store, "b3", {"raters": _raters(key, [1], {"name": "别人", "phone": "1"})}
                 )["new"] == 0
    assert _rater_enc(store, "H01:tx:1") == enc
    assert store.query(lambda s: s.counts())["batches"] == 3


def _refused(store, tables, bid="bad"):
    """Post a batch the store must refuse: its StoreRefused."""
    c = store.client()
    try:
        c.post_batch(bid, batches.encode_columns("H01", bid, tables))
    except StoreRefused as e:
        return e
    finally:
        c.close()
    raise AssertionError("the store took a batch it must refuse")


def test_the_store_refuses_a_rater_it_cannot_open_or_place_naming_the_record(store):
    # if this fails, a forged or misplaced identity is stored against someone's 办件 (a stranger
    # called back about another's review), or the hall cannot tell which record to set apart
    key = batches.read_key_file(store.key_file)
    _post(store, "b1", {"transactions": _tx([1]), "ratings": _bad_reviews([1])})
    forged = _raters(os.urandom(32), [1])
    moved = _raters(key, [2])
    moved["tx"] = [1]                                   # sealed for H01:rater:2, sent as 1
    cut = _raters(key, [1])
    cut["sealed"] = [base64.b64encode(base64.b64decode(cut["sealed"][0])[:-1]).decode()]
    for raters in (forged, moved, cut):
        e = _refused(store, {"transactions": _tx([5]), "raters": raters})
        assert e.status == 422 and "H01:rater:1: sealed does not open" in str(e), e
    for sealed in ("not base64!", "A" * 2000, 17):
        e = _refused(store, {"raters": {"tx": [1], "sealed": [sealed], "consent_at": [1.0]}})
        assert e.status == 422 and "record H01:rater:1: sealed must be base64" in str(e), e
    e = _refused(store, {"raters": _raters(key, [7])})
    assert e.status == 422 and "record H01:rater:7: tx H01:tx:7 is not in the store" in str(e)
    assert _rater_enc(store, "H01:tx:1") is None and _rater_enc(store, "H01:tx:5") is None
    assert store.query(lambda s: s.counts())["transactions"] == 1   # nothing of them stored


def test_a_store_without_an_identity_key_refuses_raters(store_db, certs, tmp_path):
    # if this fails, a store set up without --identity-key keeps citizens' names and phones in
    # clear (or loses them without the hall knowing)
    s = serve_store(store_db, certs, tmp_path / "store")
    s.proc.kill()
    proc = processes.StoreProcess(store_db, processes.free_port(), certs["cert"], certs["key"],
                                  certs["ca"], str(tmp_path / "store2.log")).start()
    try:
        s.proc, s.url, s.identity_key = proc, proc.url, None
        key = batches.read_key_file(s.key_file)
        _post(s, "b1", {"transactions": _tx([1]), "ratings": _bad_reviews([1])})
        e = _refused(s, {"raters": _raters(key, [1])}, "b2")
        assert e.status == 422 and "--identity-key" in str(e)
        assert _rater_enc(s, "H01:tx:1") is None
    finally:
        proc.kill()


def test_the_kept_batch_bytes_never_hold_the_identity_in_clear(store, hall, hall_db):
    # if this fails, the batch the hall keeps until the store answers (forward_batches.body, for
    # days while the store is away) holds a citizen's name and phone readable on the hall PC
    cfg = add_mobile(hall)
    identities = _hall_db_with_raters(cfg, 3)
    conn = db.connect(cfg.hall.database)
    try:
        n, _, first, last = forward.outbox_range(conn, 100)
        key = batches.read_key_file(cfg.forward.key_file)
        sealer = RaterSealer.from_config(cfg, "H01", key)
        tables = forward.read_tables(conn, cfg.forward, first, last, sealer)
    finally:
        conn.close()
    body = batches.encode_columns("H01", "b1", tables)
    assert n == 9 and tables["raters"]["tx"] == [1, 2, 3]
    for identity in identities.values():
        assert identity["name"].encode() not in body and identity["phone"].encode() not in body
    for tx, sealed in zip(tables["raters"]["tx"], tables["raters"]["sealed"], strict=True):
        assert batches.open_rater(key, "H01:rater:%d" % tx, sealed) == identities[tx]


def test_identities_given_before_the_upgrade_are_forwarded_too(tmp_path, monkeypatch):
    # if this fails, citizens who left their name for a call back before the hall was upgraded
    # (their consent recorded then) are never called back
    path = str(tmp_path / "hall.sqlite")
    monkeypatch.setattr(db, "MIGRATIONS", [m for m in db.MIGRATIONS
                                           if m[0] != "0013-forward-raters"])
    conn = db.connect(path)
    conn.execute("INSERT INTO transactions (id, window, ticket, started_at, finished_at)"
                 " VALUES (1, 'W01', 'A1', 1, 2)")
    conn.execute("INSERT INTO ratings (terminal, seq, level, token, rated_at, received_at,"
                 " outcome, transaction_id, channel) VALUES ('QR', 1, 5, '', 3, 3, 'counted', 1,"
                 " 'QR')")
    conn.execute("INSERT INTO mobile_raters (rating_id, sealed, consent_at) VALUES (1, x'00', 4)")
    conn.close()
    monkeypatch.undo()
    conn = db.connect(path)   # the upgrade: migration 0013
    try:
        kinds = [r[0] for r in conn.execute("SELECT kind FROM forward_outbox ORDER BY id")]
        assert kinds == ["transaction", "rating", "rater"]
        # and from now on each new one is queued with its row, by the trigger
        conn.execute("INSERT INTO ratings (terminal, seq, level, token, rated_at, received_at,"
                     " outcome, transaction_id, channel) VALUES ('QR', 2, 4, '', 5, 5, 'counted',"
                     " 1, 'QR')")
        conn.execute("INSERT INTO mobile_raters (rating_id, sealed, consent_at) VALUES"
                     " (2, x'00', 6)")
        assert [tuple(r) for r in conn.execute(
            "SELECT kind, ref FROM forward_outbox WHERE kind = 'rater' ORDER BY id")] == [
            ("rater", 1), ("rater", 2)]
    finally:
        conn.close()
