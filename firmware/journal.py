"""The rating journal: the terminal's flash outbox. Pure core: only `os` and a file path.

One record per line, each with its own CRC-32 so that a torn write is seen on boot:

    r,<seq>,<level>,<token>,<ts>,<crc>     a rating (token "" when no session was open)
    r,<seq>,<level>,<token>,<ts>,<delay>,<crc>   a rating with its press delay (ms since the
                                           prompt lit; firmware 0.3.0 on). Older firmware reads
                                           the first five fields and ignores the sixth, so a
                                           journal survives an update and a rollback
    n,<seq>,<ref>,<reason>,<ts>,<crc>      a bad-review reason for rating <ref>
    a,t<now>,<seq>,<seq>...,<crc>          sequence numbers the daemon acked, and the daemon
                                           time of that ack (stored durably)
    h,<next_seq>,<last_token>,<now>,<crc>  header, written by a compaction

<crc> is 8 hex digits of crc32 over the text before the last comma. Fields never hold a comma
(tokens are hex, reasons are words). A record is durable once `append` returns: the file is
opened, written and closed per record (littlefs commits on close). The citizen is thanked only
after that, so a torn record on boot was never confirmed and is dropped.

Sequence numbers start at 1 and never repeat on this terminal: the next one is one above the
highest ever seen in the file, and the header carries it over a compaction that drops every
record.

Daemon time survives a power cut: acks, headers and the records themselves carry it, and
`clock_s` is the latest seen (a lower bound of the time now; the app counts on from it).

The key loop never waits for the whole file. RAM holds the pending seqs and, for each, where its
line is (`_at`: offset << 8 | length, a small int), so reading a batch back (`records`) is one
seek and one read per record, and an ack is a binary search. Compaction copies only the pending
records, a bounded number of bytes per `compact_step` (called between key scans), into
`<path>.new`, then `os.rename`s it over the journal. Recovery handles each instant: `.new` with
the journal present is an unfinished compaction (deleted); `.new` alone means the rename had
removed the old file (kept).

Bounded size (policy when full): the file may not grow past `max_bytes`. When a record does not
fit, the journal compacts at once; if pending (undelivered) records alone still fill it, `append`
raises `Full` and the terminal refuses new ratings with a distinct "full" sign. Undelivered
ratings are never overwritten or dropped to make room.

A flash error (OSError) is passed to the caller; a record whose write failed is never counted,
and the next write first rewrites the journal (a failed append may have left a torn line).
"""
import os
from binascii import crc32

from haochaping.protocol.compat import const

RATING = "r"
REASON = "n"
_ACK = "a"
_HEAD = "h"
_MAX_LINE = const(120)
_STEP_BYTES = const(1024)   # bytes copied per compaction step: at most one flash block erase
_ACKS_PER_LINE = const(12)


class Full(Exception):
    """The journal holds `max_bytes` of undelivered records: the rating is refused, not stored."""


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _line(body):
    return ("%s,%08x\n" % (body, crc32(body.encode()) & 0xFFFFFFFF)).encode()


def _record_line(kind, seq, a, b, ts, delay):
    """A rating's or reason's line (the ring journal writes the same ones)."""
    body = "%s,%d,%s,%s,%d" % (kind, seq, a, b, ts)
    if delay is not None:
        body += ",%d" % delay
    return _line(body)


def _record(seq, rec):
    """A checked rating or reason line's fields as `records` gives them."""
    delay = int(rec[5]) if len(rec) > 5 and rec[0] == RATING else None
    return (seq, rec[0], int(rec[2]), rec[3], int(rec[4]), delay)


def _check(raw):
    """Return the fields of one raw line (bytes, no newline), or None if torn or damaged."""
    if len(raw) < 10 or raw[-9:-8] != b",":
        return None
    body = raw[:-9]
    try:
        if int(raw[-8:], 16) != crc32(body) & 0xFFFFFFFF:
            return None
        return body.decode().split(",")
    except (ValueError, UnicodeError):
        return None


def _after(seqs, seq):
    """Index of the first item of the ascending list `seqs` above `seq` (binary search)."""
    lo = 0
    hi = len(seqs)
    while lo < hi:
        mid = (lo + hi) >> 1
        if seqs[mid] <= seq:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _has(seqs, seq):
    i = _after(seqs, seq) - 1
    return i >= 0 and seqs[i] == seq


class Journal:
    def __init__(self, path, max_bytes=32768, compact_at=8192, seq_floor=1):
        if max_bytes < 4 * _MAX_LINE or compact_at > max_bytes:
            raise ValueError("journal: max_bytes too small or compact_at above it")
        self.path = path
        self.max_bytes = max_bytes
        self.compact_at = compact_at
        self.pending = []      # seqs not yet acked, ascending (delivery order: oldest first)
        self._at = []          # for each pending seq: offset << 8 | line length, in the file
        self._live = 0         # bytes of the pending records
        self.next_seq = 1
        self.last_token = ""   # token of the last rating: a redelivered session is not rated twice
        self.clock_s = 0       # latest daemon time (Unix s) stored in the file; 0: never
        self.size = 0
        self.dropped = 0       # damaged or torn lines seen at recovery
        self.compactions = 0
        self.reads = 0         # record lines read back from the file since boot
        self._tight = False    # True after a compaction, until the next ack
        self._torn = False     # a write failed: the file may end in a torn line
        self._job = None       # a compaction in progress: [file, last seq copied, seqs, ats, size]
        self._acks = []        # acked seqs not yet written (write_acks)
        self._acks_now = 0
        self._recover()
        # a terminal whose flash was wiped and re-provisioned must not reuse seqs the daemon
        # already has (it would drop the new ratings as duplicates): provisioning sets the floor
        if self.next_seq < seq_floor:
            self.next_seq = seq_floor

    # ------------------------------------------------------------ boot

    def _recover(self):
        new = self.path + ".new"
        if _exists(new):
            if _exists(self.path):
                os.remove(new)           # cut during compaction: the old journal is intact
            else:
                os.rename(new, self.path)  # cut between remove and rename (FAT): .new is whole
        if not _exists(self.path):
            with open(self.path, "wb"):
                pass
        pending = []
        ats = []
        acked = []
        top = 0
        clean = True
        pos = 0
        clock = 0
        with open(self.path, "rb") as f:
            while True:
                raw = f.readline()
                if not raw:
                    break
                n = len(raw)
                at = pos
                pos += n
                rec = _check(raw[:-1]) if raw[-1:] == b"\n" else None
                if rec is None:
                    self.dropped += 1
                    clean = False
                    continue
                kind = rec[0]
                try:
                    if kind == _HEAD:
                        top = max(top, int(rec[1]) - 1)
                        self.last_token = rec[2]
                        if len(rec) > 3:
                            clock = max(clock, int(rec[3]))
                    elif kind == _ACK:
                        for s in rec[1:]:
                            if s[:1] == "t":
                                clock = max(clock, int(s[1:]))
                            else:
                                acked.append(int(s))
                    elif kind in (RATING, REASON):
                        seq = int(rec[1])
                        clock = max(clock, int(rec[4]))
                        top = max(top, seq)
                        pending.append(seq)
                        ats.append(at << 8 | n)
                        if kind == RATING:
                            self.last_token = rec[3]
                    else:
                        raise ValueError
                except (ValueError, IndexError):
                    self.dropped += 1
                    clean = False
        self.next_seq = top + 1
        self.clock_s = clock
        acked.sort()
        # records are appended in seq order; sort anyway (a file edited by hand still boots)
        for i in range(1, len(pending)):
            if pending[i] <= pending[i - 1]:
                pairs = sorted([(pending[k], ats[k]) for k in range(len(pending))])
                pending = [x[0] for x in pairs]
                ats = [x[1] for x in pairs]
                break
        live = 0
        for i in range(len(pending)):
            if not _has(acked, pending[i]):
                self.pending.append(pending[i])
                self._at.append(ats[i])
                live += ats[i] & 0xFF
        self._live = live
        self.size = pos
        if not clean:
            # never append after a torn tail: the next record would merge with it
            self.compact()

    # ------------------------------------------------------------ writes

    def _append(self, text):
        try:
            with open(self.path, "ab") as f:
                f.write(text)
        except OSError:
            self._torn = True
            raise
        self.size += len(text)

    def _room(self, n):
        if self._torn:
            self.compact()  # rewrites from the index: a torn tail is left behind
        if self.size + n <= self.max_bytes:
            return
        if not self._tight:  # compacting again before an ack would free nothing
            self.compact()
        if self.size + n > self.max_bytes:
            raise Full()

    def _add(self, kind, a, b, ts, delay=None):
        seq = self.next_seq
        text = _record_line(kind, seq, a, b, ts, delay)
        self._room(len(text) + _MAX_LINE)  # keep room for one ack record
        at = self.size
        self._append(text)
        self.next_seq = seq + 1
        self.pending.append(seq)
        self._at.append(at << 8 | len(text))
        self._live += len(text)
        if ts > self.clock_s:
            self.clock_s = ts
        return seq

    def add_rating(self, level, token, ts, delay=None):
        """Store a rating durably (`delay`: ms from its prompt lighting to the press, or None);
        return its seq. Raises Full (nothing stored) or OSError."""
        seq = self._add(RATING, level, token, ts, delay)
        self.last_token = token
        return seq

    def add_reason(self, ref, reason, ts):
        """Store a bad-review reason for rating `ref`; return its own seq. Raises Full."""
        return self._add(REASON, ref, reason, ts)

    def ack(self, seqs, now=0):
        """Mark seqs delivered (the daemon stored them at daemon time `now`). Return how many
        were pending. RAM only: `write_acks` stores them, `compact_step` drops the records."""
        pending = self.pending
        hit = []
        for s in seqs:
            i = _after(pending, s) - 1
            if i >= 0 and pending[i] == s:
                hit.append(s)
                self._live -= self._at[i] & 0xFF
                del pending[i]
                del self._at[i]
        if not hit:
            return 0
        self._tight = False
        if now > self.clock_s:
            self.clock_s = now
        self._acks += hit
        self._acks_now = now
        return len(hit)

    def acks_due(self, full=_ACKS_PER_LINE):
        """Acked seqs waiting to be written: at least `full` of them, or any when full=1."""
        return len(self._acks) >= full

    def write_acks(self):
        """Store the acks received since the last call, in one write. Until then an ack lives
        in RAM only: after a power cut those records are sent again (the daemon dedups), so the
        key loop pays one flash write per dozen acks, not one per ack."""
        hit = self._acks
        if not hit:
            return
        self._acks = []
        hit.sort()
        try:
            self._write_acks(hit, self._acks_now, None)
        except OSError:
            self._acks = hit + self._acks
            raise

    def _write_acks(self, hit, now, job):
        """Ack lines: appended to the journal, or (job) written into a compaction's new file."""
        stamp = ",t%d" % now if now else ""
        lines = []
        for i in range(0, len(hit), _ACKS_PER_LINE):
            lines.append(_line(_ACK + stamp + "," + ",".join([str(s) for s in
                                                              hit[i:i + _ACKS_PER_LINE]])))
            stamp = ""
        text = b"".join(lines)  # one write: one flash commit however many lines
        if job is None:
            self._append(text)
        else:
            job[0].write(text)
            job[4] += len(text)

    # ------------------------------------------------------------ compaction

    def compact_due(self):
        """True when a compaction would free at least half the file (and the file is past
        `compact_at`): a backlog being delivered is not copied again after every ack."""
        if self._job is not None:
            return True
        return self.size >= self.compact_at and self._live * 2 <= self.size

    def compact_step(self, budget=_STEP_BYTES):
        """Copy up to `budget` bytes of pending records into `<path>.new`; when all are there,
        switch files. Returns True while a compaction is in progress. OSError: the compaction is
        abandoned (`.new` removed), the journal is as it was."""
        if self._job is None:
            if not self.compact_due():
                return False
            # kept open across steps: closed at the switch or by _abandon
            self._job = [open(self.path + ".new", "wb"), 0, [], [], 0]  # noqa: SIM115
        job = self._job
        try:
            return self._copy(job, budget)
        except OSError:
            self._abandon()
            raise

    def _copy(self, job, budget):
        pending = self.pending
        ats = self._at
        out = job[0]
        i = _after(pending, job[1])
        copied = 0
        if i < len(pending):
            with open(self.path, "rb") as src:
                while i < len(pending) and copied < budget:
                    a = ats[i]
                    n = a & 0xFF
                    src.seek(a >> 8)
                    raw = src.read(n)
                    self.reads += 1
                    if len(raw) != n:
                        raise OSError("journal: short read")
                    out.write(raw)
                    job[1] = pending[i]
                    job[2].append(pending[i])
                    job[3].append(job[4] << 8 | n)
                    job[4] += n
                    copied += n
                    i += 1
        if i < len(pending):
            return True
        # every pending record is in the new file: those acked meanwhile get an ack line there,
        # the header carries the next seq, the last token and the time, then the switch
        gone = [s for s in job[2] if not _has(pending, s)]
        if gone:
            self._write_acks(gone, 0, job)
        text = _line("%s,%d,%s,%d" % (_HEAD, self.next_seq, self.last_token, self.clock_s))
        out.write(text)
        job[4] += len(text)
        out.close()
        os.rename(self.path + ".new", self.path)
        new_at = []
        k = 0
        seqs = job[2]
        for s in pending:
            while seqs[k] != s:
                k += 1
            new_at.append(job[3][k])
        self._at = new_at
        self.size = job[4]
        self._job = None
        self._torn = False
        self._acks = []        # every ack is in the new file: acked records were left out
        self.compactions += 1
        self._tight = True
        return False

    def _abandon(self):
        job = self._job
        self._job = None
        if job is not None:
            try:
                job[0].close()
            except OSError:
                pass
            _remove(self.path + ".new")

    def compact(self):
        """Rewrite the journal with only the pending records, at once (boot recovery, a full
        journal, a failed write)."""
        self._abandon()
        self._job = [open(self.path + ".new", "wb"), 0, [], [], 0]  # noqa: SIM115
        try:
            self._copy(self._job, 1 << 30)
        except OSError:
            self._abandon()
            raise

    # ------------------------------------------------------------ reads

    def records(self, after=0, limit=1000000):
        """The pending records with seq > after, oldest first, at most `limit`, as a list of
        (seq, kind, a, b, ts, delay): for a rating a=level (int), b=token, delay=its press
        delay in ms or None (none recorded: no prompt, or an older firmware's record); for a
        reason a=ref (int), b=reason, delay=None. One seek and one read per record; the file
        is closed before this returns (a compaction may replace it). A record that no longer
        reads back whole is skipped and counted in `dropped` (damaged flash); it stays
        pending."""
        out = []  # type: list
        pending = self.pending
        i = _after(pending, after)
        if i >= len(pending):
            return out
        with open(self.path, "rb") as f:
            while i < len(pending) and len(out) < limit:
                a = self._at[i]
                f.seek(a >> 8)
                raw = f.read(a & 0xFF)
                self.reads += 1
                rec = _check(raw[:-1]) if raw[-1:] == b"\n" else None
                seq = pending[i]
                i += 1
                if rec is None or (rec[0] != RATING and rec[0] != REASON) or int(rec[1]) != seq:
                    self.dropped += 1
                    continue
                out.append(_record(seq, rec))
        return out
