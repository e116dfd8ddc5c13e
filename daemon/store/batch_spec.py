"""What the store's OpenAPI document says beyond its routes (server.py): the batch body, which
the store reads as raw bytes (the hall's signature covers them exactly) and so declares here,
as pydantic models whose JSON schemas go into the document; the appeal; the headers and the
unit token. `complete()` builds the whole document for /openapi.json and `hcp store openapi`.

The batch models document; they do not check. batches.parse_batch checks a body (the same
fields: tests/store/test_docs.py holds the two together)."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from haochaping.protocol import fields

if TYPE_CHECKING:
    from fastapi import FastAPI

DESCRIPTION = """\
What every hall daemon posts its transactions (办件) and ratings to. Served by
`hcp store serve` over HTTPS; the record is described in docs/store.md.

Exactly-once in effect: the hall posts each batch until it gets a 200, and only then
forgets it. The store commits the batch and its records in one database transaction
before answering; a batch id seen before is answered again ("duplicate"), and a record id
seen before (in any batch) is not stored again.

Authentication: each hall has its own 32-byte key (`hcp store add-hall --key-out`).
X-Hcp-Signature is the lowercase hex HMAC-SHA256, under that key, of
`hall id + "\\n" + batch id + "\\n" + the exact body bytes`. A replayed batch is harmless
(answered "duplicate", stored once); TLS keeps it from being read on the way.

Limits (per worker process of the store): a request must arrive whole, headers and body,
within the read deadline (`hcp store serve --read-timeout`, 60 s) or it is cut off (408);
headers at most 64 KiB (431); an idle keep-alive connection is closed after
`--keep-alive` seconds; past `--max-connections` a request is answered 503 at once."""

APPEAL_DESCRIPTION = """\
Within 3 working days of the day the hall received the rating (docs/rules.md); the
office decides within 10 working days (`hcp appeal decide`). Only the rating's unit
(its hall id or department code: the token's unit) may appeal, only a counted
不满意/非常不满意 rating, and only once. An upheld appeal removes the rating from scoring;
the rating is kept, marked by its appeal, for audit."""

_ID_PATTERN = "^[A-Za-z0-9_-]{1,32}$"
Id = Annotated[str, Field(pattern=_ID_PATTERN)]
Time = Annotated[float, Field(description="Seconds since 1970-01-01 UTC (the hall daemon's"
                                          " clock).")]
_OUTCOME = Literal["counted", "duplicate", "unsolicited", "expired"]


def _opt(what: str) -> Any:
    return Field(None, description="optional, default %s" % what)


class Rater(BaseModel):
    """Only with the citizen's recorded consent (RULES.md 第六条); the store refuses it without
    consent=true, encrypts `identity` with AES-256-GCM at rest and never logs it."""
    consent: Literal[True]
    identity: dict[str, Any]


class TransactionColumns(BaseModel):
    """办件, each sent once it is finished (as Transaction, one array per field)."""
    model_config = ConfigDict(extra="forbid")
    tx: list[Annotated[int, Field(ge=1)]]
    window: list[Annotated[str, Field(min_length=1, max_length=32)]]
    ticket: list[Annotated[str, Field(min_length=1, max_length=64, description="办件编号")]]
    item: list[Annotated[str, Field(max_length=64, description="事项编码")]] = _opt('""')
    item_version: list[Annotated[str, Field(max_length=16, description="事项版本号")]] = \
        _opt('""')
    department: list[Annotated[str, Field(max_length=64, description="实施机构/部门编码")]] = \
        _opt('""')
    region: list[Annotated[str, Field(max_length=12, description="行政区划代码")]] = _opt('""')
    staff: list[Annotated[str, Field(max_length=32, description="工号")]] = _opt('""')
    channel: list[Annotated[str, Field(max_length=16, description="评价渠道")]] = \
        _opt('(and for "") PJQ')
    started_at: list[Time]
    finished_at: list[Time]
    rater: list[Rater | None] = _opt("null; consent required, encrypted at rest")


class RatingColumns(BaseModel):
    model_config = ConfigDict(extra="forbid")
    terminal: list[Id]
    seq: list[Annotated[int, Field(ge=0)]]
    level: list[Annotated[int, Field(ge=1, le=5, description="1 非常满意 … 5 非常不满意")]]
    outcome: list[_OUTCOME]
    transaction: list[Annotated[int, Field(ge=1)] | None] = _opt(
        "null; the tx number of the 办件 it is bound to (in this hall)")
    rated_at: list[Time]
    received_at: list[Time]
    default: list[bool] = _opt("false; a default 基本满意 (第七条)")
    channel: list[Annotated[str, Field(max_length=16)]] = _opt(
        "PJQ; 评价渠道: PJQ 评价器, QR 二维码 (the citizen's phone)")
    press_delay_ms: list[Annotated[int, Field(ge=0, le=fields.MAX_DELAY_MS)] | None] = _opt(
        "null; ms from the prompt lighting on the terminal to the key press, signed by the"
        " terminal (firmware 0.3.0 on; 第十一条)")


class ReasonColumns(BaseModel):
    model_config = ConfigDict(extra="forbid")
    terminal: list[Id]
    seq: list[Annotated[int, Field(ge=0)]]
    ref: list[Annotated[int, Field(ge=0)]] = Field(description="seq of the rating it explains")
    reason: list[Annotated[str, Field(min_length=1, max_length=64,
                                      description="服务效率 / 服务水平 / 服务态度 / 其他")]]
    rated_at: list[Time]


class RaterColumns(BaseModel):
    """A phone rater's name and phone (RULES.md 第六条), given with consent on the QR channel's
    page, for the follow-up of the bad review (回访). One per transaction; its record id is
    `<hall>:rater:<tx>`. The store opens `sealed` with the hall's key, seals it again with its
    own identity key (as a transaction's `rater`), and marks the transaction's open
    rectification case real-name. Refused (422, naming the record) if it does not open, if the
    transaction is not in the store yet, or if the store has no identity key."""
    model_config = ConfigDict(extra="forbid")
    tx: list[Annotated[int, Field(ge=1, description="the tx number of the 办件 rated")]]
    sealed: list[Annotated[str, Field(max_length=1024, pattern="^[A-Za-z0-9+/]+={0,2}$")]] = \
        Field(description=(
            "base64 of nonce (12 bytes) ‖ AES-256-GCM ciphertext of the JSON {name, phone}, under"
            " HKDF-SHA256(the hall's batch key, info \"haochaping rater v1\"), with the record"
            " id as associated data"))
    consent_at: list[Time] = Field(description="When the citizen ticked the consent line.")


class BatchV2(BaseModel):
    """Columnar: each table is an object of arrays, one per field, all of the same length;
    record i of a table is element i of every array. A table with no records is left out.
    Fields marked optional may be left out (their default for every record); a field not
    listed here is refused (422). Record ids are not sent: they follow from the fields,
    `<hall>:tx:<tx>`, `<hall>:rating:<terminal>:<seq>`, `<hall>:reason:<terminal>:<seq>`,
    `<hall>:rater:<tx>`, and a record id seen before is not stored again. At most 20,000
    records in all."""
    model_config = ConfigDict(extra="forbid")
    v: Literal[2] = Field(description="The format version.")
    hall: Id
    batch: str = Field(description="Equal to X-Hcp-Batch.")
    transactions: TransactionColumns | None = None
    ratings: RatingColumns | None = None
    reasons: ReasonColumns | None = None
    raters: RaterColumns | None = None


class Transaction(BaseModel):
    """One 办件, sent once it is finished."""
    type: Literal["transaction"]
    id: str = Field(examples=["H01:tx:17"], description="<hall>:tx:<tx>")
    tx: int = Field(ge=1)
    window: Id
    ticket: str = Field(max_length=64, description="办件编号 (or the queue ticket)")
    item: str = Field("", max_length=64, description="事项编码")
    item_version: str = Field("", max_length=16, description="事项版本号")
    department: str = Field("", max_length=64, description="实施机构/部门编码")
    region: str = Field("", max_length=12, description="行政区划代码")
    staff: str = Field("", max_length=32, description="the staff member rated (工号)")
    channel: str = Field("PJQ", max_length=16, description="评价渠道 (PJQ 评价器)")
    started_at: Time
    finished_at: Time
    rater: Rater | None = None


class Rating(BaseModel):
    type: Literal["rating"]
    id: str = Field(examples=["H01:rating:T001:42"],
                    description="<hall>:rating:<terminal>:<seq>")
    terminal: Id
    seq: int = Field(ge=0)
    level: int = Field(ge=1, le=5, description="1 非常满意 … 5 非常不满意")
    outcome: _OUTCOME
    transaction: str | None = Field(None, examples=["H01:tx:17"])
    rated_at: Time
    received_at: Time
    default: bool = Field(False, description="a default 基本满意 (第七条)")
    channel: str = Field("PJQ", max_length=16,
                         description="评价渠道: PJQ 评价器, QR 二维码 (the citizen's phone)")
    press_delay_ms: int | None = Field(
        None, ge=0, le=fields.MAX_DELAY_MS,
        description="ms from the prompt lighting on the terminal to the key press (第十一条)")


class Reason(BaseModel):
    type: Literal["reason"]
    id: str = Field(examples=["H01:reason:T001:43"])
    terminal: Id
    seq: int = Field(ge=0)
    ref: int = Field(description="seq of the rating it explains")
    reason: str = Field(max_length=64, description="服务效率 / 服务水平 / 服务态度 / 其他")
    rated_at: Time


class BatchV1(BaseModel):
    """Version 1, one object per record (older halls)."""
    hall: Id
    batch: str = Field(description="Equal to X-Hcp-Batch.")
    records: list[Annotated[Transaction | Rating | Reason, Field(discriminator="type")]] = \
        Field(max_length=20000)


Batch = Annotated[BatchV2 | BatchV1, Field(description=(
    "Version 2 (what halls send): one array per field, `v: 2`. Version 1 (one object per"
    " record, no `v`) is still accepted from older halls."))]


class Appeal(BaseModel):
    id: str = Field(examples=["A1b2c3d4e5f60718"])
    rating_uid: str
    unit: str
    status: Literal["pending", "upheld", "rejected"]
    filed_at: Time
    filing_deadline: Time
    decision_due: str = Field(json_schema_extra={"format": "date"}, description=(
        "The office decides by the end of this day (Asia/Shanghai)."))
    overdue: bool = Field(description="Pending past decision_due.")
    decision_reason: str | None


class AppealBody(BaseModel):
    rating: str = Field(examples=["H01:rating:T001:42"], description="The rating's record id.")
    reason: str = Field(max_length=2000, description="The written appeal.")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": "#/components/schemas/" + name}


def _header(name: str, pattern: str, words: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": True, "description": words,
            "schema": {"type": "string", "pattern": pattern}}


BEARER: dict[str, Any] = {"security": [{"unitToken": []}]}
BATCH_REQUEST: dict[str, Any] = {
    "parameters": [
        _header("X-Hcp-Hall", _ID_PATTERN, "The hall's id, as registered."),
        _header("X-Hcp-Batch", "^[A-Za-z0-9_.:-]{1,80}$",
                "Chosen by the hall; never reused for other content."),
        _header("X-Hcp-Signature", "^[0-9a-f]{64}$",
                "Lowercase hex HMAC-SHA256 of hall id, \"\\n\", batch id, \"\\n\" and the exact"
                " body bytes, under the hall's key."),
        _header("Content-Length", "^[0-9]+$", "Required: a body of at most 16 MiB.")],
    "requestBody": {
        "required": True,
        "description": "At most 16 MiB and 20,000 records; Content-Length required. Read as"
                       " raw bytes: the signature is checked over them before they are parsed.",
        "content": {"application/json": {"schema": _ref("Batch")}}}}
APPEAL_REQUEST: dict[str, Any] = {
    **BEARER,
    "requestBody": {
        "required": True,
        "description": "At most 64 KiB; Content-Length required.",
        "content": {"application/json": {"schema": _ref("AppealBody")}}}}
SECURITY_SCHEMES: dict[str, Any] = {"unitToken": {
    "type": "http", "scheme": "bearer", "description": (
        "`Authorization: Bearer <token>`: a rated unit's own token, 64 hex characters, written"
        " once to a file (mode 600) by `hcp appeal add-unit --unit U --token-out FILE`; the"
        " store keeps only its SHA-256. A new add-unit replaces the unit's token. Only"
        " /v1/appeals uses it; batches are signed with the hall's key.")}}


def complete(app: FastAPI) -> dict[str, Any]:
    """The app's whole OpenAPI document: its routes (FastAPI), with the schemas of the bodies
    it reads raw and the unit token's scheme; built once, then kept."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description,
                      routes=app.routes, servers=app.servers)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    # FastAPI's own 422 for a path parameter it could not read: the store has none (its
    # parameters are plain strings, and any error of FastAPI's it answers 400)
    for operations in doc["paths"].values():
        for op in operations.values():
            answer = op["responses"].get("422", {})
            if "HTTPValidationError" in json.dumps(answer):
                del op["responses"]["422"]
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    template = "#/components/schemas/{model}"
    shapes: list[tuple[str, TypeAdapter[Any]]] = [("Batch", TypeAdapter(Batch)),
                                                  ("AppealBody", TypeAdapter(AppealBody))]
    for name, shape in shapes:
        js = shape.json_schema(ref_template=template)
        schemas.update(js.pop("$defs", {}))
        schemas[name] = js
    doc["components"]["schemas"] = dict(sorted(schemas.items()))
    doc["components"]["securitySchemes"] = SECURITY_SCHEMES
    app.openapi_schema = doc
    return doc
