"""The HTTP process: the daemon's listeners (window API and console, phone page) served by uvicorn,
started by the daemon (daemon/hall/web_process.py, which describes the pipe between them).

`Front` is what the HTTP code sees of the daemon here: its configuration, `submit`/`post` of a
named command (daemon/hall/commands.py) to the daemon's writer, the live events, the broker
link's state and counters (`status()`), `alert` for an event only the daemon acts on, and
`stopping`. Reads stay here, on read-only connections of the HTTP code's own.

    python -m haochaping.daemon.hall.web_child FD     (FD: this end of the pipe; the daemon's)
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import os
import queue
import signal
import socket
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

from haochaping.daemon.hall.events import Event, Events
from haochaping.daemon.hall.settings import HallConfig
from haochaping.daemon.hall.web_process import WEB_NICE, Status, unpack_error

log = logging.getLogger(__name__)
_CALL_S = 10  # a command not answered in this long: TimeoutError (503), as before the split


class _Call:
    __slots__ = ("done", "ok", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False
        self.value: Any = None


class _Events(Events):
    """The live pages' events: the daemon's (relayed over the pipe while a page listens) and
    those the HTTP code publishes itself (a sign-in, a phone's rating)."""

    def __init__(self, front: Front) -> None:
        super().__init__()
        self._front = front
        self._edges = threading.Lock()  # the first page in and the last out: told in order

    def subscribe(self) -> queue.Queue[Event]:
        with self._edges:
            q = super().subscribe()
            if len(self._subs) == 1:
                self._front.tell(("listen", True))
        return q

    def unsubscribe(self, q: queue.Queue[Event]) -> None:
        with self._edges:
            super().unsubscribe(q)
            if not self._subs:
                self._front.tell(("listen", False))


class Front:
    """The daemon, as the HTTP code in this process reaches it (see the module's comment)."""

    def __init__(self, cfg: HallConfig, conn: Connection) -> None:
        self.cfg = cfg
        self.hall = cfg.hall.id
        self.stopping = threading.Event()  # set when the daemon stops (or is gone)
        self.closed = threading.Event()    # the pipe: told to stop, or the daemon is gone
        self.told_to_stop = False
        self.events: Events = _Events(self)
        self._conn = conn
        self._send_lock = threading.Lock()
        self._ids = itertools.count()
        self._calls: dict[int, _Call] = {}
        self._calls_lock = threading.Lock()

    # ---------------------------------------------------------------- for the HTTP code
    def submit(self, command: str, *args: Any, timeout: float = _CALL_S) -> Any:
        """Run the named command in the daemon's writer; its result once committed, or the
        exception it raised (TimeoutError if the daemon does not answer in `timeout` s)."""
        call = self._ask(("call", command, args), timeout)
        if not call.ok:
            raise unpack_error(call.value)
        return call.value

    def post(self, command: str, *args: Any) -> None:
        """Run the named command later, without waiting (a write that may be lost in a crash)."""
        self.tell(("post", command, args))

    def status(self) -> Status:
        st: Status = self._ask(("status",), _CALL_S).value
        return st

    def alert(self, kind: str, data: dict[str, Any]) -> None:
        """An event the daemon's alerter must see (alerts go out over MQTT and webhooks)."""
        self.tell(("alert", kind, data))

    # ---------------------------------------------------------------- the pipe
    def send(self, msg: tuple[Any, ...]) -> None:
        with self._send_lock:
            self._conn.send(msg)

    def tell(self, msg: tuple[Any, ...]) -> None:
        """A message needing no answer: lost if the daemon is gone (this process ends then)."""
        with contextlib.suppress(OSError):
            self.send(msg)

    def _ask(self, msg: tuple[Any, ...], timeout: float) -> _Call:
        n = next(self._ids)
        call = _Call()
        with self._calls_lock:
            self._calls[n] = call
        try:
            self.send((msg[0], n, *msg[1:]))
            if not call.done.wait(timeout):
                raise TimeoutError("the daemon did not answer in %s s" % timeout)
        except OSError:
            raise TimeoutError("the daemon is gone") from None
        finally:
            with self._calls_lock:
                self._calls.pop(n, None)
        return call

    def read_pipe(self) -> None:
        """The daemon's answers and events, until it says stop or is gone."""
        try:
            while True:
                msg = self._conn.recv()
                if msg[0] == "done":
                    with self._calls_lock:
                        call = self._calls.get(msg[1])
                    if call is not None:
                        call.ok, call.value = msg[2], msg[3]
                        call.done.set()
                elif msg[0] == "event":
                    ev: Event = msg[1]
                    kind = ev.pop("kind")
                    self.events.publish(kind, **ev)
                elif msg[0] == "stop":
                    self.told_to_stop = True
                    return
        except (EOFError, OSError):
            return
        finally:
            self.stopping.set()
            self.closed.set()


def serve(fd: int) -> None:
    # the daemon stops this process (a Ctrl-C in a terminal reaches both: the daemon's is enough)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(WEB_NICE)
    conn = Connection(fd)
    _, cfg, fds, level = conn.recv()
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    front = Front(cfg, conn)
    threading.Thread(target=front.read_pipe, name="pipe", daemon=True).start()
    from haochaping.daemon.hall import listener
    servers: list[listener.ApiServer] = []
    if "api" in fds:
        servers.append(listener.ApiServer(listener.build_app(front), cfg.api,
                                          socket.socket(fileno=fds["api"])))
    if "mobile" in fds:
        from haochaping.daemon.hall.mobile import MobileServer
        servers.append(MobileServer(front, cfg.mobile, socket.socket(fileno=fds["mobile"])))
    for s in servers:
        s.start()
    front.send(("ready",))
    front.closed.wait()
    if not front.told_to_stop:  # the daemon is gone: so is this process, at once
        os._exit(1)
    for s in servers:
        s.stop()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
