"""Bad-review alerts: the moment a 不满意/非常不满意 rating is stored, tell the duty manager while
the citizen is still in the hall — on the MQTT topic hcp/v1/<hall>/alerts (QoS 1, not retained)
and, if [alerts] webhook is set, by an HTTP POST (JSON) from a thread of its own, so a slow or
dead webhook never holds up ratings. An alert carries the window, staff number, level and (in a
second alert, when the citizen gives one) the reason; never anything about the rater.

The same way, for hall IT: a record the municipal store refused and the forwarder set apart in
its quarantine (forward.py) raises a "forward-quarantine" alert with the record's id, its hall
table, the store's reason and how many records are held (never the record's content).
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from haochaping.daemon.hall.settings import AlertsSection
from haochaping.protocol import levels, topics

log = logging.getLogger(__name__)
_RETRIES = 3


def alert_for(hall: str, kind: str, data: Mapping[str, Any]) -> dict[str, Any] | None:
    """Pure: the alert (dict) for a live event, or None if it is not a bad review (or a record
    set apart by the forwarder)."""
    if kind == "rating" and levels.is_level(data.get("level")) and levels.is_bad(data["level"]):
        return {"v": 1, "kind": "bad-review", "hall": hall, "window": data.get("window"),
                "staff": data.get("staff"), "terminal": data["terminal"], "seq": data["seq"],
                "level": data["level"], "level_name": levels.name(data["level"]),
                "outcome": data["outcome"], "transaction": data.get("transaction"),
                "channel": data.get("channel", "PJQ"), "at": data["at"]}
    if kind == "reason":
        return {"v": 1, "kind": "bad-review-reason", "hall": hall, "terminal": data["terminal"],
                "seq": data["ref"], "reason": data["reason"],
                "reason_name": dict(levels.REASONS).get(data["reason"], ""), "at": data["at"]}
    if kind == "quarantine":
        return {"v": 1, "kind": "forward-quarantine", "hall": hall, "id": data["id"],
                "record": data["record"], "table": data["table"], "status": data["status"],
                "reason": data["reason"], "attempts": data["attempts"],
                "quarantined": data["quarantined"], "at": data["at"]}
    return None


class Alerter:
    def __init__(self, hall: str, cfg: AlertsSection,
                 publish: Callable[[str, bytes, int], None]) -> None:
        self.hall = hall
        self.cfg = cfg
        self.publish = publish  # publish(topic, payload, qos) on the daemon's MQTT link
        self.sent = 0
        self._hooks: queue.Queue[bytes] | None = queue.Queue(10000) if cfg.webhook else None
        if self._hooks is not None:
            threading.Thread(target=self._webhook_loop, args=(self._hooks,),
                             name="alerts-webhook", daemon=True).start()

    def on_event(self, kind: str, data: Mapping[str, Any]) -> None:
        alert = alert_for(self.hall, kind, data)
        if alert is None:
            return
        body = json.dumps(alert, ensure_ascii=False).encode()
        if self.cfg.mqtt:
            self.publish(topics.alerts(self.hall), body, 1)
        if self._hooks is not None:
            try:
                self._hooks.put_nowait(body)
            except queue.Full:
                log.error("alert webhook queue full: an alert was not posted")
        self.sent += 1

    def _webhook_loop(self, hooks: queue.Queue[bytes]) -> None:
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if self.cfg.webhook_token:
            headers["Authorization"] = "Bearer " + self.cfg.webhook_token
        while True:
            body = hooks.get()
            for attempt in range(_RETRIES):
                try:
                    req = urllib.request.Request(self.cfg.webhook, data=body, headers=headers,
                                                 method="POST")
                    with urllib.request.urlopen(req, timeout=self.cfg.webhook_timeout_s):
                        break
                except (urllib.error.URLError, OSError) as e:
                    log.warning("alert webhook %s failed (attempt %d): %s", self.cfg.webhook,
                                attempt + 1, e)
                    time.sleep(0.5 * (attempt + 1))
