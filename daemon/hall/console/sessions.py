"""Console sessions, kept in the hall database so that a daemon restart signs nobody out, and
the wrong-PIN limiter.

A session is what the browser's cookie names: a random id (the cookie), a CSRF token that every
write must echo in a header, and, once signed in, the account, its role and the one place it
signed in at (a window, or the hall for a manager). A sign-in replaces the session id (no
fixation) and ends the account's other sessions (one person, one window); the page of an ended
one is told why ("elsewhere": signed in at another place).

Signed-in sessions are also rows of `console_sessions`, keyed by the SHA-256 of the session id:
the id itself is never stored, so reading the database does not give a cookie. The daemon reads
them back when it starts; the same expiry rules apply (idle and maximum age). Writes go through
the daemon's writer thread (`write`): a sign-in and a sign-out wait for their commit, the time
of the last click is written at most every _SEEN_WRITE_S seconds and not waited for (after a
restart a session may have up to that much less idle time left). Unsigned-in sessions (a sign-in
form shown) stay in memory only: after a restart such a page gets a new CSRF token and signs in.
"""
import hashlib
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Clock = Callable[[], float]
# write(command, args, wait): the daemon's writer runs the named command (daemon/hall/
# commands.py) with these arguments; wait for its commit if `wait`
Write = Callable[[str, tuple[Any, ...], bool], None]

_ANON_TTL = 1800      # an unsigned-in session (sign-in form shown) lives this long
_MAX_SESSIONS = 5000  # oldest unsigned-in sessions go first when there are more
_MAX_ENDED = 5000     # why a session ended, remembered for its page (oldest forgotten first)
_SEEN_WRITE_S = 10    # a session's last click is written to the database at most this often


def key_of(sid: str) -> str:
    """What the database keeps of a session id: its SHA-256 (the id is 256 random bits, so a
    fast hash is enough: nobody can search that space)."""
    return hashlib.sha256(sid.encode()).hexdigest()


class Session:
    __slots__ = ("sid", "key", "csrf", "number", "name", "role", "place", "created", "seen",
                 "saved_seen")

    sid: str | None     # the cookie's value; None for a session read back after a restart
    key: str            # key_of(sid)
    csrf: str
    number: str | None  # these four are set together at sign-in, and only then
    name: str | None
    role: str | None
    place: str | None   # the window, or "hall" for a manager
    created: float
    seen: float
    saved_seen: float   # the `seen` the database has

    def __init__(self, now: float, sid: str | None = None, key: str = "") -> None:
        if sid is None and not key:
            sid = secrets.token_urlsafe(32)
        self.sid = sid
        self.key = key_of(sid) if sid is not None else key
        self.csrf = secrets.token_urlsafe(32)
        self.number = self.name = self.role = self.place = None
        self.created = self.seen = self.saved_seen = now

    @property
    def signed_in(self) -> bool:
        return self.number is not None


def _no_write(command: str, args: tuple[Any, ...], wait: bool) -> None:
    """For Sessions without a database (their tests): nothing is kept."""


class Sessions:
    def __init__(self, idle_s: float, max_s: float, clock: Clock = time.time,
                 write: Write = _no_write) -> None:
        self.idle_s, self.max_s = idle_s, max_s
        self.clock = clock
        self.write = write
        self._by_key: dict[str, Session] = {}
        self._ended: OrderedDict[str, tuple[str, str | None]] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, conn: sqlite3.Connection) -> int:
        """Read back the signed-in sessions a previous run of the daemon kept; the expired ones
        are deleted. Returns how many are live."""
        now = self.clock()
        expired = []
        with self._lock:
            for r in conn.execute("SELECT key, csrf, number, name, role, place, created, seen"
                                  " FROM console_sessions"):
                s = Session(r[6], key=r[0])
                s.csrf, s.number, s.name, s.role, s.place = r[1], r[2], r[3], r[4], r[5]
                s.seen = s.saved_seen = r[7]
                if self._expired(s, now):
                    expired.append(s.key)
                else:
                    self._by_key[s.key] = s
            live = len(self._by_key)
        if expired:
            self.write("sessions_delete", (expired,), False)
        return live

    def get(self, sid: str | None) -> Session | None:
        """The live session for a cookie value, or None (unknown or expired)."""
        if not sid:
            return None
        return self._get(key_of(sid))

    def _get(self, key: str) -> Session | None:
        now = self.clock()
        with self._lock:
            s = self._by_key.get(key)
            if s is not None and self._expired(s, now):
                del self._by_key[key]
                if s.signed_in:
                    self.write("sessions_delete", ([key],), False)
                s = None
            return s

    def why_ended(self, sid: str | None) -> tuple[str, str | None] | None:
        """Why the session of this cookie ended, if it was ended by another sign-in of its
        account: ("elsewhere", the place signed in at). None: unknown, expired or signed out."""
        if not sid:
            return None
        with self._lock:
            return self._ended.get(key_of(sid))

    def _expired(self, s: Session, now: float) -> bool:
        if not s.signed_in:
            return now - s.seen > _ANON_TTL
        return now - s.seen > self.idle_s or now - s.created > self.max_s

    def new(self) -> Session:
        now = self.clock()
        s = Session(now)
        with self._lock:
            if len(self._by_key) >= _MAX_SESSIONS:
                self._sweep(now)
            self._by_key[s.key] = s
        return s

    def _sweep(self, now: float) -> None:
        gone = []
        for key, s in list(self._by_key.items()):
            if self._expired(s, now):
                del self._by_key[key]
                if s.signed_in:
                    gone.append(key)
        anon = sorted((s.seen, key) for key, s in self._by_key.items() if not s.signed_in)
        for _, key in anon[:max(0, len(self._by_key) - _MAX_SESSIONS + 1)]:
            del self._by_key[key]
        if gone:
            self.write("sessions_delete", (gone,), False)

    def sign_in(self, old: Session | None, acct: Mapping[str, Any], place: str) -> Session:
        """A fresh session for the account at `place`; ends `old` and the account's others
        (their pages are told: signed in elsewhere). Returns once the database has it."""
        now = self.clock()
        s = Session(now)
        s.number, s.name, s.role, s.place = acct["number"], acct["name"], acct["role"], place
        with self._lock:
            if old is not None:
                self._by_key.pop(old.key, None)
            for key, other in list(self._by_key.items()):
                if other.number == s.number:
                    del self._by_key[key]
                    self._ended[key] = ("elsewhere", place)
            while len(self._ended) > _MAX_ENDED:
                self._ended.popitem(last=False)
            self._by_key[s.key] = s
        self.write("session_save", ((s.key, s.csrf, s.number, s.name, s.role, s.place,
                                     s.created, s.seen),), True)
        return s

    def touch(self, s: Session) -> None:
        s.seen = now = self.clock()
        if s.signed_in and now - s.saved_seen >= _SEEN_WRITE_S:
            s.saved_seen = now
            self.write("session_seen", (s.key, now), False)

    def end(self, s: Session) -> None:
        with self._lock:
            self._by_key.pop(s.key, None)
        if s.signed_in:
            self.write("sessions_delete", ([s.key],), True)

    def alive(self, s: Session) -> bool:
        """Still the live session (not signed out, replaced or expired)?"""
        return self._get(s.key) is s

    def signed_in_at(self) -> dict[str, list[tuple[str, str]]]:
        """{place: [(number, name)]} of live signed-in sessions, for the manager page."""
        now = self.clock()
        out: dict[str, list[tuple[str, str]]] = {}
        with self._lock:
            for s in self._by_key.values():
                # signed in: number, name and place are set (the checks only tell the types)
                if (s.number is not None and s.name is not None and s.place is not None
                        and not self._expired(s, now)):
                    out.setdefault(s.place, []).append((s.number, s.name))
        return out


class PinLimiter:
    """Wrong PINs in a row, per key (a staff number, a client address). A sign-in is counted
    as a wrong PIN when it begins, before its PIN is checked, in one step with the check that
    the keys are not locked: so parallel sign-ins cannot all pass the check before any of them
    is counted. A right PIN clears its keys, except for the sign-ins still being checked (they
    stay counted: a guess racing the right PIN is no free try). After `limit` counted
    sign-ins for a key, sign-in with it is refused for `lockout_s` seconds, even with the
    right PIN."""

    def __init__(self, lockout_s: float, clock: Clock = time.time) -> None:
        self.lockout_s = lockout_s
        self.clock = clock
        # key -> [counted, last attempt time, sign-ins being checked now]
        self._fails: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _wait(self, key: str, limit: int, now: float) -> int:
        count, last, checking = self._fails.get(key, (0, 0, 0))
        if now - last >= self.lockout_s and not checking:
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
        counted as a wrong PIN (and as being checked until finished()); else the seconds until
        one may (not counted)."""
        now = self.clock()
        with self._lock:
            wait = max([self._wait(k, n, now) for k, n in limits.items()], default=0)
            if wait:
                return wait
            if len(self._fails) > 100000:
                self._fails.clear()  # a flood of made-up numbers: start over rather than grow
            for k in limits:
                f = self._fails.setdefault(k, [0, now, 0])
                f[0] += 1
                f[1] = now
                f[2] += 1
            return 0

    def finished(self, keys: Iterable[str], ok: bool) -> None:
        """A sign-in begun with attempt() is over: ok (the right PIN) clears its keys but for
        the other sign-ins still being checked; else it stays counted."""
        with self._lock:
            for k in keys:
                f = self._fails.get(k)
                if f is None:
                    continue
                f[2] = max(0, f[2] - 1)
                if ok:
                    f[0] = f[2]
