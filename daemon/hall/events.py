"""Live events from the daemon after each commit (ratings stored, prompts, terminal status),
for pages that update without reloading. Subscribers get a queue; slow ones drop old events
rather than slowing the writer."""
import queue
import threading


class Events:
    def __init__(self, backlog=1000):
        self._subs = set()
        self._lock = threading.Lock()
        self._backlog = backlog

    def subscribe(self):
        q = queue.Queue(self._backlog)
        with self._lock:
            self._subs.add(q)
        return q

    def unsubscribe(self, q):
        with self._lock:
            self._subs.discard(q)

    def publish(self, kind, **data):
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
