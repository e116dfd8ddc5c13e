"""A scripted hall day: a window system that calls tickets and finishes services over the
daemon's HTTP API, and citizens who rate on the window's terminal. Most rate once; some walk
away without rating; some press twice; some give a reason after a bad review.
"""
import random
import threading
import time

from haochaping.daemon.errors import HcpError
from haochaping.protocol import levels

from .hallkit import WindowApi, devices
from .terminal_sim import SimTerminal

LEVEL_WEIGHTS = (50, 30, 12, 5, 3)   # 非常满意 .. 非常不满意
WALK_AWAY, PRESS_TWICE = 0.1, 0.08


def start_terminals(cfg, folder, count=None):
    """SimTerminals for the hall's device configs, connected; {window: [SimTerminal]}."""
    by_window = {}
    devs = devices(folder)[:count] if count else devices(folder)
    for d in devs:
        t = SimTerminal(d["hall"], d["terminal"], bytes.fromhex(d["key"]), d["mqtt"]["host"],
                        d["mqtt"]["port"], d["mqtt"]["password"]).start()
        by_window.setdefault(d["window"], []).append(t)
    return by_window


def run(cfg, by_window, transactions, seed=1, progress=None, service_s=0.02):
    """Serve `transactions` citizens spread over the windows; return what the citizens did."""
    api = WindowApi(cfg)
    rnd = random.Random(seed)
    windows = sorted(by_window)
    plan = {w: [] for w in windows}
    for i in range(transactions):
        plan[windows[i % len(windows)]].append(rnd.random())
    did = {"rated": 0, "walked away": 0, "pressed twice": 0, "reasons": 0}
    lock = threading.Lock()
    errors = []

    def serve(window):
        term = by_window[window][0]
        r = random.Random(hash((seed, window)))
        last_token = None
        for n, roll in enumerate(plan[window]):
            ticket = "%s-%04d" % (window, n + 1)
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
            else:
                level = r.choices(range(1, 6), LEVEL_WEIGHTS)[0]
                twice = roll < WALK_AWAY + PRESS_TWICE
                seq = term.press(level, keep_session=twice)
                if twice:
                    term.press(r.randint(1, 5))
                    what = "pressed twice"
                if levels.is_bad(level) and r.random() < 0.7:
                    term.reason(seq, r.choice(levels.REASONS)[0])
                    with lock:
                        did["reasons"] += 1
            with lock:
                did[what] += 1
                done = sum(did[k] for k in ("rated", "walked away", "pressed twice"))
            if progress:
                progress(done)

    threads = [threading.Thread(target=serve, args=(w,)) for w in windows]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return did, errors


def drain(by_window, timeout=30):
    """Wait until every terminal's ratings are acked; return how many are still waiting."""
    deadline = time.time() + timeout
    terms = [t for ts in by_window.values() for t in ts]
    while time.time() < deadline:
        left = sum(t.backlog() for t in terms)
        if left == 0:
            return 0
        time.sleep(0.05)
    return sum(t.backlog() for t in terms)


def stop(by_window):
    for ts in by_window.values():
        for t in ts:
            t.stop()
