"""hcp bench province: records per second delivered from a store to a real sandbox process
(FastAPI/uvicorn, its own SQLite), against the raw speed of posting the same payloads (the same
records, envelopes and batch size, built beforehand) to a fresh sandbox with no store work:
no scan, no outbox, no marking. Prints JSON."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import tempfile
import threading
import time
from typing import Any

from haochaping.daemon import batches
from haochaping.daemon.store import access, backends
from haochaping.daemon.store.province import mapping, profiles
from haochaping.daemon.store.province.delivery import Deliverer, Poster
from haochaping.tools.sim import processes
from haochaping.tools.sim.province_quarter import DEPARTMENT, REGION
from haochaping.tools.sim.province_sandbox import SandboxProcess

T0 = 1788220800.0  # 2026-09-01 08:00 Asia/Shanghai


def _fill(st: backends.Store, n: int) -> None:
    st.add_hall("H01", "bench")
    for lo in range(0, n, 2000):
        recs: list[dict[str, Any]] = []
        for tx in range(lo + 1, min(n, lo + 2000) + 1):
            t = T0 + tx
            recs.append({"type": "transaction", "id": "H01:tx:%d" % tx, "tx": tx,
                         "window": "W01", "ticket": "A%d" % tx, "item": "530100-XK-001",
                         "staff": "S01", "department": DEPARTMENT, "region": REGION,
                         "started_at": t - 300, "finished_at": t})
            recs.append({"type": "rating", "id": "H01:rating:T001:%d" % tx, "terminal": "T001",
                         "seq": tx, "level": 1 + tx % 3, "outcome": "counted",
                         "transaction": "H01:tx:%d" % tx, "rated_at": t + 30,
                         "received_at": t + 30})
        body = json.dumps({"hall": "H01", "batch": "b%d" % lo, "records": recs}).encode()
        h, b, parsed = batches.parse_batch(body, "H01", "b%d" % lo)
        st.store_batch(h, b, hashlib.sha256(body).hexdigest(), parsed)


def run(profile_name: str, key_file: str | None, records: int, batch_size: int | None,
        backend: str, pg_url: str) -> dict[str, Any]:
    folder = tempfile.mkdtemp(prefix="hcp-bench-province-")
    if key_file is None:
        key_file = os.path.join(folder, "province.key")
        with open(key_file, "w") as f:
            f.write(secrets.token_hex(24))
    p = profiles.load(profile_name, key_file)
    if batch_size:
        p = dataclasses.replace(p, batch_size=batch_size)
    pg_db = None
    if backend == "postgres":
        import psycopg
        pg_db = "hcp_bench_province_%s" % secrets.token_hex(4)
        with psycopg.connect(pg_url, autocommit=True) as c:
            c.execute("CREATE DATABASE %s" % pg_db)
        db = pg_url.rsplit("/", 1)[0] + "/" + pg_db
    else:
        db = os.path.join(folder, "store.sqlite")
    st = backends.open_store(db)
    sandboxes: list[SandboxProcess] = []
    try:
        _fill(st, records)
        # the product: scan, outbox, map, post, mark
        sb = SandboxProcess(p.path, processes.free_port(), os.path.join(folder, "a.sqlite"),
                            key_file).start()
        sandboxes.append(sb)
        d = Deliverer(st, p, url=sb.url, settle_s=0)
        t = time.perf_counter()
        out = d.run(threading.Event(), once=True)
        product_s = time.perf_counter() - t
        # raw: the same records, mapped beforehand, posted with no store work
        items: dict[str, list[Any]] = {"service": [], "evaluation": []}
        for kind in items:
            rows = [tuple(r) for r in access.query(
                st, "SELECT n, kind, uid, ref, project_no, assess_number FROM province_items"
                    " WHERE kind = %s ORDER BY n", (kind,))]
            for i in range(0, len(rows), p.batch_size):
                part = rows[i:i + p.batch_size]
                items[kind].append([mapping.build(p, kind, f) for f in d.facts(part)])
        raw = SandboxProcess(p.path, processes.free_port(), os.path.join(folder, "b.sqlite"),
                             key_file).start()
        sandboxes.append(raw)
        poster = Poster(raw.url)
        t = time.perf_counter()
        sent_raw = 0
        for kind, posts in items.items():
            for recs in posts:
                status, _ = poster.request("POST", p.endpoints[kind],
                                           mapping.envelope(p, recs, time.time()))
                assert status == 200
                sent_raw += len(recs)
        raw_s = time.perf_counter() - t
        poster.close()
        return {"profile": p.name, "backend": backend, "batch_size": p.batch_size,
                "records": out["sent"], "posts": out["posts"],
                "delivered_per_s": round(out["sent"] / product_s),
                "raw_per_s": round(sent_raw / raw_s),
                "ratio": round((out["sent"] / product_s) / (sent_raw / raw_s), 2),
                "delivered_s": round(product_s, 2), "raw_s": round(raw_s, 2),
                "accepted": len(sb.accepted()["keys"]), "raw_accepted": len(raw.accepted()["keys"])}
    finally:
        for s in sandboxes:
            s.kill()
        st.close()
        if pg_db:
            import psycopg
            with psycopg.connect(pg_url, autocommit=True) as c:
                c.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % pg_db)


def describe(out: dict[str, Any]) -> str:
    return ("%(records)d records to the sandbox (%(profile)s, %(backend)s, batches of "
            "%(batch_size)d): %(delivered_per_s)d/s delivered, %(raw_per_s)d/s raw posting;"
            " ratio %(ratio)s" % out)
