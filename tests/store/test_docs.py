"""docs/store-openapi.json is the store's API as the code generates it, says what the hall really
sends and what the store really reads, and loads in an OpenAPI tool."""
import json
import os
import pathlib
import sqlite3

from click.testing import CliRunner

from haochaping.daemon import batches
from haochaping.daemon.hall import db, forward, settings
from haochaping.tools.cli import _register, cli

_register()
SPEC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "store-openapi.json")
COLUMNS = {"transactions": "TransactionColumns", "ratings": "RatingColumns",
           "reasons": "ReasonColumns", "raters": "RaterColumns"}


def _spec():
    with open(SPEC, encoding="utf-8") as f:
        return json.load(f)


def _schemas():
    return _spec()["components"]["schemas"]


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


def test_the_openapi_spec_validates_and_every_ref_is_found():
    # if this fails, an integrator's OpenAPI tool refuses the spec, or a $ref leads nowhere and
    # a generated client lacks a type
    import schemathesis
    spec = _spec()
    schemathesis.openapi.from_dict(spec).validate()
    for ref in set(_refs(spec)):
        assert ref.startswith("#/"), ref
        node = spec
        for part in ref[2:].split("/"):
            assert isinstance(node, dict) and part in node, "%s: %s not found" % (ref, part)
            node = node[part]
    # a 422 names the refused record and its field (docs/store.md, "A record the store refuses")
    answers = spec["paths"]["/v1/batches"]["post"]["responses"]
    ref = answers["422"]["content"]["application/json"]["schema"]["$ref"]
    body = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"error", "record", "field"} <= set(body["properties"])
    # the batch's headers and raw body are documented, though the code reads them by hand
    post = spec["paths"]["/v1/batches"]["post"]
    assert {p["name"] for p in post["parameters"]} >= {"X-Hcp-Hall", "X-Hcp-Batch",
                                                       "X-Hcp-Signature", "Content-Length"}
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Batch"}
    assert {"200", "400", "401", "403", "409", "411", "413", "503"} <= set(answers)


def test_the_committed_openapi_document_is_the_one_the_code_generates(tmp_path):
    # if this fails, docs/store-openapi.json (what vendors and other channels build clients
    # from) no longer says what the store answers: run `hcp store openapi --out
    # docs/store-openapi.json`
    r = CliRunner().invoke(cli, ["store", "openapi", "--out", SPEC, "--check"])
    assert r.exit_code == 0, r.output
    stale = tmp_path / "old.json"
    committed = pathlib.Path(SPEC).read_text(encoding="utf-8")
    stale.write_text(committed.replace("Store one batch", "Store"), encoding="utf-8")
    r = CliRunner().invoke(cli, ["store", "openapi", "--out", str(stale), "--check"])
    assert r.exit_code == 1 and "differs from the API in the code" in r.output
    r = CliRunner().invoke(cli, ["store", "openapi", "--out", str(tmp_path / "new.json")])
    assert r.exit_code == 0
    assert (tmp_path / "new.json").read_text(encoding="utf-8") == committed


def test_the_running_store_serves_the_committed_openapi_document(store):
    # if this fails, /openapi.json on a live store and the copy in docs/ disagree
    c = store.client()
    try:
        status, doc = c.request("GET", "/openapi.json")
    finally:
        c.close()
    assert status == 200 and doc == _spec()
