"""Real parts for every test: a mosquitto of our own (own config, free port, passwords, ACL),
the hall daemon as a real process on a real SQLite file, terminals on real MQTT connections."""
import sqlite3
import time

import paho.mqtt.client as paho
import pytest

from haochaping.daemon.hall import api_client
from haochaping.tools.sim import hall_kit, processes
from haochaping.tools.sim.terminal_sim import SimTerminal


def wait_until(cond, timeout=20.0, step=0.05, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(step)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


@pytest.fixture
def hall(tmp_path):
    return hall_kit.create(str(tmp_path / "hall"), windows=("W01", "W02"), timeout_s=30,
                          extra_superusers=("observer",))


@pytest.fixture
def broker(hall):
    b = processes.Mosquitto(hall_kit.broker_conf(hall), hall.mqtt.port).start()
    yield b
    b.stop()


@pytest.fixture
def daemon(hall, broker):
    d = processes.DaemonProcess(hall).start()
    yield d
    d.kill()


@pytest.fixture
def api(hall, daemon):
    return api_client.WindowApi(hall)


@pytest.fixture
def terminals(hall, broker):
    """terminals() -> {terminal id: SimTerminal}, connected with their own credentials."""
    started = []

    def make(resend_s=2.0):
        out = {}
        for dev in hall_kit.devices(hall.folder):
            t = SimTerminal(hall.hall.id, dev["terminal"], bytes.fromhex(dev["key"]),
                            "127.0.0.1", hall.mqtt.port, dev["mqtt"]["password"],
                            resend_s=resend_s).start()
            started.append(t)
            out[dev["terminal"]] = t
        for t in out.values():
            wait_until(t.client.is_connected, what="terminal connected")
        return out

    yield make
    for t in started:
        t.stop()


def hall_query(hall):
    """A function that runs one query on the hall's database (its own connection each time)."""
    def query(sql, *args):
        c = sqlite3.connect(hall.hall.database, timeout=30)
        try:
            return c.execute(sql, args).fetchall()
        finally:
            c.close()
    return query


@pytest.fixture
def hall_db(hall):
    return hall_query(hall)


@pytest.fixture
def raw_client(hall, broker):
    """raw_client(username) -> a connected paho client with that user's broker credentials."""
    clients = []

    def make(username):
        pw = hall_password(hall, username)
        c = paho.Client(paho.CallbackAPIVersion.VERSION2,
                        client_id="raw-%s-%d" % (username, len(clients)))
        c.username_pw_set(username, pw)
        c.connect("127.0.0.1", hall.mqtt.port)
        c.loop_start()
        wait_until(c.is_connected, what="raw client connected")
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.disconnect()
        c.loop_stop()


def hall_password(hall, username):
    if username in ("hall-daemon", "observer"):
        return hall.mqtt.password
    for dev in hall_kit.devices(hall.folder):
        if dev["terminal"] == username:
            return dev["mqtt"]["password"]
    raise KeyError(username)
