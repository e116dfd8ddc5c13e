"""Console sessions (in memory: a daemon restart signs everyone out) and the wrong-PIN limiter.

A session is what the browser's cookie names: a random id (the cookie), a CSRF token that every
write must echo in a header, and, once signed in, the account, its role and the one place it
signed in at (a window, or the hall for a manager). A sign-in replaces the session id (no
fixation) and ends the account's other sessions (one person, one window).
"""
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

Clock = Callable[[], float]

_ANON_TTL = 1800      # an unsigned-in session (sign-in form shown) lives this long
_MAX_SESSIONS = 5000  # oldest unsigned-in sessions go first when there are more


class Session:
    __slots__ = ("sid", "csrf", "number", "name", "role", "place", "created", "seen")

    sid: str
    csrf: str
    number: str | None  # these four are set together at sign-in, and only then
    name: str | None
    role: str | None
    place: str | None   # the window, or "hall" for a manager
    created: float
    seen: float

    def __init__(self, now: float) -> None:
        self.sid = secrets.token_urlsafe(32)
        self.csrf = secrets.token_urlsafe(32)
        self.number = self.name = self.role = self.place = None
        self.created = self.seen = now

    @property
    def signed_in(self) -> bool:
        return self.number is not None


class Sessions:
    def __init__(self, idle_s: float, max_s: float, clock: Clock = time.time) -> None:
        self.idle_s, self.max_s = idle_s, max_s
        self.clock = clock
        self._by_sid: dict[str, Session] = {}
        self._lock = threading.Lock()

    def get(self, sid: str | None) -> Session | None:
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

    def _expired(self, s: Session, now: float) -> bool:
        if not s.signed_in:
            return now - s.seen > _ANON_TTL
        return now - s.seen > self.idle_s or now - s.created > self.max_s

    def new(self) -> Session:
        now = self.clock()
        s = Session(now)
        with self._lock:
            if len(self._by_sid) >= _MAX_SESSIONS:
                self._sweep(now)
            self._by_sid[s.sid] = s
        return s

    def _sweep(self, now: float) -> None:
        for sid, s in list(self._by_sid.items()):
            if self._expired(s, now):
                del self._by_sid[sid]
        anon = sorted((s.seen, sid) for sid, s in self._by_sid.items() if not s.signed_in)
        for _, sid in anon[:max(0, len(self._by_sid) - _MAX_SESSIONS + 1)]:
            del self._by_sid[sid]

    def sign_in(self, old: Session | None, acct: Mapping[str, Any], place: str) -> Session:
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

    def touch(self, s: Session) -> None:
        s.seen = self.clock()

    def end(self, s: Session) -> None:
        with self._lock:
            self._by_sid.pop(s.sid, None)

    def alive(self, s: Session) -> bool:
        """Still the live session (not signed out, replaced or expired)?"""
        return self.get(s.sid) is s

    def signed_in_at(self) -> dict[str, list[tuple[str, str]]]:
        """{place: [(number, name)]} of live signed-in sessions, for the manager page."""
        now = self.clock()
        out: dict[str, list[tuple[str, str]]] = {}
        with self._lock:
            for s in self._by_sid.values():
                # signed in: number, name and place are set (the checks only tell the types)
                if (s.number is not None and s.name is not None and s.place is not None
                        and not self._expired(s, now)):
                    out.setdefault(s.place, []).append((s.number, s.name))
        return out


class PinLimiter:
    """Wrong PINs in a row, per key (a staff number, a client address). A sign-in is counted
    as a wrong PIN when it begins, before its PIN is checked, in one step with the check that
    the keys are not locked: so parallel sign-ins cannot all pass the check before any of them
    is counted. A right PIN clears its keys. After `limit` counted sign-ins for a key, sign-in
    with it is refused for `lockout_s` seconds, even with the right PIN."""

    def __init__(self, lockout_s: float, clock: Clock = time.time) -> None:
        self.lockout_s = lockout_s
        self.clock = clock
        self._fails: dict[str, tuple[int, float]] = {}   # key -> (count, last attempt time)
        self._lock = threading.Lock()

    def _wait(self, key: str, limit: int, now: float) -> int:
        count, last = self._fails.get(key, (0, 0))
        if now - last >= self.lockout_s:
            self._fails.pop(key, None)
        elif count >= limit:
            return int(last + self.lockout_s - now) + 1
        return 0

    def wait_s(self, limits: Mapping[str, int]) -> int:
        """Seconds until a sign-in may be tried with these keys ({key: limit}); 0: now."""
        now = self.clock()
        with self._lock:
            return max([self._wait(k, n, now) for k, n in limits.items()], default=0)

    def attempt(self, limits: Mapping[str, int]) -> int:
        """Begin a sign-in with these keys ({key: limit}): 0 if it may go on, and then it is
        counted as a wrong PIN until succeeded(); else the seconds until one may (not counted)."""
        now = self.clock()
        with self._lock:
            wait = max([self._wait(k, n, now) for k, n in limits.items()], default=0)
            if wait:
                return wait
            if len(self._fails) > 100000:
                self._fails.clear()  # a flood of made-up numbers: start over rather than grow
            for k in limits:
                count, _ = self._fails.get(k, (0, 0))
                self._fails[k] = (count + 1, now)
            return 0

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for k in keys:
                self._fails.pop(k, None)
