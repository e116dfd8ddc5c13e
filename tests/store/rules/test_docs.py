"""docs/store-openapi.json describes the appeal routes as they answer."""
import json
import os

from .conftest import Data, hcp, recent

SPEC = os.path.join(os.path.dirname(__file__), "..", "..", "..", "docs", "store-openapi.json")


def test_art10_the_appeal_route_answers_what_the_openapi_spec_says(store, tmp_path):
    # if this fails, a unit's IT building against the spec gets fields it did not expect
    with open(SPEC, encoding="utf-8") as f:
        spec = json.load(f)
    assert {"/v1/appeals", "/v1/appeals/{id}"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["unitToken"]["scheme"] == "bearer"
    schema = spec["components"]["schemas"]["Appeal"]
    s = store.open()
    try:
        _tx, bad = Data(s).transaction(recent(), level=4, rated=recent())
    finally:
        s.close()
    hcp("appeal", "add-unit", "--db", store.db, "--unit", "D1", "--token-out", tmp_path / "t")
    token = (tmp_path / "t").read_text().strip()
    c = store.client()
    status, doc = c.request("POST", "/v1/appeals", json.dumps(
        {"rating": bad, "reason": "误评"}).encode(), {"Authorization": "Bearer " + token})
    c.close()
    assert status == 201
    assert set(doc) <= set(schema["properties"]) and set(schema["required"]) <= set(doc)
    answers = set(spec["paths"]["/v1/appeals"]["post"]["responses"])
    assert {"201", "401", "403", "404", "409", "422"} <= answers
