"""Live events from the daemon after each commit (ratings stored, prompts, terminal status),
for pages that update without reloading. Subscribers get a queue; slow ones drop old events
rather than slowing the writer."""
from __future__ import annotations

import queue
import threading
from typing import Any

# One event: {"kind": ..., and the data the writer published with it}; JSON-ready.
Event = dict[str, Any]


class Events:
    def __init__(self, backlog: int = 1000) -> None:
        self._subs: set[queue.Queue[Event]] = set()
        self._lock = threading.Lock()
        self._backlog = backlog

    def subscribe(self) -> queue.Queue[Event]:
        q: queue.Queue[Event] = queue.Queue(self._backlog)
        with self._lock:
            self._subs.add(q)
        return q

    def unsubscribe(self, q: queue.Queue[Event]) -> None:
        with self._lock:
            self._subs.discard(q)

    def publish(self, kind: str, **data: Any) -> None:
        if not self._subs:
            return
        event = dict(data, kind=kind)
        with self._lock:
            subs = list(self._subs)
        for q in subs:
            try:
                q.put_nowait(event)
            except queue.Full:
                try:
                    q.get_nowait()
                    q.put_nowait(event)
                except (queue.Empty, queue.Full):
                    pass
