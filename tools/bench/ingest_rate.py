"""hcp bench ingest: the daemon's ingest rate against raw paho-mqtt on the same broker.

One run, one broker of our own, the same pre-signed ratings from publisher processes:
  raw     a bare paho subscriber (own process, QoS 1, persistent session) that only counts;
  daemon  the hall daemon (own process): verify, bind to an open prompt, group-commit to SQLite
          (WAL, synchronous=FULL), then ack; rate = ratings acked / (last ack - first send);
  paced   press -> ack latency at a steady rate (default 200 ratings/s) from all terminals;
          with sign_in_flood=N, twice: first quiet (no_flood_p50_ms, no_flood_p99_ms: the
          machine's own figure in the same run), then while N clients (own process, own sessions
          and CSRF tokens) send wrong-PIN sign-ins to the console without pause (the hall's
          lockout set out of reach, so every one costs what it can: the worst case of the
          PIN-check bound); the daemon's peak resident memory is reported.
lost / duplicated are counted from the hall database against what the publishers sent.
"""
from __future__ import annotations

import dataclasses
import http.client
import json
import multiprocessing as mp
import os
import random
import secrets
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho

from haochaping.daemon.hall import api_client, settings
from haochaping.daemon.hall.settings import HallConfig
from haochaping.protocol import messages, topics
from haochaping.tools.sim import hall_kit, processes
from haochaping.tools.sim.scenario import LEVEL_WEIGHTS

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Event

HALL = "H01"
BENCH_RAW = "bench-raw"  # one broker user per connection: the broker names a session after its user


def _pub_user(idx: int) -> str:
    return "bench-pub-%d" % idx

# One pre-signed rating: (terminal, seq, payload)
Item = tuple[str, int, bytes]
# The raw subscriber's report: ("raw", received, first arrival, last arrival)
RawResult = tuple[str, int, float | None, float | None]
# A publisher's report: ("pub", index, first send, last ack, acked, press -> ack latencies,
# every (terminal, seq) sent)
PubResult = tuple[str, int, float, float | None, int, list[float], list[tuple[str, int]]]


@dataclasses.dataclass
class _Count:
    n: int = 0
    first: float | None = None
    last: float | None = None


# ---------------------------------------------------------------- processes
def _client(port: int, password: str, user: str, clean: bool = True) -> paho.Client:
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=user, clean_session=clean)
    c.username_pw_set(user, password)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    return c


def _counter(port: int, password: str, expected: int, out: Queue[RawResult],
             ready: Event) -> None:
    """The raw baseline: subscribe like the daemon does, count, nothing else."""
    state = _Count()

    def on_message(c: paho.Client, u: Any, m: paho.MQTTMessage) -> None:
        now = time.time()
        if state.first is None:
            state.first = now
        state.n += 1
        state.last = now

    c = _client(port, password, BENCH_RAW, clean=False)
    c.on_message = on_message
    c.on_connect = lambda cl, u, f, r, p: cl.subscribe(topics.wildcard(HALL, topics.RATING), 1)
    c.on_subscribe = lambda cl, u, mid, codes, p: ready.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    while state.n < expected:
        time.sleep(0.01)
        if state.last and time.time() - state.last > 10:
            break  # nothing for 10 s: report what arrived
    c.disconnect()
    c.loop_stop()
    out.put(("raw", state.n, state.first, state.last))


def _publisher(idx: int, port: int, password: str, items: Sequence[Item], rate: float | None,
               want_acks: bool, out: Queue[PubResult]) -> None:
    """Publish pre-signed (terminal, seq, payload) items; at `rate`/s if given, else flat out.
    With want_acks, also collect the daemon's acks: (first send, last ack, acked, latencies)."""
    sent_at: dict[tuple[str, int], float] = {}
    acked: dict[tuple[str, int], float] = {}
    terms = sorted({t for t, _, _ in items})

    def on_message(c: paho.Client, u: Any, m: paho.MQTTMessage) -> None:
        now = time.time()
        try:
            a = json.loads(m.payload)
        except ValueError:
            return
        for s in a.get("seqs", ()):
            k = (a.get("term"), s)
            if k in sent_at and k not in acked:
                acked[k] = now

    c = _client(port, password, _pub_user(idx))
    c.on_message = on_message
    c.connect("127.0.0.1", port)
    c.loop_start()
    while not c.is_connected():
        time.sleep(0.01)
    if want_acks:
        subs = [(topics.topic(HALL, t, topics.ACK), 0) for t in terms]
        for i in range(0, len(subs), 100):
            c.subscribe(subs[i:i + 100])
        time.sleep(0.5)
    infos: list[paho.MQTTMessageInfo] = []
    start = time.time()
    for i, (term, seq, payload) in enumerate(items):
        if rate:
            delay = start + i / rate - time.time()
            if delay > 0:
                time.sleep(delay)
        sent_at[(term, seq)] = time.time()
        infos.append(c.publish(topics.topic(HALL, term, topics.RATING), payload, qos=1))
    for info in infos:  # every rating handed to the broker (PUBACK) before we go
        info.wait_for_publish(60)
    last_progress, seen = time.time(), 0
    while want_acks and len(acked) < len(items) and time.time() - last_progress < 15:
        time.sleep(0.01)
        if len(acked) != seen:
            last_progress, seen = time.time(), len(acked)
    time.sleep(0.2)
    c.disconnect()
    c.loop_stop()
    lat = [acked[k] - sent_at[k] for k in acked]
    out.put(("pub", idx, start, max(acked.values()) if acked else None, len(acked), lat,
             list(sent_at)))


def _run_publishers(port: int, password: str, items: Sequence[Item], procs: int,
                    rate: float | None, want_acks: bool) -> list[PubResult]:
    q: Queue[PubResult] = mp.Queue()
    shares = [items[i::procs] for i in range(procs)]
    ps = [mp.Process(target=_publisher, args=(i, port, password, shares[i],
                                               (rate / procs) if rate else None, want_acks, q))
          for i in range(procs)]
    for p in ps:
        p.start()
    results = [q.get(timeout=900) for _ in ps]
    for p in ps:
        p.join()
    return results


def _sign_in_flood(address: str, clients: int, stop: Event, out: Queue[dict[str, int]],
                   nice: int = 0) -> None:
    """`clients` browsers, each with its own session and CSRF token and one connection, sending
    wrong-PIN sign-ins one after another until `stop`; reports how many got each status.
    `nice`: this process's niceness (19: an attacker whose CPU is not the daemon's)."""
    import re
    import threading
    if nice:
        os.nice(nice)
    host, _, port = address.rpartition(":")
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def one(i: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.request("GET", "/window/W000")
        r = conn.getresponse()
        page = r.read()
        cookie = (r.getheader("Set-Cookie") or "").split(";")[0]
        m = re.search(rb'"csrf": "([^"]+)"', page)
        csrf = m.group(1).decode() if m else ""
        body = json.dumps({"number": "S%04d" % i, "pin": "000000"})
        while not stop.is_set():
            try:
                conn.request("POST", "/window/W000/sign-in", body, {
                    "Cookie": cookie, "X-CSRF-Token": csrf, "Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                key = str(r.status)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=60)
                key = "error"
            with lock:
                counts[key] = counts.get(key, 0) + 1
        conn.close()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(counts)


def children(pid: int) -> list[int]:
    """The processes `pid` started, from any of its threads (the daemon's HTTP process)."""
    out: list[int] = []
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for task in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                out += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def _peak_rss_mb(pid: int) -> float | None:
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


# ---------------------------------------------------------------- setup
def _prepare(folder: str, terminals: int, n_burst: int, n_paced: int,
             procs: int, flood: bool = False) -> tuple[HallConfig, list[Item], list[Item]]:
    cfg = hall_kit.create(folder, windows=tuple("W%03d" % i for i in range(terminals)),
                         timeout_s=3600,
                         extra_superusers=(BENCH_RAW, *(_pub_user(i) for i in range(procs))))
    if flood:  # the lockout out of reach: every wrong PIN is worth checking
        with open(cfg.path, "a", encoding="utf-8") as f:
            f.write("\n[console]\npin_failures = 1000000000\n")
        cfg = settings.load(cfg.path)
    conn = sqlite3.connect(cfg.hall.database)
    keys = {r[0]: bytes(r[1]) for r in conn.execute("SELECT id, key FROM terminals")}
    window_of = dict(conn.execute("SELECT terminal, window FROM pairings"))
    names = sorted(keys)
    now = time.time()
    seq = dict.fromkeys(names, 0)
    rnd = random.Random(7)
    txs: list[tuple[str, str, float, float, str, float]] = []
    shown: list[tuple[str, str]] = []
    burst: list[Item] = []
    paced: list[Item] = []
    for i in range(n_burst + n_paced):
        t = names[i % len(names)]
        seq[t] += 1
        token = secrets.token_hex(16)
        txs.append((window_of[t], "B%06d" % i, now, now, token, now + 7200))
        shown.append((token, t))
        level = rnd.choices(range(1, 6), LEVEL_WEIGHTS)[0]  # a hall's mix: ~8 % bad reviews
        payload = messages.encode_rating(keys[t], t, seq[t], level, token, int(now))
        (burst if i < n_burst else paced).append((t, seq[t], payload))
    # open prompts, as if every window had just finished a service (bulk, not via the API)
    conn.executemany("INSERT INTO transactions (window, ticket, started_at, finished_at, token,"
                     " prompt_expires_at) VALUES (?,?,?,?,?,?)", txs)
    conn.executemany("INSERT INTO prompt_terminals (token, terminal) VALUES (?,?)", shown)
    conn.commit()
    conn.close()
    return cfg, burst, paced


def _pct(values: Sequence[float], p: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def ingest(terminals: int = 500, ratings: int = 50000, procs: int = 2, paced_rate: int = 200,
           paced_seconds: int = 10, folder: str | None = None,
           progress: Callable[[str], object] = print,
           sign_in_flood: int = 0, flood_nice: int = 0) -> dict[str, object]:
    """Run the benchmark; return the result dict (`hcp bench ingest` prints it as JSON)."""
    folder = folder or tempfile.mkdtemp(prefix="hcp-bench-")
    n_paced = int(paced_rate * paced_seconds)
    progress("preparing %d terminals and %d signed ratings in %s"
             % (terminals, ratings + n_paced, folder))
    n_quiet = n_paced if sign_in_flood else 0  # the same-run figure without the flood
    cfg, burst, paced = _prepare(folder, terminals, ratings, n_quiet + n_paced, procs,
                                 sign_in_flood > 0)
    quiet, paced = paced[:n_quiet], paced[n_quiet:]
    pw = cfg.mqtt.password
    port = cfg.mqtt.port
    b = processes.Mosquitto(hall_kit.broker_conf(cfg), port).start()
    result: dict[str, object] = {"terminals": terminals, "ratings": ratings,
                                 "publisher_processes": procs}
    try:
        # (a) raw paho receive rate
        progress("raw: a bare paho subscriber counts %d QoS 1 messages" % ratings)
        q: Queue[RawResult] = mp.Queue()
        ready = mp.Event()
        counter = mp.Process(target=_counter, args=(port, pw, ratings, q, ready))
        counter.start()
        ready.wait(10)
        pubs = _run_publishers(port, pw, burst, procs, None, False)
        _, n, first, last = q.get(timeout=900)
        counter.join()
        t0 = min(r[2] for r in pubs)
        result["raw_received"] = n
        raw_rate = round(n / (last - t0), 1) if n and last is not None else 0.0
        result["raw_msgs_per_s"] = raw_rate
        # forget the raw subscriber's persistent session so it does not queue during (b)
        c = _client(port, pw, BENCH_RAW, clean=True)
        c.connect("127.0.0.1", port)
        c.disconnect()

        # (b) the daemon, flat out
        progress("daemon: verify, bind, commit, ack %d ratings" % ratings)
        d = processes.DaemonProcess(cfg).start()
        try:
            pubs = _run_publishers(port, pw, burst, procs, None, True)
            t0 = min(r[2] for r in pubs)
            t1 = max(r[3] for r in pubs if r[3])
            acked = sum(r[4] for r in pubs)
            result["daemon_acked"] = acked
            daemon_rate = round(acked / (t1 - t0), 1)
            result["daemon_ratings_per_s"] = daemon_rate
            h = api_client.WindowApi(cfg).health()
            result["daemon_commits"] = h["commits"]
            result["ratings_per_commit"] = round(h["messages"] / max(1, h["commits"]), 1)
            # (c) paced latency, under a flood of wrong-PIN sign-ins if asked
            flood: mp.Process | None = None
            if quiet:
                progress("paced, no flood: %d ratings/s for %d s, press -> ack latency"
                         % (paced_rate, paced_seconds))
                pubs = _run_publishers(port, pw, quiet, procs, paced_rate, True)
                lat = [x for r in pubs for x in r[5]]
                result["no_flood_p50_ms"] = _ms(_pct(lat, 50))
                result["no_flood_p99_ms"] = _ms(_pct(lat, 99))
            if sign_in_flood:
                progress("sign-in flood: %d clients sending wrong PINs to the console"
                         % sign_in_flood)
                stop = mp.Event()
                fq: Queue[dict[str, int]] = mp.Queue()
                flood = mp.Process(target=_sign_in_flood,
                                   args=(cfg.api.listen, sign_in_flood, stop, fq, flood_nice))
                flood.start()
                time.sleep(2)  # every client signing in before the paced phase starts
            progress("paced: %d ratings/s for %d s, press -> ack latency"
                     % (paced_rate, paced_seconds))
            pubs = _run_publishers(port, pw, paced, procs, paced_rate, True)
            if flood is not None:
                stop.set()
                result["sign_in_flood_clients"] = sign_in_flood
                result["sign_in_answers"] = fq.get(timeout=120)
                flood.join()
            if d.proc is not None:
                result["daemon_peak_rss_mb"] = _peak_rss_mb(d.proc.pid)
                http = [_peak_rss_mb(c) for c in children(d.proc.pid)]
                result["daemon_http_peak_rss_mb"] = sum(r for r in http if r) or None
            if flood_nice:
                result["flood_nice"] = flood_nice
            lat = [x for r in pubs for x in r[5]]
            result["paced_rate_per_s"] = paced_rate
            result["paced_acked"] = len(lat)
            result["p50_ms"] = _ms(_pct(lat, 50))
            result["p99_ms"] = _ms(_pct(lat, 99))
            result["max_ms"] = _ms(max(lat) if lat else None)
        finally:
            d.terminate()
    finally:
        b.stop()
    result["ratio"] = round(daemon_rate / raw_rate, 3) if raw_rate else None
    sent = {(t, s) for t, s, _ in burst + quiet + paced}
    conn = sqlite3.connect(cfg.hall.database)
    stored = conn.execute("SELECT terminal, seq FROM ratings").fetchall()
    result["lost"] = len(sent - set(stored))
    result["duplicated"] = (len(stored) - len(set(stored))) + conn.execute(
        "SELECT COUNT(*) FROM (SELECT transaction_id FROM ratings WHERE outcome='counted'"
        " GROUP BY transaction_id HAVING COUNT(*) > 1)").fetchone()[0]
    result["bad_reviews"] = conn.execute(  # each raised an alert
        "SELECT COUNT(*) FROM ratings WHERE level >= 4").fetchone()[0]
    result["counted"] = conn.execute(
        "SELECT COUNT(*) FROM ratings WHERE outcome='counted'").fetchone()[0]
    conn.close()
    result["folder"] = folder
    result["cpus"] = os.cpu_count()
    return result
