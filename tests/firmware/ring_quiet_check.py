# The ring erases only at quiet moments (real MicroPython; run by test_ring_quiet.py):
#
#   MICROPYPATH=<device tree>:tools/sim/sim_device:.frozen micropython ring_quiet_check.py [seed]
#   ... ring_quiet_check.py partition <folder>
#
# A booted terminal's key loop (main.Terminal.step) on a clock of its own, 10 ms a scan, its
# journal the ring on the NOR stand-in (norflash.py, small sectors so that the ring wraps). A
# scripted hall: a backlog being acked while prompts light and citizens press keys (60-150 ms),
# bad ratings with reasons, unsolicited presses on dark keys; the "daemon" acks 8 in 9 records at
# once and every 9th only at the end (out of order: the ring must copy records to free a sector).
# Every sector erase is checked where it begins: a prompt lit, a choice open, the reason keys lit
# or a key down is a failure (on the ESP32 the erase stalls the key loop ~45 ms, up to 400 ms).
# Prints `quiet ok erases E copies C ratings R` or `quiet FAIL ...`.
import sys

import machine
import norflash

from haochaping.firmware import config, ring
from haochaping.firmware import main as main_mod
from haochaping.firmware import statemachine as sm
from haochaping.protocol import messages

KEY = b"k" * 32
PINS = [32, 33, 25, 26, 27]
NOW = 1764057600
PARTITION = len(sys.argv) > 2 and sys.argv[1] == "partition"
BEHIND = len(sys.argv) > 1 and sys.argv[1] == "behind"
SEED = int(sys.argv[1]) if len(sys.argv) > 1 and not PARTITION and not BEHIND else 7
_seed = [SEED]
END_MS = 900000
sm.CORRECT_MS = 600       # a brisk hall: a citizen every 2-4 s, prompts lit most of the time
sm.THANKS_MS = 800
sm.QUIET_MS = 300
sm.REASON_MS = 1500
sm.GUARD_MS = 300


def rand(n):
    _seed[0] = (_seed[0] * 1103515245 + 12345) & 0x7FFFFFFF
    return (_seed[0] >> 8) % n


class Clock:
    def __init__(self):
        self.t = 1000

    def __call__(self):
        return self.t


def _cfg(journal):
    return config.validate({
        "wifi_ssid": "hall", "broker": "10.0.0.2", "hall": "H1", "terminal": "T1",
        "username": "T1", "password": "pw", "key": "6b" * 32, "journal": journal,
        "journal_max": 32768,
        "board": {"name": "b", "chip": "esp32", "input": "buttons", "keys": PINS}})


def partition(folder):
    """The chip's table has hcpjournal (esp32 stand-in, as `hcp device flash
    --journal-partition` leaves it): the booted terminal finds it and keeps its journal there,
    across a reboot; without it, the file journal."""
    import esp32
    esp32.setup(folder + "/chip", ota=False, slot_size=0x10000, journal=0x20000)
    p = main_mod.journal_partition()
    if p is None:
        return "hcpjournal not found"
    clock = Clock()
    t = main_mod.Terminal(_cfg(folder + "/journal"), clock)
    j = t.app.journal
    if not isinstance(j, ring.Ring) or j.sectors != 32:
        return "the terminal did not take the partition for its journal"
    for _ in range(5):                    # the first scans: keys up (a key held at boot is none)
        clock.t += 10
        t.step(clock.t)
    machine.LEVEL[PINS[2]] = 0
    for _ in range(10):
        clock.t += 10
        t.step(clock.t)
    machine.LEVEL[PINS[2]] = 1
    for _ in range(500):
        clock.t += 10
        t.step(clock.t)
    if len(j.pending) != 1:
        return "the press was not stored"
    t = main_mod.Terminal(_cfg(folder + "/journal"), clock)   # a reboot: recovered from flash
    if not isinstance(t.app.journal, ring.Ring) or t.app.journal.pending != j.pending:
        return "the rating did not survive a reboot on the partition"
    esp32.setup(folder + "/chip2", ota=False, slot_size=0x10000)
    if main_mod.journal_partition() is not None:
        return "a stock table has no hcpjournal"
    t = main_mod.Terminal(_cfg(folder + "/journal"), clock)
    if isinstance(t.app.journal, ring.Ring):
        return "the ring without a partition"
    return None


def behind():
    """A prompt lit for ever (no quiet moment): the ring cannot erase ahead, and once its
    erased sectors are used a rating's write erases. Counted and named in the status."""
    from haochaping.firmware import app as app_mod
    dev = norflash.NorFlash(sectors=8, sector=1024, erase_ms=0, prog_us=0, read_us=0)
    clock = Clock()
    app = app_mod.App(_cfg("/unused"), clock, ring.Ring(dev, 65536))
    now = NOW
    app.on_message(app.t_session, messages.encode_session(KEY, "T1", "%032x" % 1, "W1", "S1",
                                                          now + 86000, now))
    for i in range(80):
        app.rating(1 + i % 5, "cd" * 16)
        app.journal.ack(list(app.journal.pending), now)
        for _ in range(10):
            clock.t += 10
            app.tick()
        if app.panel.mode != sm.PROMPT:
            return "the prompt went dark (mode %d, rejected %d)" % (app.panel.mode, app.rejected)
    stalls = app.journal.stalls
    said = [f for f in app.faults() if f.startswith("journal:")]
    if not stalls:
        return "the ring never fell behind (the scenario is wrong)"
    if said != ["journal: %d erases in a write" % stalls]:
        return "not in the status: %s" % app.faults()
    return None


def main():
    dev = norflash.NorFlash(sectors=12, sector=1024, erase_ms=0, prog_us=0, read_us=0)
    j = ring.Ring(dev, 65536)
    for i in range(40):                   # a backlog from an outage
        j.add_rating(1 + i % 5, "ab" * 16, NOW + i)
    j.compact()
    cfg = config.validate({
        "wifi_ssid": "hall", "broker": "10.0.0.2", "hall": "H1", "terminal": "T1",
        "username": "T1", "password": "pw", "key": "6b" * 32, "journal": "/unused",
        "journal_max": 65536,
        "board": {"name": "b", "chip": "esp32", "input": "buttons", "keys": PINS}})
    clock = Clock()
    t = main_mod.Terminal(cfg, clock, flash=dev)
    app = t.app
    j = app.journal
    bad = []
    erases = [0]
    ioctl = dev.ioctl

    def erase_watch(op, arg):
        if op == 6:
            erases[0] += 1
            m = app.panel.mode
            if m == sm.PROMPT or m == sm.CHOSEN or m == sm.REASON or t.board.active():
                bad.append("erase of sector %d at %d ms: mode %d, keys %s" % (
                    arg, clock.t, m, [machine.LEVEL[p] for p in PINS]))
        return ioctl(op, arg)
    dev.ioctl = erase_watch

    # the script: (at_ms, action); generated up front from the seed
    events = []
    at = 2000
    n = 0
    while at < END_MS - 10000:
        n += 1
        if rand(5):
            events.append((at, "session", "%032x" % n))
            at += 200 + rand(1500)
        key = rand(5)
        events.append((at, "down", key))
        at += 60 + rand(90)
        events.append((at, "up", key))
        at += sm.CORRECT_MS + 50
        events.append((at, "reason?", 0))
        at += sm.THANKS_MS + sm.QUIET_MS + sm.GUARD_MS + 300 + rand(1500)
    events.sort()
    held = []
    prompts = [0]
    ev = 0
    ratings = 0
    while clock.t < END_MS:
        clock.t += 10
        while ev < len(events) and events[ev][0] <= clock.t:
            _, what, arg = events[ev]
            ev += 1
            if what == "session":
                now = app.daemon_now() or NOW
                app.on_message(app.t_session, messages.encode_session(
                    KEY, "T1", arg, "W1", "S1", now + 600, now))
                if app.panel.mode == sm.PROMPT:
                    prompts[0] += 1
            elif what == "down":
                machine.LEVEL[PINS[arg]] = 0
            elif what == "up":
                machine.LEVEL[PINS[arg]] = 1
            elif what == "reason?" and app.panel.mode == sm.REASON:
                k = rand(4)          # a reason key, pressed after the guard time
                events.append((clock.t + sm.GUARD_MS + 100, "down", k))
                events.append((clock.t + sm.GUARD_MS + 100 + 60 + rand(90), "up", k))
                events.sort()
        if clock.t % 100 == 0:           # the daemon: acks 8 in 9 now, every 9th at the end
            now = app.daemon_now() or NOW
            for s in list(j.pending):
                if s % 9:
                    j.ack([s], now)
                elif s not in held:
                    held.append(s)
        before = j.next_seq
        t.step(clock.t)
        ratings += j.next_seq - before
    j.ack(held, app.daemon_now())
    for _ in range(2000):                 # quiet: the ring settles
        clock.t += 10
        t.step(clock.t)
    out = "erases %d copies %d ratings %d waits %d pending %d full %d rejected %d prompts %d" % (
        erases[0], j.compactions, ratings, j.stalls, len(j.pending), app.full, app.rejected,
        prompts[0])
    if bad:
        print("\n".join(bad[:10]))
        print("quiet FAIL %d erases while a prompt was lit or a key down; %s" % (len(bad), out))
    else:
        print("quiet ok " + out)


if PARTITION:
    err = partition(sys.argv[2])
    print("partition FAIL " + err if err else "partition ok")
elif BEHIND:
    err = behind()
    print("behind FAIL " + err if err else "behind ok")
else:
    main()
