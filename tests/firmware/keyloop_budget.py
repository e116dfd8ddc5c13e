# The key-loop budget, measured: how long the key loop stalls while a 500-rating backlog is
# flushed to the daemon (acked one by one) and the journal compacts, with the journal on a flash
# stand-in as slow as SPI NOR (tools/sim/sim_device/slowflash.py). A measurement, not a test:
# the figures go into docs/firmware.md.
#
#   MICROPYPATH=<device tree>:tools/sim/sim_device:.frozen \
#     micropython tests/firmware/keyloop_budget.py tests/device [erase_ms] [backlog]
#
# (`make keyloop-budget` is not provided; tests/mpy.py's device_tree or /lib on a board gives the
# device tree.) Prints one line: worst stall, stalls over 50 ms, flash erases, compactions, time.
import sys
import time

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

sys.path.append(sys.argv[1])
import loopback
import slowflash

from haochaping.firmware import app as app_mod
from haochaping.firmware import config
from haochaping.firmware import link as link_mod

ERASE_MS = int(sys.argv[2]) if len(sys.argv) > 2 else 45
BACKLOG = int(sys.argv[3]) if len(sys.argv) > 3 else 500
KEY = b"k" * 32
SCAN_MS = 10


def main():
    dev = slowflash.SlowFlash(blocks=64, erase_ms=0, prog_us=0, read_us=0)
    dev.mount("/flash")
    cfg = config.validate({
        "wifi_ssid": "hall", "broker": "10.0.0.2", "hall": "H1", "terminal": "T1",
        "username": "T1", "password": "pw", "key": "6b" * 32, "journal": "/flash/journal",
        "journal_max": 65536,
        "board": {"name": "b", "chip": "esp32", "input": "buttons", "keys": [32, 33, 25, 26, 27]}})
    app = app_mod.App(cfg, time.ticks_ms)
    for i in range(BACKLOG):      # the backlog of a long outage (written fast: not measured)
        app.journal.add_rating(1 + i % 5, "ab" * 16, 1764057600 + i)
    dev.erase_ms, dev.prog_us, dev.read_us = ERASE_MS, 400, 100
    dev.erases = dev.busy_us = 0
    broker = loopback.Broker(KEY, "H1", "T1")
    lk = link_mod.Link(app, "10.0.0.2", 1883, "T1", "pw", 60, None, broker.open_connection)
    gaps = []

    async def keys():
        last = time.ticks_ms()
        while True:
            app.tick()
            await asyncio.sleep_ms(SCAN_MS)
            now = time.ticks_ms()
            gaps.append(time.ticks_diff(now, last) - SCAN_MS)
            last = now

    async def run():
        t0 = time.ticks_ms()
        tasks = [asyncio.create_task(keys()), asyncio.create_task(lk.run())]
        while app.journal.pending or app.journal.compact_due() if hasattr(
                app.journal, "compact_due") else app.journal.pending:
            await asyncio.sleep_ms(50)
            if time.ticks_diff(time.ticks_ms(), t0) > 600000:
                break
        took = time.ticks_diff(time.ticks_ms(), t0)
        for t in tasks:
            t.cancel()
        await asyncio.sleep_ms(20)
        return took
    took = asyncio.run(run())
    gaps.sort()
    print("erase_ms %d backlog %d delivered %d worst_stall_ms %d p99_ms %d over_50ms %d "
          "erases %d compactions %d flash_busy_ms %d took_ms %d"
          % (ERASE_MS, BACKLOG, broker.stored, gaps[-1], gaps[len(gaps) * 99 // 100],
             len([g for g in gaps if g > 50]), dev.erases, app.journal.compactions,
             dev.busy_us // 1000, took))


main()
