# The MQTT link with the app, against the loopback broker+daemon stand-in, in the common subset:
# runs under CPython (imported by test_link.py) and under real MicroPython (as a script).
# Each check names what staff or citizens would see go wrong if it failed.
# Prints one line per failure, then "link ok N" or "link FAILED N".
import sys

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from haochaping.firmware import app as app_mod
from haochaping.firmware import config
from haochaping.firmware import link as link_mod
from haochaping.firmware import statemachine as sm

KEY = b"k" * 32


class Clock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t


def _setup(d, name, broker):
    import loopback  # noqa: F401  (on the path given to check)
    cfg = config.validate({
        "wifi_ssid": "hall", "broker": "10.0.0.2", "hall": "H1", "terminal": "T1",
        "username": "T1", "password": "pw", "key": "6b" * 32, "journal": d + "/" + name,
        "board": {"name": "b", "chip": "esp32", "input": "buttons", "keys": [1, 2, 3, 4, 5]}})
    clock = Clock()
    app = app_mod.App(cfg, clock)
    link = link_mod.Link(app, "10.0.0.2", 1883, "T1", "pw", 60, None, broker.open_connection,
                         resend_s=60)
    return app, link, clock


async def _until(cond, n=3000):
    for _ in range(n):
        if cond():
            return True
        await asyncio.sleep(0.002)
    return False


def _rate(app, clock, level):
    while app.panel.mode not in (sm.IDLE, sm.PROMPT):  # thanks / reason over
        clock.t += 100
        app.tick()
    clock.t += 1000
    app.press(level)
    for _ in range(40):
        clock.t += 100
        app.tick()


async def link_keeps_ratings_while_down_and_delivers_oldest_first(d):
    import loopback
    b = loopback.Broker(KEY, "H1", "T1")
    b.seen = []
    app, link, clock = _setup(d, "l1", b)
    b.refuse = 3                      # broker not available yet
    task = asyncio.create_task(link.run())
    await asyncio.sleep(0.05)
    for lv in (1, 2, 3):
        _rate(app, clock, lv)         # the keys work while the link is down
    if app.journal.pending != [1, 2, 3] or link.state == link_mod.UP:
        task.cancel()
        return "ratings not kept while the broker was down: %r" % (app.journal.pending,)
    if "server unavailable" not in link.last_error:
        task.cancel()
        return "the refusal is not stated: %r" % link.last_error
    b.refuse = 0
    ok = await _until(lambda: b.stored == 3 and not app.journal.pending)
    task.cancel()
    if not ok:
        return "backlog not delivered after the broker came back"
    if [s[0] for s in b.seen] != [1, 2, 3]:
        return "not delivered oldest first: %r" % (b.seen,)


async def link_resends_unacked_after_reconnect_with_same_packet_id_and_dup(d):
    import loopback
    b = loopback.Broker(KEY, "H1", "T1")
    b.seen = []
    app, link, clock = _setup(d, "l2", b)
    task = asyncio.create_task(link.run())
    await _until(lambda: link.state == link_mod.UP)
    b.acking = False                  # the daemon is down; the broker takes the publish
    _rate(app, clock, 2)
    await _until(lambda: len(b.seen) == 1)
    b.acking = True
    b.drop()                          # the WiFi goes
    ok = await _until(lambda: not app.journal.pending, 5000)
    task.cancel()
    if not ok:
        return "unacked rating not resent after reconnect"
    if len(b.seen) != 2 or b.seen[0][1] != b.seen[1][1] or b.seen[0][2] or not b.seen[1][2]:
        return "resend must carry the same packet id and the DUP flag: %r" % (b.seen,)
    if link.connects != 2:
        return "expected one reconnect, got %d connects" % link.connects


async def link_resends_when_the_daemon_does_not_ack_on_a_live_connection(d):
    import loopback
    b = loopback.Broker(KEY, "H1", "T1")
    b.seen = []
    app, link, clock = _setup(d, "l3", b)
    task = asyncio.create_task(link.run())
    await _until(lambda: link.state == link_mod.UP)
    b.acking = False
    _rate(app, clock, 4)
    await _until(lambda: len(b.seen) >= 1)
    b.acking = True
    clock.t += 30000
    app.wake()
    await asyncio.sleep(0.05)
    early = len(b.seen)
    clock.t += 31000                  # over resend_s without an ack
    app.wake()
    ok = await _until(lambda: not app.journal.pending)
    task.cancel()
    if early != 1:
        return "resent before resend_s"
    if not ok:
        return "a rating the daemon never acked was not resent"


async def link_ignores_forged_acks_and_keeps_the_rating(d):
    import loopback
    b = loopback.Broker(KEY, "H1", "T1")
    app, link, clock = _setup(d, "l4", b)
    b.forge = True
    task = asyncio.create_task(link.run())
    await _until(lambda: link.state == link_mod.UP)
    _rate(app, clock, 1)
    await _until(lambda: app.rejected >= 1)
    task.cancel()
    if app.journal.pending != [1]:
        return "a forged ack freed the journal: a rating could be lost"


async def link_lights_keys_for_the_retained_session_and_darkens_on_empty(d):
    import loopback
    b = loopback.Broker(KEY, "H1", "T1")
    app, link, clock = _setup(d, "l5", b)
    b.open_session("ab" * 16)         # retained before the terminal connects
    task = asyncio.create_task(link.run())
    ok = await _until(lambda: app.panel.mode == sm.PROMPT)
    if not ok:
        task.cancel()
        return "keys did not light for the retained session"
    if app.daemon_now() < b.now:
        task.cancel()
        return "clock not taken from the session's now"
    b.close_session()
    ok = await _until(lambda: app.panel.mode == sm.IDLE)
    task.cancel()
    if not ok:
        return "keys stayed lit after the prompt was withdrawn"


async def link_status_is_retained_and_last_will_says_offline(d):
    import loopback

    from haochaping.firmware import mqtt
    b = loopback.Broker(KEY, "H1", "T1")
    app, link, clock = _setup(d, "l6", b)
    pkt = mqtt.connect(link.client_id, 60, "T1", "pw", app.will())
    flags = pkt[pkt.index(b"MQTT\x04") + 5]
    if b'"online":false' not in pkt or not flags & 0x20 or flags & 0xC4 != 0xC4:
        return "CONNECT lacks the retained offline will or the credentials"
    task = asyncio.create_task(link.run())
    await _until(lambda: b.status is not None)
    task.cancel()
    if b.status is None or b'"online":true' not in b.status or b'"backlog":0' not in b.status:
        return "online status not published: %r" % (b.status,)


CHECKS = (link_keeps_ratings_while_down_and_delivers_oldest_first,
          link_resends_unacked_after_reconnect_with_same_packet_id_and_dup,
          link_resends_when_the_daemon_does_not_ack_on_a_live_connection,
          link_ignores_forged_acks_and_keeps_the_rating,
          link_lights_keys_for_the_retained_session_and_darkens_on_empty,
          link_status_is_retained_and_last_will_says_offline)


async def _all(d):
    failures = []
    for c in CHECKS:
        err = await c(d)
        await asyncio.sleep(0.01)
        if err:
            failures.append("%s: %s" % (c.__name__, err))
    return failures


def check(d, device_dir):
    if device_dir not in sys.path:
        sys.path.append(device_dir)
    failures = asyncio.run(_all(d))
    return len(CHECKS), failures


if __name__ == "__main__":
    n, failures = check(sys.argv[1], sys.argv[2])
    for f in failures:
        print(f)
    print(("link ok %d" if not failures else "link FAILED %d") % n)
