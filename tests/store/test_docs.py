"""docs/store-openapi.yaml says what the hall really sends."""
import os
import sqlite3

import pytest

from haochaping.daemon import db, forward

yaml = pytest.importorskip("yaml")
SPEC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "store-openapi.yaml")


def test_every_field_the_forwarder_sends_is_in_the_openapi_spec(tmp_path):
    # if this fails, a provincial integrator reading the spec misses or misreads a field
    path = str(tmp_path / "hall.sqlite")
    db.connect(path).close()
    c = sqlite3.connect(path, isolation_level=None)
    c.executescript("""
        INSERT INTO transactions (window, ticket, started_at, finished_at) VALUES ('W01', 'A1', 1, 2);
        INSERT INTO ratings (terminal, seq, level, token, rated_at, received_at, outcome,
            transaction_id) VALUES ('T001', 1, 4, 't', 3, 4, 'counted', 1);
        INSERT INTO reasons (terminal, seq, ref, reason, rated_at, received_at)
            VALUES ('T001', 2, 1, '服务态度', 5, 6);""")
    c.close()
    conn = db.connect(path)
    recs, _, _ = forward.read_records(conn, "H01", 10, {"region": "530102", "department": "D1"})
    conn.close()
    with open(SPEC, encoding="utf-8") as f:
        schemas = yaml.safe_load(f)["components"]["schemas"]
    assert sorted(r["type"] for r in recs) == ["rating", "reason", "transaction"]
    for r in recs:
        schema = schemas[r["type"].capitalize()]
        assert set(r) <= set(schema["properties"]), r["type"]
        assert set(schema["required"]) <= set(r), r["type"]
