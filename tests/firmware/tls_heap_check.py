# What TLS to the broker costs the terminal, under real MicroPython (unix port) against a real
# mosquitto with a plain and a TLS listener (started by test_tls.py from `hcp broker config
# --tls`). The whole app and link, hosted (no stand-ins), on the real socket.
#
# Usage: micropython -X heapsize=256K tls_heap_check.py <config.json with TLS> <plain port>
# Prints, for "plain" and "tls", in bytes of the MicroPython GC heap (gc.mem_alloc):
#   heap <mode> import <n> context <n> connected <n> rating <n> closed <n>
#     import: `import ssl`; context: the SSLContext with the hall CA; connected: held while the
#     link is up (after gc.collect), over the heap before it; rating: allocated by one rating,
#     press to publish (garbage included, no collect); closed: left after the link stopped
#   stall <mode> connect_ms <n> worst_ms <n>
#     how long connecting took, and the longest a 10 ms key-loop-like task was kept waiting
#   cycles <n> growth <n>: heap after the 2nd and the last of n TLS connect/close cycles
# then "tls heap ok" or what went wrong.
# With a third argument, plain or tls: one connection and one rating in that mode only, then
# "one <mode> ok" (run under heaptrack, the two show what mbedtls takes outside the GC heap).
import gc
import json
import sys
import time

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from haochaping.firmware import app as app_mod
from haochaping.firmware import config
from haochaping.firmware import link as link_mod

CYCLES = 10


class Clock:
    """The app's clock: real ticks (the link's timeouts) that a press can move ahead."""

    def __init__(self):
        self.extra = 0

    def __call__(self):
        return time.ticks_add(time.ticks_ms(), self.extra)


def alloc():
    gc.collect()
    return gc.mem_alloc()


class Stalls:
    """A task that wakes every 10 ms, like the key loop, and records how late it came."""

    def __init__(self):
        self.worst = 0
        self.task = asyncio.create_task(self.run())

    async def run(self):
        t = time.ticks_ms()
        while True:
            await asyncio.sleep_ms(10)
            now = time.ticks_ms()
            late = time.ticks_diff(now, t) - 10
            if late > self.worst:
                self.worst = late
            t = now


async def until(what, cond, link, limit_s=20):
    for _ in range(limit_s * 100):
        if cond():
            return
        await asyncio.sleep_ms(10)
    raise SystemExit("never happened: %s (%s)" % (what, link.last_error))


async def rate(app, clock, link, level):
    """A citizen's press, committed after the correction window, then published; return the
    bytes allocated from the press to the publish (garbage included)."""
    for _ in range(40):                 # 10 s of key loop: the last thank-you is over
        clock.extra += 250
        app.tick()
    sent = link.sent
    gc.collect()
    before = gc.mem_alloc()
    app.press(level)
    for _ in range(20):                 # 5 s: past the 3 s correction window
        clock.extra += 250
        app.tick()
    await until("the rating published", lambda: link.sent > sent, link)
    return gc.mem_alloc() - before


async def measure(app, clock, cfg, mode, port):
    tls = mode == "tls"
    before = alloc()
    imported = before
    context = before
    if tls:
        import ssl  # noqa: F401  (what the link imports on first connect)
        imported = alloc()
        ctx = link_mod.tls_context(cfg["tls_ca"])  # as the link makes (and keeps) its own
        context = alloc()
        del ctx
    link = link_mod.Link(app, cfg["broker"], port, cfg["username"], cfg["password"],
                         cfg["keepalive"], None, None, tls_ca=cfg["tls_ca"] if tls else None,
                         tls_name=cfg["tls_name"] if tls else None)
    base = alloc()
    stalls = Stalls()
    await asyncio.sleep_ms(30)
    stalls.worst = 0
    t0 = time.ticks_ms()
    task = asyncio.create_task(link.run())
    await until("online (%s)" % mode, lambda: link.state == link_mod.UP, link)
    connect_ms = time.ticks_diff(time.ticks_ms(), t0)
    worst = stalls.worst
    await asyncio.sleep_ms(200)          # the SUBACK and the retained messages are in
    up = alloc()
    rating = await rate(app, clock, link, 2)
    task.cancel()
    stalls.task.cancel()
    await asyncio.sleep_ms(50)
    link = None
    closed = alloc()
    print("heap %s import %d context %d connected %d rating %d closed %d" % (
        mode, imported - before, context - imported, up - base, rating, closed - before))
    print("stall %s connect_ms %d worst_ms %d" % (mode, connect_ms, worst))
    return closed


async def cycles(app, cfg):
    """Connect and close over TLS again and again: the heap must come back each time."""
    link = link_mod.Link(app, cfg["broker"], cfg["port"], cfg["username"], cfg["password"],
                         cfg["keepalive"], None, None, tls_ca=cfg["tls_ca"],
                         tls_name=cfg["tls_name"])
    second = 0
    for i in range(CYCLES):
        task = asyncio.create_task(link.run())
        await until("online (cycle %d)" % i, lambda: link.state == link_mod.UP, link)
        task.cancel()
        await asyncio.sleep_ms(50)
        link.state = 0
        if i == 1:
            second = alloc()
    growth = alloc() - second
    print("cycles %d growth %d" % (CYCLES, growth))
    return growth


async def main(path, plain_port, only):
    with open(path) as f:
        cfg = config.validate(json.load(f))
    clock = Clock()
    app = app_mod.App(cfg, clock)
    if only:
        await measure(app, clock, cfg, only, plain_port if only == "plain" else cfg["port"])
        print("one %s ok" % only)
        return
    await measure(app, clock, cfg, "plain", plain_port)
    await measure(app, clock, cfg, "tls", cfg["port"])
    growth = await cycles(app, cfg)
    print("tls heap ok" if growth <= 1024 else "tls heap FAILED: grows %d per %d connects"
          % (growth, CYCLES - 2))


asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None))
