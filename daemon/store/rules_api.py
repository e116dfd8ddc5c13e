"""The store's HTTP routes for the rules (docs/store-openapi.json), called by server.py.

    POST /v1/appeals      Authorization: Bearer <the unit's token>  (`hcp appeal add-unit`)
                          body {"rating": "H01:rating:T001:42", "reason": "…"}
                          201 the appeal · 400 bad body · 401 no/unknown token
                          403 not the unit's rating · 404 no such rating · 409 appealed already
                          422 late (the deadline in `error`) or not a bad review
    GET  /v1/appeals/ID   the appeal, for the unit that filed it (else 404)

In the transaction that stores a batch the server calls in_batch(): its bad reviews' cases open.
"""
from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from haochaping.daemon.store import access, appeals, cases
from haochaping.daemon.store.access import Record

if TYPE_CHECKING:
    from haochaping.daemon.store.backends import Store

# an answer: (HTTP status, the JSON document)
Answer = tuple[int, dict[str, object]]

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024   # bytes of an appeal; the server answers 411/413 before reading


def in_batch(t: access.Tx, hall: str, batch: str) -> None:
    """backends.store_batch's `then`: the rules' part of storing a batch, in its transaction."""
    cases.open_in_batch(t, hall, batch)


def _unit(store: Store, authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return appeals.unit_of(store, token.strip())


def _public(a: Record) -> dict[str, object]:
    return {k: a[k] for k in ("id", "rating_uid", "unit", "status", "decision_due", "overdue",
                              "decision_reason")} | {
        "filed_at": a["filed_at"], "filing_deadline": a["filing_deadline"]}


_NO_TOKEN: Answer = (401, {"error": "Authorization: Bearer <unit token> required"
                                    " (hcp appeal add-unit)"})
_AWAY: Answer = (503, {"error": "store database unavailable, retry later"})


def post_appeal(store: Store, authorization: str, body: bytes) -> Answer:
    """An appeal's raw body (its length checked by the server) with the request's
    Authorization header -> (HTTP status, JSON document)."""
    try:
        unit = _unit(store, authorization)
    except Exception as e:
        log.error("store database unavailable: %s", e)
        return _AWAY
    if unit is None:
        log.warning("appeal refused: no or unknown unit token")
        return _NO_TOKEN
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return 400, {"error": "body must be JSON: {\"rating\": ID, \"reason\": TEXT}"}
    if not isinstance(doc, dict) or not isinstance(doc.get("rating"), str) \
            or not isinstance(doc.get("reason"), str):
        return 400, {"error": "body must be {\"rating\": ID, \"reason\": TEXT}"}
    try:
        a = appeals.file(store, doc["rating"], unit, doc["reason"], via="api")
    except appeals.AppealRefused as e:
        log.warning("appeal by unit %s refused: HTTP %d", unit, e.status)
        return e.status, {"error": str(e)}
    except Exception as e:
        log.error("store database unavailable: %s", e)
        return _AWAY
    return 201, _public(a)


def get_appeal(store: Store, authorization: str, aid: str) -> Answer:
    """-> (HTTP status, JSON document): 200 the appeal, for the unit that filed it; 401 no or
    unknown token; 404 no such appeal of this unit; 503 the database away."""
    try:
        unit = _unit(store, authorization)
        if unit is None:
            return _NO_TOKEN
        try:
            a = appeals.get(store, aid)
        except appeals.AppealRefused:
            a = None
    except Exception as e:
        log.error("store database unavailable: %s", e)
        return _AWAY
    if a is None or a["unit"] != unit:
        return 404, {"error": "no appeal %s of unit %s" % (aid, unit)}
    return 200, _public(a)
