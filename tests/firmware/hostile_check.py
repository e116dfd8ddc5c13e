# The firmware against stand-ins as hostile as the chip (tools/sim/sim_device): noisy, drifting
# touch pads with 0 reads, a hand on a pad at boot, palms and keys held at boot, a slow flash that
# fails on demand, sockets that go half-open and sends that block, a radio whose association
# takes time, a watchdog that really ends the process. Real MicroPython (unix port) only.
#
# Usage: micropython hostile_check.py <scratch dir> <tests/device dir> <check name>
# Prints "ok <name>" or one line per failure then "FAILED <name>". Each check names what a
# citizen or hall IT would see go wrong if it failed.
import json
import sys
import time

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

sys.path.append(sys.argv[2])
import loopback
import machine  # the stand-ins
import network

from haochaping.firmware import app as app_mod
from haochaping.firmware import board as board_mod
from haochaping.firmware import config, journal, main
from haochaping.firmware import link as link_mod
from haochaping.firmware import statemachine as sm
from haochaping.protocol import messages

D = sys.argv[1]
KEY = b"k" * 32
T0 = 1764057600
TOK = "ab" * 16
KEYS = [32, 33, 25, 26, 27]
LEDS = [19, 18, 5, 17, 16]
BUTTONS = {"name": "devkitc-buttons", "chip": "esp32", "input": "buttons", "keys": KEYS,
           "leds": LEDS, "buzzer": 23, "status_led": 2}
PADS = [4, 13, 14, 27, 33]
TOUCH = {"name": "esp32-touch", "chip": "esp32", "input": "touch", "keys": PADS, "leds": LEDS}


class Clock:
    def __init__(self, t=0):
        self.t = t

    def __call__(self):
        return self.t


def raw_config(name, board=None, **kw):
    c = {"wifi_ssid": "hall", "wifi_password": "x", "broker": "10.0.0.2", "hall": "H1",
         "terminal": "T1", "username": "T1", "password": "pw", "key": "6b" * 32,
         "journal": D + "/" + name, "board": board or BUTTONS}
    for k in kw:
        c[k] = kw[k]
    return c


def fresh_app(name, clock, path=None):
    c = raw_config(name)
    if path:
        c["journal"] = path
    else:
        _rm(c["journal"])
    return app_mod.App(config.validate(c), clock)


def _rm(path):
    import os
    for p in (path, path + ".new"):
        try:
            os.remove(p)
        except OSError:
            pass


def rate(app, clock, level):
    """A citizen's press, carried through the correction window."""
    while app.panel.mode not in (sm.IDLE, sm.PROMPT):
        clock.t += 100
        app.tick()
    app.press(level)
    for _ in range(40):
        clock.t += 100
        app.tick()


def ack(app, seqs, now, retained=False):
    app.on_message(app.t_ack, messages.encode_ack(KEY, "T1", seqs, now), retained)


def session(app, token, exp, now, retained):
    app.on_message(app.t_session, messages.encode_session(KEY, "T1", token, "W1", "S1", exp, now),
                   retained)


# ------------------------------------------------------------------ 1 touch keys


def check_touch_keys_survive_noise_drift_a_hand_at_boot_and_dead_pads():
    machine.NOW[0] = 0
    machine.TOUCH.clear()
    for p in PADS:
        machine.TOUCH[p] = 600
    machine.TOUCH[PADS[0]] = 300           # a hand on key 1 while the terminal boots
    machine.TOUCH_ZERO.add(PADS[2])        # key 3's pad reads 0 (broken trace)
    machine.TOUCH_FAIL.add(PADS[4])        # key 5's driver read fails every time
    b = board_mod.Board(TOUCH)
    clock = [0]
    masks = []

    def run(ms):
        for _ in range(ms // 10):
            clock[0] += 10
            machine.NOW[0] = clock[0]
            m = b.scan(clock[0])
            if m:
                masks.append(m)
    fails = []
    run(1000)
    machine.TOUCH[PADS[0]] = 600           # the hand goes
    run(1000)
    if masks:
        fails.append("a press reported with nobody touching a key: %r" % masks)
    del masks[:]
    machine.TOUCH[PADS[0]] = 300
    run(100)
    machine.TOUCH[PADS[0]] = 600
    run(300)
    if masks != [1]:
        fails.append("key 1 (a hand on it at boot) does not give one press: %r" % masks)
    # humidity: every pad drifts down 20 % over 5 minutes, nobody touches anything
    del masks[:]
    for k in range(1, 21):
        for p in PADS:
            machine.TOUCH[p] = 600 - 6 * k
        run(15000)
    if masks:
        fails.append("slow drift read as presses: %r" % masks)
    del masks[:]
    machine.TOUCH[PADS[1]] = 240
    run(100)
    machine.TOUCH[PADS[1]] = 480
    run(300)
    if masks != [2]:
        fails.append("key 2 after the drift does not give one press: %r" % masks)
    if not (b.disabled[2] and b.disabled[4]) or b.disabled[0] or b.disabled[1]:
        fails.append("dead pads not disabled (or good ones disabled): %r" % b.disabled)
    if len(b.faults) != 2 or "key 3" not in b.faults[0] or "key 5" not in b.faults[1]:
        fails.append("dead pads not named for the status: %r" % b.faults)
    machine.TOUCH_ZERO.clear()
    machine.TOUCH_FAIL.clear()
    machine.NOW[0] = None
    return fails


def check_a_dead_touch_pad_shows_in_the_status_of_a_booted_terminal():
    machine.soft_reset()
    machine.TOUCH.clear()
    machine.TOUCH_ZERO.add(PADS[2])
    broker = loopback.Broker(KEY, "H1", "T1")
    state = {}
    path = D + "/dead.json"
    _rm(D + "/dead")
    with open(path, "w") as f:
        json.dump(raw_config("dead", TOUCH), f)

    async def go():
        task = asyncio.create_task(main.serve(path, broker.open_connection, False,
                                              lambda t: state.setdefault("t", t)))
        for _ in range(300):
            await asyncio.sleep(0.01)
        st = state["t"]
        st._refresh_status()
        payload = st.app.status()
        task.cancel()
        await asyncio.sleep(0.02)
        return payload
    payload = asyncio.run(go())
    machine.TOUCH_ZERO.clear()
    faults = messages.decode_status(payload).get("faults", [])
    if not faults or "key 3" not in faults[0]:
        return ["the status does not name the dead pad: %r" % payload]
    return []


# ------------------------------------------------------------------ 2 palms, keys held at boot


def check_a_palm_or_a_key_held_at_boot_makes_no_rating():
    machine.LEVEL.clear()
    machine.LEVEL[KEYS[0]] = 0                 # key 1 held (or jammed) at boot
    b = board_mod.Board(BUTTONS)
    clock = Clock(1000)
    a = fresh_app("palm", clock)

    def run(ms):
        for _ in range(ms // 10):
            clock.t += 10
            m = b.scan(clock.t)
            if m & sm.PALM:
                a.cancel()
            elif m:
                for k in range(5):
                    if m & (1 << k):
                        a.press(k + 1)
            a.tick()
    fails = []
    run(4000)
    if a.journal.pending:
        fails.append("a key held at boot made a rating")
    machine.release(KEYS[0])
    run(100)
    machine.press(KEYS[0])
    run(100)
    machine.release(KEYS[0])
    run(4000)
    if len(a.journal.pending) != 1:
        fails.append("the key held at boot does not work once released: %r" % a.journal.pending)
    # a palm on keys 4 and 5 while idle: no unsolicited rating
    machine.press(KEYS[3])
    machine.press(KEYS[4])
    run(300)
    machine.release(KEYS[3])
    machine.release(KEYS[4])
    run(4000)
    if len(a.journal.pending) != 1:
        fails.append("a palm while idle recorded a rating: %r" % a.journal.records())
    # a wipe during a prompt: key 5 lands first, key 4 50 ms later
    session(a, TOK, T0 + 600, T0, False)
    machine.press(KEYS[4])
    run(50)
    machine.press(KEYS[3])
    run(50)
    machine.release(KEYS[4])
    run(50)
    machine.release(KEYS[3])
    run(4000)
    if len(a.journal.pending) != 1 or a.panel.mode != sm.PROMPT:
        fails.append("a wipe recorded a rating or closed the prompt: %r mode %d"
                     % (a.journal.records(), a.panel.mode))
    return fails


# ------------------------------------------------------------------ 3 the journal


def check_the_journal_reads_only_what_it_sends_and_compacts_in_steps():
    path = D + "/big"
    _rm(path)
    j = journal.Journal(path, 65536, 4096)
    for i in range(500):
        j.add_rating(1 + i % 5, TOK, T0 + i)
    fails = []
    r = j.reads
    got = j.records(0, 8)
    if j.reads - r != 8 or [x[0] for x in got] != list(range(1, 9)):
        fails.append("a batch of 8 read %d lines: %r" % (j.reads - r, [x[0] for x in got]))
    r = j.reads
    got = j.records(400, 8)
    if j.reads - r != 8 or [x[0] for x in got] != list(range(401, 409)):
        fails.append("a batch after seq 400 read %d lines" % (j.reads - r))
    c = j.compactions
    size = j.size
    j.ack([1], T0 + 600)
    if j.compactions != c or j.size - size > 40:
        fails.append("one ack with 499 pending rewrote the journal")
    j.ack(list(range(2, 301)), T0 + 601)
    steps = 0
    while j.compact_step():
        steps += 1
    if j.compactions != c + 1 or steps < 10:
        fails.append("compaction not done in small steps: %d steps" % steps)
    if j.pending != list(range(301, 501)) or [x[0] for x in j.records(0, 3)] != [301, 302, 303]:
        fails.append("compaction lost or mixed records: %r" % j.pending[:5])
    j2 = journal.Journal(path, 65536, 4096)
    if j2.pending != j.pending or j2.next_seq != 501 or j2.clock_s != T0 + 601:
        fails.append("after a reboot: pending %d next %d clock %d" % (len(j2.pending),
                                                                     j2.next_seq, j2.clock_s))
    return fails


def check_the_watchdog_starts_only_after_the_journal_is_recovered():
    order = []
    recover = journal.Journal._recover

    def rec(self):
        order.append("recover")
        recover(self)
    journal.Journal._recover = rec
    wdt = machine.WDT

    class W(wdt):
        def __init__(self, id=0, timeout=5000):
            order.append("watchdog")
            wdt.__init__(self, id, timeout)
    machine.WDT = W
    path = D + "/wd.json"
    with open(path, "w") as f:
        json.dump(raw_config("wd"), f)
    broker = loopback.Broker(KEY, "H1", "T1")

    async def go():
        task = asyncio.create_task(main.serve(path, broker.open_connection))
        await asyncio.sleep(0.2)
        task.cancel()
        await asyncio.sleep(0.02)
    asyncio.run(go())
    machine.soft_reset()
    machine.WDT = wdt
    journal.Journal._recover = recover
    if order != ["recover", "watchdog"]:
        return ["boot order %r: a long recovery would starve the watchdog" % order]
    return []


def wdt_kills_a_stalled_key_loop():
    """Not a check_: ends the process. The test expects 'reset watchdog' and a non-zero exit."""
    path = D + "/kill.json"
    with open(path, "w") as f:
        json.dump(raw_config("kill"), f)
    broker = loopback.Broker(KEY, "H1", "T1")

    async def go():
        asyncio.create_task(main.serve(path, broker.open_connection))
        await asyncio.sleep(0.5)
        print("stalling the loop")
        time.sleep(20)              # a blocking call in the loop: nothing feeds the watchdog
        print("still alive after 20 s")
    asyncio.run(go())


# ------------------------------------------------------------------ 4 dead links


def _link(name, opener):
    clock = time.ticks_ms
    a = fresh_app(name, clock)
    lk = link_mod.Link(a, "10.0.0.2", 1883, "T1", "pw", 60, None, opener, backoff_max=1)
    return a, lk


async def _until(cond, s):
    for _ in range(s * 100):
        if cond():
            return True
        await asyncio.sleep(0.01)
    return False


def check_a_half_open_socket_or_a_blocked_send_takes_the_link_down():
    sm.CORRECT_MS = 100
    sm.THANKS_MS = 100
    sm.QUIET_MS = 50
    link_mod.ANSWER_S = 1
    link_mod.SEND_TIMEOUT_S = 1
    broker = loopback.Broker(KEY, "H1", "T1")
    a, lk = _link("half", network.hostile(broker.open_connection))
    fails = []

    async def tick():
        while True:
            a.tick()
            await asyncio.sleep(0.01)

    async def go():
        tasks = [asyncio.create_task(lk.run()), asyncio.create_task(tick())]
        await _until(lambda: lk.state == link_mod.UP, 5)
        for what, on in (("half-open socket", network.half_open),
                         ("blocked send", network.block_sends)):
            n = broker.stored
            on(True)
            a.press(2)
            if not await _until(lambda: lk.state != link_mod.UP, 5):
                fails.append("the link still says online 5 s into a %s" % what)
            on(False)
            if not await _until(lambda n=n: broker.stored == n + 1, 10):
                fails.append("the rating made during a %s was not delivered after it" % what)
        for t in tasks:
            t.cancel()
        await asyncio.sleep(0.02)
    asyncio.run(go())
    return fails


# ------------------------------------------------------------------ 5 flash errors


def check_a_flash_error_refuses_one_rating_is_reported_and_the_keys_go_on():
    import slowflash
    dev = slowflash.SlowFlash(blocks=32, erase_ms=0, prog_us=0, read_us=0)
    dev.mount("/fl")
    clock = Clock(0)
    a = fresh_app("x", clock, "/fl/journal")
    fails = []
    rate(a, clock, 1)
    dev.fail(1)
    rate(a, clock, 2)
    if a.flash_errors != 1 or a.journal.pending != [1]:
        fails.append("a failed write: errors %d pending %r" % (a.flash_errors, a.journal.pending))
    faults = messages.decode_status(a.status()).get("faults", [])
    if not faults or "flash" not in faults[0]:
        fails.append("the flash error is not in the status: %r" % faults)
    rate(a, clock, 3)
    if len(a.journal.pending) != 2 or [r[2] for r in a.journal.records()] != [1, 3]:
        fails.append("the keys did not work after a flash error: %r" % a.journal.records())
    dev.fail(1)
    ack(a, list(a.journal.pending), T0)      # the ack line fails: nothing raised
    dev.remount("/fl")
    j = journal.Journal("/fl/journal", 32768, 2048)
    if len(j.pending) not in (0, 2):
        fails.append("after a reboot: %r" % j.pending)
    return fails


# ------------------------------------------------------------------ 6 time


def check_daemon_time_survives_a_power_cut_and_stale_sessions_do_not_move_it():
    clock = Clock(5000)
    a = fresh_app("time", clock)
    fails = []
    rate(a, clock, 1)
    ack(a, [1], T0)
    clock.t += 100000
    rate(a, clock, 2)
    ts = a.journal.records()[-1][4]
    # acked at ticks 9000; committed 3 s after the press at 109000: 103 s later
    if ts != T0 + 103:
        fails.append("rating time after a live ack: %d, want %d" % (ts, T0 + 103))
    ack(a, [2], T0 + 110)
    # the power goes; the terminal boots with its ticks at 0 and no network
    clock2 = Clock(0)
    b = fresh_app("unused", clock2, D + "/time")
    clock2.t += 60000
    rate(b, clock2, 3)
    ts = b.journal.records()[-1][4]
    if ts < T0 + 110:
        fails.append("a rating after a power cut is stamped %d, before the last known time" % ts)
    # a stale retained session (signed an hour ago, expired) must not move time or light keys
    clock3 = Clock(0)
    c = fresh_app("stale", clock3)
    ack(c, [7], T0 + 5000)            # nothing pending, but the clock is live
    session(c, TOK, T0 + 1600, T0 + 1000, True)
    if c.panel.mode != sm.IDLE:
        fails.append("a stale retained session lit the keys")
    if c.daemon_now() != T0 + 5000:
        fails.append("a stale retained session moved the clock to %d" % c.daemon_now())
    session(c, "cd" * 16, T0 + 5600, T0 + 4900, True)
    if c.panel.mode != sm.PROMPT:
        fails.append("a retained session still open did not light the keys")
    return fails


# ------------------------------------------------------------------ 9 small ints


def check_the_key_loop_state_stays_in_small_ints_with_a_real_daemon_time():
    clock = Clock(2 ** 29)
    a = fresh_app("ints", clock)
    session(a, TOK, T0 + 600, T0, False)
    for _ in range(100):
        clock.t += 10
        a.tick()
    big = []
    for obj in (a, a.panel):
        for k in obj.__dict__:
            v = obj.__dict__[k]
            if type(v) is int and not -(2 ** 30) <= v < 2 ** 30:
                big.append(k)
    if big:
        return ["heap ints on the ESP32 (over 2**30) kept by the key loop: %r" % big]
    return []


# ------------------------------------------------------------------ 8 WiFi, 11 minor


def check_wifi_is_not_restarted_while_associating_and_modem_sleep_is_off():
    network.power_on()
    network.ASSOC_MS[0] = 12000      # a slow access point: longer than the retry interval
    broker = loopback.Broker(KEY, "H1", "T1")
    path = D + "/wifi.json"
    with open(path, "w") as f:
        json.dump(raw_config("wifi"), f)
    state = {}

    async def go():
        task = asyncio.create_task(main.serve(path, broker.open_connection, False,
                                              lambda t: state.setdefault("t", t)))
        ok = await _until(lambda: broker.status is not None, 16)
        task.cancel()
        await asyncio.sleep(0.02)
        return ok
    ok = asyncio.run(go())
    network.ASSOC_MS[0] = 300
    fails = []
    if network.RESTARTS[0]:
        fails.append("connect() restarted an association in progress %d times"
                     % network.RESTARTS[0])
    if not ok:
        fails.append("never connected through a 12 s association")
    if network.PM[0] != network.WLAN.PM_NONE:
        fails.append("modem sleep left on: pm %r" % network.PM[0])
    return fails


def check_config_refuses_a_broker_name_missing_pins_and_the_display():
    fails = []
    cases = [
        ({"broker": "broker.hall.local"}, "broker:"),
        ({"board": dict(BUTTONS, keys=[20, 33, 25, 26, 27])}, "no GPIO 20"),
        ({"board": dict(BUTTONS, chip="esp32s3", keys=[23, 4, 5, 6, 7],
                        leds=[8, 9, 10, 11, 12])}, "no GPIO 23"),
        ({"board": dict(BUTTONS, keys=[6, 33, 25, 26, 27])}, "GPIO 6 is wired to the flash"),
        ({"board": dict(BUTTONS, leds=[34, 18, 5, 17, 16])}, "GPIO 34 is input-only"),
        ({"board": dict(TOUCH, keys=[4, 13, 14, 27, 25])}, "GPIO 25 cannot touch-sense"),
        ({"board": dict(BUTTONS, display={"kind": "ssd1306", "sda": 21, "scl": 22})},
         "board.display: not supported"),
    ]
    for kw, want in cases:
        try:
            config.validate(raw_config("c", **kw))
            fails.append("accepted: %r" % kw)
        except config.ConfigError as e:
            if not any(want in x for x in e.args[0]):
                fails.append("%r: errors %r do not say %r" % (kw, e.args[0], want))
    return fails


def check_subscribe_has_its_own_packet_id_and_reconnects_spread_out():
    fails = []
    for s in (1, 65534, 65535, 65536, 131068, 131069):
        p = link_mod.pid_of(s)
        if not 1 <= p <= 65534:
            fails.append("seq %d gets packet id %d, the SUBSCRIBE's or out of range" % (s, p))
    broker = loopback.Broker(KEY, "H1", "T1")
    a, lk = _link("pid", broker.open_connection)

    async def go():
        t = asyncio.create_task(lk.run())
        await _until(lambda: broker.subscribe_pid is not None, 5)
        t.cancel()
        await asyncio.sleep(0.02)
    asyncio.run(go())
    if broker.subscribe_pid != link_mod.SUBSCRIBE_PID or broker.subscribe_pid == 1:
        fails.append("SUBSCRIBE used packet id %r" % broker.subscribe_pid)
    waits = [link_mod.jitter_ms() for _ in range(20)]
    if len(set(waits)) < 10 or not all(0 <= w < 1000 for w in waits):
        fails.append("reconnect jitter does not spread terminals: %r" % waits)
    return fails


def main_():
    name = sys.argv[3]
    if name == "wdt_kills_a_stalled_key_loop":
        wdt_kills_a_stalled_key_loop()
        return
    fn = globals().get("check_" + name)
    if fn is None:
        print("no such check: " + name)
        print("FAILED " + name)
        return
    try:
        fails = fn()
    except Exception as e:  # the old firmware may lack what the check calls: a failure
        sys.print_exception(e) if hasattr(sys, "print_exception") else None
        fails = ["raised %s: %s" % (type(e).__name__, e)]
    for f in fails:
        print(f)
    print(("ok " if not fails else "FAILED ") + name)


main_()
