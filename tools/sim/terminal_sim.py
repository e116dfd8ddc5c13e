"""A simulated terminal that speaks exactly the protocol a real terminal speaks.

`TerminalCore` is the terminal's brain with no I/O (the seam the firmware's core will fill):
it numbers ratings, keeps every unacked one (oldest first) and forgets one only on the daemon's
signed ack. `SimTerminal` carries it over a real MQTT connection (paho) with the terminal's own
broker credentials and last will, and re-sends what is unacked after a reconnect and on a timer.
"""
import json
import threading
import time

import paho.mqtt.client as paho

from haochaping.protocol import messages, topics


class TerminalCore:
    def __init__(self, terminal, key, clock=time.time):
        self.terminal = terminal
        self.key = key
        self.clock = clock
        self.seq = 0
        self.pending = {}        # seq -> payload, insertion order = oldest first
        self.sent_at = {}        # seq -> when last sent
        self.session = None      # the open prompt (dict) or None
        self.offset = 0.0        # daemon clock - our clock, from the last session message
        self.acked = 0

    def now(self):
        return int(self.clock() + self.offset)

    def on_session(self, payload):
        s = messages.decode_session(self.key, payload)  # ValueError if forged
        if s is not None:
            self.offset = s["now"] - self.clock()
        self.session = s

    def on_ack(self, payload):
        acked = messages.decode_ack(self.key, payload)["seqs"]
        for seq in acked:
            if self.pending.pop(seq, None) is not None:
                self.acked += 1
            self.sent_at.pop(seq, None)
        return acked

    def press(self, level, keep_session=False):
        """The citizen confirms a level; returns (seq, payload) to publish."""
        token = self.session["token"] if self.session else ""
        if not keep_session:
            self.session = None  # one rating per prompt on this terminal
        return self._journal(lambda seq: messages.encode_rating(
            self.key, self.terminal, seq, level, token, self.now()))

    def reason(self, ref, reason):
        return self._journal(lambda seq: messages.encode_reason(
            self.key, self.terminal, seq, ref, reason, self.now()))

    def _journal(self, encode):
        self.seq += 1
        payload = encode(self.seq)
        self.pending[self.seq] = payload
        return self.seq, payload

    def due(self, older_than):
        """Unacked payloads not sent in the last `older_than` seconds, oldest first."""
        t = self.clock()
        return [(s, p) for s, p in self.pending.items() if t - self.sent_at.get(s, 0) >= older_than]


class SimTerminal:
    """One terminal on its own MQTT connection."""

    def __init__(self, hall, terminal, key, host, port, password, resend_s=3.0,
                 firmware="sim-0.1", board="simulated"):
        self.hall = hall
        self.core = TerminalCore(terminal, key)
        self.lock = threading.Lock()
        self.resend_s = resend_s
        self.got_session = threading.Condition(self.lock)
        self.info = (firmware, board)
        t = lambda kind: topics.topic(hall, terminal, kind)  # noqa: E731
        self.t_rating, self.t_status = t(topics.RATING), t(topics.STATUS)
        self.t_session, self.t_ack = t(topics.SESSION), t(topics.ACK)
        c = self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="term-" + terminal)
        c.username_pw_set(terminal, password)
        c.will_set(self.t_status, messages.encode_status(terminal, False), qos=1, retain=True)
        c.reconnect_delay_set(0.2, 2)
        c.on_connect = self._connected
        c.on_message = self._message
        self.host, self.port = host, port
        self.errors = []
        self._stop = threading.Event()
        self._timer = threading.Thread(target=self._resend_loop, daemon=True)

    def start(self):
        self.client.connect_async(self.host, self.port, keepalive=10)
        self.client.loop_start()
        self._timer.start()
        return self

    def stop(self):
        self._stop.set()
        self.client.disconnect()
        self.client.loop_stop()

    def _connected(self, client, userdata, flags, reason, properties):
        if reason.is_failure:
            self.errors.append("broker refused: %s" % reason)
            return
        client.subscribe([(self.t_session, 1), (self.t_ack, 1)])
        fw, board = self.info
        with self.lock:
            backlog = len(self.core.pending)
            client.publish(self.t_status, messages.encode_status(
                self.core.terminal, True, fw, board, 0, backlog, -50), qos=1, retain=True)
            self._send(self.core.due(0))  # everything unacked, oldest first

    def _message(self, client, userdata, msg):
        try:
            with self.lock:
                if msg.topic == self.t_session:
                    self.core.on_session(msg.payload)
                    self.got_session.notify_all()
                elif msg.topic == self.t_ack:
                    self.core.on_ack(msg.payload)
        except ValueError as e:
            self.errors.append("%s: %s" % (msg.topic, e))

    def _send(self, items):
        now = self.core.clock()
        for seq, payload in items:
            self.core.sent_at[seq] = now
            self.client.publish(self.t_rating, payload, qos=1)

    def _resend_loop(self):
        while not self._stop.wait(self.resend_s / 3):
            with self.lock:
                if self.client.is_connected():
                    self._send(self.core.due(self.resend_s))

    # ---------------------------------------------------------------- the citizen
    def wait_session(self, timeout=5.0, token_not=None):
        with self.lock:
            self.got_session.wait_for(
                lambda: self.core.session is not None and self.core.session["token"] != token_not,
                timeout)
            return self.core.session

    def press(self, level, keep_session=False):
        with self.lock:
            seq, payload = self.core.press(level, keep_session)
            self._send([(seq, payload)])
            return seq

    def reason(self, ref, reason):
        with self.lock:
            seq, payload = self.core.reason(ref, reason)
            self._send([(seq, payload)])
            return seq

    def backlog(self):
        with self.lock:
            return len(self.core.pending)


def load_device(path):
    """A device config as provisioning writes it (JSON): terminal, key (hex), password, ..."""
    with open(path) as f:
        d = json.load(f)
    return d
