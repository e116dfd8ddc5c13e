"""A terminal's broker password sits on a board in the public hall: what it lets a thief do to the
rest of the hall, against the broker config `hcp broker config` writes (real mosquitto, the real
daemon process, simulated terminals on real MQTT connections)."""
import time

import paho.mqtt.client as paho

from haochaping.protocol import messages, topics
from tests.conftest import hall_password, wait_until

STOLEN = "T002"  # the terminal whose board was opened; its simulator is stopped


def _connect(hall, user, client_id, clean=True):
    """A thief's (or a terminal's) own paho connection, without paho's reconnect loop: once the
    broker drops it, it stays dropped."""
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
    c.username_pw_set(user, hall_password(hall, user))
    c.connect("127.0.0.1", hall.mqtt.port)
    deadline = time.time() + 10
    while not c.is_connected() and time.time() < deadline:
        c.loop(0.05)
    assert c.is_connected(), "the broker refused %s as %s" % (user, client_id)
    return c


def _close(c):
    if c.is_connected():
        c.disconnect()
        c.loop(0.1)


def test_a_stolen_terminal_password_cannot_knock_the_daemon_or_another_terminal_off(
        hall, daemon, terminals):
    # if this fails, whoever opens one terminal's board can log in under the daemon's client id
    # (or another terminal's) and the broker throws the real one off, again and again: ratings
    # wait unacked for as long as the thief likes
    ts = terminals(resend_s=3600)
    ts[STOLEN].stop()
    t1 = ts["T001"]
    dropped = []
    t1.client.on_disconnect = lambda *args: dropped.append(args)
    # the daemon's id from hall.toml, the simulator's id for T001, the firmware's (hall-terminal)
    for client_id in (hall.mqtt.client_id, "term-T001", "H01-T001", "T001"):
        thief = _connect(hall, STOLEN, client_id)
        t1.press(4)
        wait_until(lambda: t1.backlog() == 0, what="T001's rating acked while a thief holds %s"
                   % client_id)
        _close(thief)
    assert dropped == []                                        # T001 was never thrown off
    assert "disconnected from broker" not in daemon.log_text()  # nor was the daemon


def test_a_stolen_terminal_password_cannot_wipe_the_ratings_queued_for_the_daemon(
        hall, daemon, hall_db):
    # if this fails, a thief who logs in under the daemon's client id with a clean session while
    # the daemon is down throws away every rating the broker was keeping for it
    key = bytes.fromhex(next(d["key"] for d in _devices(hall) if d["terminal"] == "T001"))
    daemon.kill()                                               # the ratings now wait at the broker
    t1 = _connect(hall, "T001", "H01-T001")
    info = t1.publish(topics.topic("H01", "T001", topics.RATING),
                      messages.encode_rating(key, "T001", 1, 2, "", int(time.time())), qos=1)
    while not info.is_published():                               # PUBACK: the broker has it
        t1.loop(0.05)
    _close(t1)
    thief = _connect(hall, STOLEN, hall.mqtt.client_id, clean=True)
    _close(thief)
    daemon.start()
    wait_until(lambda: hall_db("SELECT terminal, seq, level FROM ratings") == [("T001", 1, 2)],
               what="the rating the broker kept while the daemon was down")


def test_a_megabyte_from_a_terminal_is_cut_off_before_the_broker_holds_it(
        hall, broker, daemon, terminals, hall_db):
    # if this fails, one terminal's password can make the broker hold message after message of
    # a megabyte (209 MB after 200 of them, kept after draining) until the hall server runs out
    size, rounds = 1024 * 1024, 10
    peak_before = _peak_kb(broker)
    for _ in range(rounds):
        c = _connect(hall, "T001", "junk")
        info = c.publish(topics.topic("H01", "T001", topics.RATING), b"x" * size, qos=1)
        deadline = time.time() + 10
        while c.is_connected() and time.time() < deadline:
            c.loop(0.05)
        assert not c.is_connected()        # the broker dropped the sender
        assert not _acked(info)            # and never took the message
    assert (_peak_kb(broker) - peak_before) * 1024 < size   # it never held even one of them
    # and the terminal's real ratings still go through afterwards
    t = terminals()["T001"]
    t.press(3)
    wait_until(lambda: t.backlog() == 0, what="a real rating acked after the flood")
    assert hall_db("SELECT COUNT(*) FROM rejected") == [(0,)]  # no junk reached the daemon


def _acked(info):
    """True once the broker has PUBACKed the message."""
    try:
        return info.is_published()
    except RuntimeError:                   # paho: the connection was lost under it
        return False


def _devices(hall):
    from haochaping.tools.sim import hall_kit
    return hall_kit.devices(hall.folder)


def _peak_kb(service):
    """The broker process's peak resident memory so far (VmHWM, kB)."""
    with open("/proc/%d/status" % service.proc.pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for pid %d" % service.proc.pid)
