"""Posting batches to the store (what the hall's forwarder does), and the store as a real
process of its own (for tests, benchmarks and the demo: so that it can be SIGKILLed)."""
from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from collections.abc import Mapping
from typing import Any

from haochaping.daemon import batches
from haochaping.daemon.errors import HcpError


class StoreRefused(HcpError):
    """The store answered and said no (4xx): retrying the same bytes will not help by itself.
    A 422 is about the records (a value the store will not take); the store names the first
    refused record and its field when it can (`record`, `field`; None otherwise)."""

    def __init__(self, status: int, reason: str, record: str | None = None,
                 field: str | None = None) -> None:
        super().__init__("store refused the batch: HTTP %d %s" % (status, reason))
        self.status = status
        self.reason = reason
        self.record = record
        self.field = field


class StoreUnavailable(HcpError):
    """No answer, or 5xx: the store is away; retry later."""


class StoreClient:
    """One keep-alive HTTPS connection to the store; reconnects after any failure."""

    def __init__(self, url: str, hall: str, key: bytes, ca: str | None = None,
                 timeout: float = 30) -> None:
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("https", "http") or not u.hostname:
            raise HcpError("store url %r: expected https://HOST:PORT" % url)
        self.https = u.scheme == "https"
        self.host, self.port = u.hostname, u.port or (443 if self.https else 80)
        self.base = u.path.rstrip("/")
        self.hall, self.key, self.timeout = hall, key, timeout
        self.ctx: ssl.SSLContext | None = None
        if self.https:
            try:
                self.ctx = ssl.create_default_context(cafile=ca or None)
            except (OSError, ssl.SSLError) as e:
                raise HcpError("cannot read the CA certificate %s: %s"
                               % (ca, getattr(e, "strerror", None) or e)) from e
        self.conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            if self.https:
                self.conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx,
                                                        timeout=self.timeout)
            else:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        """-> (status, JSON document). Raises StoreUnavailable when there is no answer."""
        try:
            c = self._connection()
            c.request(method, self.base + path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            if r.getheader("Connection", "").lower() == "close":
                self.close()
        except ssl.SSLCertVerificationError as e:
            self.close()
            raise StoreUnavailable("the store's certificate is not trusted (check [forward] ca):"
                                   " %s" % e.verify_message) from e
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise StoreUnavailable("cannot reach the store at %s:%s: %s"
                                   % (self.host, self.port, e or type(e).__name__)) from e
        try:
            doc = json.loads(data) if data else {}
        except ValueError:
            doc = {"error": data[:200].decode("utf-8", "replace")}
        return r.status, doc

    def post_batch(self, batch_id: str, body: bytes) -> dict[str, Any]:
        """Post one batch; return the store's answer once it is durably committed."""
        sig = batches.signature(self.key, self.hall, batch_id, body)
        status, doc = self.request("POST", "/v1/batches", body, {
            "Content-Type": "application/json", "X-Hcp-Hall": self.hall,
            "X-Hcp-Batch": batch_id, "X-Hcp-Signature": sig})
        if status == 200 and doc.get("status") in ("stored", "duplicate"):
            return doc
        reason = doc.get("error", "no reason given")
        if 400 <= status < 500:
            record, field = doc.get("record"), doc.get("field")
            raise StoreRefused(status, reason, record if isinstance(record, str) else None,
                               field if isinstance(field, str) else None)
        raise StoreUnavailable("store answered HTTP %d: %s" % (status, reason))

    def health(self) -> dict[str, Any]:
        status, doc = self.request("GET", "/v1/health")
        if status != 200:
            raise StoreUnavailable("store health: HTTP %d" % status)
        return doc
