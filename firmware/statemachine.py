"""What the five keys do: the session/key state machine. Pure core, no hardware.

Driven by events (`press`, `session`, `close`) and `tick`, each given the time `now`, a
`time.ticks_ms` value from the caller: it wraps, so intervals are taken with `ticks_diff` (every
wait here is seconds, far below the half wrap). Commits go through the `store`
object (the app): `store.rating(level, token, delay_ms)` and `store.reason(ref, reason)` return
the seq once the record is durable, or None when the journal refused it (full). "Thank you" is
shown only after that returned.

The press delay (第十一条, docs/integrity.md): a rating made at a prompt carries the ms from the
moment that prompt lit the keys (its session arrived, or the previous citizen's thank-you ended
after it arrived) to the first key press; a later change of choice does not move it. A press
with no prompt carries None. Staff reaching over to press at once show here, free of the 3 s
correction window and the network that the hall's own measure includes.

Modes (what the citizen sees; the board renders `mode` and `choice`):
  IDLE    keys dark. A press is still a rating, sent with token "" (unsolicited).
  PROMPT  a session is open: all keys lit, "please rate".
  CHOSEN  one key lit; for CORRECT_MS from the first press another key changes the choice.
  THANKS  committed: "thank you" pattern and beep. Presses are ignored until THANKS_MS has
          passed and the keys were quiet for QUIET_MS, so mashing gives one rating.
  REASON  after 不满意/非常不满意: keys 1-4 are the reason categories (levels.REASONS order),
          key 5 skips; REASON_MS, optional. The rating is already durable.
  FULL    the journal refused the rating: distinct "full" sign for staff; back to idle after
          THANKS_MS. Nothing is stored, so nothing false is promised.
"""
from haochaping.protocol import levels
from haochaping.protocol.compat import const

from .clock import ticks_diff

IDLE = const(0)
PROMPT = const(1)
CHOSEN = const(2)
THANKS = const(3)
REASON = const(4)
FULL = const(5)

# Plain ints, not const: `hcp simulate` and the tests shorten them (a const is inlined where it is
# used, so setting the module attribute would change nothing under MicroPython).
CORRECT_MS = 3000
THANKS_MS = 2500
QUIET_MS = 1500
REASON_MS = 10000
GUARD_MS = 700     # presses this soon after the rating was stored: bounce or mashing, not a reason
_SKIP_KEY = const(5)
_MAX_DELAY_MS = const(86400000)  # protocol/fields.MAX_DELAY_MS: a prompt is open a day at most


class Panel:
    def __init__(self, store, last_token=""):
        self.store = store
        self.mode = IDLE
        self.choice = 0          # key lit in CHOSEN / committed level in THANKS
        self.token = ""          # open session token ("" when none)
        self.window = ""
        self.staff = ""
        self.used = last_token   # token already rated: a redelivered session does not relight
        self.changes = 0         # bumped on every visible change; the board redraws on it
        self.ref = 0             # seq of the bad rating a reason refers to
        self._token_at_press = ""
        self._delay_at_press = None  # ms from the prompt lighting to the press, or None
        self._lit_at = 0         # when the open prompt lit the keys (ticks)
        self._since = 0          # when the current mode (or choice window) started
        self._last_press = 0

    def _to(self, mode, now):
        self.mode = mode
        self._since = now
        self.changes += 1

    # ------------------------------------------------------------ events

    def session(self, token, window, staff, now):
        """A prompt for this window is open (token from the daemon)."""
        if token == self.used or token == self.token:
            return
        self.token = token
        self.window = window
        self.staff = staff
        if self.mode == IDLE:
            self._to(PROMPT, now)
        if self.mode == PROMPT:
            self._lit_at = now   # a new prompt lights the keys: its presses count from now

    def close(self, now):
        """The prompt closed (empty retained session, or expired)."""
        self.token = ""
        if self.mode == PROMPT:
            self._to(IDLE, now)

    def cancel(self, now):
        """Several keys went down together (a palm, a wet cloth, a wipe of the panel): that is
        no citizen's choice. A choice not yet stored is dropped; back to the prompt (or dark)."""
        if self.mode == CHOSEN:
            self.choice = 0
            self._to(PROMPT if self.token else IDLE, now)

    def press(self, key, now):
        """Key 1..5 went down (already debounced by the board)."""
        if not 1 <= key <= 5:
            return
        mode = self.mode
        if mode in (IDLE, PROMPT):
            self._token_at_press = self.token
            self._delay_at_press = None
            if mode == PROMPT:
                self._delay_at_press = min(ticks_diff(now, self._lit_at), _MAX_DELAY_MS)
            self.choice = key
            self._to(CHOSEN, now)
        elif mode == CHOSEN:
            if key != self.choice:
                self.choice = key
                self.changes += 1
        elif mode == REASON:
            if ticks_diff(now, self._since) < GUARD_MS:
                pass
            elif key == _SKIP_KEY:
                self._to(THANKS, now)
            else:
                self.store.reason(self.ref, levels.REASONS[key - 1][0])
                self._to(THANKS, now)
        self._last_press = now

    def tick(self, now):
        mode = self.mode
        age = ticks_diff(now, self._since)
        if mode == CHOSEN:
            if age >= CORRECT_MS:
                self._commit(now)
        elif mode in (THANKS, FULL):
            if age >= THANKS_MS and ticks_diff(now, self._last_press) >= QUIET_MS:
                self._to(PROMPT if self.token else IDLE, now)
                self._lit_at = now
        elif mode == REASON and age >= REASON_MS:
            self._to(THANKS, now)

    def _commit(self, now):
        token = self._token_at_press
        level = self.choice
        seq = self.store.rating(level, token, self._delay_at_press if token else None)
        if seq is None:
            self._to(FULL, now)
            return
        if token:
            self.used = token
            if self.token == token:
                self.token = ""  # one rating per session
        if levels.is_bad(level):
            self.ref = seq
            self._to(REASON, now)
        else:
            self._to(THANKS, now)


PALM = const(32)   # Debounce.feed: several keys down at once (bit 5 of the mask)


class Debounce:
    """Key bounce filter for five keys, sampled every few ms by the board (pure logic).

    A key counts as down after `n` consecutive pressed samples and as up after `n` released
    ones; `feed` returns a bit mask of the keys that went down in this sample (bit 0 = key 1;
    no allocation per sample). A held key gives one press. With 10 ms sampling and n=3, a
    contact must settle for 30 ms.

    The first sample is the keys' real state, not "all up": a key held (or a pad covered) at boot
    is not a press; it counts once it has been released and pressed again.

    Several keys down at once (raw samples, before debouncing) is a palm, a cloth or a wipe, not
    a choice: the mask has the PALM bit and no key bits, and no key counts as pressed again until
    every key has been up for `n` samples.
    """

    def __init__(self, n=3):
        self.n = n
        self.down = [False] * 5
        self._run = [0] * 5
        self._started = False
        self._palm = False
        self._quiet = 0

    def feed(self, pressed):
        """pressed: 5 booleans (level 1..5 order). Returns the mask of keys that went down, or
        PALM when two or more keys are down in this sample."""
        if not self._started:
            self._started = True
            for i in range(5):
                self.down[i] = pressed[i]
            return 0
        many = 0
        for i in range(5):
            if pressed[i]:
                many += 1
        out = 0
        if many >= 2:
            palm = not self._palm
            self._palm = True
            self._quiet = 0
            for i in range(5):
                self.down[i] = pressed[i]
                self._run[i] = 0
            return PALM if palm else 0
        if self._palm:
            self._quiet = self._quiet + 1 if many == 0 else 0
            if self._quiet >= self.n:
                self._palm = False
            for i in range(5):
                self.down[i] = pressed[i]
                self._run[i] = 0
            return 0
        for i in range(5):
            if pressed[i] != self.down[i]:
                self._run[i] += 1
                if self._run[i] >= self.n:
                    self.down[i] = pressed[i]
                    self._run[i] = 0
                    if pressed[i]:
                        out |= 1 << i
            else:
                self._run[i] = 0
        return out
