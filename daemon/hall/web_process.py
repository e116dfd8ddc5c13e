"""The daemon's HTTP listeners in a child process, and the daemon's end of the pipe to it.

The window API and console ([api] listen) and the phone page ([mobile] listen) are served by a
child process (daemon/hall/web_child.py) at a lower CPU priority (nice WEB_NICE). In one process
the HTTP event loop and the writer shared the interpreter lock: under a flood of sign-ins the
writer waited for the lock and press->ack latency of ratings rose tenfold (docs/console.md,
"Where the time went"). Now the daemon's process holds MQTT and the writer only.

The listening sockets are bound here, in the daemon's process (a port in use fails `hcp daemon
run` at once), and passed to the child. The child reaches the writer through named commands
(daemon/hall/commands.py) over a pipe; this end runs them on the writer's queue and answers after
the commit. Messages are tuples of plain data (pickled by multiprocessing's Connection):

  child -> daemon   ("ready",)                      serving: the daemon reports "running"
                    ("call", id, command, args)     run it; answer ("done", id, ...)
                    ("post", command, args)         run it; no answer (a write that may be lost)
                    ("status", id)                  broker link and counters: answered at once
                    ("alert", kind, data)           a phone's bad review: alerts go out here
                    ("listen", on)                  whether live pages want the daemon's events
  daemon -> child   ("start", cfg, {name: fd}, log level)   first, once
                    ("done", id, ok, result or packed exception)
                    ("event", event)                daemon.events after each commit
                    ("stop",)                       finish the requests under way and exit

A child that dies is logged and started again (after a pause that grows while it keeps dying):
the ratings never depended on it, and stopping the daemon for it would stop them too. The child
exits when the daemon's end of the pipe closes: it dies with the daemon.
"""
from __future__ import annotations

import contextlib
import logging
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, NamedTuple

from haochaping.daemon.errors import HcpError
from haochaping.daemon.hall.commands import COMMANDS

if TYPE_CHECKING:
    from haochaping.daemon.hall.events import Event
    from haochaping.daemon.hall.service import Command, HallDaemon

log = logging.getLogger(__name__)
# The child's niceness: the writer (and paho's thread) get the CPU first when both want it.
# Measured before the split (docs/console.md, "The measured case for it"): a second process at
# nice 10 serving the flood left ratings' p50 at its no-flood level; at nice 0 it did not.
WEB_NICE = 10
START_S = 60      # the child has this long to import its code and serve (a loaded machine)
STOP_S = 8        # ... and this long to finish its requests when the daemon stops
RESTART_S = (1.0, 30.0)  # pause before starting a dead child again: first, at most (doubling)


class Status(NamedTuple):
    """What the health route and the manager page read of the daemon's own state."""
    connected: bool          # to the hall's broker
    error: str | None        # why not, in words (None while connected)
    stored: int              # messages handled since start
    commits: int             # database commits since start


def bind(listen: str, backlog: int) -> socket.socket:
    """A listening socket on "host:port" ("[::1]:port" for IPv6)."""
    host, _, port = listen.rpartition(":")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), int(port)))
        sock.listen(min(backlog, socket.SOMAXCONN))
    except OSError:
        sock.close()
        raise
    return sock


def pack_error(e: BaseException) -> tuple[type[BaseException], tuple[Any, ...], dict[str, Any]]:
    """An exception as plain data: its class (pickled by name), args and attributes. Pickling
    the exception itself would call its class with `args` only, which fails for the project's
    refusals (their __init__ takes a status first)."""
    return type(e), e.args, dict(vars(e))


def unpack_error(packed: tuple[type[BaseException], tuple[Any, ...], dict[str, Any]]
                 ) -> BaseException:
    cls, args, attrs = packed
    e = cls.__new__(cls)
    e.args = args
    e.__dict__.update(attrs)
    return e


class WebProcess:
    """The child serving HTTP, from start() to stop(); its sockets bound at construction."""

    def __init__(self, daemon: HallDaemon) -> None:
        self.daemon = daemon
        cfg = daemon.cfg
        self.sockets: dict[str, socket.socket] = {}
        try:
            if cfg.api.tokens or cfg.console.enabled:
                self.sockets["api"] = bind(cfg.api.listen, cfg.api.max_connections)
            if cfg.mobile.listen:  # the QR channel's phone page, a listener of its own
                self.sockets["mobile"] = bind(cfg.mobile.listen, cfg.mobile.max_connections)
        except OSError:
            self.close_sockets()
            raise
        self.addresses = {name: "http://%s:%d" % s.getsockname()[:2]
                          for name, s in self.sockets.items()}
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None  # the daemon's end of the pipe to the live child
        self._send_lock = threading.Lock()
        # answers, sent by a thread of their own: the writer only puts them here, and never
        # waits for a child that is slow to read
        self._answers: queue.SimpleQueue[tuple[Connection, int, Command[Any]] | None] = (
            queue.SimpleQueue())
        self._events: queue.Queue[Event] | None = None  # subscribed while pages are live
        self._threads = [threading.Thread(target=self._supervise, name="web-pipe", daemon=True),
                         threading.Thread(target=self._send_answers, name="web-answers",
                                          daemon=True),
                         threading.Thread(target=self._relay_events, name="web-events",
                                          daemon=True)]

    def close_sockets(self) -> None:
        for s in self.sockets.values():
            s.close()

    # ---------------------------------------------------------------- the daemon's side
    def start(self) -> None:
        """Start the child; return once it serves (or raise: it did not start)."""
        for t in self._threads:
            t.start()
        end = time.monotonic() + START_S
        while not self.ready.wait(0.1):
            if not self._threads[0].is_alive() or time.monotonic() > end:
                self.stop()
                raise HcpError("the HTTP listener's process did not start (its error is"
                               " logged above)")
        for name, address in self.addresses.items():
            log.info("%s on %s (process %s)", "window API" if name == "api" else name,
                     address, self._proc.pid if self._proc else "?")

    def stop(self) -> None:
        self.stopping.set()
        self._answers.put(None)
        proc, conn = self._proc, self._conn
        if conn is not None:
            with contextlib.suppress(OSError):
                self._send(conn, ("stop",))
        if proc is not None:
            try:
                proc.wait(STOP_S)
            except subprocess.TimeoutExpired:
                log.warning("the HTTP listener's process did not stop: killed")
                proc.kill()
                proc.wait()
        if self._threads[0].ident is not None:  # started
            self._threads[0].join(5)
        self.close_sockets()

    # ---------------------------------------------------------------- the pipe
    def _supervise(self) -> None:
        """Start the child and serve its requests; start it again if it dies."""
        pause = RESTART_S[0]
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                conn = self._spawn()
            except OSError:
                log.exception("cannot start the HTTP listener's process")
                return
            try:
                self._serve(conn)
            finally:
                conn.close()
                self._listen(False)
            assert self._proc is not None
            code = self._proc.wait()
            if self.stopping.is_set():
                return
            if not self.ready.is_set():  # never served: start() reports it
                log.error("the HTTP listener's process exited with %s before serving", code)
                return
            log.error("the HTTP listener's process exited with %s; starting it again in %.0f s"
                      " (ratings go on meanwhile)", code, pause)
            if self.stopping.wait(pause):
                return
            pause = RESTART_S[0] if time.monotonic() - started > 60 else min(
                pause * 2, RESTART_S[1])

    def _spawn(self) -> Connection:
        mine, theirs = Pipe()
        fds = {name: s.fileno() for name, s in self.sockets.items()}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "haochaping.daemon.hall.web_child", str(theirs.fileno())],
            pass_fds=[theirs.fileno(), *fds.values()])
        theirs.close()
        self._send(mine, ("start", self.daemon.cfg, fds, logging.getLogger().level))
        self._conn = mine
        return mine

    def _serve(self, conn: Connection) -> None:
        d = self.daemon
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                return
            kind = msg[0]
            if kind == "call":
                _, n, name, args = msg
                d.enqueue(self._command(name, args), on_done=self._answer_to(conn, n))
            elif kind == "post":
                d.enqueue(self._command(msg[1], msg[2]))
            elif kind == "status":
                link = d.link
                connected = link.connected.is_set()
                self._send(conn, ("done", msg[1], True, Status(
                    connected, None if connected else link.last_error, d.stored, d.commits)))
            elif kind == "alert":
                d.alerter.on_event(msg[1], msg[2])
            elif kind == "listen":
                self._listen(bool(msg[1]))
            elif kind == "ready":
                self.ready.set()

    def _answer_to(self, conn: Connection, n: int) -> Callable[[Command[Any]], None]:
        """What the writer calls after the commit: the answer queued for the sender thread."""
        return lambda cmd: self._answers.put((conn, n, cmd))

    @staticmethod
    def _command(name: str, args: tuple[Any, ...]) -> Any:
        fn = COMMANDS.get(name)

        def run(conn: Any, now: float) -> Any:
            if fn is None:
                raise HcpError("no such command: %s" % name)
            return fn(conn, now, *args)
        return run

    def _send(self, conn: Connection, msg: tuple[Any, ...]) -> None:
        with self._send_lock:
            conn.send(msg)

    def _send_answers(self) -> None:
        while True:
            item = self._answers.get()
            if item is None:
                return
            conn, n, cmd = item
            if cmd.error is None:
                msg: tuple[Any, ...] = ("done", n, True, cmd.result)
            else:
                msg = ("done", n, False, pack_error(cmd.error))
            try:
                self._send(conn, msg)
            except OSError:  # that child is gone (a new one does not want its answers)
                pass
            except Exception as e:  # not plain data (pickled before anything is written)
                error = cmd.error or e
                with contextlib.suppress(OSError):
                    self._send(conn, ("done", n, False, pack_error(
                        HcpError("%s: %s" % (type(error).__name__, error)))))

    # ---------------------------------------------------------------- live events
    def _listen(self, on: bool) -> None:
        """Subscribe to the daemon's events while the child has live pages (and only then:
        with none, the writer publishes to nobody, as before)."""
        if on and self._events is None:
            self._events = self.daemon.events.subscribe()
        elif not on and self._events is not None:
            self.daemon.events.unsubscribe(self._events)
            self._events = None

    def _relay_events(self) -> None:
        while not self.stopping.is_set():
            q, conn = self._events, self._conn
            if q is None or conn is None:
                self.stopping.wait(0.2)
                continue
            try:
                ev = q.get(timeout=0.5)
            except queue.Empty:
                continue
            with contextlib.suppress(OSError):
                self._send(conn, ("event", ev))

