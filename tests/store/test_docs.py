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


class _Strict(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (PyYAML keeps the last one
    silently; OpenAPI tools refuse the file)."""


def _each_key_once(loader, node, deep=False):
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise yaml.constructor.ConstructorError(None, None, "keys given twice: %s" % twice,
                                                node.start_mark)
    return loader.construct_mapping(node, deep)


_Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _each_key_once)


def _refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def test_the_openapi_spec_loads_whole_with_each_key_once_and_every_ref_found():
    # if this fails, an integrator's OpenAPI tool refuses the spec, or a loader that keeps the
    # last of two `responses:` loses the other's definitions (a $ref to nothing)
    with open(SPEC, encoding="utf-8") as f:
        spec = yaml.load(f, Loader=_Strict)  # a SafeLoader that refuses a key twice
    assert set(spec["components"]["responses"]) >= {"Refused", "AppealRefused", "RecordRefused"}
    for ref in set(_refs(spec)):
        assert ref.startswith("#/"), ref
        node = spec
        for part in ref[2:].split("/"):
            assert isinstance(node, dict) and part in node, "%s: %s not found" % (ref, part)
            node = node[part]
    # a 422 names the refused record and its field (docs/store.md, "A record the store refuses")
    answers = spec["paths"]["/v1/batches"]["post"]["responses"]
    assert answers["422"] == {"$ref": "#/components/responses/RecordRefused"}
    body = spec["components"]["responses"]["RecordRefused"]["content"]["application/json"]
    assert {"error", "record", "field"} <= set(body["schema"]["properties"])
