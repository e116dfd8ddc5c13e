"""Hall IT tests: real mosquitto, real esptool against the mock ROM bootloader on a pty, real
mpremote against real MicroPython (unix port) behind a pty bridge."""
import contextlib
import queue
import time

import paho.mqtt.client as paho
import pytest

from haochaping.tools.sim import processes


class Client:
    """A paho client with a given broker user, collecting what it receives."""

    def __init__(self, port, user, password, client_id=None):
        self.got = queue.Queue()
        self.refused = None
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id or "t-" + user)
        self.c.username_pw_set(user, password)
        self.c.on_message = lambda c, u, m: self.got.put((m.topic, m.payload))
        self.c.on_connect = self._on_connect
        self.port = port

    def _on_connect(self, c, u, flags, rc, props=None):
        self.refused = rc.is_failure

    def connect(self, timeout=5):
        """True when the broker accepts the credentials."""
        self.c.connect("127.0.0.1", self.port)
        self.c.loop_start()
        deadline = time.time() + timeout
        while self.refused is None and time.time() < deadline:
            time.sleep(0.02)
        if self.refused is None or self.refused:
            self.close()
            return False
        return True

    def subscribe(self, topic):
        self.c.subscribe(topic, qos=1)
        time.sleep(0.2)

    def publish(self, topic, payload=b"x"):
        self.c.publish(topic, payload, qos=1).wait_for_publish(5)

    def received(self, wait=0.5):
        out = []
        deadline = time.time() + wait
        while time.time() < deadline:
            with contextlib.suppress(queue.Empty):
                out.append(self.got.get(timeout=0.05))
        return out

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def clients():
    made = []

    def make(port, user, password, client_id=None):
        c = Client(port, user, password, client_id)
        made.append(c)
        return c

    yield make
    for c in made:
        with contextlib.suppress(Exception):  # closing a client the test already closed
            c.close()


@pytest.fixture
def run_broker():
    started = []

    def start(conf, port):
        b = processes.Mosquitto(conf, port).start()
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()
