# The key-loop budget, measured: how long the key loop stalls while a 500-rating backlog is
# flushed to the daemon (acked one by one) and the journal compacts, with the journal on a flash
# stand-in as slow as SPI NOR (tools/sim/sim_device/slowflash.py). A measurement, not a test:
# the figures go into docs/firmware.md.
#
#   MICROPYPATH=<device tree>:tools/sim/sim_device:.frozen \
#     micropython tests/firmware/keyloop_budget.py tests/device [erase_ms] [backlog] [file|ring]
#
# `ring`: the journal ring on a raw partition (firmware/ring.py) on the NOR stand-in
# (tools/sim/sim_device/norflash.py, 48 sectors of 4 KB, the same timing); `file` (default): the
# journal file on littlefs. Two phases, each measured: `flush` (the backlog delivered, acked one by
# one) and `churn` (300 more ratings stored from the key loop, 1 in 3 left unacked for 40 seqs:
# acks out of order, so the file journal compacts and the ring copies records before erasing).
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
import norflash
import slowflash

from haochaping.firmware import app as app_mod
from haochaping.firmware import config, ring
from haochaping.firmware import link as link_mod

ERASE_MS = int(sys.argv[2]) if len(sys.argv) > 2 else 45
BACKLOG = int(sys.argv[3]) if len(sys.argv) > 3 else 500
RING = len(sys.argv) > 4 and sys.argv[4] == "ring"
KEY = b"k" * 32
SCAN_MS = 10


def main():
    if RING:
        dev = norflash.NorFlash(sectors=48, erase_ms=0, prog_us=0, read_us=0)
    else:
        dev = slowflash.SlowFlash(blocks=64, erase_ms=0, prog_us=0, read_us=0)
        dev.mount("/flash")
    cfg = config.validate({
        "wifi_ssid": "hall", "broker": "10.0.0.2", "hall": "H1", "terminal": "T1",
        "username": "T1", "password": "pw", "key": "6b" * 32, "journal": "/flash/journal",
        "journal_max": 65536,
        "board": {"name": "b", "chip": "esp32", "input": "buttons", "keys": [32, 33, 25, 26, 27]}})
    app = app_mod.App(cfg, time.ticks_ms, ring.Ring(dev, 65536) if RING else None)
    for i in range(BACKLOG):      # the backlog of a long outage (written fast: not measured)
        app.journal.add_rating(1 + i % 5, "ab" * 16, 1764057600 + i)
    app.journal.compact()  # the backlog's own compaction (file) or erases (ring): not measured
    dev.erase_ms, dev.prog_us, dev.read_us = ERASE_MS, 400, 100
    dev.erases = dev.busy_us = 0
    if RING:
        app.journal.stalls = 0
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
    report("flush", gaps, dev, app, took, broker.stored)
    del gaps[:]
    dev.erases = dev.busy_us = 0
    c0 = app.journal.compactions

    async def churn():
        t0 = time.ticks_ms()
        task = asyncio.create_task(keys())
        held = []
        for i in range(300):
            await asyncio.sleep_ms(100)
            seq = app.rating(1 + i % 5, "cd" * 16)   # what the panel does on a choice
            if seq is None:
                continue
            if seq % 3:
                app.journal.ack([seq], 1764060000 + i)
            else:
                held.append(seq)
            if len(held) > 13:
                app.journal.ack([held.pop(0)], 1764060000 + i)
        await asyncio.sleep_ms(2000)
        task.cancel()
        await asyncio.sleep_ms(20)
        return time.ticks_diff(time.ticks_ms(), t0)
    took = asyncio.run(churn())
    report("churn", gaps, dev, app, took, app.journal.compactions - c0)


def report(phase, gaps, dev, app, took, n):
    gaps.sort()
    print("%s %s erase_ms %d backlog %d delivered/compacted %d worst_stall_ms %d p99_ms %d "
          "over_50ms %d erases %d compactions %d inline_erases %d flash_busy_ms %d took_ms %d"
          % ("ring" if RING else "file", phase, ERASE_MS, BACKLOG, n, gaps[-1],
             gaps[len(gaps) * 99 // 100], len([g for g in gaps if g > 50]), dev.erases,
             app.journal.compactions, getattr(app.journal, "stalls", 0), dev.busy_us // 1000,
             took))


main()
