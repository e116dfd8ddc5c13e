# The booted firmware under real MicroPython against a real mosquitto (started by
# test_broker.py, with a paho client there playing the daemon). Stand-ins: machine/network from
# tools/sim/sim_device; the WiFi stand-in owns the real sockets and drops them on wifi_down().
#
# Usage: micropython broker_check.py <config.json>
# Prints "broker ok <connects>" or what went wrong.
import sys

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

import machine  # the stand-ins
import network

from haochaping.firmware import link as link_mod
from haochaping.firmware import main
from haochaping.firmware import statemachine as sm

sm.CORRECT_MS = 300
sm.THANKS_MS = 300
sm.QUIET_MS = 150
KEYS = [32, 33, 25, 26, 27]
STATES = ("down", "no network", "connecting", "online")  # link.state 0..3, for the messages
T = {}


async def until(what, cond, limit_s=30):
    for _ in range(limit_s * 50):
        if cond():
            return
        await asyncio.sleep(0.02)
    t = T.get("t")
    raise SystemExit("never happened: %s (link %s %s, mode %s, pending %r)" % (
        what, t and STATES[t.link.state], t and t.link.last_error,
        t and t.app.panel.mode, t and t.app.journal.pending))


async def tap(k):
    machine.press(KEYS[k - 1])
    await asyncio.sleep(0.06)
    machine.release(KEYS[k - 1])


async def harness():
    task = asyncio.create_task(main.serve(sys.argv[1], network.open_connection, True,
                                          lambda t: T.__setitem__("t", t)))
    await until("terminal online", lambda: "t" in T and T["t"].link.state == link_mod.UP)
    app = T["t"].app
    print("online")
    await until("keys lit for the retained session", lambda: app.panel.mode == sm.PROMPT)
    await tap(1)
    await until("rating acked by the daemon", lambda: app.journal.next_seq == 2
                and not app.journal.pending)
    print("rated 1")
    await until("idle", lambda: app.panel.mode == sm.IDLE)
    network.wifi_down()
    await until("link notices the WiFi loss", lambda: T["t"].link.state != link_mod.UP)
    await tap(2)
    await until("rating stored while offline", lambda: app.journal.pending == [2])
    print("offline rating kept")
    network.wifi_up()
    await until("offline rating delivered and acked", lambda: not app.journal.pending, 60)
    print("broker ok %d" % T["t"].link.connects)
    task.cancel()


asyncio.run(harness())
