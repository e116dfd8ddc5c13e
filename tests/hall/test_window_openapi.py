"""The window API's OpenAPI document: generated from the code, committed for vendors, served by
the daemon, and true (schemathesis sends what it allows, and much it does not, to the daemon)."""
import json
import os
import urllib.request

import hypothesis
import pytest
import schemathesis
from click.testing import CliRunner
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from haochaping.daemon.hall import api as window_api
from haochaping.tools.cli import _register, cli

_register()
DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                    "docs")
COMMITTED = os.path.join(DOCS, "window-openapi.json")


def test_the_committed_openapi_document_is_what_the_code_says():
    # if this fails, a queue-system vendor integrates with a document that no longer describes
    # the daemon: run `hcp daemon openapi --out docs/window-openapi.json` and commit it
    r = CliRunner().invoke(cli, ["daemon", "openapi", "--out", COMMITTED, "--check"])
    assert r.exit_code == 0, r.output


def test_openapi_check_fails_on_a_stale_copy(tmp_path):
    # if this fails, CI passes with a stale document
    stale = tmp_path / "window-openapi.json"
    stale.write_text('{"openapi": "3.1.0"}\n', encoding="utf-8")
    r = CliRunner().invoke(cli, ["daemon", "openapi", "--out", str(stale), "--check"])
    assert r.exit_code != 0 and "hcp daemon openapi --out" in r.output
    assert "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["daemon", "openapi", "--out", str(stale)])
    assert r.exit_code == 0 and json.loads(stale.read_text()) == window_api.spec()


def test_the_daemon_serves_the_window_api_document_with_its_bearer_scheme(api):
    # if this fails, a vendor's tools cannot read the API from the daemon, or see console pages
    # (not theirs to call) or no way to authenticate
    with urllib.request.urlopen(api.base.replace("/api/v1", "/openapi.json"), timeout=10) as r:
        doc = json.loads(r.read())
    assert doc == window_api.spec()
    assert sorted(doc["paths"]) == ["/api/v1/health", "/api/v1/windows/{window}",
                                    "/api/v1/windows/{window}/finish",
                                    "/api/v1/windows/{window}/start"]
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for ops in doc["paths"].values():
        for op in ops.values():
            assert op["security"] == [{"HTTPBearer": []}]
            assert "401" in op["responses"]
    start = doc["paths"]["/api/v1/windows/{window}/start"]["post"]
    assert start["requestBody"]["content"]["application/json"]["schema"]["required"] == ["ticket"]


SCHEMA = schemathesis.openapi.from_dict(window_api.spec())


@SCHEMA.parametrize()
@hypothesis.settings(max_examples=40, deadline=None, derandomize=True,
                     suppress_health_check=list(hypothesis.HealthCheck))
def test_no_input_the_document_allows_makes_the_daemon_fail(case, api, hall, daemon):
    # if this fails, some request a vendor's client can send gets a 5xx (or an answer the
    # document does not describe) instead of what the document promises
    case.call_and_validate(
        base_url=api.base.replace("/api/v1", ""), headers={"Authorization": "Bearer " + api.token},
        checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                response_schema_conformance], timeout=15)


@pytest.mark.parametrize("path", ["/api/v1/windows/W01", "/api/v1/windows/W01/start"])
def test_without_a_token_every_operation_is_refused_as_documented(api, path):
    # if this fails, the document says 401 but the daemon answers something else (or serves)
    method = "POST" if path.endswith("start") else "GET"
    req = urllib.request.Request(api.base.replace("/api/v1", "") + path, method=method,
                                 data=b'{"ticket": "A1"}' if method == "POST" else None)
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("served without a token")
    except urllib.error.HTTPError as e:
        assert e.code == 401 and "token" in json.loads(e.read())["error"]
