# The booted firmware under real MicroPython against a real mosquitto TLS listener (started by
# test_tls.py from `hcp broker config --tls`). Stand-ins: machine/network from
# tools/sim/sim_device; the WiFi stand-in opens real sockets (and passes the TLS arguments on).
#
# Usage: micropython tls_check.py deliver <config.json>
#          boots, comes online over TLS, a citizen presses key 4 with no prompt open, and the
#          daemon's ack frees the journal; prints "tls ok <connects>"
#        micropython tls_check.py refused <config.json>
#          boots against a broker whose certificate the config's hall CA did not sign: never
#          online, the console says why, and a press stays in the journal; prints
#          "refused <pending seqs>"
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio
import sys

import machine  # the stand-ins
import network

from haochaping.firmware import link as link_mod
from haochaping.firmware import main

KEYS = [32, 33, 25, 26, 27]
T = {}


async def until(what, cond, limit_s=30):
    for _ in range(limit_s * 50):
        if cond():
            return
        await asyncio.sleep(0.02)
    t = T.get("t")
    raise SystemExit("never happened: %s (link state %s, %s, pending %r)" % (
        what, t and t.link.state, t and t.link.last_error, t and t.app.journal.pending))


async def tap(k):
    machine.press(KEYS[k - 1])
    await asyncio.sleep(0.06)
    machine.release(KEYS[k - 1])


async def deliver():
    await until("online over TLS", lambda: "t" in T and T["t"].link.state == link_mod.UP)
    app = T["t"].app
    await tap(4)
    await until("the rating acked by the daemon", lambda: app.journal.next_seq == 2
                and not app.journal.pending)
    print("tls ok %d" % T["t"].link.connects)


async def refused():
    await until("a TLS failure", lambda: "t" in T and T["t"].link.last_error.startswith(
        "OSError: TLS"))
    t = T["t"]
    await tap(4)
    await until("the rating kept in the journal", lambda: t.app.journal.pending == [1])
    # the console line comes with the next status refresh (every 10 s)
    await until("the failure on the console", lambda: t.said.startswith("OSError: TLS"), 25)
    for _ in range(3):  # it keeps trying, and keeps failing
        if t.link.state == link_mod.UP:
            raise SystemExit("online with a broker the hall CA did not sign")
        await asyncio.sleep(1)
    print("refused %r" % t.app.journal.pending)


async def harness(mode, path):
    task = asyncio.create_task(main.serve(path, network.open_connection, False,
                                          lambda t: T.__setitem__("t", t)))
    await (deliver() if mode == "deliver" else refused())
    task.cancel()


asyncio.run(harness(sys.argv[1], sys.argv[2]))
