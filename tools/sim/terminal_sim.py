"""A simulated terminal that speaks exactly the protocol a real terminal speaks.

`TerminalCore` is the terminal's brain with no I/O (the seam the firmware's core will fill):
it numbers ratings, keeps every unacked one (oldest first) and forgets one only on the daemon's
signed ack. `SimTerminal` carries it over a real MQTT connection (paho) with the terminal's own
broker credentials and last will, and re-sends what is unacked after a reconnect and on a timer.
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from haochaping.protocol import messages, topics


class TerminalCore:
    def __init__(self, terminal: str, key: bytes, clock: Callable[[], float] = time.time,
                 press_delay: bool = True) -> None:
        self.terminal = terminal
        self.press_delay = press_delay  # report delay_ms as firmware 0.3.0 does (False: 0.2)
        self.session_at = 0.0           # when the open prompt arrived (our clock)
        self.key = key
        self.clock = clock
        self.seq = 0
        self.pending: dict[int, bytes] = {}   # seq -> payload, insertion order = oldest first
        self.sent_at: dict[int, float] = {}   # seq -> when last sent
        self.session: dict[str, Any] | None = None  # the open prompt (decoded) or None
        self.offset = 0.0        # daemon clock - our clock, from the last session message
        self.acked = 0

    def now(self) -> int:
        return int(self.clock() + self.offset)

    def on_session(self, payload: bytes | bytearray) -> None:
        s = messages.decode_session(self.key, payload)  # ValueError if forged
        if s is not None:
            self.offset = s["now"] - self.clock()
            if self.session is None or self.session["token"] != s["token"]:
                self.session_at = self.clock()
        self.session = s

    def on_ack(self, payload: bytes | bytearray) -> list[int]:
        acked = messages.decode_ack(self.key, payload)["seqs"]
        for seq in acked:
            if self.pending.pop(seq, None) is not None:
                self.acked += 1
            self.sent_at.pop(seq, None)
        return acked

    def press(self, level: int, keep_session: bool = False,
              pressed_at: float | None = None) -> tuple[int, bytes]:
        """The citizen confirms a level (pressed at `pressed_at`, our clock; default now);
        returns (seq, payload) to publish. With a prompt open, the rating carries the press's
        delay since the prompt arrived, as the firmware does."""
        token = self.session["token"] if self.session else ""
        delay = None
        if token and self.press_delay:
            at = self.clock() if pressed_at is None else pressed_at
            delay = max(0, round((at - self.session_at) * 1000))
        if not keep_session:
            self.session = None  # one rating per prompt on this terminal
        return self._journal(lambda seq: messages.encode_rating(
            self.key, self.terminal, seq, level, token, self.now(), delay))

    def reason(self, ref: int, reason: str) -> tuple[int, bytes]:
        return self._journal(lambda seq: messages.encode_reason(
            self.key, self.terminal, seq, ref, reason, self.now()))

    def _journal(self, encode: Callable[[int], bytes]) -> tuple[int, bytes]:
        self.seq += 1
        payload = encode(self.seq)
        self.pending[self.seq] = payload
        return self.seq, payload

    def due(self, older_than: float) -> list[tuple[int, bytes]]:
        """Unacked payloads not sent in the last `older_than` seconds, oldest first."""
        t = self.clock()
        return [(s, p) for s, p in self.pending.items() if t - self.sent_at.get(s, 0) >= older_than]


class SimTerminal:
    """One terminal on its own MQTT connection."""

    def __init__(self, hall: str, terminal: str, key: bytes, host: str, port: int, password: str,
                 resend_s: float = 3.0, firmware: str = "sim-0.1",
                 board: str = "simulated", press_delay: bool = True) -> None:
        self.hall = hall
        self.core = TerminalCore(terminal, key, press_delay=press_delay)
        self.lock = threading.Lock()
        self.resend_s = resend_s
        self.got_session = threading.Condition(self.lock)
        self.info = (firmware, board)

        def t(kind: str) -> str:
            return topics.topic(hall, terminal, kind)
        self.t_rating, self.t_status = t(topics.RATING), t(topics.STATUS)
        self.t_session, self.t_ack = t(topics.SESSION), t(topics.ACK)
        c = self.client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                                      client_id="term-" + terminal)
        c.username_pw_set(terminal, password)
        c.will_set(self.t_status, messages.encode_status(terminal, False), qos=1, retain=True)
        # paho annotates whole seconds, but takes any number: a quick reconnect keeps tests short
        c.reconnect_delay_set(0.2, 2)  # type: ignore[arg-type]
        c.on_connect = self._connected
        c.on_message = self._message
        self.host, self.port = host, port
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._timer = threading.Thread(target=self._resend_loop, daemon=True)

    def start(self) -> SimTerminal:
        self.client.connect_async(self.host, self.port, keepalive=10)
        self.client.loop_start()
        self._timer.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.client.disconnect()
        self.client.loop_stop()

    def _connected(self, client: paho.Client, userdata: Any, flags: paho.ConnectFlags,
                   reason: ReasonCode, properties: Properties | None) -> None:
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

    def _message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            with self.lock:
                if msg.topic == self.t_session:
                    self.core.on_session(msg.payload)
                    self.got_session.notify_all()
                elif msg.topic == self.t_ack:
                    self.core.on_ack(msg.payload)
        except ValueError as e:
            self.errors.append("%s: %s" % (msg.topic, e))

    def _send(self, items: Iterable[tuple[int, bytes]]) -> None:
        now = self.core.clock()
        for seq, payload in items:
            self.core.sent_at[seq] = now
            self.client.publish(self.t_rating, payload, qos=1)

    def _resend_loop(self) -> None:
        while not self._stop.wait(self.resend_s / 3):
            with self.lock:
                if self.client.is_connected():
                    self._send(self.core.due(self.resend_s))

    # ---------------------------------------------------------------- the citizen
    def wait_session(self, timeout: float = 5.0,
                     token_not: str | None = None) -> dict[str, Any] | None:
        with self.lock:
            self.got_session.wait_for(
                lambda: self.core.session is not None and self.core.session["token"] != token_not,
                timeout)
            return self.core.session

    def press(self, level: int, keep_session: bool = False,
              pressed_at: float | None = None) -> int:
        """`pressed_at` (time.time()): when the key went down, for a press sent later (the
        firmware holds it for its correction window)."""
        with self.lock:
            seq, payload = self.core.press(level, keep_session, pressed_at)
            self._send([(seq, payload)])
            return seq

    def reason(self, ref: int, reason: str) -> int:
        with self.lock:
            seq, payload = self.core.reason(ref, reason)
            self._send([(seq, payload)])
            return seq

    def backlog(self) -> int:
        with self.lock:
            return len(self.core.pending)


def load_device(path: str) -> dict[str, Any]:
    """A device config as provisioning writes it (JSON): terminal, key (hex), password, ..."""
    with open(path) as f:
        d = json.load(f)
    return d
