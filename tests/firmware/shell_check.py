# The whole firmware as booted on a terminal (main.serve: config file, watchdog, board, WiFi,
# app, link) under real MicroPython, with the machine/network/neopixel stand-ins of
# tools/sim/sim_device and the loopback broker+daemon. Keys are pressed by setting GPIO levels (or
# touch readings), lights are read back from the GPIO levels and the WS2812 buffer.
#
# Usage: micropython shell_check.py <scratch dir> <tests/device dir>
#    or: PYTHONPATH=tools/sim/sim_device python shell_check.py ... (CPython, as `hcp simulate`
#        runs the firmware where micropython is not installed)
# Prints "shell ok" or the failures.
import json
import sys

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

sys.path.append(sys.argv[2])
import loopback
import machine  # the stand-in

from haochaping.firmware import main
from haochaping.firmware import statemachine as sm

# shorter windows: the behaviour is the same, the test waits less in real time
sm.CORRECT_MS = 300
sm.THANKS_MS = 300
sm.QUIET_MS = 150
sm.REASON_MS = 1500
sm.GUARD_MS = 100

D = sys.argv[1]
KEY = b"k" * 32
KEYS = [32, 33, 25, 26, 27]
LEDS = [19, 18, 5, 17, 16]
BUTTONS = {"name": "devkitc-buttons", "chip": "esp32", "input": "buttons", "keys": KEYS,
           "leds": LEDS, "buzzer": 23, "status_led": 2}
TOUCH = {"name": "s3-touch", "chip": "esp32s3", "input": "touch", "keys": [4, 5, 6, 7, 8],
         "ws2812": {"pin": 48, "count": 5}, "buzzer": 9}
FAILS = []
STATE = {}


def write_config(name, board, term):
    cfg = {"wifi_ssid": "hall", "wifi_password": "x", "broker": "10.0.0.2", "hall": "H1",
           "terminal": term, "username": term, "password": "pw", "key": "6b" * 32,
           "journal": D + "/" + name + ".journal", "board": board}
    path = D + "/" + name + ".json"
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


async def until(what, cond, limit_s=15):
    """Wait for cond() (a generous limit only so that a broken firmware cannot hang the test)."""
    for _ in range(limit_s * 100):
        if cond():
            return True
        await asyncio.sleep(0.01)
    FAILS.append("never happened: %s (%s)" % (what, state()))
    return False


def started(t):
    STATE["t"] = t


def state():
    t = STATE.get("t")
    if t is None:
        return "not started"
    return "mode %d choice %d pending %r link %d %s" % (t.app.panel.mode, t.app.panel.choice,
                                                      t.app.journal.pending, t.link.state,
                                                      t.link.last_error)


def mode():
    return STATE["t"].app.panel.mode


def lit():
    return [machine.LEVEL.get(p, 0) for p in LEDS]


async def tap(gpio):
    machine.press(gpio)
    await asyncio.sleep(0.08)
    machine.release(gpio)
    await asyncio.sleep(0.05)


async def buttons_board():
    broker = loopback.Broker(KEY, "H1", "T1")
    task = asyncio.create_task(main.serve(write_config("b", BUTTONS, "T1"), broker.open_connection,
                                          on_start=started))
    await until("connected and status published", lambda: broker.status is not None)
    st = json.loads(broker.status)
    mpy = sys.implementation.name == "micropython"
    if not st["online"] or st["board"] != "devkitc-buttons" or st["backlog"] != 0 or (
            mpy and st["heap"] <= 0):
        FAILS.append("status message wrong: %r" % (st,))
    if lit() != [0, 0, 0, 0, 0]:
        FAILS.append("keys not dark without a session")
    await until("status LED steady when online", lambda: machine.LEVEL.get(2) == 1)
    broker.open_session("ab" * 16)
    await until("keys lit for a session", lambda: lit() == [1, 1, 1, 1, 1])
    # bounce: a burst of contacts on key 2, then the citizen changes to key 1
    for _ in range(5):
        machine.press(KEYS[1])
        await asyncio.sleep(0.003)
        machine.release(KEYS[1])
        await asyncio.sleep(0.003)
    await tap(KEYS[1])
    await until("chosen key lit", lambda: lit() == [0, 1, 0, 0, 0])
    await tap(KEYS[0])
    await until("rating delivered", lambda: broker.stored == 1)
    if broker.levels[1] != 1:
        FAILS.append("the corrected choice was not the one sent: %r" % (broker.levels,))
    if not machine.TONES:
        FAILS.append("no beep")
    await until("keys dark after the rating",
                lambda: mode() == sm.IDLE and lit() == [0, 0, 0, 0, 0])
    # a bad review, then a reason
    broker.open_session("cd" * 16)
    await until("keys lit for the next session",
                lambda: mode() == sm.PROMPT and lit() == [1, 1, 1, 1, 1])
    await tap(KEYS[4])
    await until("bad review delivered before the reason", lambda: broker.stored == 2)
    await until("reason keys lit", lambda: mode() == sm.REASON and lit()[:4] == [1, 1, 1, 1])
    await asyncio.sleep(0.2)
    await tap(KEYS[2])
    await until("reason delivered", lambda: broker.reasons == 1 and broker.stored == 3)
    # no session: the press is still a rating, with no token
    await until("idle", lambda: mode() == sm.IDLE and lit() == [0, 0, 0, 0, 0])
    await tap(KEYS[2])
    await until("unsolicited rating delivered", lambda: broker.stored == 4)
    if broker.tokens != 2:
        FAILS.append("ratings bound to sessions: %d, want 2" % broker.tokens)
    # WiFi loss: ratings are kept and delivered when it returns
    broker.drop()
    await until("idle", lambda: mode() == sm.IDLE)
    await tap(KEYS[0])
    await until("rating delivered after reconnect", lambda: broker.stored == 5, 30)
    if machine.WDT_FED[0] == 0:
        FAILS.append("watchdog never fed")
    task.cancel()
    await asyncio.sleep(0.05)


async def touch_board():
    machine.TOUCH.clear()
    for p in (4, 5, 6, 7, 8):
        machine.TOUCH[p] = 20000  # ESP32-S3 counts rise on touch
    broker = loopback.Broker(KEY, "H1", "T2")
    task = asyncio.create_task(main.serve(write_config("t", TOUCH, "T2"), broker.open_connection,
                                          on_start=started))
    await until("touch terminal connected", lambda: broker.status is not None)
    await until("touch pads calibrated (0.4 s of real time)",
                lambda: not STATE["t"].board.calibrating)
    broker.open_session("ef" * 16)
    await until("touch keys lit", lambda: STATE["t"].board.np.shown[0] != (0, 0, 0))
    machine.TOUCH[6] = 30000
    await asyncio.sleep(0.08)
    machine.TOUCH[6] = 20000
    await until("touch rating delivered", lambda: broker.stored == 1)
    if broker.levels[3] != 1:
        FAILS.append("touch key 3 not read as level 3: %r" % (broker.levels,))
    task.cancel()
    await asyncio.sleep(0.05)


async def bad_config():
    path = D + "/bad.json"
    with open(path, "w") as f:
        json.dump({"wifi_ssid": "", "broker": "10.0.0.2", "hall": "H 1", "terminal": "T1",
                   "username": "u", "password": "p", "key": "zz", "colour": 1,
                   "board": BUTTONS}, f)
    machine.LEVEL.clear()
    task = asyncio.create_task(main.serve(path))
    await until("config error pattern on the keys",
                lambda: lit() in ([1, 0, 1, 0, 1], [0, 1, 0, 1, 0]))
    task.cancel()


async def run():
    await buttons_board()
    await touch_board()
    await bad_config()
    for f in FAILS:
        print(f)
    print("shell ok" if not FAILS else "shell FAILED")


asyncio.run(run())
