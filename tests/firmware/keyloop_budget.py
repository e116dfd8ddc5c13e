# The key-loop budget, measured: how long the key loop stalls while citizens rate and, meanwhile,
# a 500-rating backlog is flushed to the daemon (acked one by one) and the journal compacts, with
# the journal on a flash stand-in as slow as SPI NOR. A measurement, not a test: the figures go
# into docs/firmware.md ("Key-loop budget"); test_ring_quiet.py is the test.
#
#   MICROPYPATH=<device tree>:tools/sim/sim_device:.frozen \
#     micropython tests/firmware/keyloop_budget.py tests/device [erase_ms] [backlog] [file|ring]
#
# The real shell loop runs (main.Terminal.keys: board scan, presses, app.tick, lights), with the
# buttons of the stand-in `machine` pressed by a scripted citizen: a prompt opens (a signed
# session), the citizen presses a key 0.3-1.5 s later for 60-150 ms, a bad rating gets a reason
# key, then the thank-you; 0.2-2 s of dark keys; again. Shortened panel times (choice 600 ms,
# thanks 800 ms) so that prompts are lit most of the time.
#
# `ring`: the journal ring on a raw partition (firmware/ring.py) on the NOR stand-in
# (tools/sim/sim_device/norflash.py); `file` (default): the journal file on littlefs
# (slowflash.py). Two phases:
#   flush    the backlog delivered through the link to the loopback daemon (acked one by one),
#            the citizen rating throughout;
#   compact  a fresh, small journal (ring: 8 sectors), the citizen rating, and a filler storing
#            700 ratings, one every 90 ms; the "daemon" acks 9 in 10 at once and every 10th only
#            at the end: no sector empties by itself, the ring must copy records before it can
#            erase (the file journal compacts). n = the acks held.
#
# Printed per phase: worst stall and stalls over 50 ms split by "lit" (a prompt lit, a choice
# open, the reason keys lit, or a key down when the stall began) and "idle", and the most flash
# time in one scan gap (the stand-in's own stall figures: no host noise); flash erases in
# all and while lit (the target: 0; the ring: counted where each erase begins; the file journal:
# erases in the scan gaps that began lit, littlefs calls the device natively); erases a write
# had to wait for (ring.stalls); sectors the ring compacted by copying (file: compactions); time.
# "Stall" = how late a 10 ms scan came (flash time and host noise alike).
import sys
import time

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

sys.path.append(sys.argv[1])
import loopback
import machine
import norflash
import slowflash

from haochaping.firmware import config, ring
from haochaping.firmware import main as main_mod
from haochaping.firmware import statemachine as sm
from haochaping.protocol import messages

ERASE_MS = int(sys.argv[2]) if len(sys.argv) > 2 else 45
BACKLOG = int(sys.argv[3]) if len(sys.argv) > 3 else 500
RING = len(sys.argv) > 4 and sys.argv[4] == "ring"
KEY = b"k" * 32
PINS = [32, 33, 25, 26, 27]
SCAN_MS = 10
FILL = 700        # compact phase: ratings stored by the filler, one every FILL_MS
FILL_MS = 90
NOW = 1764057600

sm.CORRECT_MS = 600
sm.THANKS_MS = 800
sm.QUIET_MS = 300
sm.REASON_MS = 1500
sm.GUARD_MS = 300

_seed = [12345]
LOST = [0]        # presses the panel did not take (the citizen task and the scans share a loop:
                  # a host stall can let the release run before the scans saw 3 down samples)


def rand(n):
    _seed[0] = (_seed[0] * 1103515245 + 12345) & 0x7FFFFFFF
    return (_seed[0] >> 8) % n


def cfg_for(path):
    return config.validate({
        "wifi_ssid": "hall", "broker": "10.0.0.2", "hall": "H1", "terminal": "T1",
        "username": "T1", "password": "pw", "key": "6b" * 32, "journal": path,
        "journal_max": 65536,
        "board": {"name": "b", "chip": "esp32", "input": "buttons", "keys": PINS}})


def lit(t):
    m = t.app.panel.mode
    return m == sm.PROMPT or m == sm.CHOSEN or m == sm.REASON or t.board.active()


class Meter:
    """Instruments a Terminal: scan-to-scan gaps, each put down to the state in which it began."""

    def __init__(self, t, dev):
        self.t = t
        self.dev = dev
        self.gaps = ([], [])          # idle, lit
        self.erases = [0, 0]
        self.flash = [0, 0]           # the most flash time (us) in one gap, idle / lit
        self.busy = 0
        self.e_last = 0
        self.last = None
        self.state = 0
        scan = t.board.scan
        tick = t.app.tick
        ioctl = dev.ioctl

        def ioctl_m(op, arg):
            if op == 6:                   # an erase: counted by the state when it began
                self.erases[1 if lit(t) else 0] += 1
            return ioctl(op, arg)

        def scan_m(now=0):
            n = time.ticks_ms()
            b = dev.busy_us
            e = dev.erases
            if self.last is not None:
                self.gaps[self.state].append(time.ticks_diff(n, self.last) - SCAN_MS)
                self.flash[self.state] = max(self.flash[self.state], b - self.busy)
                if not RING:              # littlefs calls the device's ioctl natively
                    self.erases[self.state] += e - self.e_last
            self.last = n
            self.busy = b
            self.e_last = e
            return scan(now)

        def tick_m(keys=False):
            before = lit(t)
            tick(keys)
            self.state = 1 if before or lit(t) else 0
        t.board.scan = scan_m
        t.app.tick = tick_m
        if RING:
            dev.ioctl = ioctl_m

    def reset(self):
        self.gaps = ([], [])
        self.erases = [0, 0]
        self.flash = [0, 0]
        self.busy = self.e_last = 0
        self.dev.erases = self.dev.busy_us = 0
        if RING:
            self.t.app.journal.stalls = 0
        self.last = None


async def citizen(t, stop, session):
    """Prompts and presses, until stop[0]."""
    n = 0
    while not stop[0]:
        await asyncio.sleep_ms(200 + rand(1800))
        n += 1
        session(t, "%032x" % n)
        await asyncio.sleep_ms(300 + rand(1200))
        pin = PINS[rand(5)]
        machine.LEVEL[pin] = 0
        await asyncio.sleep_ms(60 + rand(90))
        machine.LEVEL[pin] = 1
        await asyncio.sleep_ms(sm.CORRECT_MS + 100)
        if t.app.panel.mode == sm.PROMPT:  # the press was not taken: the daemon closes the prompt
            LOST[0] += 1
            t.app.panel.close(t.ms())
        if t.app.panel.mode == sm.REASON:
            await asyncio.sleep_ms(sm.GUARD_MS + rand(500))
            pin = PINS[rand(4)]
            machine.LEVEL[pin] = 0
            await asyncio.sleep_ms(60 + rand(90))
            machine.LEVEL[pin] = 1
        while t.app.panel.mode != sm.IDLE and not stop[0]:
            await asyncio.sleep_ms(50)


def local_session(t, token):
    now = t.app.daemon_now() or NOW
    t.app.on_message(t.app.t_session, messages.encode_session(
        KEY, "T1", token, "W1", "S1", now + 600, now))


def report(phase, m, took, n):
    j = m.t.app.journal
    out = ["file" if not RING else "ring", phase, "erase_ms", str(ERASE_MS), "n", str(n)]
    for k, name in ((0, "idle"), (1, "lit")):
        g = m.gaps[k]
        g.sort()
        out += [name + "_scans", str(len(g)), name + "_worst_ms", str(g[-1] if g else 0),
                name + "_over_50ms", str(len([x for x in g if x > 50])),
                name + "_flash_ms", str(m.flash[k] // 1000)]
    out += ["erases", str(m.dev.erases), "erases_lit", str(m.erases[1]),
            "write_waits", str(getattr(j, "stalls", 0)), "compactions", str(j.compactions),
            "flash_busy_ms", str(m.dev.busy_us // 1000), "took_ms", str(took),
            "rejected", str(m.t.app.rejected), "lost_presses", str(LOST[0])]
    LOST[0] = 0
    print(" ".join(out))


def terminal(dev, backlog, broker):
    if RING:
        j = ring.Ring(dev, 65536)
        for i in range(backlog):      # the backlog of a long outage (written fast: not measured)
            j.add_rating(1 + i % 5, "ab" * 16, NOW + i)
        j.compact()
        flash = dev
    else:
        dev.mount("/flash")
        flash = None
    cfg = cfg_for("/flash/journal")
    t = main_mod.Terminal(cfg, time.ticks_ms, broker.open_connection if broker else None,
                          flash=flash)
    if not RING:
        for i in range(backlog):
            t.app.journal.add_rating(1 + i % 5, "ab" * 16, NOW + i)
        t.app.journal.compact()
    return t



async def _finish(t0, stop, tasks):
    """The phase is over: stop the citizen, cancel the tasks; the ms it took."""
    took = time.ticks_diff(time.ticks_ms(), t0)
    stop[0] = True
    for x in tasks:
        x.cancel()
    await asyncio.sleep_ms(20)
    return took


def flush():
    dev = (norflash.NorFlash(sectors=48, erase_ms=0, prog_us=0, read_us=0) if RING else
           slowflash.SlowFlash(blocks=64, erase_ms=0, prog_us=0, read_us=0))
    broker = loopback.Broker(KEY, "H1", "T1")
    broker.now = NOW
    t = terminal(dev, BACKLOG, broker)
    dev.erase_ms, dev.prog_us, dev.read_us = ERASE_MS, 400, 100
    m = Meter(t, dev)
    m.reset()
    stop = [False]

    def session(t, token):
        broker.now = t.app.daemon_now() or NOW
        broker.open_session(token)

    async def run():
        t0 = time.ticks_ms()
        tasks = [asyncio.create_task(t.keys()), asyncio.create_task(t.link.run()),
                 asyncio.create_task(citizen(t, stop, session))]
        j = t.app.journal
        while j.pending or j.compact_due() or time.ticks_diff(time.ticks_ms(), t0) < 5000:
            await asyncio.sleep_ms(50)
            if time.ticks_diff(time.ticks_ms(), t0) > 600000:
                break
        return await _finish(t0, stop, tasks)
    took = asyncio.run(run())
    report("flush", m, took, broker.stored)


def compact():
    if RING:
        dev = norflash.NorFlash(sectors=8, erase_ms=0, prog_us=0, read_us=0)
    else:
        dev = slowflash.SlowFlash(blocks=64, erase_ms=0, prog_us=0, read_us=0)
        try:
            import os
            os.umount("/flash")
        except OSError:
            pass
    t = terminal(dev, 0, None)
    dev.erase_ms, dev.prog_us, dev.read_us = ERASE_MS, 400, 100
    m = Meter(t, dev)
    m.reset()
    stop = [False]
    app = t.app
    j = app.journal
    held = []

    async def daemon():
        """Acks what is pending, 9 in 10 at once; every 10th only at the end: every sector
        keeps live records when the ring comes round to it."""
        while True:
            await asyncio.sleep_ms(100)
            now = app.daemon_now() or NOW
            for s in list(j.pending):
                if s % 10 == 0:
                    if s not in held:
                        held.append(s)
                else:
                    j.ack([s], now)

    async def run():
        t0 = time.ticks_ms()
        tasks = [asyncio.create_task(t.keys()), asyncio.create_task(daemon()),
                 asyncio.create_task(citizen(t, stop, local_session))]
        for i in range(FILL):
            await asyncio.sleep_ms(FILL_MS)
            app.rating(1 + i % 5, "cd" * 16)  # the filler: ratings faster than citizens give
        await asyncio.sleep_ms(500)
        j.ack(held, app.daemon_now())
        while j.compact_due() or j.pending:
            await asyncio.sleep_ms(50)
            if j.pending:
                j.ack(list(j.pending), app.daemon_now())
        return await _finish(t0, stop, tasks)
    took = asyncio.run(run())
    report("compact", m, took, len(held))


flush()
compact()
