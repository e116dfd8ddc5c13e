"""A client of the hall daemon's window API (docs/console.md): what a queue system does, and
what `hcp window` and the simulators use."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from haochaping.daemon.errors import HcpError
from haochaping.daemon.hall import windows
from haochaping.daemon.hall.settings import HallConfig


class WindowApi:
    """Client of the daemon's window API (what a queue system does). Every call returns the
    daemon's JSON answer (an object: see daemon/hall/api.py)."""

    def __init__(self, cfg: HallConfig, token: str | None = None) -> None:
        host, _, port = cfg.api.listen.rpartition(":")
        self.base = "http://%s:%s/api/v1" % (host, port)
        tokens = cfg.api.tokens
        if token is None:
            if not tokens:
                raise HcpError("hall.toml has no [api.tokens]: the window API is switched off")
            token = next(iter(tokens.values()))
        self.token = token

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": "Bearer " + self.token, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                msg = json.loads(e.read()).get("error", e.reason)
            except ValueError:
                msg = e.reason
            raise HcpError("%s (HTTP %d)" % (msg, e.code)) from None
        except urllib.error.URLError as e:
            raise HcpError("cannot reach the hall daemon at %s: %s (is `hcp daemon run` running?)"
                           % (self.base, e.reason)) from None
        except OSError as e:  # connected, then the daemon went away (reset, timeout) mid-answer
            raise HcpError("the hall daemon at %s did not answer: %s (is `hcp daemon run`"
                           " running?)" % (self.base, e)) from None

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def start(self, window: str, ticket: str, item: str = "", staff: str = "") -> dict[str, Any]:
        """InvalidInput naming the field, before anything is sent, for what the daemon would
        refuse (the same rules: daemon/hall/windows.py)."""
        windows.check_start(window, ticket, item, staff)
        return self._call("POST", "/windows/%s/start" % window,
                          {"ticket": ticket, "item": item, "staff": staff})

    def finish(self, window: str) -> dict[str, Any]:
        windows.check(window)   # InvalidInput naming the field, not a bad URL
        return self._call("POST", "/windows/%s/finish" % window, {})

    def state(self, window: str) -> dict[str, Any]:
        windows.check(window)
        return self._call("GET", "/windows/%s" % window)
