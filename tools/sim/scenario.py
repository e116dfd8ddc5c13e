"""A scripted hall day: a window system that calls tickets and finishes services over the
daemon's HTTP API, and citizens who rate on the window's terminal. Most rate once; some walk
away without rating; some change their mind within the correction window; some press again
during the thank-you; some give a reason after a bad review.

Two kinds of terminal (`start_terminals(engine=...)`):
- "firmware": THIS firmware (firmware_sim: MicroPython where installed, else CPython). One
  rating per prompt: a second press within 3 s changes the choice, a press during the
  thank-you is ignored. `hcp simulate` and `hcp demo` use it.
- "protocol": terminal_sim.SimTerminal, a protocol-level stand-in without the key logic (every
  press is a rating at once, so "pressed twice" sends two and the daemon keeps the second as a
  duplicate); fast, for load tests of the hall side.
"""
from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from haochaping.daemon.errors import HcpError
from haochaping.daemon.hall.api_client import WindowApi
from haochaping.daemon.hall.settings import HallConfig
from haochaping.protocol import levels
from haochaping.tools.sim import phone
from haochaping.tools.sim.hall_kit import DeviceFile, devices
from haochaping.tools.sim.terminal_sim import SimTerminal

LEVEL_WEIGHTS = (50, 30, 12, 5, 3)   # 非常满意 .. 非常不满意
WALK_AWAY, CHANGE_MIND, PRESS_AGAIN = 0.1, 0.08, 0.06


class Terminal(Protocol):
    """What the scripted day needs of a terminal: terminal_sim.SimTerminal ("protocol") and
    firmware_host.FirmwareTerminal ("firmware") both are one."""

    def wait_session(self, timeout: float = ...,
                     token_not: str | None = ...) -> Mapping[str, Any] | None: ...
    def press(self, level: int, keep_session: bool = ...) -> int | None: ...
    def reason(self, ref: int, reason: str) -> int | None: ...
    def backlog(self) -> int: ...
    def stop(self) -> None: ...


def start_terminals(cfg: HallConfig, folder: str, count: int | None = None,
                    engine: str = "protocol", scale: int = 10,
                    runtime: str | None = None) -> dict[str, list[Terminal]]:
    """Connected terminals for the hall's device files; {window: [terminal]}. engine
    "firmware": one process running the firmware for all of them (journals kept in
    <folder>/sim/flash), waiting times divided by `scale`; runtime micropython/cpython/None."""
    devs = devices(folder)[:count] if count else devices(folder)
    by_window: dict[str, list[Terminal]] = {}
    if engine == "firmware":
        from haochaping.tools.sim.firmware_host import FirmwareHost
        host = FirmwareHost(devs, os.path.join(folder, "sim"), scale=scale, runtime=runtime,
                            seq_start=_next_seqs(cfg, devs)).start()
        for d in devs:
            by_window.setdefault(d["window"], []).append(host.terminals[d["terminal"]])
        return by_window
    for d in devs:
        t = SimTerminal(d["hall"], d["terminal"], bytes.fromhex(d["key"]), d["mqtt"]["host"],
                        d["mqtt"]["port"], d["mqtt"]["password"]).start()
        by_window.setdefault(d["window"], []).append(t)
    return by_window


def _next_seqs(cfg: HallConfig, devs: Sequence[DeviceFile]) -> dict[str, int]:
    """{terminal: one above the highest seq the hall holds}: what provisioning sets as
    seq_start, so that a simulated terminal whose journal is new does not reuse numbers."""
    out: dict[str, int] = {}
    try:
        conn = sqlite3.connect("file:%s?mode=ro" % cfg.hall.database, uri=True, timeout=10)
    except sqlite3.Error:
        return out
    try:
        for d in devs:
            top = 0
            for table in ("ratings", "reasons"):
                row = conn.execute("SELECT MAX(seq) FROM %s WHERE terminal=?" % table,
                                   (d["terminal"],)).fetchone()
                top = max(top, row[0] or 0)
            out[d["terminal"]] = top + 1
    except sqlite3.Error:
        pass
    finally:
        conn.close()
    return out


def run(cfg: HallConfig, by_window: Mapping[str, Sequence[Terminal]], transactions: int,
        seed: int = 1, progress: Callable[[int], object] | None = None,
        service_s: float = 0.02, phone_share: float = 0.0) -> tuple[dict[str, int], list[str]]:
    """Serve `transactions` citizens spread over the windows; return what the citizens did
    ({what: how many citizens}) and the problems seen. phone_share: the share of citizens who
    rate on their phone through the window's desk card (评价二维码; [mobile] must be on)."""
    api = WindowApi(cfg)
    rnd = random.Random(seed)
    run_tag = time.strftime("%H%M%S")   # tickets of this run differ from the day's others
    windows = sorted(by_window)
    plan: dict[str, list[float]] = {w: [] for w in windows}
    for i in range(transactions):
        plan[windows[i % len(windows)]].append(rnd.random())
    corrects = all(getattr(t, "corrects", False) for ts in by_window.values() for t in ts)
    twice = "changed their mind" if corrects else "pressed twice"
    did = {"rated": 0, "walked away": 0, twice: 0, "reasons": 0}
    if corrects:
        did["pressed again after thanks"] = 0
    cards: dict[str, str] = {}
    if phone_share:
        cards = phone.desk_card_urls(cfg)
        did["rated by phone"] = 0
    citizens = [k for k in did if k != "reasons"]
    lock = threading.Lock()
    errors: list[str] = []

    def serve(window: str) -> None:
        term = by_window[window][0]
        r = random.Random("%s-%s" % (seed, window))  # str seeds are reproducible
        last_token = None
        for n, roll in enumerate(plan[window]):
            ticket = "%s-%s-%04d" % (window, run_tag, n + 1)
            # staff call the next ticket once the last rating is in (acked): a rating still on
            # its way when the next prompt opens makes the daemon clear that new prompt (it
            # sends "no prompt" for the rated token's terminals without checking for a newer one)
            _settle(term, 5)
            try:
                api.start(window, ticket, item="530100-%03d" % r.randint(1, 40),
                          staff="S%s%02d" % (window[-2:], 1 + n % 2))
                time.sleep(service_s)
                api.finish(window)
            except HcpError as e:
                errors.append("%s: %s" % (ticket, e))
                continue
            s = term.wait_session(timeout=5, token_not=last_token)
            if s is None:
                errors.append("%s: the terminal never showed the prompt" % ticket)
                continue
            last_token = s["token"]
            what = "rated"
            if roll < WALK_AWAY:
                what = "walked away"
            elif window in cards and r.random() < phone_share:
                level = r.choices(range(1, 6), LEVEL_WEIGHTS)[0]
                reason = r.choice(levels.REASONS)[0] if levels.is_bad(level) else None
                try:
                    phone.rate(cards[window], level, reason)
                except HcpError as e:
                    errors.append("%s: by phone: %s" % (ticket, e))
                    continue
                what = "rated by phone"   # the daemon closes the terminal's prompt
            else:
                level = r.choices(range(1, 6), LEVEL_WEIGHTS)[0]
                if roll < WALK_AWAY + CHANGE_MIND:
                    # firmware: the first choice is still open for 3 s, the second one counts
                    term.press(r.randint(1, 5), keep_session=True)
                    what = twice
                seq = term.press(level)
                if seq is None:
                    errors.append("%s: the terminal did not confirm the rating" % ticket)
                    continue
                if levels.is_bad(level) and r.random() < 0.7:
                    if term.reason(seq, r.choice(levels.REASONS)[0]) is not None:
                        with lock:
                            did["reasons"] += 1
                elif corrects and roll > 1 - PRESS_AGAIN:
                    term.press(r.randint(1, 5), keep_session=True)  # during the thank-you: ignored
                    what = "pressed again after thanks"
            with lock:
                did[what] += 1
                done = sum(did[k] for k in citizens)
            if progress:
                progress(done)

    threads = [threading.Thread(target=serve, args=(w,)) for w in windows]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return did, errors


def _settle(term: Terminal, timeout: float) -> None:
    deadline = time.time() + timeout
    while term.backlog() and time.time() < deadline:
        time.sleep(0.01)


def drain(by_window: Mapping[str, Sequence[Terminal]], timeout: float = 30) -> int:
    """Wait until every terminal's ratings are acked; return how many are still waiting."""
    deadline = time.time() + timeout
    terms = [t for ts in by_window.values() for t in ts]
    while time.time() < deadline:
        left = sum(t.backlog() for t in terms)
        if left == 0:
            return 0
        time.sleep(0.05)
    return sum(t.backlog() for t in terms)


def stop(by_window: Mapping[str, Sequence[Terminal]]) -> None:
    for ts in by_window.values():
        for t in ts:
            t.stop()


def check_confirmed(cfg: HallConfig,
                    by_window: Mapping[str, Sequence[Terminal]]) -> tuple[int, list[str]]:
    """Firmware terminals: compare every rating confirmed to a citizen (the terminals' own
    list) with the hall database. Return (confirmed count, problems)."""
    hosts = {id(t.host): t.host for ts in by_window.values() for t in ts if hasattr(t, "host")}
    shown: dict[str, list[tuple[int, int, str]]] = {}
    for h in hosts.values():
        shown.update(h.confirmed())
    conn = sqlite3.connect(cfg.hall.database, timeout=30)
    problems: list[str] = []
    try:
        for term, confirmed in shown.items():
            rows = conn.execute("SELECT seq, level, token FROM ratings WHERE terminal=?",
                                (term,)).fetchall()
            stored: dict[int, list[tuple[int, int, str]]] = {}
            for seq, level, token in rows:
                stored.setdefault(seq, []).append((seq, level, token))
            for c in confirmed:
                n = stored.get(c[0], [])
                if n != [c]:
                    problems.append("%s seq %d confirmed to the citizen but stored %d time(s)%s"
                                    % (term, c[0], len(n), "" if not n or n[0] == c
                                       else " as %r" % (n[0],)))
    finally:
        conn.close()
    return sum(len(v) for v in shown.values()), problems
