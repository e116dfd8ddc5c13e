"""Console sessions (in memory: a daemon restart signs everyone out) and the wrong-PIN limiter.

A session is what the browser's cookie names: a random id (the cookie), a CSRF token that every
write must echo in a header, and, once signed in, the account, its role and the one place it
signed in at (a window, or the hall for a manager). A sign-in replaces the session id (no
fixation) and ends the account's other sessions (one person, one window).
"""
import secrets
import threading
import time

_ANON_TTL = 1800      # an unsigned-in session (sign-in form shown) lives this long
_MAX_SESSIONS = 5000  # oldest unsigned-in sessions go first when there are more


class Session:
    __slots__ = ("sid", "csrf", "number", "name", "role", "place", "created", "seen")

    def __init__(self, now):
        self.sid = secrets.token_urlsafe(32)
        self.csrf = secrets.token_urlsafe(32)
        self.number = self.name = self.role = self.place = None
        self.created = self.seen = now

    @property
    def signed_in(self):
        return self.number is not None


class Sessions:
    def __init__(self, idle_s, max_s, clock=time.time):
        self.idle_s, self.max_s = idle_s, max_s
        self.clock = clock
        self._by_sid = {}
        self._lock = threading.Lock()

    def get(self, sid):
        """The live session for a cookie value, or None (unknown or expired)."""
        if not sid:
            return None
        now = self.clock()
        with self._lock:
            s = self._by_sid.get(sid)
            if s is not None and self._expired(s, now):
                del self._by_sid[sid]
                s = None
            return s

    def _expired(self, s, now):
        if not s.signed_in:
            return now - s.seen > _ANON_TTL
        return now - s.seen > self.idle_s or now - s.created > self.max_s

    def new(self):
        now = self.clock()
        s = Session(now)
        with self._lock:
            if len(self._by_sid) >= _MAX_SESSIONS:
                self._sweep(now)
            self._by_sid[s.sid] = s
        return s

    def _sweep(self, now):
        for sid, s in list(self._by_sid.items()):
            if self._expired(s, now):
                del self._by_sid[sid]
        anon = sorted((s.seen, sid) for sid, s in self._by_sid.items() if not s.signed_in)
        for _, sid in anon[:max(0, len(self._by_sid) - _MAX_SESSIONS + 1)]:
            del self._by_sid[sid]

    def sign_in(self, old, acct, place):
        """A fresh session for the account at `place`; ends `old` and the account's others."""
        now = self.clock()
        s = Session(now)
        s.number, s.name, s.role, s.place = acct["number"], acct["name"], acct["role"], place
        with self._lock:
            if old is not None:
                self._by_sid.pop(old.sid, None)
            for sid, other in list(self._by_sid.items()):
                if other.number == s.number:
                    del self._by_sid[sid]
            self._by_sid[s.sid] = s
        return s

    def touch(self, s):
        s.seen = self.clock()

    def end(self, s):
        with self._lock:
            self._by_sid.pop(s.sid, None)

    def alive(self, s):
        """Still the live session (not signed out, replaced or expired)?"""
        return self.get(s.sid) is s

    def signed_in_at(self):
        """{place: [(number, name)]} of live signed-in sessions, for the manager page."""
        now = self.clock()
        out = {}
        with self._lock:
            for s in self._by_sid.values():
                if s.signed_in and not self._expired(s, now):
                    out.setdefault(s.place, []).append((s.number, s.name))
        return out


class PinLimiter:
    """After `failures` wrong PINs in a row for one staff number, or from one client address,
    sign-in is refused for `lockout_s` seconds, even with the right PIN."""

    def __init__(self, failures, lockout_s, clock=time.time):
        self.failures, self.lockout_s = failures, lockout_s
        self.clock = clock
        self._fails = {}   # key -> (count, last failure time)
        self._lock = threading.Lock()

    def wait_s(self, *keys):
        """Seconds until a sign-in may be tried for these keys (0: now)."""
        now = self.clock()
        wait = 0
        with self._lock:
            for k in keys:
                count, last = self._fails.get(k, (0, 0))
                if now - last >= self.lockout_s:
                    self._fails.pop(k, None)
                elif count >= self.failures:
                    wait = max(wait, int(last + self.lockout_s - now) + 1)
        return wait

    def failed(self, *keys):
        now = self.clock()
        with self._lock:
            if len(self._fails) > 100000:
                self._fails.clear()  # a flood of made-up numbers: start over rather than grow
            for k in keys:
                count, _ = self._fails.get(k, (0, 0))
                self._fails[k] = (count + 1, now)

    def succeeded(self, *keys):
        with self._lock:
            for k in keys:
                self._fails.pop(k, None)
