"""docs/store-openapi.yaml says what the hall really sends, and what the store really reads."""
import json
import os
import sqlite3

import pytest

from haochaping.daemon import batches
from haochaping.daemon.hall import db, forward, settings

yaml = pytest.importorskip("yaml")
SPEC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "store-openapi.yaml")
COLUMNS = {"transactions": "TransactionColumns", "ratings": "RatingColumns",
           "reasons": "ReasonColumns"}


def _schemas():
    with open(SPEC, encoding="utf-8") as f:
        return yaml.safe_load(f)["components"]["schemas"]


def test_every_field_the_forwarder_sends_is_in_the_openapi_spec(tmp_path):
    # if this fails, a provincial integrator reading the spec misses or misreads a field
    path = str(tmp_path / "hall.sqlite")
    db.connect(path).close()
    c = sqlite3.connect(path, isolation_level=None)
    c.executescript("""
        INSERT INTO transactions (window, ticket, started_at, finished_at)
            VALUES ('W01', 'A1', 1, 2);
        INSERT INTO ratings (terminal, seq, level, token, rated_at, received_at, outcome,
            transaction_id) VALUES ('T001', 1, 4, 't', 3, 4, 'counted', 1);
        INSERT INTO reasons (terminal, seq, ref, reason, rated_at, received_at)
            VALUES ('T001', 2, 1, '服务态度', 5, 6);""")
    c.close()
    conn = db.connect(path)
    n, _, first, last = forward.outbox_range(conn, 10)
    tables = forward.read_tables(conn, settings.ForwardSection(region="530102", department="D1"),
                                 first, last)
    conn.close()
    body = json.loads(batches.encode_columns("H01", "b1", tables))
    schemas = _schemas()
    assert set(body) <= set(schemas["BatchV2"]["properties"])
    assert set(schemas["BatchV2"]["required"]) <= set(body)
    assert sorted(tables) == ["ratings", "reasons", "transactions"] and n == 3
    for name, cols in tables.items():
        schema = schemas[COLUMNS[name]]
        assert set(cols) <= set(schema["properties"]), name
        assert set(schema["required"]) <= set(cols), name
        assert {len(v) for v in cols.values()} == {1}, name


def test_the_openapi_spec_and_the_store_agree_on_every_column():
    # if this fails, the spec promises a field the store refuses (or hides one it reads)
    schemas = _schemas()
    for name, kind in batches.TABLES.items():
        schema = schemas[COLUMNS[name]]
        spec = batches._V2[kind]
        assert set(schema["properties"]) == set(spec), name
        assert set(schema["required"]) == {f for f, (_, d) in spec.items()
                                           if d is batches._REQUIRED}, name
