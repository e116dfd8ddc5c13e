"""The rating journal: the terminal's flash outbox. Pure core: only `os` and a file path.

One record per line, each with its own CRC-32 so that a torn write is seen on boot:

    h,<next_seq>,<last_token>,<crc>        header, first line after a compaction
    r,<seq>,<level>,<token>,<ts>,<crc>     a rating (token "" when no session was open)
    n,<seq>,<ref>,<reason>,<ts>,<crc>      a bad-review reason for rating <ref>
    a,<seq>,<seq>...,<crc>                 sequence numbers the daemon acked (stored durably)

<crc> is 8 hex digits of crc32 over the text before the last comma. Fields never hold a comma
(tokens are hex, reasons are words). A record is durable once `append` returns: the file is
opened, written and closed per record (littlefs commits on close). The citizen is thanked only
after that, so a torn record on boot was never confirmed and is dropped.

Sequence numbers start at 1 and never repeat on this terminal: the next one is one above the
highest ever seen in the file, and the header carries it over a compaction that drops every
record.

Compaction writes every pending record into `<path>.new`, closes it, then `os.rename`s it over
the journal. Recovery handles each instant: `.new` with the journal present is an unfinished
compaction (deleted); `.new` alone means the rename had removed the old file (kept).

Bounded size (policy when full): the file may not grow past `max_bytes`. When a record does not
fit, the journal compacts; if pending (undelivered) records alone still fill it, `append` raises
`Full` and the terminal refuses new ratings with a distinct "full" sign. Undelivered ratings are
never overwritten or dropped to make room.

RAM: only the pending sequence numbers are kept in memory (a list of small ints); record bodies
are read back from the file when they are (re)sent.
"""
import os
from binascii import crc32

from haochaping.protocol.compat import const

RATING = "r"
REASON = "n"
_ACK = "a"
_HEAD = "h"
_MAX_LINE = const(120)


class Full(Exception):
    """The journal holds `max_bytes` of undelivered records: the rating is refused, not stored."""


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _line(body):
    return ("%s,%08x\n" % (body, crc32(body.encode()) & 0xFFFFFFFF)).encode()


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


class Journal:
    def __init__(self, path, max_bytes=32768, compact_at=8192, seq_floor=1):
        if max_bytes < 4 * _MAX_LINE or compact_at > max_bytes:
            raise ValueError("journal: max_bytes too small or compact_at above it")
        self.path = path
        self.max_bytes = max_bytes
        self.compact_at = compact_at
        self.pending = []      # seqs not yet acked, ascending (delivery order: oldest first)
        self.next_seq = 1
        self.last_token = ""   # token of the last rating: a redelivered session is not rated twice
        self.size = 0
        self.dropped = 0       # damaged or torn lines seen at recovery
        self.compactions = 0
        self._tight = False    # True after a compaction, until the next ack
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
        acked = []
        top = 0
        clean = True
        size = 0
        with open(self.path, "rb") as f:
            while True:
                raw = f.readline()
                if not raw:
                    break
                size += len(raw)
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
                    elif kind == _ACK:
                        for s in rec[1:]:
                            acked.append(int(s))
                    else:
                        seq = int(rec[1])
                        top = max(top, seq)
                        pending.append(seq)
                        if kind == RATING:
                            self.last_token = rec[3]
                except (ValueError, IndexError):
                    self.dropped += 1
                    clean = False
        self.next_seq = top + 1
        acked_set = set(acked)
        pending.sort()
        self.pending = [s for s in pending if s not in acked_set]
        self.size = size
        if not clean:
            # never append after a torn tail: the next record would merge with it
            self.compact()

    # ------------------------------------------------------------ writes

    def _append(self, text):
        with open(self.path, "ab") as f:
            f.write(text)
        self.size += len(text)

    def _room(self, n):
        if self.size + n <= self.max_bytes:
            return
        if not self._tight:  # compacting again before an ack would free nothing
            self.compact()
        if self.size + n > self.max_bytes:
            raise Full()

    def _add(self, kind, a, b, ts):
        seq = self.next_seq
        text = _line("%s,%d,%s,%s,%d" % (kind, seq, a, b, ts))
        self._room(len(text) + _MAX_LINE)  # keep room for one ack record
        self._append(text)
        self.next_seq = seq + 1
        self.pending.append(seq)
        return seq

    def add_rating(self, level, token, ts):
        """Store a rating durably; return its seq. Raises Full (nothing stored)."""
        seq = self._add(RATING, level, token, ts)
        self.last_token = token
        return seq

    def add_reason(self, ref, reason, ts):
        """Store a bad-review reason for rating `ref`; return its own seq. Raises Full."""
        return self._add(REASON, ref, reason, ts)

    def ack(self, seqs):
        """Mark seqs delivered (the daemon stored them). Return how many were pending."""
        hit = [s for s in seqs if s in self.pending]
        if not hit:
            return 0
        hit.sort()
        for s in hit:
            self.pending.remove(s)
        self._tight = False
        if self.size + len(hit) * 8 + _MAX_LINE >= self.compact_at:
            self.compact()  # the new file leaves the acked records out: no ack line needed
            return len(hit)
        # one ack line per <= 12 seqs keeps lines short
        for i in range(0, len(hit), 12):
            self._append(_line(_ACK + "," + ",".join([str(s) for s in hit[i:i + 12]])))
        return len(hit)

    def compact(self):
        """Rewrite the journal with only the pending records, via a new file and os.rename."""
        new = self.path + ".new"
        keep = self.pending
        size = 0
        with open(new, "wb") as out:
            text = _line("%s,%d,%s" % (_HEAD, self.next_seq, self.last_token))
            out.write(text)
            size += len(text)
            if keep:
                with open(self.path, "rb") as f:
                    while True:
                        raw = f.readline()
                        if not raw:
                            break
                        rec = _check(raw[:-1]) if raw[-1:] == b"\n" else None
                        if rec and (rec[0] == RATING or rec[0] == REASON) and int(rec[1]) in keep:
                            out.write(raw)
                            size += len(raw)
        os.rename(new, self.path)
        self.size = size
        self.compactions += 1
        self._tight = True

    # ------------------------------------------------------------ reads

    def records(self, after=0, limit=1000000):
        """The pending records with seq > after, oldest first, at most `limit`, as a list of
        (seq, kind, a, b, ts): for a rating a=level (int), b=token; for a reason a=ref (int),
        b=reason. The file is closed before this returns (a compaction may replace it)."""
        out = []  # type: list
        if not self.pending or self.pending[-1] <= after:
            return out
        with open(self.path, "rb") as f:
            while len(out) < limit:
                raw = f.readline()
                if not raw:
                    break
                rec = _check(raw[:-1]) if raw[-1:] == b"\n" else None
                if rec is None or (rec[0] != RATING and rec[0] != REASON):
                    continue
                seq = int(rec[1])
                if seq > after and seq in self.pending:
                    out.append((seq, rec[0], int(rec[2]), rec[3], int(rec[4])))
        return out
