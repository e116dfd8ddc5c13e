# Proof 6 (MicroPython, run with -X heapsize=128K): the whole app - state machine, journal on a
# file system, protocol signing, MQTT codec and the asyncio link - handles N presses with acks
# from a stand-in broker+daemon (tests/device/loopback.py), with a few WiFi drops, and the heap
# after gc.collect() does not grow from press 100 to press N.
#
# Usage: micropython -X heapsize=128K memory_check.py <scratch dir> <tests/device dir> <N>
# Prints "heap boot <bytes>", "heap at100 <bytes> end <bytes> growth <bytes>", then the result.
import gc
import sys

gc.collect()
_base = gc.mem_alloc()

# the boot imports being measured
from haochaping.firmware import app as app_mod
from haochaping.firmware import config, statemachine
from haochaping.firmware import link as link_mod

gc.collect()
BOOT = gc.mem_alloc()

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

sys.path.append(sys.argv[2])
import loopback

KEY = b"k" * 32
HEXKEY = "6b" * 32
N = int(sys.argv[3])
CFG = {"wifi_ssid": "hall", "broker": "10.0.0.2", "hall": "H1", "terminal": "T1",
       "username": "T1", "password": "pw", "key": HEXKEY, "journal": sys.argv[1] + "/journal",
       "board": {"name": "devkit", "chip": "esp32", "input": "buttons",
                 "keys": [32, 33, 25, 26, 27], "leds": [19, 18, 5, 17, 16], "buzzer": 23}}


class Clock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t


def ticks(app, clock, n):
    for _ in range(n):
        clock.t += 250
        app.tick()


async def settle(app, link, broker):
    while app.journal.pending or link.state != link_mod.UP:
        await asyncio.sleep(0)
        if broker.error:
            raise ValueError(broker.error)


async def drive():
    clock = Clock()
    broker = loopback.Broker(KEY, "H1", "T1")
    app = app_mod.App(config.validate(CFG), clock)
    link = link_mod.Link(app, "10.0.0.2", 1883, "T1", "pw", 60, None, broker.open_connection)
    task = asyncio.create_task(link.run())
    reasons = 0
    h100 = 0
    await settle(app, link, broker)
    for i in range(N):
        if i % 5 != 4:
            broker.open_session("%032x" % (i + 1))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        clock.t += 1000
        app.press(1 + i % 5)
        ticks(app, clock, 14)                     # 3.5 s: committed
        if app.panel.mode == statemachine.REASON and i % 2:
            clock.t += 1000
            app.press(1 + i % 4)
            reasons += 1
        ticks(app, clock, 60)                     # 15 s: reason step over, thanks over
        if app.panel.mode != statemachine.IDLE:
            raise ValueError("press %d: terminal not idle (mode %d)" % (i, app.panel.mode))
        if i % 2500 == 1250:
            broker.drop()                         # the WiFi goes for a moment
        await settle(app, link, broker)
        if i == 100:
            gc.collect()
            h100 = gc.mem_alloc()
    gc.collect()
    end = gc.mem_alloc()
    task.cancel()
    print("heap boot %d imports %d" % (BOOT, BOOT - _base))
    print("heap at100 %d end %d growth %d" % (h100, end, end - h100))
    want = N + reasons
    fails = []
    if broker.stored != want or broker.top != app.journal.next_seq - 1:
        fails.append("daemon stored %d records (top seq %d), want %d"
                     % (broker.stored, broker.top, want))
    if broker.tokens != N - N // 5:
        fails.append("ratings bound to a session: %d" % broker.tokens)
    if app.rejected or app.full:
        fails.append("rejected %d full %d" % (app.rejected, app.full))
    if link.connects < 1 + (N - 1251) // 2500 + 1:
        fails.append("the link did not reconnect after every drop: %d" % link.connects)
    print("daemon stored %d duplicates %d connects %d compactions %d"
          % (broker.stored, broker.duplicates, link.connects, app.journal.compactions))
    for f in fails:
        print(f)
    print("memory ok" if not fails else "memory FAILED")


asyncio.run(drive())
