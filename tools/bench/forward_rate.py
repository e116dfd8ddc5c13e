"""hcp bench forward: the end-to-end forwarding rate (hall SQLite -> HTTPS -> store -> durable
commit -> hall marks delivered) against the raw bulk-insert rate of the same backend, in one run.

- raw: the best plain bulk insert outside the product, into the store's own tables in a fresh
  database: SQLite multi-row INSERT … VALUES (500 rows a statement) in one transaction (WAL,
  synchronous=FULL); PostgreSQL COPY.
- forward: a hall database filled with `records` finished transactions and ratings (half each;
  levels in a hall's mix, ~8 % bad reviews, each of which opens a case at the store),
  queued in its outbox by the same triggers as in production; a real store process over HTTPS
  (a self-signed certificate made here); the real Forwarder, timed until the backlog is empty.
- lost / duplicated: checked from the store's tables against the hall's.
- rounds: the whole (raw, forward) pair is measured `repeat` times; each side's best counts.
"""
from __future__ import annotations

import datetime
import os
import random
import secrets
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import TypedDict

from haochaping.daemon import batches
from haochaping.daemon.hall import db as hall_db
from haochaping.daemon.hall import settings
from haochaping.daemon.hall.forward import Forwarder, open_conn
from haochaping.daemon.store import backends
from haochaping.tools.sim.processes import StoreProcess


class _Round(TypedDict):
    """One round's figures."""
    raw_rows_per_s: int
    forward_rows_per_s: int
    ratio: float
    forward_seconds: float
    batches: int
    bad_reviews: int
    lost: int
    duplicated: int


def _self_signed(folder: str) -> tuple[str, str]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cpath, kpath = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    with open(cpath, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(kpath, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    return cpath, kpath


def _fill_hall(path: str, n: int) -> tuple[int, int, int]:
    """n/2 finished transactions, each with its counted rating, levels in a hall's mix (~8 % bad
    reviews, as `hcp bench ingest`); returns (transactions, ratings, bad reviews)."""
    from haochaping.tools.sim.scenario import LEVEL_WEIGHTS
    rnd = random.Random(7)
    conn = hall_db.connect(path)
    ntx = n // 2
    levels = rnd.choices(range(1, 6), LEVEL_WEIGHTS, k=n - ntx)
    t0 = time.time() - 3600
    conn.execute("BEGIN")
    # in a hall's order: each transaction, then its rating (the outbox follows the inserts), so
    # that a batch carries the ratings of its own transactions, as a hall's batches do
    for i in range(1, ntx + 1):
        conn.execute(
            "INSERT INTO transactions (id, window, ticket, item, staff, started_at, finished_at)"
            " VALUES (?,?,?,?,?,?,?)",
            (i, "W%02d" % (i % 20), "BJ%08d" % i, "530100-%03d" % (i % 40), "S%03d" % (i % 60),
             t0 + i * 0.01, t0 + i * 0.01 + 0.005))
        if i <= n - ntx:
            conn.execute(
                "INSERT INTO ratings (id, terminal, seq, level, token, rated_at, received_at,"
                " outcome, transaction_id) VALUES (?,?,?,?,?,?,?,?,?)",
                (i, "T%03d" % (i % 20), i, levels[i - 1], "tok%d" % i, t0 + i * 0.01 + 0.006,
                 t0 + i * 0.01 + 0.007, "counted", i))
    conn.execute("COMMIT")
    conn.close()
    return ntx, n - ntx, sum(1 for v in levels if v >= 4)


def _raw_rows(n: int) -> tuple[Sequence[tuple[object, ...]], Sequence[tuple[object, ...]]]:
    ntx = n // 2
    now = time.time()
    tx = [("H01:tx:%d" % i, "H01", i, "W01", "BJ%08d" % i, "530100-001", "", "", "", "S001",
           "PJQ", now, now, None, "raw", now) for i in range(1, ntx + 1)]
    ratings = [("H01:rating:T001:%d" % i, "H01", "T001", i, i % 5 + 1, "counted", "H01:tx:%d" % i,
                now, now, 0, "PJQ", None, "raw", now) for i in range(1, n - ntx + 1)]
    return tx, ratings


def _raw_insert(dbarg: str, n: int) -> float:
    """Rows per second of the best plain bulk insert we can write for this backend."""
    tx, ratings = _raw_rows(n)
    tcols = backends._COLUMNS["transaction"][1] + ("batch", "received_at")
    rcols = backends._COLUMNS["rating"][1] + ("batch", "received_at")
    st = backends.open_store(dbarg)  # the store's schema, made by its migrations
    try:
        if st.dialect == "sqlite":
            c = st.conn
            c.execute("PRAGMA wal_autocheckpoint=0")  # copying the WAL can wait: it is durable
            t = time.perf_counter()
            c.execute("BEGIN")
            # multi-row INSERT … VALUES, 500 rows a statement: faster here than executemany
            backends.sqlite_bulk_insert(c, "transaction", tx, conflict=False)
            backends.sqlite_bulk_insert(c, "rating", ratings, conflict=False)
            c.execute("COMMIT")
            return n / (time.perf_counter() - t)
        with st.pool.connection() as pg:
            t = time.perf_counter()
            with pg.transaction():
                with pg.cursor().copy("COPY transactions (%s) FROM STDIN" % ",".join(tcols)) as cp:
                    for row in tx:
                        cp.write_row(row)
                with pg.cursor().copy("COPY ratings (%s) FROM STDIN" % ",".join(rcols)) as cp:
                    for row in ratings:
                        cp.write_row(row)
            return n / (time.perf_counter() - t)
    finally:
        st.close()


def _pg_db(base_url: str, suffix: str) -> tuple[str, Callable[[], None]]:
    """Create a fresh database next to base_url's; return (url, drop function)."""
    import psycopg
    name = "hcp_bench_%s_%s" % (suffix, secrets.token_hex(4))
    with psycopg.connect(base_url, autocommit=True) as c:
        c.execute("CREATE DATABASE %s" % name)
    head = base_url.rsplit("/", 1)[0]

    def drop() -> None:
        with psycopg.connect(base_url, autocommit=True) as c:
            c.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
    return head + "/" + name, drop


def forward(n: int = 200000, backend: str = "sqlite", batch_size: int = 5000,
            pg_url: str | None = None, folder: str | None = None,
            progress: Callable[[str], object] | None = None, repeat: int = 3) -> dict[str, object]:
    """`repeat` rounds, each a raw bulk insert then a forwarding run, both into fresh databases;
    the figures are each side's best round (as timeit takes the best: a slower round measured
    the machine's other work, not ours), and every round is listed under `rounds`."""
    say = progress or (lambda m: None)
    folder = folder or tempfile.mkdtemp(prefix="hcp-bench-forward-")
    cert, key = _self_signed(folder)
    rounds: list[_Round] = []
    for i in range(repeat):
        sub = os.path.join(folder, "round%d" % (i + 1))
        os.mkdir(sub)
        say("round %d of %d" % (i + 1, repeat))
        rounds.append(_round(n, backend, batch_size, pg_url, sub, cert, key, say))
    raw = max(r["raw_rows_per_s"] for r in rounds)
    fwd = max(r["forward_rows_per_s"] for r in rounds)
    last = rounds[-1]
    return {"backend": backend, "records": n, "batch_size": batch_size,
            "batches": last["batches"], "bad_reviews": last["bad_reviews"],
            "raw_rows_per_s": raw, "forward_rows_per_s": fwd, "ratio": round(fwd / raw, 3),
            "forward_seconds": min(r["forward_seconds"] for r in rounds),
            "lost": sum(r["lost"] for r in rounds),
            "duplicated": sum(r["duplicated"] for r in rounds),
            "rounds": [{"raw_rows_per_s": r["raw_rows_per_s"],
                        "forward_rows_per_s": r["forward_rows_per_s"], "ratio": r["ratio"]}
                       for r in rounds]}


def _round(n: int, backend: str, batch_size: int, pg_url: str | None, folder: str, cert: str,
           key: str, say: Callable[[str], object]) -> _Round:
    drops: list[Callable[[], None]] = []
    try:
        if backend == "sqlite":
            raw_db, store_db = (os.path.join(folder, "raw.sqlite"),
                                os.path.join(folder, "store.sqlite"))
        else:
            base = pg_url or "postgresql://postgres@127.0.0.1:5432/postgres"
            raw_db, d1 = _pg_db(base, "raw")
            store_db, d2 = _pg_db(base, "store")
            drops += [d1, d2]
        say("  raw bulk insert of %d rows (%s) ..." % (n, backend))
        raw = _raw_insert(raw_db, n)
        say("  filling a hall database with %d records ..." % n)
        hall_path = os.path.join(folder, "hall.sqlite")
        ntx, nr, bad = _fill_hall(hall_path, n)
        st = backends.open_store(store_db)
        key_file = os.path.join(folder, "H01.key")
        batches.write_key_file(key_file, st.add_hall("H01"))
        st.close()
        from haochaping.tools.sim.processes import free_port
        proc = StoreProcess(store_db, free_port(), cert, key, cert,
                            os.path.join(folder, "store.log")).start()
        try:
            cfg = settings.validate({
                "hall": {"id": "H01", "database": hall_path},
                "forward": {"url": proc.url, "ca": cert, "hall_id": "H01",
                            "key_file": key_file, "batch_size": batch_size, "max_wait_s": 0,
                            "timeout_s": 120, "retry_max_s": 5, "region": "530102",
                            "department": "530102-ZWFW"}})
            fw = Forwarder(cfg)
            conn = open_conn(hall_path)
            say("  forwarding %d records in batches of %d over HTTPS ..." % (n, batch_size))
            t = time.perf_counter()
            while conn.execute("SELECT 1 FROM forward_outbox LIMIT 1").fetchone():
                wait = fw.step(conn)
                if wait:
                    time.sleep(wait)
            elapsed = time.perf_counter() - t
            conn.close()
            fw.close()
        finally:
            proc.terminate()
        st = backends.open_store(store_db)
        try:
            got_tx = st._query("SELECT COUNT(*) FROM transactions WHERE hall = %s", ("H01",))[0][0]
            got_r = st._query("SELECT COUNT(*) FROM ratings WHERE hall = %s", ("H01",))[0][0]
            stored_new = st._query("SELECT COALESCE(SUM(new_records), 0) FROM batches", ())[0][0]
            n_batches = st._query("SELECT COUNT(*) FROM batches", ())[0][0]
        finally:
            st.close()
        fwd = n / elapsed
        say("  raw %d rows/s, forwarded %d rows/s" % (raw, fwd))
        return {"raw_rows_per_s": round(raw), "forward_rows_per_s": round(fwd),
                "ratio": round(fwd / raw, 3), "forward_seconds": round(elapsed, 2),
                "batches": n_batches,
                "bad_reviews": bad,  # each opens a rectification case at the store
                "lost": (ntx - got_tx) + (nr - got_r),
                "duplicated": int(stored_new) - (got_tx + got_r)}
    finally:
        for d in drops:
            d()
