"""The hall daemon: one writer thread owns the database.

Messages from the broker and commands from the HTTP side (served by a child process: daemon/hall/
web_process.py) are put on one queue. The writer takes
everything waiting (up to batch_max), applies it in ONE database transaction, commits (one fsync
for the whole batch: group commit), and only then publishes acks and prompts and PUBACKs the
broker. A crash before the commit loses nothing: nothing was acked, the broker and the terminals
send again, and (terminal, seq) keeps a second copy out.
"""
from __future__ import annotations

import logging
import queue
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from haochaping.daemon.hall import db, ingest, updates, windows
from haochaping.daemon.hall.alerts import Alerter
from haochaping.daemon.hall.events import Events
from haochaping.daemon.hall.ingest import KeyCache, LiveEvent
from haochaping.daemon.hall.mqtt_client import Incoming, Link
from haochaping.daemon.hall.settings import HallConfig
from haochaping.daemon.hall.web_process import WebProcess
from haochaping.daemon.hall.windows import Publish
from haochaping.protocol import messages, topics

if TYPE_CHECKING:  # imported when forwarding is on (see run)
    from haochaping.daemon.hall.forward import Forwarder

log = logging.getLogger(__name__)
_TICK = 0.5  # seconds between prompt-timeout checks when idle
# The interpreter lock's switch interval when the daemon owns its process (Python's default:
# 5 ms). The writer gives the lock up at every SQLite statement; another thread that wants it
# (paho's, the HTTP pipe's; before the HTTP side had a process of its own, the event loop under
# a flood of requests) takes it at once, and the writer waits out a whole interval to get it
# back. Shorter: the wait shrinks with it. Measured under `hcp bench ingest --sign-in-flood 100`
# with the listener in this process (docs/console.md): 0.5 ms halved p50 and p99.
SWITCH_INTERVAL_S = 0.0005
# sequence numbers per ack: 16 of the largest (2^53 - 1) for the longest terminal id stay under
# the 512 bytes a terminal accepts (protocol/messages.py); a flushed backlog gets several acks
ACK_SEQS = 16

T = TypeVar("T")
# What the writer runs for a caller: fn(conn, now) -> (result, publishes), in its transaction.
WriterFn = Callable[[sqlite3.Connection, float], tuple[T, Sequence[Publish]]]


class Command(Generic[T]):
    """A function to run in the writer's transaction; the caller waits for its result."""
    __slots__ = ("fn", "done", "result", "error", "on_done")

    def __init__(self, fn: WriterFn[T],
                 on_done: Callable[[Command[T]], None] | None = None) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: T | None = None
        self.error: Exception | None = None
        self.on_done = on_done  # called by the writer after the commit (it must not block)

    def finish(self) -> None:
        self.done.set()
        if self.on_done is not None:
            self.on_done(self)

    def wait(self, timeout: float = 10) -> T:
        if not self.done.wait(timeout):
            raise TimeoutError("the daemon did not answer in %s s" % timeout)
        if self.error is not None:
            raise self.error
        return cast(T, self.result)  # the writer sets it before `done`, unless it sets `error`


class HallDaemon:
    def __init__(self, cfg: HallConfig, clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.hall = cfg.hall.id
        self.clock = clock
        self.conn = db.connect(cfg.hall.database)
        self.queue: queue.SimpleQueue[Incoming | Command[Any] | None] = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.events = Events()  # live updates after each commit, for pages and alerts
        self.alerter = Alerter(self.hall, cfg.alerts, self._publish_alert)
        m = cfg.mqtt
        self.link = Link(m.host, m.port, m.client_id, m.username, m.password,
                         m.keepalive,
                         [topics.wildcard(self.hall, topics.RATING),
                          topics.wildcard(self.hall, topics.STATUS),
                          topics.wildcard(self.hall, topics.FETCH)],
                         self.queue.put, on_connected=self._resync,
                         ca=m.ca if m.tls else None)
        # the window API, console and phone page: sockets bound now, served by a child process
        self.web = (WebProcess(self) if cfg.api.tokens or cfg.console.enabled
                    or cfg.mobile.listen else None)
        self.bundles = updates.Bundles()  # update bundles served in chunks
        self.stored = 0   # messages handled since start
        self.commits = 0  # database commits since start: stored/commits = the group-commit size

    # ---------------------------------------------------------------- public
    def submit(self, fn: WriterFn[T], timeout: float = 10) -> T:
        """Run fn(conn, now) -> (result, publishes) in the writer thread; return result."""
        cmd = Command(fn)
        self.queue.put(cmd)
        return cmd.wait(timeout)

    def post(self, fn: WriterFn[Any]) -> None:
        """Run fn(conn, now) in the writer thread later, without waiting (a write that may be
        lost in a crash: a console session's last click)."""
        self.queue.put(Command(fn))

    def enqueue(self, fn: WriterFn[T], on_done: Callable[[Command[T]], None] | None = None
                ) -> None:
        """Run fn(conn, now) in the writer thread; on_done(command) after the commit (the HTTP
        process's commands: web_process.py)."""
        self.queue.put(Command(fn, on_done))

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT or stop(); returns when everything stored is acked."""
        self._install_signals()
        forwarder: Forwarder | None = None
        if self.cfg.forward.url:  # to the municipal store: daemon/hall/forward.py
            from haochaping.daemon.hall.forward import Forwarder
            forwarder = Forwarder(self.cfg, alert=self.alerter.on_event)
        if self.web:
            try:
                self.web.start()
            except BaseException:
                self.conn.close()
                raise
        self.link.start()
        if forwarder:
            forwarder.start()
        log.info("hall %s: daemon running on %s", self.hall, self.cfg.hall.database)
        try:
            self._loop()
        finally:
            if self.web:  # first: its last requests still reach the writer... which is done
                self.web.stop()
            if forwarder:
                forwarder.stop()
            self.link.stop()
            self.conn.close()
            log.info("hall %s: daemon stopped", self.hall)

    def stop(self) -> None:
        self.stopping.set()
        self.queue.put(None)

    # ---------------------------------------------------------------- writer
    def _loop(self) -> None:
        batch_max = self.cfg.ingest.batch_max
        next_expiry = 0.0
        while not self.stopping.is_set():
            try:
                first = self.queue.get(timeout=_TICK)
            except queue.Empty:
                first = None
            batch: list[Incoming | Command[Any]] = [] if first is None else [first]
            while len(batch) < batch_max:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    batch.append(item)
            now = self.clock()
            expire = now >= next_expiry
            if batch or expire:
                self._apply(batch, now, expire)
                if expire:
                    next_expiry = now + _TICK

    def _apply(self, batch: Sequence[Incoming | Command[Any]], now: float, expire: bool) -> None:
        grace = self.cfg.sessions.grace_s
        acks: dict[str, list[int]] = {}  # terminal -> [seq]
        publishes: list[Publish] = []    # (terminal, token or None, expires)
        puback: list[Incoming] = []
        done: list[Command[Any]] = []
        keys: KeyCache = {}              # terminal keys, looked up once per batch
        events: list[LiveEvent] = []
        raw: list[updates.Offer] = []    # update offers (retained) and chunks
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for item in batch:
                if isinstance(item, Incoming) and item.topic.endswith("/" + topics.FETCH):
                    self._fetch(item, now, raw)
                elif isinstance(item, Incoming):
                    sp = "SAVEPOINT m"
                    conn.execute(sp)
                    try:
                        res = ingest.handle(conn, self.hall, item.topic, item.payload, now, grace,
                                            keys)
                    except Exception:  # a bug must not lose the batch: keep the message aside
                        log.exception("failed to handle a message on %s", item.topic)
                        conn.execute("ROLLBACK TO m")
                        ingest.reject(conn, now, item.topic, None, "internal error", item.payload)
                        res = ingest.Result()
                    conn.execute("RELEASE m")
                    if res.ack:
                        acks.setdefault(res.ack[0], []).append(res.ack[1])
                    if res.event:
                        events.append(res.event)
                    if res.closed_token:
                        publishes += [(t, None, 0)
                                      for t in windows.shown_to(conn, res.closed_token)]
                    puback.append(item)
                else:
                    conn.execute("SAVEPOINT c")
                    try:
                        item.result, more = item.fn(conn, now)
                        publishes += more
                        conn.execute("RELEASE c")
                    except Exception as e:
                        conn.execute("ROLLBACK TO c")
                        conn.execute("RELEASE c")
                        item.error = e
                    done.append(item)
            if expire:
                publishes += windows.expire(conn, now)
                raw += updates.advance(conn, self.hall, now)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        # durable now: tell the world
        self.stored += len(puback)
        self.commits += 1
        self._send_acks(acks, now, keys)
        self._send_sessions(publishes, now, keys)
        for topic, payload in raw:   # offers are retained, chunks are not
            self.link.publish(topic, payload, qos=0,
                              retain=topic.endswith("/" + topics.UPDATE))
        for item in puback:
            self.link.ack(item)
        for kind, data in events:
            self.alerter.on_event(kind, data)
            self.events.publish(kind, **data)
        for terminal, token, _ in publishes:
            self.events.publish("prompt", terminal=terminal, open=token is not None, at=now)
        for cmd in done:
            cmd.finish()

    def _send_acks(self, acks: dict[str, list[int]], now: float, keys: KeyCache) -> None:
        qos = self.cfg.ingest.ack_qos
        for terminal, seqs in acks.items():
            key = ingest.terminal_key(self.conn, terminal, keys)
            if key is None:
                continue
            for i in range(0, len(seqs), ACK_SEQS):  # each ack small enough for the terminal
                self.link.publish(topics.topic(self.hall, terminal, topics.ACK),
                                  messages.encode_ack(key, terminal, seqs[i:i + ACK_SEQS],
                                                      int(now)), qos=qos)

    def _send_sessions(self, publishes: Sequence[Publish], now: float, keys: KeyCache) -> None:
        """Retained prompts at QoS 0: over a live connection nothing is lost, and after any
        reconnect _resync publishes every terminal's prompt again. (QoS 1 would make paho scan
        its whole outgoing queue on every PUBACK: quadratic under load.) A retained message is
        a state, so only the last one per terminal in a batch is sent."""
        last: dict[str, Publish] = {}
        for p in publishes:
            last[p[0]] = p
        for terminal, token, expires in last.values():
            t = topics.topic(self.hall, terminal, topics.SESSION)
            if token is None:
                self.link.publish(t, b"", qos=0, retain=True)
                continue
            key = ingest.terminal_key(self.conn, terminal, keys)
            if key is None:
                continue
            tx = self.conn.execute("SELECT window, staff FROM transactions WHERE token=?",
                                   (token,)).fetchone()
            self.link.publish(t, messages.encode_session(key, terminal, token, tx["window"],
                                                         tx["staff"], int(expires), int(now)),
                              qos=0, retain=True)

    def _fetch(self, item: Incoming, now: float, out: list[updates.Offer]) -> None:
        """A terminal asks for a chunk of an update bundle (QoS 0: nothing to ack)."""
        where = topics.parse(item.topic)
        if where is None or where[0] != self.hall or ingest.terminal_key(
                self.conn, where[1]) is None:
            ingest.reject(self.conn, now, item.topic, None, "wrong topic", item.payload)
            return
        try:
            out.append(self.bundles.chunk(self.conn, self.hall, where[1], item.payload))
        except ValueError as e:
            ingest.reject(self.conn, now, item.topic, where[1], str(e), item.payload)

    def _resync(self) -> None:
        """On every (re)connect, publish every paired terminal's current prompt (or none), and
        every update offer standing."""
        self.queue.put(Command(lambda conn, now: (None, windows.open_prompts(conn))))
        self.queue.put(Command(self._offers_again))

    def _offers_again(self, conn: sqlite3.Connection, now: float) -> tuple[None, list[Publish]]:
        for topic, payload in updates.offers(conn, self.hall):
            self.link.publish(topic, payload, qos=0, retain=True)
        return None, []

    def _publish_alert(self, topic: str, payload: bytes, qos: int) -> None:
        self.link.publish(topic, payload, qos=qos)

    def _install_signals(self) -> None:
        """When the daemon owns its process (run from the main thread, as `hcp daemon run`):
        stop on SIGTERM/SIGINT, and the interpreter lock's switch interval for the writer."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())
        sys.setswitchinterval(SWITCH_INTERVAL_S)
