"""Citizens at a hall's windows, one thread per window, for fault tests and chaos runs: the
window system calls a ticket and finishes it (请评价) through the window API, the citizen rates
on the terminal, changes their mind now and then, and gives a reason after most bad reviews.

When the daemon is down no prompt can come, and citizens still press: the terminal keeps the
rating (unsolicited) and must deliver it later. That is the point: whatever fails, every rating
a terminal confirmed to a citizen has to arrive once.
"""
from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping
from typing import Protocol

from haochaping.daemon.errors import HcpError
from haochaping.daemon.hall.api_client import WindowApi
from haochaping.protocol import levels


class Terminal(Protocol):
    """What a citizen uses (tools/sim/firmware_host.FirmwareTerminal)."""

    def wait_session(self, timeout: float = ...,
                     token_not: str | None = ...) -> Mapping[str, str] | None: ...
    def wait_ready(self, timeout: float = ...) -> None: ...
    def press(self, level: int, keep_session: bool = ...) -> int | None: ...
    def reason(self, ref: int, reason: str) -> int | None: ...


class Citizens:
    """start(), pause(windows)/resume(windows), finish(); `errors` lists what went wrong at a
    terminal (a rating it did not confirm in time); `served` counts tickets per window."""

    def __init__(self, api: WindowApi, by_window: Mapping[str, Terminal], seed: int = 1,
                 prefix: str = "") -> None:
        self.api = api
        self.by_window = dict(by_window)
        self.seed, self.prefix = seed, prefix
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.served = dict.fromkeys(by_window, 0)
        self.paused: set[str] = set()
        self.idle = {w: threading.Event() for w in by_window}
        self.threads = [threading.Thread(target=self._window, args=(w, t), daemon=True,
                                         name="citizens-" + w)
                        for w, t in self.by_window.items()]

    def start(self) -> Citizens:
        for th in self.threads:
            th.start()
        return self

    def _window(self, window: str, term: Terminal) -> None:
        r = random.Random("%s-%s" % (self.seed, window))
        last: str | None = None
        while not self.stop.is_set():
            if window in self.paused:
                self.idle[window].set()
                time.sleep(0.02)
                continue
            self.served[window] += 1
            try:
                self.api.start(window, "%s%s-%04d" % (self.prefix, window, self.served[window]),
                               staff="S01")
                self.api.finish(window)
                s = term.wait_session(timeout=1.0, token_not=last)
                if s:
                    last = s["token"]
            except HcpError:
                time.sleep(0.1)   # the daemon is down: the citizen presses anyway
            level = r.randint(1, 5)
            try:
                term.wait_ready()  # after the previous citizen's thank-you
                if r.random() < 0.15:
                    term.press(6 - level, keep_session=True)   # changes their mind within 3 s
                seq = term.press(level)
                if seq is not None and levels.is_bad(level) and r.random() < 0.5:
                    term.reason(seq, r.choice(levels.REASONS)[0])
            except HcpError as e:
                self.errors.append("%s: %s" % (window, e))
                return

    def pause(self, windows: list[str], timeout: float = 30) -> None:
        """No new citizens at these windows (the one rating now finishes first)."""
        for w in windows:
            self.idle[w].clear()
            self.paused.add(w)
        for w in windows:
            if not self.idle[w].wait(timeout):
                raise HcpError("the citizen at %s did not finish within %s s" % (w, timeout))

    def resume(self, windows: list[str]) -> None:
        self.paused.difference_update(windows)

    def finish(self) -> None:
        self.stop.set()
        for th in self.threads:
            th.join(30)
