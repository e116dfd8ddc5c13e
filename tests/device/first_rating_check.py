# The booted terminal, from what `hcp device install` and `hcp device provision` put on the board:
# the board's folder is mounted at / (as littlefs is on an ESP32), /lib holds the compiled .mpy
# files, /config.json the provisioned config. Stand-ins for machine/network (real sockets).
#
# Usage: micropython first_rating_check.py <stand-ins folder> <board folder> <key gpio>
import sys

sys.path.insert(0, sys.argv[1])
import os

import machine  # stand-in
import network  # stand-in
import vfs

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

vfs.umount('/')
vfs.mount(vfs.VfsPosix(sys.argv[2]), '/')
os.chdir('/')
sys.path[:] = ['/lib']
KEY = int(sys.argv[3])

from haochaping.firmware import link as link_mod
from haochaping.firmware import main
from haochaping.firmware import statemachine as sm

sm.CORRECT_MS = 300
sm.THANKS_MS = 300
sm.QUIET_MS = 150
T = {}


async def until(what, cond, limit_s=30):
    for _ in range(limit_s * 50):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise SystemExit("never happened: " + what)


async def harness():
    asyncio.create_task(main.serve('/config.json', network.open_connection, True,
                                   lambda t: T.__setitem__("t", t)))
    await until("online", lambda: "t" in T and T["t"].link.state == link_mod.UP)
    print("online")
    app = T["t"].app
    await until("prompt", lambda: app.panel.mode == sm.PROMPT, 60)
    machine.press(KEY)
    await asyncio.sleep(0.06)
    machine.release(KEY)
    await until("acked", lambda: app.journal.next_seq > 1 and not app.journal.pending)
    print("rated")
    await asyncio.sleep(3600)


asyncio.run(harness())
