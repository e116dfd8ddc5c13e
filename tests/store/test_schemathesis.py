"""schemathesis against the store's generated OpenAPI document (docs/store-openapi.json), on
a real `hcp store serve` over HTTPS on both backends: requests made from the document, valid
and not, with a bounded number of examples per operation. The store never answers 5xx, and
answers only what the document says (status, content type, body schema)."""
import hashlib
import hmac
import json

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from haochaping.daemon import batches

from .test_docs import _spec

EXAMPLES = 25   # per operation and mode: enough to find a 5xx, few enough for `make test`
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
SCHEMA = schemathesis.openapi.from_dict(_spec())
OPERATIONS = [("/v1/batches", "POST"), ("/v1/health", "GET"), ("/v1/appeals", "POST"),
              ("/v1/appeals/{id}", "GET")]


def _send(store, key, case):
    """Post the case as it is, except that half of the batches are signed with hall H01's
    real key (their hall and batch made to match), so that they reach the decoding, the checks
    and the database rather than stopping at the signature."""
    if case.path == "/v1/batches" and isinstance(case.body, dict) and len(str(case.body)) % 2:
        body = dict(case.body)
        batch = str((case.headers or {}).get("X-Hcp-Batch") or "b1")
        if not batches.valid_batch_id(batch):
            batch = "b1"
        body.update(hall="H01", batch=batch)
        raw = json.dumps(body, ensure_ascii=False).encode()
        sig = hmac.new(key, b"H01\n" + batch.encode() + b"\n" + raw, hashlib.sha256).hexdigest()
        assert sig == batches.signature(key, "H01", batch, raw)
        return requests.post(store.url + "/v1/batches", data=raw, timeout=60, verify=store.ca,
                             headers={"Content-Type": "application/json", "X-Hcp-Hall": "H01",
                                      "X-Hcp-Batch": batch, "X-Hcp-Signature": sig})
    return case.call(base_url=store.url, verify=store.ca, timeout=60)


def _fuzz(store, key, operation, mode):
    """EXAMPLES requests made from one operation of the document, each answer checked."""
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        try:
            response = _send(store, key, case)
        except requests.exceptions.InvalidHeader:
            return   # a header the client library itself will not send
        case.validate_response(response, checks=CHECKS)
    run()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_made_from_the_openapi_document_gets_a_5xx_or_an_undocumented_answer(
        store, mode):
    # if this fails, some request a vendor's client (or an attacker) can send makes the store
    # fail with a 5xx, or answer something its published document does not say
    key = batches.read_key_file(store.key_file)
    for path, method in OPERATIONS:
        if mode == GenerationMode.NEGATIVE and path == "/v1/health":
            continue     # it takes nothing that could be wrong
        _fuzz(store, key, SCHEMA[path][method], mode)
    c = store.client()
    try:
        assert c.health()["ok"]
    finally:
        c.close()
