"""The terminal's logic: state machine + journal + protocol. Pure core: no hardware, no asyncio.

The shell (main.py) feeds it key presses and ticks with a `time.ticks_ms` clock, and the
link feeds it MQTT messages. What goes out is read from the journal (`outbox`), so a rating is
sent only after it is durable, and resent from the same record after any outage or reboot.

Time: `ms` is a `time.ticks_ms` clock (clock.py): small ints that wrap, compared with
`ticks_diff`. `ts` in a rating is daemon time (Unix seconds). The terminal has no trusted clock,
so it keeps a daemon time with the ticks at that moment, and moves that pair forward an hour at
a time (a ticks interval only spans about 6 days on the ESP32). The daemon time is kept relative
to EPOCH_S (2023-11-14), a small int on the ESP32 until 2057: the key loop never makes a heap int.

Where that daemon time comes from, best first:
  LIVE       the `now` of an ack, or of a session published while we were connected (not a
             retained copy): exact, it may move the clock either way.
  ESTIMATED  a lower bound: the latest daemon time in the journal at boot (acks, headers and
             records carry it, so it survives a power cut: ratings made during an outage are
             stamped at least that late, not with the daemon's receive time maybe a day later),
             or the `now` of a retained session, which was signed some time ago. A lower bound
             only ever moves the clock forward: a stale retained session does not move it back.
  UNKNOWN    never heard from the daemon, nothing in the journal: `ts` is 0 ("time unknown", the
             daemon uses its receive time).
A session's expiry becomes a ticks deadline once, when the session arrives, against this clock:
a stale retained session whose expiry is past does not light the keys.

Faults (`faults()`): what keeps the terminal from working fully but not from rating (a touch pad
that reads 0 and is disabled, a flash error). They go into the retained status for hall IT.
"""
from haochaping.protocol import messages, topics
from haochaping.protocol.compat import const

from . import journal as journal_mod
from . import statemachine
from .clock import ticks_add, ticks_diff

VERSION = "0.3.0"
EPOCH_S = 1700000000                # daemon time is kept relative to this (not a const: a big int)
UNKNOWN = const(0)
ESTIMATED = const(1)
LIVE = const(2)
_STEP_MS = const(40)                # at most one flash write per this many ms of key loop
_ACKS_AT_ONCE = const(12)           # acks written together (one journal line)
_ACKS_WAIT_MS = const(1000)         # ... or after this long
_KEYS_QUIET_MS = const(250)         # no erase this soon after a key was down (a second press)
_ANCHOR_S = const(3600)             # the daemon-time anchor moves forward by this much at a time
_ANCHOR_MS = const(_ANCHOR_S * 1000)
_MAX_OPEN_S = const(86400)          # a prompt stays open at most this long on the terminal


class App:
    def __init__(self, cfg, ms, journal=None):
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
        # `journal`: the ring on a raw partition (ring.Ring, main.py finds it), else the file
        jmax = cfg["journal_max"]
        if journal is None:
            journal = journal_mod.Journal(cfg["journal"], jmax, jmax // 16, cfg["seq_start"])
        self.journal = journal
        self.panel = statemachine.Panel(self, self.journal.last_token)
        self.clock = UNKNOWN
        self.synced_rel = 0               # daemon time - EPOCH_S (s) at ticks synced_ms
        self.synced_ms = ms()
        if self.journal.clock_s:          # the last daemon time stored before a power cut
            self.clock = ESTIMATED
            self.synced_rel = self.journal.clock_s - EPOCH_S
        self.exp_ms = self.synced_ms      # ticks at which the open session expires
        self.wake = None                  # set by the link: called when there is something to send
        self.rejected = 0                 # messages refused (bad signature, wrong terminal, ...)
        self.full = 0                     # ratings refused because the journal was full
        self.flash_errors = 0             # flash writes or reads that failed (OSError)
        self.flash_error = ""             # the last one, for the status
        self.board_faults = []            # type: list
        self.board = ""
        self.rssi = 0                     # filled by the shell for the status message
        self.heap = 0
        self._step_at = self.synced_ms
        self._wrote = False               # a rating or reason was stored in this tick
        self._key_at = self.synced_ms     # when a key was last seen down (ticks)
        self._keys_seen = False           # ... within _KEYS_QUIET_MS
        self.version = VERSION            # what runs: an update's manifest says (update.py)
        self.update = None                # update.Updater, when the config has an update key
        self.image = ""                   # MicroPython's version (image.py), "" when unknown

    # ------------------------------------------------------------ time

    def daemon_now(self):
        """Daemon time now (Unix s), or 0 when unknown. Makes a heap int on the ESP32: called
        per rating, never per key scan."""
        if not self.clock:
            return 0
        return EPOCH_S + self._rel_now()

    def _rel_now(self):
        return self.synced_rel + ticks_diff(self.ms(), self.synced_ms) // 1000

    def _learn_time(self, now_s, live):
        rel = now_s - EPOCH_S
        if not live and self.clock and rel <= self._rel_now():
            return                        # an older lower bound: what we have is better
        if not live and self.clock == LIVE:
            return                        # a retained message never overrides a live clock
        self.synced_rel = rel
        self.synced_ms = self.ms()
        self.clock = LIVE if live else ESTIMATED

    def faults(self):
        """Texts for the status (at most 40 characters each): what hall IT should look at."""
        out = list(self.board_faults)
        if self.flash_errors:
            out.append("flash: %d errors, last %s" % (self.flash_errors, self.flash_error))
        stalls = getattr(self.journal, "stalls", 0)
        if stalls:                        # the ring fell behind: a write waited for an erase
            out.append("journal: %d erases in a write" % stalls)
        return out

    def _flash_failed(self, e):
        self.flash_errors += 1
        self.flash_error = str(e)[:16]

    # ------------------------------------------------------------ inputs from the shell

    def press(self, key):
        now = self.ms()
        self._key_at = now
        self._keys_seen = True
        self.panel.press(key, now)

    def cancel(self):
        """Several keys down at once (a palm, a cloth, a wipe): drop a choice not yet stored."""
        self.panel.cancel(self.ms())

    def tick(self, keys=False):
        """One key-loop step. `keys`: a key is down (or bouncing) in this scan (Board.active):
        no flash erase is started then, nor within _KEYS_QUIET_MS of it."""
        now = self.ms()
        if keys:
            self._key_at = now
            self._keys_seen = True
        elif self._keys_seen and ticks_diff(now, self._key_at) >= _KEYS_QUIET_MS:
            self._keys_seen = False       # forgotten at once: a ticks interval spans ~6 days
        if self.clock and ticks_diff(now, self.synced_ms) >= _ANCHOR_MS:
            self.synced_rel += _ANCHOR_S  # once an hour: keeps the anchor within ticks_diff's span
            self.synced_ms = ticks_add(self.synced_ms, _ANCHOR_MS)
        if self.panel.token and ticks_diff(now, self.exp_ms) >= 0:
            self.panel.close(now)
        self.panel.tick(now)
        if self.update is not None:
            self.update.tick(now)
        self._housekeeping(now)

    def quiet(self, now):
        """A moment a flash erase may stall the key loop (~45 ms on SPI NOR, the CPU stopped):
        no prompt lit, no choice open, the reason keys dark, no key down and none for
        _KEYS_QUIET_MS. The thank-you counts as quiet: presses then are ignored anyway."""
        mode = self.panel.mode
        if (mode == statemachine.PROMPT or mode == statemachine.CHOSEN
                or mode == statemachine.REASON):
            return False
        return not self._keys_seen

    def _housekeeping(self, now):
        """At most one flash operation per _STEP_MS of key loop, and none in a tick that stored
        a rating: acks (a dozen at a time, or after a second; on the ring a program, no erase),
        else a compaction step (on the ring: erasing a sector ahead, or copying records) only at
        a quiet moment (`quiet`). On the ESP32 a flash erase stalls the CPU (~45 ms): never
        while a citizen may be pressing a key."""
        j = self.journal
        if self._wrote:
            self._wrote = False
            self._step_at = now
            return
        if ticks_diff(now, self._step_at) < _STEP_MS:
            return
        late = ticks_diff(now, self._step_at) >= _ACKS_WAIT_MS
        try:
            if j.acks_due(1 if late else _ACKS_AT_ONCE):
                self._step_at = now
                j.write_acks()
            elif j.compact_due() and self.quiet(now):
                self._step_at = now
                j.compact_step()
            elif self.update is not None and self.update.step(now):
                self._step_at = now
        except OSError as e:
            self._step_at = now
            self._flash_failed(e)
        # the next step counts from the end of this one: after an erase (~45 ms on SPI NOR) the
        # keys get clean scans before the next flash write
        if self._step_at == now:
            self._step_at = self.ms()

    # ------------------------------------------------------------ the panel's store

    def rating(self, level, token, delay=None):
        try:
            seq = self.journal.add_rating(level, token, self.daemon_now(), delay)
        except journal_mod.Full:
            self.full += 1
            return None
        except OSError as e:
            self._flash_failed(e)
            return None
        self._wrote = True
        self._kick()
        return seq

    def reason(self, ref, reason):
        try:
            seq = self.journal.add_reason(ref, reason, self.daemon_now())
        except journal_mod.Full:
            self.full += 1
            return None
        except OSError as e:
            self._flash_failed(e)
            return None
        self._wrote = True
        self._kick()
        return seq

    def _kick(self):
        if self.wake is not None:
            self.wake()

    # ------------------------------------------------------------ MQTT side

    def subscriptions(self):
        subs = [(self.t_session, 1), (self.t_ack, 1)]
        if self.update is not None:
            subs += self.update.subscriptions()
        return subs

    def notes(self):
        """QoS 0 messages for the link to publish now: [(topic, payload, retain)]."""
        return self.update.take_notes() if self.update is not None else []

    def will(self):
        return (self.t_status, messages.encode_status(self.term, False), 1, True)

    def status(self):
        return messages.encode_status(self.term, True, self.version, self.board, self.heap,
                                      len(self.journal.pending), self.rssi, None, self.faults(),
                                      self.update.text() if self.update is not None else "",
                                      self.image)

    def outbox(self, after, limit):
        """Up to `limit` (seq, payload) of pending records with seq > after, oldest first."""
        out = []  # type: list
        try:
            recs = self.journal.records(after, limit)
        except OSError as e:
            self._flash_failed(e)
            return out
        for seq, kind, a, b, ts, delay in recs:
            if kind == journal_mod.RATING:
                payload = messages.encode_rating(self.key, self.term, seq, a, b, ts, delay)
            else:
                payload = messages.encode_reason(self.key, self.term, seq, a, b, ts)
            out.append((seq, payload))
        return out

    def on_message(self, topic, payload, retained=False):
        """A PUBLISH from the broker (`retained`: sent because we subscribed, so maybe old).
        Bad input is counted and dropped, never raised."""
        try:
            if self.update is not None and self.update.takes(topic):
                self.update.on_message(topic, payload, retained)
            elif topic == self.t_ack:
                msg = messages.decode_ack(self.key, payload)
                if msg["term"] != self.term:
                    raise ValueError("ack for another terminal")
                self._learn_time(msg["now"], not retained)
                self.journal.ack(msg["seqs"], msg["now"])
            elif topic == self.t_session:
                msg = messages.decode_session(self.key, payload)
                now = self.ms()
                if msg is None:
                    self.panel.close(now)
                    return
                if msg["term"] != self.term:
                    raise ValueError("session for another terminal")
                self._learn_time(msg["now"], not retained)
                left = msg["exp"] - self.daemon_now()
                if left <= 0:
                    self.panel.close(now)
                    return
                self.exp_ms = ticks_add(now, min(left, _MAX_OPEN_S) * 1000)
                self.panel.session(msg["token"], msg["window"], msg["staff"], now)
        except ValueError:
            self.rejected += 1
