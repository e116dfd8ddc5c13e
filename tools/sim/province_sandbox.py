"""A reference provincial 好差评 endpoint (`hcp province sandbox`), for tests and for a city's IT
to rehearse with before the province opens its own: strict, durable, and able to fail on purpose.

- Strict: it takes the same delivery profile as the store and refuses, with a province's words,
  every record that breaks it (mapping.check: fields, codes, time format, a reversed scale, text
  rules), an evaluation whose service data it never got, a correction of an evaluation it does not
  hold, a key (办件编号 + 评价次数) sent again with other content, a bad signature or app mark.
- Durable: what it accepted is in its own SQLite file (synchronous=FULL) before it answers; a
  record sent again with the same content is answered as accepted and counted as a duplicate.
- Faults (POST /_sandbox/faults, or options at start): answer 5xx for the next N posts, take the
  next N posts and then hang past the client's timeout (stored, answer lost), refuse chosen
  办件编号, answer garbage.
- GET {reconcile}?day=YYYY-MM-DD lists the keys it holds for a day; GET /_sandbox/accepted and
  /_sandbox/stats are for tests.
Served by FastAPI on uvicorn, as a process of its own (SandboxProcess) that tests SIGKILL.
"""
from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import threading
import time
import urllib.request
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from haochaping.daemon.store.province import mapping
from haochaping.daemon.store.province.profiles import Profile
from haochaping.tools.sim.processes import Service, wait_until_up

SCHEMA = """
CREATE TABLE IF NOT EXISTS accepted (
    kind TEXT NOT NULL, project_no TEXT NOT NULL, assess_number INTEGER NOT NULL,
    day TEXT NOT NULL, record TEXT NOT NULL, received_at REAL NOT NULL, duplicates INTEGER NOT
    NULL DEFAULT 0, PRIMARY KEY (kind, project_no, assess_number));
CREATE INDEX IF NOT EXISTS accepted_day ON accepted (day);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def _set(doc: dict[str, Any], path: str, value: object) -> None:
    parts = path.split(".")
    for p in parts[:-1]:
        doc = doc.setdefault(p, {})
    doc[parts[-1]] = value


class Sandbox:
    """The province's side: receive(kind, body) -> (HTTP status, answer)."""

    def __init__(self, profile: Profile, db: str) -> None:
        self.p = profile
        self.lock = threading.Lock()
        self.conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(SCHEMA)
        self.faults: dict[str, Any] = {"fail_5xx": 0, "hang": 0, "hang_s": 60.0,
                                       "refuse": [], "refuse_words": "", "garbage": 0}

    def _count(self, name: str, n: int = 1) -> None:
        self.conn.execute("INSERT INTO counters VALUES (?, ?) ON CONFLICT (name) DO UPDATE"
                          " SET value = value + excluded.value", (name, n))

    def _answer(self, ok: bool, message: str, results: list[tuple[bool, str]] | None = None,
                code: str | None = None) -> dict[str, Any]:
        p = self.p
        doc: dict[str, Any] = {}
        _set(doc, p.code_path, code or (p.ok_codes[0] if ok else "400"))
        if p.message_path:
            _set(doc, p.message_path, message)
        if results is not None and p.results_path:
            bad = "0" if "0" not in p.result_ok else "9"
            _set(doc, p.results_path, [{p.result_code: p.result_ok[0] if good else bad,
                                        p.result_message: why} for good, why in results])
        return doc

    def _judge(self, kind: str, rec: Any, i: int, batch_keys: set[tuple[str, int]]
               ) -> tuple[str | None, tuple[str, int] | None, bool]:
        """(refusal or None, key, duplicate) for one record of a post."""
        if not isinstance(rec, dict):
            return "record %d: not an object" % i, None, False
        errors = mapping.check(self.p, kind, rec)
        if errors:
            return "; ".join(errors), None, False
        k = mapping.key(self.p, kind, rec)
        if k[0] in self.faults["refuse"]:
            return ("办件编号 %s: refused by the sandbox (fault injected)%s"
                    % (k[0], self.faults["refuse_words"])), None, False
        text = orjson.dumps(rec, option=orjson.OPT_SORT_KEYS).decode()
        row = self.conn.execute("SELECT record FROM accepted WHERE kind = ? AND project_no = ?"
                                " AND assess_number = ?", (kind, *k)).fetchone()
        if row is not None:
            if row[0] != text:
                return ("办件编号 %s 评价次数 %d was received before with other content"
                        % k), None, False
            return None, k, True
        if k in batch_keys:
            return "办件编号 %s 评价次数 %d twice in one post" % k, None, False
        if kind == "evaluation" and self.p.service_first and not self._has("service", k[0], 0):
            return "no service data (办件) for 办件编号 %s: send it first" % k[0], None, False
        if kind == "correction" and not self._has("evaluation", *k):
            return "no evaluation 办件编号 %s 评价次数 %d to correct" % k, None, False
        return None, k, False

    def _has(self, kind: str, pno: str, n: int) -> bool:
        return self.conn.execute("SELECT 1 FROM accepted WHERE kind = ? AND project_no = ? AND"
                                 " assess_number = ?", (kind, pno, n)).fetchone() is not None

    def receive(self, kind: str, body: bytes) -> tuple[int, dict[str, Any] | bytes]:
        with self.lock:
            self._count("posts")
            if self.faults["fail_5xx"] > 0:
                self.faults["fail_5xx"] -= 1
                self._count("failed_5xx")
                return 503, {"error": "sandbox: service unavailable (fault injected)"}
            if self.faults["garbage"] > 0:
                self.faults["garbage"] -= 1
                return 200, b"<html>gateway\x00 error</html>"
            try:
                records = mapping.open_envelope(self.p, body)
            except mapping.BadEnvelope as e:
                self._count("refused_posts")
                if e.auth:
                    code = self.p.auth_codes[0] if self.p.auth_codes else "401"
                    return (200 if self.p.auth_codes else 401), self._answer(False, str(e),
                                                                             code=code)
                return 200, self._answer(False, str(e))
            self._count("records", len(records))
            verdicts = []
            keys: set[tuple[str, int]] = set()
            for i, rec in enumerate(records):
                why, k, dup = self._judge(kind, rec, i, keys)
                verdicts.append((why, k, dup, rec))
                if k is not None:
                    keys.add(k)
            refused = [(i, v[0]) for i, v in enumerate(verdicts) if v[0] is not None]
            per_record = bool(self.p.results_path)
            if refused and not per_record:      # all or nothing, the first refusal named
                self._count("refused_posts")
                i, why = refused[0]
                return 200, self._answer(False, "record %d: %s" % (i, why))
            now = time.time()
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                for why, k, dup, rec in verdicts:
                    if why is not None or k is None:
                        continue
                    if dup:
                        self.conn.execute("UPDATE accepted SET duplicates = duplicates + 1"
                                          " WHERE kind = ? AND project_no = ? AND"
                                          " assess_number = ?", (kind, *k))
                        self._count("duplicates")
                        continue
                    self.conn.execute(
                        "INSERT INTO accepted VALUES (?, ?, ?, ?, ?, ?, 0)",
                        (kind, k[0], k[1], mapping.record_day(self.p, kind, rec) or "",
                         orjson.dumps(rec, option=orjson.OPT_SORT_KEYS).decode(), now))
                self._count("refused_records", len(refused))
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            results = [(why is None, why or "") for why, _k, _d, _r in verdicts]
            return 200, self._answer(True, "accepted %d of %d" % (
                sum(ok for ok, _ in results), len(results)), results if per_record else None)

    def reconcile(self, day: str) -> dict[str, list[list[Any]]]:
        with self.lock:
            out: dict[str, list[list[Any]]] = {k: [] for k in self.p.kinds}
            for kind, pno, n in self.conn.execute(
                    "SELECT kind, project_no, assess_number FROM accepted WHERE day = ?"
                    " ORDER BY kind, project_no", (day,)):
                out.setdefault(kind, []).append([pno, n])
            return out

    def accepted(self) -> dict[str, Any]:
        with self.lock:
            rows = self.conn.execute("SELECT kind, project_no, assess_number, duplicates"
                                     " FROM accepted").fetchall()
            counters = dict(self.conn.execute("SELECT name, value FROM counters").fetchall())
        return {"keys": [list(r[:3]) for r in rows],
                "duplicates": sum(r[3] for r in rows), "counters": counters}


def app(sandbox: Sandbox) -> Any:
    """The FastAPI application: the profile's endpoints, its reconcile, the test hooks."""
    api = FastAPI(title="hcp province sandbox (%s)" % sandbox.p.name, docs_url=None,
                  redoc_url=None, openapi_url=None)

    def reply(status: int, answer: dict[str, Any] | bytes) -> Response:
        data = answer if isinstance(answer, bytes) else orjson.dumps(answer)
        return Response(data, status_code=status, media_type="application/json")

    def handler(kind: str) -> Any:
        async def post(request: Request) -> Response:
            body = await request.body()
            status, answer = await run_in_threadpool(sandbox.receive, kind, body)
            if sandbox.faults["hang"] > 0 and status == 200:
                sandbox.faults["hang"] -= 1        # stored: the answer is what gets lost
                await asyncio.sleep(float(sandbox.faults["hang_s"]))
            return reply(status, answer)
        return post

    for kind, path in sandbox.p.endpoints.items():
        api.add_api_route(path, handler(kind), methods=["POST"])

    if sandbox.p.reconcile:
        async def reconcile(day: str) -> Response:
            return reply(200, await run_in_threadpool(sandbox.reconcile, day))
        api.add_api_route(sandbox.p.reconcile, reconcile, methods=["GET"])

    async def faults(request: Request) -> Response:
        new = orjson.loads(await request.body() or b"{}")
        for k, v in new.items():
            if k in sandbox.faults:
                sandbox.faults[k] = v
        return reply(200, sandbox.faults)

    async def accepted() -> Response:
        return reply(200, await run_in_threadpool(sandbox.accepted))

    api.add_api_route("/_sandbox/faults", faults, methods=["POST"])
    api.add_api_route("/_sandbox/accepted", accepted, methods=["GET"])
    return api


def serve(profile: Profile, host: str, port: int, db: str,
          faults: dict[str, Any] | None = None) -> None:
    """Serve until SIGTERM/SIGINT (uvicorn handles both)."""
    import uvicorn
    sb = Sandbox(profile, db)
    sb.faults.update(faults or {})
    uvicorn.run(app(sb), host=host, port=port, log_level="warning", access_log=False)


def call(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """A test hook of a running sandbox (GET, or POST with a JSON body)."""
    data = None if body is None else orjson.dumps(body)
    with urllib.request.urlopen(urllib.request.Request(url + path, data=data),
                                timeout=10) as r:
        return orjson.loads(r.read())


class SandboxProcess(Service):
    """`hcp province sandbox` as a process of its own: start(), kill() (SIGKILL), start()."""

    def __init__(self, profile: str, port: int, db: str, key_file: str | None = None,
                 log_path: str | None = None) -> None:
        super().__init__(log_path or os.path.join(os.path.dirname(db), "sandbox.log"))
        self.profile, self.port, self.db, self.key_file = profile, port, db, key_file
        self.url = "http://127.0.0.1:%d" % port

    def start(self, timeout: float = 30) -> SandboxProcess:
        args = [sys.executable, "-m", "haochaping.tools.cli", "province", "sandbox",
                "--profile", self.profile, "--listen", "127.0.0.1:%d" % self.port,
                "--db", self.db]
        if self.key_file:
            args += ["--key-file", self.key_file]
        proc = self._spawn(args)
        wait_until_up(proc, lambda: bool(call(self.url, "/_sandbox/accepted") is not None),
                      "the province sandbox", timeout, "see %s" % self.log_path)
        return self

    def faults(self, **kw: Any) -> Any:
        return call(self.url, "/_sandbox/faults", kw)

    def accepted(self) -> Any:
        return call(self.url, "/_sandbox/accepted")
