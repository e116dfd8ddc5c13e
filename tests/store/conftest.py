"""Real parts for the store: certificates from a test CA (trustme), the store as a real HTTPS
process on a real SQLite file or in a PostgreSQL database of its own (created and dropped here),
and a hall whose hall.toml forwards to it."""
import json
import secrets

import pytest
import trustme

from haochaping.daemon import batches
from haochaping.daemon.hall import settings
from haochaping.daemon.hall.store_client import StoreClient
from haochaping.daemon.store import backends, identity
from haochaping.tools.sim import hall_kit, processes
from haochaping.tools.sim.processes import StoreProcess

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = {"ca": str(d / "ca.pem"), "cert": str(d / "cert.pem"), "key": str(d / "key.pem")}
    ca.cert_pem.write_to_path(paths["ca"])
    cert.private_key_pem.write_to_path(paths["key"])
    for i, blob in enumerate(cert.cert_chain_pems):
        blob.write_to_path(paths["cert"], append=i > 0)
    return paths


def _pg_admin(sql):
    import psycopg
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=10) as c:
            c.execute(sql)
    except psycopg.OperationalError as e:
        pytest.fail("the store tests need the machine's PostgreSQL on 127.0.0.1:5432 (user"
                    " postgres, trust auth); start it, e.g. `pg_ctlcluster"
                    " --skip-systemctl-redirect 15 main start`: %s" % str(e).splitlines()[0],
                    pytrace=False)


@pytest.fixture(params=BACKENDS)
def store_db(request, tmp_path):
    """A fresh store database: a SQLite path, or the URL of a new PostgreSQL database."""
    if request.param == "sqlite":
        yield str(tmp_path / "store.sqlite")
        return
    name = "hcp_test_%s" % secrets.token_hex(6)
    _pg_admin("CREATE DATABASE %s" % name)
    try:
        yield "postgresql://postgres@127.0.0.1:5432/%s" % name
    finally:
        _pg_admin("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)


class Store:
    """The running store process and what a test needs around it."""

    def __init__(self, db, proc, key_file, ca, identity_key):
        self.db, self.proc, self.key_file, self.ca = db, proc, key_file, ca
        self.identity_key = identity_key
        self.url = proc.url

    def open(self):
        ident = identity.IdentityKey.load(self.identity_key) if self.identity_key else None
        return backends.open_store(self.db, ident)

    def query(self, fn):
        s = self.open()
        try:
            return fn(s)
        finally:
            s.close()

    def client(self, hall="H01", key=None):
        return StoreClient(self.url, hall, key or batches.read_key_file(self.key_file), ca=self.ca)


def serve_store(store_db, certs, folder, extra=()):
    """Start `hcp store serve` (HTTPS, a free port; `extra`: more options) with hall H01
    registered (key in H01.key): the running Store."""
    folder.mkdir()
    key_file = str(folder / "H01.key")
    s = backends.open_store(store_db)
    batches.write_key_file(key_file, s.add_hall("H01", "test hall"))
    s.close()
    ident = str(folder / "identity.key")
    proc = StoreProcess(store_db, processes.free_port(), certs["cert"], certs["key"], certs["ca"],
                        str(folder / "store.log"), identity_key=ident, extra=extra).start()
    return Store(store_db, proc, key_file, certs["ca"], ident)


@pytest.fixture
def store(store_db, certs, tmp_path):
    """The store serving HTTPS on a free port, with hall H01 registered (key in H01.key)."""
    s = serve_store(store_db, certs, tmp_path / "store")
    yield s
    s.proc.kill()


def forwarding_hall(folder, store, batch_size=50, hall_id=None, key_file=None):
    """A hallkit hall whose hall.toml forwards to `store`."""
    cfg = hall_kit.create(folder, windows=("W01", "W02"), timeout_s=30,
                          extra_superusers=("observer",))
    cfg = hall_kit.forward_to(cfg, store.url, store.ca, key_file or store.key_file, batch_size)
    if hall_id:
        with open(cfg.path, "a") as f:
            f.write('hall_id = "%s"\n' % hall_id)
        cfg = settings.load(cfg.path)
    return cfg


@pytest.fixture
def hall(tmp_path, store):
    """Overrides tests/conftest.py's hall: the same hall, forwarding to the test's store."""
    return forwarding_hall(str(tmp_path / "hall"), store)


def hall_expected(hall_db, hall_id="H01"):
    """Every record id (with its level for ratings) the hall has to deliver."""
    tx = ["%s:tx:%d" % (hall_id, r[0])
          for r in hall_db("SELECT id FROM transactions WHERE finished_at IS NOT NULL")]
    ratings = [("%s:rating:%s:%d" % (hall_id, r[0], r[1]), r[2])
               for r in hall_db("SELECT terminal, seq, level FROM ratings")]
    reasons = ["%s:reason:%s:%d" % (hall_id, r[0], r[1])
               for r in hall_db("SELECT terminal, seq FROM reasons")]
    return sorted(tx), sorted(ratings), sorted(reasons)


def store_has(store, hall_id="H01"):
    def q(s):
        tx = s.uids("transaction", hall_id)
        ratings = sorted((r["uid"], r["level"]) for r in s.ratings(hall_id, 0))
        reasons = s.uids("reason", hall_id)
        return tx, ratings, reasons
    return store.query(q)


def backlog(hall_db):
    return hall_db("SELECT COUNT(*) FROM forward_outbox")[0][0]


def forward_all(hall, hall_db, fw=None, steps=300):
    """The hall's forwarder (`fw`, or a new one), step by step in this thread, until the hall's
    backlog is empty (or `steps` steps: a forwarder stuck on one batch never gets there)."""
    from haochaping.daemon.hall import forward
    fw = fw or forward.Forwarder(hall)
    conn = forward.open_conn(hall.hall.database)
    try:
        for _ in range(steps):
            if backlog(hall_db) == 0:
                break
            fw.step(conn)
    finally:
        conn.close()
        fw.close()


def hall_day(hall, transactions, seed=1):
    """Citizens rate (walk away, press twice, give reasons after bad reviews) at both windows
    of a real hall: terminals over MQTT → hall daemon → forwarder → store."""
    from haochaping.tools.sim import scenario
    by_window = scenario.start_terminals(hall, hall.folder)
    try:
        did, errors = scenario.run(hall, by_window, transactions, seed=seed, service_s=0.001)
        assert errors == []
        assert scenario.drain(by_window) == 0
    finally:
        scenario.stop(by_window)
    return did


def delivered(store, hall_db, timeout=60):
    """Wait until the hall's forwarder has delivered everything to the store; the store then
    holds exactly what the hall holds."""
    from tests.conftest import wait_until
    wait_until(lambda: backlog(hall_db) == 0 and store_has(store) == hall_expected(hall_db),
               timeout=timeout, what="every record delivered to the store")
    assert store_has(store) == hall_expected(hall_db)


def encode_v1(hall, batch_id, records):
    """A version-1 batch body (one object per record), as halls sent before version 2: the store
    still reads it (batches.parse_batch), and tests build records by hand with it."""
    return json.dumps({"hall": hall, "batch": batch_id, "records": records},
                      ensure_ascii=False, separators=(",", ":")).encode()
