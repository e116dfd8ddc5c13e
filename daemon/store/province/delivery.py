"""The store delivers to a province (第十五条): the outbox, batches, retries, quarantine.

    transactions, ratings, appeals ──scan──▶ province_items (state waiting, n in order)
                                               │ pick: service data, then evaluations whose
                                               │ service data the province has, then corrections
                                               ▼
                 mapping.build ─▶ envelope ─▶ POST ─▶ answer checked (protocol/fields.py rules)
                                               │ accepted: state sent (after the answer only)
                                               │ refused, one record: quarantined, the rest go on
                                               │ refused, whole batch: split until it is alone
                                               └ no answer, 5xx, "retry": back-off, same records

Exactly once in effect: an item is marked sent only after the province answered for it, so a
crash re-sends it; the province keys records by 办件编号 + 评价次数 and answers a record it holds
with the same content as accepted (the sandbox does; a province that refuses it as a duplicate
is told apart by its code in [response]). The content of an item never changes: the facts are
final when scanned (a bad review waits up to settle_s for its reasons). One deliverer per target
at a time: a lease in province_state (a deliverer killed -9 on this host is seen dead at once,
elsewhere after LEASE_S).
"""
from __future__ import annotations

import http.client
import json
import logging
import os
import random
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from haochaping.daemon.errors import HcpError
from haochaping.daemon.store import access
from haochaping.daemon.store.province import mapping
from haochaping.daemon.store.province.profiles import Profile
from haochaping.protocol import fields

if TYPE_CHECKING:
    from haochaping.daemon.store.backends import Store

log = logging.getLogger(__name__)

LEASE_S = 30.0
SCAN_MARGIN_S = 300.0    # a batch committed late (PostgreSQL) is still found by the next scans
FULL_SCAN_S = 3600.0     # and a full scan every hour finds anything else
POLL_S = 1.0
ANALYZE_AFTER = 1000     # rows queued at once (PostgreSQL)
MAX_ANSWER = 4 * 1024 * 1024
MAX_REASON = 500
_CHUNK = 500

ITEM_COLS = ("n", "kind", "uid", "ref", "project_no", "assess_number", "day", "state",
             "attempts", "queued_at", "sent_at", "batch", "code", "reason", "quarantined_at",
             "decided_at", "decided_by", "note")

SERVICE_SCAN = """
SELECT t.uid, t.hall, t.tx, t.ticket, t.region, t.department, t.finished_at FROM transactions t
WHERE t.received_at >= %s AND NOT EXISTS (SELECT 1 FROM province_items p
  WHERE p.target = %s AND p.kind = 'service' AND p.uid = t.uid)
ORDER BY t.finished_at, t.uid
"""
EVALUATION_SCAN = """
SELECT r.uid, r.tx_uid, r.is_default, r.rated_at, t.hall, t.tx, t.ticket, t.region,
       t.department, t.finished_at
FROM ratings r JOIN transactions t ON t.uid = r.tx_uid
WHERE r.outcome = 'counted' AND (r.received_at >= %s OR t.received_at >= %s)
  AND NOT EXISTS (SELECT 1 FROM province_items p
    WHERE p.target = %s AND p.kind = 'evaluation' AND p.uid = r.tx_uid)
  AND (r.level < 4 OR r.is_default = 1 OR r.received_at <= %s OR EXISTS (SELECT 1 FROM reasons s
    WHERE s.hall = r.hall AND s.terminal = r.terminal AND s.ref_seq = r.seq))
ORDER BY r.rated_at, r.uid
"""
CORRECTION_SCAN = """
SELECT a.id, a.rating_uid, a.decided_at, e.project_no, e.assess_number FROM appeals a
JOIN province_items e ON e.target = %s AND e.kind = 'evaluation' AND e.ref = a.rating_uid
WHERE a.status = 'upheld' AND NOT EXISTS (SELECT 1 FROM province_items p
  WHERE p.target = %s AND p.kind = 'correction' AND p.uid = a.id)
ORDER BY a.decided_at, a.id
"""
INSERT_ITEM = """
INSERT INTO province_items (target, n, kind, uid, ref, project_no, assess_number, day, state,
                            attempts, queued_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'waiting', 0, %s)
"""
# items whose prerequisite the province will never get unless a person acts: held with it
HOLD_SQL = {
    "evaluation": """
UPDATE province_items SET state = 'quarantined', code = 'held', quarantined_at = %s,
  reason = 'its service data (办件 ' || project_no || ') is held in the quarantine: retry that'
WHERE target = %s AND kind = 'evaluation' AND state = 'waiting' AND EXISTS (
  SELECT 1 FROM province_items s WHERE s.target = province_items.target
  AND s.kind = 'service' AND s.uid = province_items.uid AND s.state IN ('quarantined', 'dropped'))
""",
    "correction": """
UPDATE province_items SET state = 'quarantined', code = 'held', quarantined_at = %s,
  reason = 'the evaluation it corrects (办件 ' || project_no || ') is held in the quarantine'
WHERE target = %s AND kind = 'correction' AND state = 'waiting' AND EXISTS (
  SELECT 1 FROM province_items e WHERE e.target = province_items.target
  AND e.kind = 'evaluation' AND e.ref = province_items.ref
  AND e.state IN ('quarantined', 'dropped'))
""",
}
PICK_SQL = """
SELECT n, kind, uid, ref, project_no, assess_number FROM province_items p
WHERE target = %%s AND kind = %%s AND state = 'waiting' %s ORDER BY n LIMIT %%s
"""
PREREQ = {
    "evaluation": "AND EXISTS (SELECT 1 FROM province_items s WHERE s.target = p.target"
                  " AND s.kind = 'service' AND s.uid = p.uid AND s.state = 'sent')",
    "correction": "AND EXISTS (SELECT 1 FROM province_items e WHERE e.target = p.target"
                  " AND e.kind = 'evaluation' AND e.ref = p.ref AND e.state = 'sent')",
}
TX_SQL = """SELECT uid, hall, tx, window_id, ticket, item, item_version, department, region,
staff, channel, started_at, finished_at FROM transactions WHERE uid IN (%s)"""
TX_COLS = ("uid", "hall", "tx", "window", "ticket", "item", "item_version", "department",
           "region", "staff", "channel", "started_at", "finished_at")
RATING_SQL = """SELECT uid, hall, terminal, seq, level, rated_at, is_default, channel
FROM ratings WHERE uid IN (%s)"""
REASON_SQL = """SELECT hall, terminal, ref_seq, reason FROM reasons
WHERE hall = %s AND terminal = %s AND ref_seq = %s ORDER BY seq"""
APPEAL_SQL = """SELECT a.id, a.decided_at, a.decision_reason, r.level FROM appeals a
JOIN ratings r ON r.uid = a.rating_uid WHERE a.id IN (%s)"""


class Transient(HcpError):
    """No usable answer (network, timeout, 5xx, "try later", a malformed answer): same
    records again after a back-off. auth=True: the province does not take our signature."""

    def __init__(self, message: str, auth: bool = False) -> None:
        super().__init__(message)
        self.auth = auth


class Answer:
    """The province's checked answer to one post: per record, accepted or (code, reason)."""

    def __init__(self, accepted: list[bool], refusals: list[tuple[str, str]],
                 whole: tuple[str, str] | None) -> None:
        self.accepted, self.refusals, self.whole = accepted, refusals, whole


def _code(v: object, what: str) -> str:
    """A code from the province's answer, checked by the field rules before it is kept."""
    if type(v) is int:
        v = str(v)
    if not isinstance(v, str):
        raise Transient("malformed answer from the province: %s is not a code" % what)
    try:
        return fields.text(what, v, 64)
    except ValueError as e:
        raise Transient("malformed answer from the province: %s" % e) from None


def _words(v: object) -> str:
    """The province's words, cut and with every character the field rules refuse replaced."""
    if v is None:
        return ""
    return fields.clean(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False),
                        MAX_REASON)


def read_answer(profile: Profile, status: int, body: bytes, n: int) -> Answer:
    """Check the province's answer to a post of n records (protocol/fields.py rules: codes are
    one-line text of at most 64 characters, words are cleaned and cut) before anything of it is
    stored. Raises Transient when it must be posted again."""
    if status in (401, 403):
        raise Transient("the province refuses our credentials (HTTP %d): check the key and"
                        " app mark in the profile" % status, auth=True)
    if status >= 500 or status in (408, 429):
        raise Transient("the province answered HTTP %d: retry later" % status)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        if 400 <= status < 500:
            return Answer([False] * n, [], ("HTTP %d" % status, _words(body[:MAX_REASON]
                                                                       .decode("utf-8",
                                                                               "replace"))))
        raise Transient("malformed answer from the province (HTTP %d, not a JSON object)"
                        % status)
    code = _code(mapping.lookup(doc, profile.code_path), profile.code_path)
    message = _words(mapping.lookup(doc, profile.message_path)) if profile.message_path else ""
    if code in profile.retry_codes:
        raise Transient("the province says retry later (%s %s)" % (code, message))
    if code in profile.auth_codes:
        raise Transient("the province refuses our credentials (%s %s)" % (code, message),
                        auth=True)
    results = mapping.lookup(doc, profile.results_path) if profile.results_path else None
    if results is not None:
        if not isinstance(results, list) or len(results) != n:
            raise Transient("malformed answer from the province: %s must list %d results"
                            % (profile.results_path, n))
        accepted, refusals = [], []
        for i, r in enumerate(results):
            if not isinstance(r, dict):
                raise Transient("malformed answer from the province: result %d" % i)
            rc = _code(r.get(profile.result_code), "%s[%d]" % (profile.results_path, i))
            ok = rc in profile.result_ok
            accepted.append(ok)
            refusals.append(("", "") if ok else (rc, _words(r.get(profile.result_message))))
        return Answer(accepted, refusals, None)
    if code in profile.ok_codes and status < 300:
        return Answer([True] * n, [("", "")] * n, None)
    return Answer([False] * n, [], (code, message))


class Poster:
    """One keep-alive HTTP(S) connection to the province; reconnects after any failure."""

    def __init__(self, url: str, ca: str = "", timeout: float = 30) -> None:
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise HcpError("province url %r: expected http(s)://HOST[:PORT]" % url)
        self.https = u.scheme == "https"
        self.host, self.port = u.hostname, u.port or (443 if self.https else 80)
        self.base = u.path.rstrip("/")
        self.timeout = timeout
        self.ctx = ssl.create_default_context(cafile=ca or None) if self.https else None
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """One request; a kept-alive connection the server closed meanwhile (uvicorn: after 5 s
        idle) is opened again once, at once: the records are keyed, a repeat does no harm."""
        reused = self.conn is not None
        try:
            return self._request(method, path, body)
        except Transient as e:
            if not reused or not isinstance(e.__context__, (ConnectionError,
                                                            http.client.RemoteDisconnected)):
                raise
        return self._request(method, path, body)

    def _request(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        if self.conn is None:
            if self.https:
                self.conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx,
                                                        timeout=self.timeout)
            else:
                self.conn = http.client.HTTPConnection(self.host, self.port,
                                                       timeout=self.timeout)
        try:
            self.conn.request(method, self.base + path, body,
                              {"Content-Type": "application/json;charset=utf-8"})
            resp = self.conn.getresponse()
            data = resp.read(MAX_ANSWER + 1)
            if len(data) > MAX_ANSWER:
                raise Transient("the province's answer is over %d bytes" % MAX_ANSWER)
            return resp.status, data
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise Transient("cannot reach the province at %s:%s: %s"
                            % (self.host, self.port, e or type(e).__name__)) from e
        except Transient:
            self.close()
            raise

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _in(n: int) -> str:
    return ", ".join(["%s"] * n)


def _chunks(seq: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), _CHUNK):
        yield seq[i:i + _CHUNK]


def _owner() -> str:
    return "%s:%d" % (socket.gethostname(), os.getpid())


def _dead(owner: str | None) -> bool:
    """A lease holder on this host whose process is gone (killed -9) holds nothing."""
    if not owner:
        return True
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Deliverer:
    """Deliver a store's results to one province: `run(stop)` until stop is set, or
    `run(stop, once=True)` until nothing more can go now. One call starts it in a thread:
    `Deliverer(store, profile).start(stop)`."""

    def __init__(self, store: Store, profile: Profile, url: str | None = None,
                 settle_s: float | None = None) -> None:
        self.store, self.p = store, profile
        self.target = profile.name
        self.url = url or profile.url
        self.settle_s = profile.settle_s if settle_s is None else settle_s
        self.poster = Poster(self.url, profile.ca, profile.timeout_s)
        self.owner = _owner()
        self.limit = profile.batch_size     # halved on a whole-batch refusal, to find the record
        self.failures = 0
        self.tokens = float(profile.batch_size)
        self.tokens_at = time.monotonic()
        self.sent = 0
        self.posts = 0
        self.last_error: str | None = None
        self._state_row()

    # --- the lease and the state row ---------------------------------------------------------
    def _state_row(self) -> None:
        with access.atomic(self.store) as t:
            t.x("INSERT INTO province_state (target, failures, posts, sent) VALUES (%s, 0, 0, 0)"
                " ON CONFLICT DO NOTHING", (self.target,))

    def take_lease(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        with access.atomic(self.store) as t:
            row = t.q("SELECT owner, lease_until FROM province_state WHERE target = %s",
                      (self.target,))
            owner, until = row[0] if row else (None, None)
            if owner not in (None, self.owner) and until is not None and until > now \
                    and not _dead(owner):
                return False
            t.x("UPDATE province_state SET owner = %s, lease_until = %s WHERE target = %s",
                (self.owner, now + LEASE_S, self.target))
        return True

    def release(self) -> None:
        with access.atomic(self.store) as t:
            t.x("UPDATE province_state SET owner = NULL, lease_until = NULL"
                " WHERE target = %s AND owner = %s", (self.target, self.owner))

    def _note(self, error: str | None, now: float) -> None:
        with access.atomic(self.store) as t:
            if error is None:
                t.x("UPDATE province_state SET last_success_at = %s, failures = 0,"
                    " posts = posts + 1, sent = %s WHERE target = %s",
                    (now, self._sent_total(t), self.target))
            else:
                t.x("UPDATE province_state SET last_error = %s, last_error_at = %s,"
                    " failures = %s, posts = posts + 1 WHERE target = %s",
                    (error, now, self.failures, self.target))

    def _sent_total(self, t: access.Tx) -> int:
        return int(t.q("SELECT COUNT(*) FROM province_items WHERE target = %s AND state = 'sent'",
                       (self.target,))[0][0])

    # --- scan: the facts owed to the province, in order ----------------------------------------
    def scan(self, now: float | None = None, full: bool = False) -> int:
        """Queue every fact not queued yet; return how many were queued."""
        now = time.time() if now is None else now
        st = access.query(self.store, "SELECT scanned_at, full_scan_at FROM province_state"
                                      " WHERE target = %s", (self.target,))
        scanned, full_at = st[0] if st else (None, None)
        full = full or scanned is None or full_at is None or now - full_at > FULL_SCAN_S
        since = 0.0 if full else scanned - SCAN_MARGIN_S - self.settle_s
        rows: list[tuple[Any, ...]] = []
        p, target = self.p, self.target
        if "service" in p.kinds:
            for uid, hall, tx, ticket, region, dept, finished in access.query(
                    self.store, SERVICE_SCAN, (since, target)):
                pno = mapping.project_no(p, hall, tx, ticket, region, dept, finished)
                rows.append(("service", uid, uid, pno, 0, mapping.day_of(finished)))
        best: dict[str, tuple[Any, ...]] = {}
        for r in access.query(self.store, EVALUATION_SCAN,
                              (since, since, target, now - self.settle_s)):
            uid, tx_uid, is_default = r[0], r[1], r[2]
            old = best.get(tx_uid)
            if old is None or (old[2] and not is_default):   # the citizen's over the default
                best[tx_uid] = r
        for uid, tx_uid, _d, rated, hall, tx, ticket, region, dept, finished in sorted(
                best.values(), key=lambda r: (r[3], r[0])):
            pno = mapping.project_no(p, hall, tx, ticket, region, dept, finished)
            rows.append(("evaluation", tx_uid, uid, pno, 1, mapping.day_of(rated)))
        n = self._queue(rows, now)
        if "correction" in p.kinds:
            corr = [("correction", aid, rating, pno, number, mapping.day_of(decided))
                    for aid, rating, decided, pno, number in access.query(
                        self.store, CORRECTION_SCAN, (target, target))]
            n += self._queue(corr, now)
        with access.atomic(self.store) as t:
            t.x("UPDATE province_state SET scanned_at = %s WHERE target = %s", (now, target))
            if full:
                t.x("UPDATE province_state SET full_scan_at = %s WHERE target = %s",
                    (now, target))
        if n:
            log.info("province %s: %d new record(s) queued", target, n)
        return n

    def _queue(self, rows: list[tuple[Any, ...]], now: float) -> int:
        if not rows:
            return 0
        with access.atomic(self.store) as t:
            top = t.q("SELECT MAX(n) FROM province_items WHERE target = %s", (self.target,))
            n = int(top[0][0] or 0)
            t.xmany(INSERT_ITEM, [(self.target, n + i + 1, *r, now)
                                  for i, r in enumerate(rows)])
            if not t.sqlite and len(rows) >= ANALYZE_AFTER:
                # without fresh statistics PostgreSQL picks the next batch with a nested loop
                # over the whole outbox (measured: 0.45 s a pick at 4,000 items, 0.013 s after)
                t.x("ANALYZE province_items")
        return len(rows)

    # --- one batch ------------------------------------------------------------------------------
    def pick(self, now: float) -> list[tuple[Any, ...]]:
        """The next batch: items of one kind, in order, whose prerequisite the province has."""
        with access.atomic(self.store) as t:
            # only when something is held or dropped (rare): the usual pick stays one query
            if t.q("SELECT 1 FROM province_items WHERE target = %s AND state IN"
                   " ('quarantined', 'dropped') LIMIT 1", (self.target,)):
                for kind, sql in HOLD_SQL.items():
                    if kind in self.p.kinds:
                        t.x(sql, (now, self.target))
        for kind in self.p.kinds:
            cond = ""
            if kind == "evaluation" and self.p.service_first:
                cond = PREREQ["evaluation"]
            elif kind == "correction":
                cond = PREREQ["correction"]
            rows = access.query(self.store, PICK_SQL % cond, (self.target, kind, self.limit))
            if rows:
                return [tuple(r) for r in rows]
        return []

    def facts(self, items: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
        """What the store knows of each item, by the profile's source names."""
        kind = items[0][1]
        out: list[dict[str, Any]] = []
        if kind == "correction":
            ids = [it[2] for it in items]
            appeals = {}
            for part in _chunks(ids):
                for aid, decided, reason, level in access.query(
                        self.store, APPEAL_SQL % _in(len(part)), part):
                    appeals[aid] = (decided, reason, level)
            for it in items:
                decided, reason, level = appeals[it[2]]
                out.append({"project_no": it[4], "assess_number": it[5], "level": level,
                            "action": "withdraw", "decided_at": decided,
                            "decision": reason or "", "appeal": it[2]})
            return out
        txs: dict[str, dict[str, Any]] = {}
        uids = [it[2] for it in items]
        for part in _chunks(uids):
            for r in access.query(self.store, TX_SQL % _in(len(part)), part):
                txs[r[0]] = dict(zip(TX_COLS, r, strict=True))
        ratings: dict[str, tuple[Any, ...]] = {}
        if kind == "evaluation":
            refs = [it[3] for it in items]
            for part in _chunks(refs):
                for r in access.query(self.store, RATING_SQL % _in(len(part)), part):
                    ratings[r[0]] = tuple(r)
        for it in items:
            f = dict(txs[it[2]])
            f["project_no"], f["assess_number"] = it[4], it[5]
            if kind == "evaluation":
                _uid, hall, terminal, seq, level, rated, is_default, channel = ratings[it[3]]
                # 评价渠道 is the rating's (PJQ, QR: 第五条), not the transaction's
                f.update(level=level, rated_at=rated, is_default=bool(is_default), reasons=[],
                         channel=channel)
                if level >= 4 and not is_default:
                    f["reasons"] = [r[3] for r in access.query(
                        self.store, REASON_SQL, (hall, terminal, seq))]
            out.append(f)
        return out

    def step(self, now: float | None = None) -> int | None:
        """Post one batch. Returns the number of records the province accepted, or None if
        nothing could go. Raises Transient when the post must be repeated (after a back-off)."""
        now = time.time() if now is None else now
        items = self.pick(now)
        if not items:
            return None
        kind = items[0][1]
        records, sendable = [], []
        unsendable: list[tuple[tuple[Any, ...], str]] = []
        for it, fact in zip(items, self.facts(items), strict=True):
            try:
                records.append(mapping.build(self.p, kind, fact))
                sendable.append(it)
            except mapping.Unsendable as e:
                unsendable.append((it, "not sent, it would break the profile: %s" % e))
        if unsendable:
            self._quarantine([(it, "local", why) for it, why in unsendable], None, now)
        if not records:
            return 0
        self._wait_tokens(len(records))
        bid = "%s-%d-%d-%s" % (self.target, sendable[0][0], sendable[-1][0],
                               os.urandom(3).hex())
        body = mapping.envelope(self.p, records, time.time())
        try:
            status, answer = self.poster.request("POST", self.p.endpoints[kind], body)
            a = read_answer(self.p, status, answer, len(records))
        except Transient as e:
            self.failures += 1
            self.last_error = str(e)
            self._note(str(e), time.time())
            raise
        self.posts += 1
        now = time.time()
        if a.whole is not None:
            if len(sendable) == 1:
                self._quarantine([(sendable[0], *a.whole)], bid, now)
            else:
                self.limit = max(1, len(sendable) // 2)
                log.info("province %s: batch %s refused as a whole (%s %s): splitting it",
                         self.target, bid, *a.whole)
            self.failures = 0
            self._note(None, now)
            return 0
        ok = [it for it, acc in zip(sendable, a.accepted, strict=True) if acc]
        bad = [(it, *why) for it, acc, why in zip(sendable, a.accepted, a.refusals, strict=True)
               if not acc]
        with access.atomic(self.store) as t:
            for part in _chunks([it[0] for it in ok]):
                t.x("UPDATE province_items SET state = 'sent', sent_at = %%s, batch = %%s"
                    " WHERE target = %%s AND n IN (%s) AND state = 'waiting'" % _in(len(part)),
                    (now, bid, self.target, *part))
        if bad:
            self._quarantine(bad, bid, now)
        self.sent += len(ok)
        self.failures = 0
        self.last_error = None
        self.limit = min(self.p.batch_size, self.limit * 2)
        self._note(None, now)
        return len(ok)

    def _quarantine(self, bad: Sequence[tuple[Any, ...]], bid: str | None, now: float) -> None:
        with access.atomic(self.store) as t:
            for it, code, reason in bad:
                t.x("UPDATE province_items SET state = 'quarantined', attempts = attempts + 1,"
                    " code = %s, reason = %s, quarantined_at = %s, batch = %s"
                    " WHERE target = %s AND n = %s",
                    (fields.clean(code, 64), fields.clean(reason, MAX_REASON), now, bid,
                     self.target, it[0]))
        for it, code, _reason in bad:
            # the record's key and the province's code only: never its content
            log.warning("province %s: record %s (%s #%s) refused (%s): quarantined, the rest"
                        " goes on; see `hcp province quarantine list`", self.target, it[0],
                        it[1], it[4], code)

    def _wait_tokens(self, n: int) -> None:
        rate = self.p.rate_per_s
        if not rate:
            return
        cap = max(float(self.p.batch_size), float(n))
        while True:
            t = time.monotonic()
            self.tokens = min(cap, self.tokens + (t - self.tokens_at) * rate)
            self.tokens_at = t
            if self.tokens >= n:
                self.tokens -= n
                return
            time.sleep((n - self.tokens) / rate)

    def backoff(self) -> float:
        """Seconds to wait after `failures` failed posts: min(retry_max_s, 0.5·2^f), jittered."""
        d = min(self.p.retry_max_s, 0.5 * 2 ** min(self.failures, 30))
        return d / 2 + random.uniform(0, d / 2)

    # --- the loop -------------------------------------------------------------------------------
    def run(self, stop: threading.Event, once: bool = False) -> dict[str, Any]:
        """Deliver until `stop` is set (once=True: until nothing more can go now, or the
        province cannot be reached). Returns what was done."""
        while not self.take_lease():
            if once:
                raise HcpError("another deliverer holds province target %s (see `hcp province"
                               " status`): let it finish" % self.target)
            if stop.wait(LEASE_S / 3):
                return self.summary()
        next_scan = 0.0
        try:
            while not stop.is_set():
                t = time.time()
                if t >= next_scan:
                    self.take_lease(t)
                    self.scan(t)
                    next_scan = t + POLL_S
                try:
                    got = self.step()
                except Transient as e:
                    log.warning("province %s: %s", self.target, e)
                    if once:
                        break
                    stop.wait(self.backoff())
                    continue
                except Exception as e:  # the database away: try again, never die
                    log.error("province %s: %s: %s", self.target, type(e).__name__, e)
                    self.failures += 1
                    if once:
                        raise
                    stop.wait(self.backoff())
                    continue
                if got is None:
                    if once:
                        break
                    stop.wait(POLL_S)
        finally:
            self.poster.close()
            self.release()
        return self.summary()

    def start(self, stop: threading.Event) -> threading.Thread:
        """run(stop) in a thread of its own (what `hcp store serve` starts)."""
        th = threading.Thread(target=self.run, args=(stop,), name="province-%s" % self.target,
                              daemon=True)
        th.start()
        return th

    def summary(self) -> dict[str, Any]:
        return {"target": self.target, "sent": self.sent, "posts": self.posts,
                "last_error": self.last_error}


# --- status, quarantine, reconcile ---------------------------------------------------------------

def status(store: Store, target: str, now: float | None = None) -> dict[str, Any]:
    """Backlog per kind, the oldest waiting, last success and error, refusals held."""
    now = time.time() if now is None else now
    counts: dict[str, dict[str, int]] = {}
    for kind, state, n in access.query(store, "SELECT kind, state, COUNT(*) FROM province_items"
                                              " WHERE target = %s GROUP BY kind, state",
                                       (target,)):
        counts.setdefault(state, {})[kind] = int(n)
    oldest = access.query(store, "SELECT MIN(queued_at) FROM province_items WHERE target = %s"
                                 " AND state = 'waiting'", (target,))[0][0]
    st = access.query(store, "SELECT owner, lease_until, last_success_at, last_error,"
                             " last_error_at, failures, posts FROM province_state"
                             " WHERE target = %s", (target,))
    row = st[0] if st else (None,) * 7
    return {"target": target,
            "waiting": sum(counts.get("waiting", {}).values()),
            "waiting_by_kind": counts.get("waiting", {}),
            "oldest_waiting_s": None if oldest is None else round(now - oldest, 1),
            "sent": sum(counts.get("sent", {}).values()),
            "sent_by_kind": counts.get("sent", {}),
            "quarantined": sum(counts.get("quarantined", {}).values()),
            "dropped": sum(counts.get("dropped", {}).values()),
            "deliverer": row[0] if row[1] is not None and row[1] > now else None,
            "last_success_at": row[2], "last_error": row[3], "last_error_at": row[4],
            "failures": row[5] or 0, "posts": row[6] or 0}


def _item(r: Sequence[Any]) -> dict[str, Any]:
    return dict(zip(ITEM_COLS, r, strict=True))


def quarantine_list(store: Store, target: str, every: bool = False) -> list[dict[str, Any]]:
    where = "" if every else " AND state = 'quarantined'"
    return [_item(r) for r in access.query(
        store, "SELECT %s FROM province_items WHERE target = %%s AND (quarantined_at IS NOT NULL"
               " OR state = 'dropped')%s ORDER BY n" % (", ".join(ITEM_COLS), where), (target,))]


def _decide(store: Store, target: str, n: int, actor: str, action: str, note: str,
            now: float) -> dict[str, Any]:
    with access.atomic(store) as t:
        rows = t.q("SELECT %s FROM province_items WHERE target = %%s AND n = %%s"
                   % ", ".join(ITEM_COLS), (target, n))
        if not rows or rows[0][7] != "quarantined":
            raise HcpError("no record %d is held for %s (`hcp province quarantine list`)"
                           % (n, target))
        it = _item(rows[0])
        state = "waiting" if action == "retry" else "dropped"
        t.x("UPDATE province_items SET state = %s, decided_at = %s, decided_by = %s, note = %s"
            " WHERE target = %s AND n = %s", (state, now, actor, note, target, n))
        if action == "retry":
            # what was held with it goes back too (its evaluation, its correction)
            dep = ("uid" if it["kind"] == "service" else "ref")
            t.x("UPDATE province_items SET state = 'waiting', decided_at = %%s, decided_by = %%s,"
                " note = 'retried with its prerequisite' WHERE target = %%s AND state ="
                " 'quarantined' AND code = 'held' AND %s = %%s" % dep,
                (now, actor, target, it[dep]))
        t.x("INSERT INTO province_audit (at, actor, action, target, n, detail)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (now, actor, "province-quarantine-" + action, target, n,
             json.dumps({"kind": it["kind"], "project_no": it["project_no"],
                         "assess_number": it["assess_number"], "reason": it["reason"],
                         "note": note}, ensure_ascii=False)))
    log.info("province %s: record %d %s by %s", target, n, action, actor)
    it["state"] = state
    return it


def quarantine_retry(store: Store, target: str, n: int, actor: str,
                     now: float | None = None) -> dict[str, Any]:
    """Put a held record back in the queue (audited); refused again, it comes back."""
    return _decide(store, target, n, actor, "retry", "", time.time() if now is None else now)


def quarantine_drop(store: Store, target: str, n: int, actor: str, reason: str,
                    now: float | None = None) -> dict[str, Any]:
    """Never send a held record (audited, with the reason); the store keeps the facts."""
    if not reason.strip():
        raise HcpError("dropping a record needs --reason: say why it must never reach the"
                       " province")
    return _decide(store, target, n, actor, "drop", reason.strip(),
                   time.time() if now is None else now)


def audit(store: Store, target: str) -> list[dict[str, Any]]:
    cols = ("at", "actor", "action", "target", "n", "detail")
    return [dict(zip(cols, r, strict=True)) for r in access.query(
        store, "SELECT %s FROM province_audit WHERE target = %%s ORDER BY at" % ", ".join(cols),
        (target,))]


def expected(store: Store, profile: Profile, day: str) -> dict[str, set[str]]:
    """The keys (办件编号#评价次数) the store owes the province for one day, from its own
    tables (not from the outbox): transactions finished that day, counted evaluations rated
    that day (the citizen's over a default), upheld appeals decided that day."""
    import datetime
    d = datetime.date.fromisoformat(day)
    lo = access.day_start(d)
    hi = lo + 86400
    out: dict[str, set[str]] = {k: set() for k in profile.kinds}
    if "service" in profile.kinds:
        for _uid, hall, tx, ticket, region, dept, finished in access.query(
                store, "SELECT uid, hall, tx, ticket, region, department, finished_at"
                       " FROM transactions WHERE finished_at >= %s AND finished_at < %s",
                (lo, hi)):
            out["service"].add("%s#0" % mapping.project_no(profile, hall, tx, ticket, region,
                                                           dept, finished))
    best: dict[str, tuple[Any, ...]] = {}
    for r in access.query(store, "SELECT r.tx_uid, r.is_default, r.rated_at, t.hall, t.tx,"
                                 " t.ticket, t.region, t.department, t.finished_at FROM ratings r"
                                 " JOIN transactions t ON t.uid = r.tx_uid"
                                 " WHERE r.outcome = 'counted'"
                                 " AND t.uid IN (SELECT tx_uid FROM ratings WHERE outcome ="
                                 " 'counted' AND rated_at >= %s AND rated_at < %s)", (lo, hi)):
        old = best.get(r[0])
        if old is None or (old[1] and not r[1]):
            best[r[0]] = r
    for _tx_uid, _d, rated, hall, tx, ticket, region, dept, finished in best.values():
        if lo <= rated < hi:
            out["evaluation"].add("%s#1" % mapping.project_no(profile, hall, tx, ticket, region,
                                                              dept, finished))
    if "correction" in profile.kinds:
        for hall, tx, ticket, region, dept, finished in access.query(
                store, "SELECT t.hall, t.tx, t.ticket, t.region, t.department, t.finished_at"
                       " FROM appeals a JOIN ratings r ON r.uid = a.rating_uid"
                       " JOIN transactions t ON t.uid = r.tx_uid WHERE a.status = 'upheld'"
                       " AND a.decided_at >= %s AND a.decided_at < %s", (lo, hi)):
            out["correction"].add("%s#1" % mapping.project_no(profile, hall, tx, ticket,
                                                              region, dept, finished))
    return out


def reconcile(store: Store, profile: Profile, day: str, url: str | None = None
              ) -> dict[str, Any]:
    """Our counts for a day against what the province acknowledged, record by record: what
    the store owes, what our ledger says was accepted, what the province holds (its reconcile
    endpoint, when the profile names one). `agrees`: the three are the same keys, and nothing
    of that day waits or is held."""
    owed = expected(store, profile, day)
    ledger: dict[str, set[str]] = {k: set() for k in profile.kinds}
    pending: dict[str, int] = {}
    for kind, pno, number, state in access.query(
            store, "SELECT kind, project_no, assess_number, state FROM province_items"
                   " WHERE target = %s AND day = %s", (profile.name, day)):
        if state == "sent":
            ledger[kind].add("%s#%d" % (pno, number))
        else:
            pending[state] = pending.get(state, 0) + 1
    province: dict[str, set[str]] | None = None
    if profile.reconcile:
        poster = Poster(url or profile.url, profile.ca, profile.timeout_s)
        try:
            st, body = poster.request("GET", profile.reconcile + "?day=" + day)
        finally:
            poster.close()
        if st != 200:
            raise HcpError("the province's reconcile answered HTTP %d" % st)
        try:
            doc = orjson.loads(body)
            province = {k: {"%s#%d" % (fields.text("projectNo", str(p), 50),
                                       fields.whole("assessNumber", int(n), 0, 1000))
                            for p, n in doc.get(k, [])} for k in profile.kinds}
        except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError) as e:
            raise HcpError("the province's reconcile answer is malformed: %s" % e) from None
    kinds: dict[str, Any] = {}
    agrees = not pending
    for k in profile.kinds:
        row: dict[str, Any] = {"store": len(owed[k]), "acknowledged": len(ledger[k]),
                               "not_acknowledged": sorted(owed[k] - ledger[k])[:20],
                               "acknowledged_not_owed": sorted(ledger[k] - owed[k])[:20]}
        agrees = agrees and owed[k] == ledger[k]
        if province is not None:
            row["province"] = len(province[k])
            row["missing_at_province"] = sorted(ledger[k] - province[k])[:20]
            row["unknown_to_us"] = sorted(province[k] - ledger[k])[:20]
            agrees = agrees and province[k] == ledger[k]
        kinds[k] = row
    return {"day": day, "target": profile.name, "kinds": kinds, "pending": pending,
            "agrees": agrees}
