"""The terminal's logic: state machine + journal + protocol. Pure core: no hardware, no asyncio.

The shell (main.py) feeds it key presses and ticks with a `time.ticks_ms` clock, and the
link feeds it MQTT messages. What goes out is read from the journal (`outbox`), so a rating is
sent only after it is durable, and resent from the same record after any outage or reboot.

Time: `ms` is a `time.ticks_ms` clock (clock.py): small ints that wrap, compared with
`ticks_diff`. `ts` in a rating is daemon time (Unix seconds). The terminal has no trusted clock,
so it keeps the "now" of the last session or ack it received with the ticks at that moment, and
moves that pair forward an hour at a time (a ticks interval only spans about 6 days on the
ESP32). Until it has heard from the daemon once since boot, `ts` is 0, meaning "time unknown"
(the daemon uses its own receive time); a retained session normally arrives right after
connecting. A session's expiry becomes a ticks deadline once, when the session arrives: the key
loop compares small ints, never Unix seconds (over 2**30: a heap object on the ESP32).
"""
from haochaping.protocol import messages, topics
from haochaping.protocol.compat import const

from . import journal as journal_mod
from . import statemachine
from .clock import ticks_add, ticks_diff

VERSION = "0.1.0"
_ANCHOR_S = const(3600)             # the daemon-time anchor moves forward by this much at a time
_ANCHOR_MS = const(_ANCHOR_S * 1000)
_MAX_OPEN_S = const(86400)          # a prompt stays open at most this long on the terminal


class App:
    def __init__(self, cfg, ms):
        self.cfg = cfg
        self.ms = ms                      # time.ticks_ms, or a stand-in: compare with ticks_diff
        self.key = cfg["key"]
        self.term = cfg["terminal"]
        hall = cfg["hall"]
        self.t_rating = topics.topic(hall, self.term, topics.RATING)
        self.t_status = topics.topic(hall, self.term, topics.STATUS)
        self.t_session = topics.topic(hall, self.term, topics.SESSION)
        self.t_ack = topics.topic(hall, self.term, topics.ACK)
        # compact at 1/16 of the bound: littlefs copies a file's last block on every append, so
        # a small file keeps the flash writes per rating low (docs/firmware.md)
        jmax = cfg["journal_max"]
        self.journal = journal_mod.Journal(cfg["journal"], jmax, jmax // 16, cfg["seq_start"])
        self.panel = statemachine.Panel(self, self.journal.last_token)
        self.synced_s = 0                 # daemon time (Unix s) at ticks synced_ms; 0: unknown
        self.synced_ms = ms()
        self.exp_ms = self.synced_ms      # ticks at which the open session expires
        self.wake = None                  # set by the link: called when there is something to send
        self.rejected = 0                 # messages refused (bad signature, wrong terminal, ...)
        self.full = 0                     # ratings refused because the journal was full
        self.board = ""
        self.rssi = 0                     # filled by the shell for the status message
        self.heap = 0

    # ------------------------------------------------------------ time

    def daemon_now(self):
        if not self.synced_s:
            return 0
        return self.synced_s + ticks_diff(self.ms(), self.synced_ms) // 1000

    def _learn_time(self, now_s):
        self.synced_s = now_s
        self.synced_ms = self.ms()

    # ------------------------------------------------------------ inputs from the shell

    def press(self, key):
        self.panel.press(key, self.ms())

    def tick(self):
        now = self.ms()
        if self.synced_s and ticks_diff(now, self.synced_ms) >= _ANCHOR_MS:
            self.synced_s += _ANCHOR_S    # once an hour: keeps the anchor within ticks_diff's span
            self.synced_ms = ticks_add(self.synced_ms, _ANCHOR_MS)
        if self.panel.token and ticks_diff(now, self.exp_ms) >= 0:
            self.panel.close(now)
        self.panel.tick(now)

    # ------------------------------------------------------------ the panel's store

    def rating(self, level, token):
        try:
            seq = self.journal.add_rating(level, token, self.daemon_now())
        except journal_mod.Full:
            self.full += 1
            return None
        self._kick()
        return seq

    def reason(self, ref, reason):
        try:
            seq = self.journal.add_reason(ref, reason, self.daemon_now())
        except journal_mod.Full:
            self.full += 1
            return None
        self._kick()
        return seq

    def _kick(self):
        if self.wake is not None:
            self.wake()

    # ------------------------------------------------------------ MQTT side

    def subscriptions(self):
        return [(self.t_session, 1), (self.t_ack, 1)]

    def will(self):
        return (self.t_status, messages.encode_status(self.term, False), 1, True)

    def status(self):
        return messages.encode_status(self.term, True, VERSION, self.board, self.heap,
                                      len(self.journal.pending), self.rssi)

    def outbox(self, after, limit):
        """Up to `limit` (seq, payload) of pending records with seq > after, oldest first."""
        out = []
        for seq, kind, a, b, ts in self.journal.records(after, limit):
            if kind == journal_mod.RATING:
                payload = messages.encode_rating(self.key, self.term, seq, a, b, ts)
            else:
                payload = messages.encode_reason(self.key, self.term, seq, a, b, ts)
            out.append((seq, payload))
        return out

    def on_message(self, topic, payload):
        """A PUBLISH from the broker. Bad input is counted and dropped, never raised."""
        try:
            if topic == self.t_ack:
                msg = messages.decode_ack(self.key, payload)
                if msg["term"] != self.term:
                    raise ValueError("ack for another terminal")
                self._learn_time(msg["now"])
                self.journal.ack(msg["seqs"])
            elif topic == self.t_session:
                msg = messages.decode_session(self.key, payload)
                now = self.ms()
                if msg is None:
                    self.panel.close(now)
                    return
                if msg["term"] != self.term:
                    raise ValueError("session for another terminal")
                self._learn_time(msg["now"])
                left = msg["exp"] - msg["now"]
                if left <= 0:
                    self.panel.close(now)
                    return
                self.exp_ms = ticks_add(now, min(left, _MAX_OPEN_S) * 1000)
                self.panel.session(msg["token"], msg["window"], msg["staff"], now)
        except ValueError:
            self.rejected += 1
