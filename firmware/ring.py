"""The rating journal on a raw flash partition: writes that never erase in the key loop.

The same outbox as journal.py (same record lines, same interface for the app and the link), on
a block device instead of a file: on the ESP32 an `esp32.Partition` of type data (the
`hcpjournal` partition, docs/firmware.md "Journal on a raw partition"); under test a stand-in
(tools/sim/sim_device/norflash.py). Only the extended block protocol is used:
`readblocks(n, buf, off)`, `writeblocks(n, buf, off)` (with an offset: a program, no erase) and
`ioctl(6, n)` (erase one sector). NOR flash programs 1 -> 0 bits without an erase, so:

- a sector is erased ahead of time, one erase per housekeeping step (`compact_step`), never in
  the step that stores a rating; right after its erase it gets a 4-byte mark (`HCPE`), so a
  sector whose erase was cut by a power loss is never taken for an erased one;
- the sector in use (the head) starts with a header line
  `g,<gen>,<next_seq>,<last_token>,<clock>,<crc>` (gen: one above every other sector's, the
  ring's order), then records are appended as in journal.py: `r,...`, `n,...`, and `a,t<now>`
  (the daemon time of an ack batch). An append is one program of the line's bytes;
- an ack is stored in place: the record's first byte is programmed from `r`/`n` to `R`/`N`
  (one bit, 1 -> 0). The CRC covers the line with its kind in lower case;
- a record is never moved but by a compaction: the pending records of a sector are copied to
  the head (program only), then that sector is erased. A seq found twice after a power cut is
  one record (acked if either copy is).

Recovery reads each sector once: headers give the order, the head's last record the write
position. A record that does not check (a program cut by the power) is dropped; the citizen was
never thanked for it, and the head is closed (the next record opens a fresh sector). Nothing
else is rewritten at boot.

Bound: pending records may take at most `max_bytes`, and at most half of what the sectors not
kept erased can hold, so some sector is always at least half free to compact. Past that,
`Full` (the same policy as journal.py: undelivered records are never dropped).
"""
from haochaping.protocol.compat import const

from .journal import _ACK, RATING, REASON, Full, _after, _check, _line, _record, _record_line

_MARK = b"HCPE"
_HDR = const(4)           # the header line starts after the erase mark
_MAX_LINE = const(120)
_STEP_BYTES = const(1024)  # bytes copied per compaction step: program only, ~2 ms of flash
_KEEP = const(3)          # sectors kept erased ahead (compaction copies when fewer)
_RESERVE = const(1)       # ... of which one only a compaction may open
_ACKS_PER_LINE = const(12)
_DIRTY = const(-2)        # _gen[s]: needs an erase (never formatted, erase cut, header torn)
_READY = const(-1)        # erased and marked
_FF = const(0xFF)


class Ring:
    def __init__(self, dev, max_bytes=32768, seq_floor=1, keep=_KEEP):
        self.dev = dev
        self.sector = dev.ioctl(5, 0)
        self.sectors = dev.ioctl(4, 0)
        self.keep = keep       # sectors kept erased ahead; a test may keep more (compacts sooner)
        room = (self.sectors - keep - 1) * (self.sector - _HDR - _MAX_LINE) // 2
        if room < 4 * _MAX_LINE:
            raise ValueError("ring: partition too small")
        self.max_bytes = min(max_bytes, room)
        self.pending = []      # seqs not yet acked, ascending
        self._at = []          # for each: address << 8 | line length (address in the partition)
        self._live = 0         # bytes of the pending records
        self.next_seq = 1
        self.last_token = ""
        self.clock_s = 0
        self.dropped = 0
        self.compactions = 0   # sectors reclaimed (erased after their last pending record left)
        self.erases = 0
        self.stalls = 0        # erases a rating had to wait for (the ring was not kept ahead)
        self.reads = 0
        self._acks = []        # acked seqs whose mark is not written yet
        self._acks_at = []     # ... and where their records are
        self._acks_now = 0
        self._gen = [_DIRTY] * self.sectors
        self._used = [0] * self.sectors   # bytes of live records per sector
        self._head = -1
        self._pos = 0          # write position in the head sector
        self._top = 0          # highest gen
        self._buf = bytearray(1)
        self._recover()
        if self.next_seq < seq_floor:
            self.next_seq = seq_floor

    @property
    def size(self):
        return self._live

    # ------------------------------------------------------------ boot

    def _recover(self):
        n = self.sector
        buf = bytearray(n)
        ff = b"\xff" * n
        order = []
        for s in range(self.sectors):
            self.dev.readblocks(s, buf, 0)
            self.reads += 1
            if bytes(buf[:_HDR]) != _MARK:
                continue                          # _DIRTY
            if buf[_HDR] == _FF:
                if buf[_HDR:] == ff[_HDR:]:
                    self._gen[s] = _READY
                continue                          # else: an erase cut short, or stray bits
            end = _eol(buf, _HDR)
            rec = _check(bytes(buf[_HDR:end])) if end > 0 else None
            if rec is None or rec[0] != "g":
                continue
            try:
                self._gen[s] = int(rec[1])
                self.next_seq = max(self.next_seq, int(rec[2]))
                order.append((self._gen[s], s))
            except (ValueError, IndexError):
                self._gen[s] = _DIRTY
        order.sort()
        seen = {}  # type: dict  # seq -> at (latest copy), or -1 when acked
        for gen, s in order:
            self.dev.readblocks(s, buf, 0)
            end = _eol(buf, _HDR)
            rec = _check(bytes(buf[_HDR:end]))
            if rec is not None:
                self.last_token = rec[3]
                self.clock_s = max(self.clock_s, int(rec[4]))
            pos = end + 1
            self._top = gen
            self._head = s
            while pos < n and buf[pos] != _FF:
                end = _eol(buf, pos)
                raw = bytes(buf[pos:end]) if end > 0 else b""
                acked = raw[:1] in (b"R", b"N")
                if acked:
                    raw = bytes([raw[0] | 0x20]) + raw[1:]
                rec = _check(raw) if raw else None
                if rec is None:
                    self.dropped += 1             # a program cut by the power: never confirmed
                    pos = n                       # nothing more is appended to this sector
                    break
                self._take(rec, s * n + pos, end + 1 - pos, acked, seen)
                pos = end + 1
            self._pos = pos
        pend = sorted([(q, seen[q]) for q in seen if seen[q] >= 0])
        for q, at in pend:
            self.pending.append(q)
            self._at.append(at)
            self._live += at & 0xFF
            self._used[(at >> 8) // n] += at & 0xFF
        if self._head < 0:
            self._pos = n                         # no sector in use: the first record opens one
        # before the watchdog: have sectors erased for the key loop
        while self._ready() < self.keep and self._erase_one():
            pass

    def _take(self, rec, at, length, acked, seen):
        kind = rec[0]
        if kind == _ACK:
            for f in rec[1:]:
                if f[:1] == "t":
                    self.clock_s = max(self.clock_s, int(f[1:]))
            return
        if kind != RATING and kind != REASON:
            return
        seq = int(rec[1])
        self.clock_s = max(self.clock_s, int(rec[4]))
        self.next_seq = max(self.next_seq, seq + 1)
        if kind == RATING:
            self.last_token = rec[3]
        if acked or seen.get(seq, 0) < 0:
            seen[seq] = -1
        else:
            seen[seq] = at << 8 | length

    # ------------------------------------------------------------ flash

    def _program(self, addr, data):
        self.dev.writeblocks(addr // self.sector, data, addr % self.sector)

    def _ready(self):
        k = 0
        for g in self._gen:
            if g == _READY:
                k += 1
        return k

    def _erase(self, s):
        """Erase sector s and mark it erased. A flash stall of one sector erase (~45 ms)."""
        self._gen[s] = _DIRTY
        self._used[s] = 0
        # acks not yet marked on this sector's records: moot (the records go with it), and
        # their addresses must never be programmed once the sector holds other records
        n = self.sector
        keep = [i for i in range(len(self._acks_at)) if self._acks_at[i] // n != s]
        if len(keep) != len(self._acks_at):
            self._acks = [self._acks[i] for i in keep]
            self._acks_at = [self._acks_at[i] for i in keep]
        r = self.dev.ioctl(6, s)
        if r:
            raise OSError(-r if r < 0 else r)
        self.erases += 1
        self.dev.writeblocks(s, _MARK, 0)
        self._gen[s] = _READY

    def _victim(self, half):
        """The sector to reclaim next: one with no pending record, else (not `half`: any) the
        one with the fewest pending bytes, at most half full when `half`. Never the head."""
        best = -1
        for s in range(self.sectors):
            g = self._gen[s]
            if g == _READY or s == self._head:
                continue
            if g == _DIRTY:
                return s
            if best < 0 or self._used[s] < self._used[best]:
                best = s
        if best >= 0 and half and self._used[best] * 2 > self.sector - _HDR:
            return -1
        return best

    def _erase_one(self):
        s = self._victim(False)
        if s < 0 or (self._gen[s] != _DIRTY and self._used[s]):
            return False
        self._erase(s)
        return True

    def _open(self, reserve):
        """Start a fresh head sector (program only): the next READY one after the head."""
        if self._ready() <= reserve:
            return False
        s = self._head
        for _ in range(self.sectors):
            s = (s + 1) % self.sectors
            if self._gen[s] == _READY:
                break
        gen = self._top + 1
        text = _line("g,%d,%d,%s,%d" % (gen, self.next_seq, self.last_token, self.clock_s))
        self._gen[s] = _DIRTY                     # until its header is whole
        self._program(s * self.sector + _HDR, text)
        self._gen[s] = gen
        self._top = gen
        self._head = s
        self._pos = _HDR + len(text)
        return True

    def _room(self, n, reserve):
        """Make room for n bytes in the head; a rating never takes the last erased sector
        (a compaction needs it). When the ring fell behind, erases here: a stall, counted."""
        if self._pos + n <= self.sector:
            return
        if reserve == 0:                          # a compaction's copy: no erase, no nesting
            if self._open(0):
                return
            raise Full()
        for _ in range(2 * self.sectors):
            if self._open(reserve):
                return
            self.stalls += 1
            if not self._erase_one() and not self._reclaim(1 << 30):
                break
        raise Full()

    def _append(self, text, reserve=_RESERVE):
        self._room(len(text), reserve)
        at = self._head * self.sector + self._pos
        try:
            self._program(at, text)
        except OSError:
            self._pos = self.sector               # maybe half written: close this sector
            raise
        self._pos += len(text)
        return at

    # ------------------------------------------------------------ records

    def _add(self, kind, a, b, ts, delay=None):
        seq = self.next_seq
        text = _record_line(kind, seq, a, b, ts, delay)
        if self._live + len(text) > self.max_bytes:
            raise Full()
        at = self._append(text)
        self.next_seq = seq + 1
        self.pending.append(seq)
        self._at.append(at << 8 | len(text))
        self._live += len(text)
        self._used[at // self.sector] += len(text)
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
        return self._add(REASON, ref, reason, ts)

    def ack(self, seqs, now=0):
        """Mark seqs delivered, in RAM; `write_acks` marks them on flash. Returns how many."""
        pending = self.pending
        hit = 0
        for s in seqs:
            i = _after(pending, s) - 1
            if i >= 0 and pending[i] == s:
                a = self._at[i]
                self._live -= a & 0xFF
                self._used[(a >> 8) // self.sector] -= a & 0xFF
                self._acks.append(s)
                self._acks_at.append(a >> 8)
                del pending[i]
                del self._at[i]
                hit += 1
        if hit:
            if now > self.clock_s:
                self.clock_s = now
            self._acks_now = now
        return hit

    def acks_due(self, full=_ACKS_PER_LINE):
        return len(self._acks) >= full

    def write_acks(self):
        """Program the acked records' marks (one byte each, no erase) and the ack's daemon
        time (one short line). Until then an ack lives in RAM only: after a power cut those
        records are sent again, and the daemon dedups."""
        if not self._acks:
            return
        ats = self._acks_at
        b = self._buf
        done = 0
        try:
            for addr in ats:
                self.dev.readblocks(addr // self.sector, b, addr % self.sector)
                b[0] &= 0xDF                      # r -> R, n -> N: one bit, 1 -> 0
                self._program(addr, b)
                done += 1
            if self._acks_now:
                self._append(_line("%s,t%d" % (_ACK, self._acks_now)))
        except OSError:
            del self._acks[:done]
            del self._acks_at[:done]
            raise
        self._acks = []
        self._acks_at = []
        self._acks_now = 0

    # ------------------------------------------------------------ erasing ahead, compaction

    def compact_due(self):
        """True when a housekeeping step has work: a sector to erase ahead of need (no pending
        record in it), or fewer than _KEEP erased and a sector at most half pending to copy."""
        for s in range(self.sectors):
            g = self._gen[s]
            if s != self._head and g != _READY and (g == _DIRTY or not self._used[s]):
                return True
        return self._ready() < self.keep and self._victim(True) >= 0

    def compact_step(self, budget=_STEP_BYTES):
        """One unit of flash work, never more than one erase: erase a sector with nothing
        pending, or copy up to `budget` bytes of a half-empty sector's pending records to the
        head. Returns True while there is more to do."""
        if self._erase_one():
            return self.compact_due()
        if self._ready() < self.keep:
            self._reclaim(budget)
        return self.compact_due()

    def _reclaim(self, budget):
        """Copy pending records out of the victim sector (program only), at most `budget`
        bytes; the sector is erased by a later step. Returns True when it copied anything."""
        v = self._victim(budget < (1 << 30))
        n = self.sector
        if v < 0 or not self._used[v]:
            return False
        if n - self._pos + self._ready() * (n - _HDR - _MAX_LINE) < self._used[v]:
            return False                          # the copies would not fit: Full

        copied = 0
        b = bytearray(_MAX_LINE)
        for i in range(len(self.pending)):
            a = self._at[i]
            if (a >> 8) // n != v:
                continue
            if copied >= budget:
                break
            ln = a & 0xFF
            m = memoryview(b)[:ln]
            self.dev.readblocks((a >> 8) // n, m, (a >> 8) % n)
            self.reads += 1
            at = self._append(bytes(m), 0)        # a copy may take the reserved sector
            self._at[i] = at << 8 | ln
            self._used[v] -= ln
            self._used[at // n] += ln
            copied += ln
        if not self._used[v]:
            self.compactions += 1
        return copied > 0

    def compact(self):
        """Bring the ring to _KEEP erased sectors now (at boot or when asked)."""
        while self._ready() < self.keep and (self._erase_one() or self._reclaim(1 << 30)):
            pass

    # ------------------------------------------------------------ reads

    def records(self, after=0, limit=1000000):
        """The pending records with seq > after, oldest first, at most `limit`, as journal.py's
        `records`: one read per record."""
        out = []  # type: list
        pending = self.pending
        i = _after(pending, after)
        n = self.sector
        while i < len(pending) and len(out) < limit:
            a = self._at[i]
            raw = bytearray(a & 0xFF)
            self.dev.readblocks((a >> 8) // n, raw, (a >> 8) % n)
            self.reads += 1
            rec = _check(bytes(raw[:-1])) if raw[-1:] == b"\n" else None
            seq = pending[i]
            i += 1
            if rec is None or (rec[0] != RATING and rec[0] != REASON) or int(rec[1]) != seq:
                self.dropped += 1
                continue
            out.append(_record(seq, rec))
        return out


def _eol(buf, pos):
    """Index of the newline ending the line at pos (at most _MAX_LINE long), or -1."""
    end = min(len(buf), pos + _MAX_LINE)
    for i in range(pos, end):
        if buf[i] == 10:
            return i
    return -1

