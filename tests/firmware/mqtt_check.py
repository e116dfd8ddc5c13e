# The MQTT 3.1.1 packet codec, byte for byte, in the common subset: runs under CPython (imported by
# test_core.py) and under real MicroPython (as a script). A wrong byte here means the broker drops
# the terminal's connection, or ratings never reach the daemon.
# Prints one line per failure, then "mqtt ok N" or "mqtt FAILED N".
import io

from haochaping.firmware import mqtt


def _exact(stream, n):
    b = stream.read(n)
    if b is None or len(b) != n:
        raise OSError("mqtt: connection closed")
    return b


def read_packet(stream):
    """Read one whole packet from a blocking stream and parse it, as the link does from its
    asyncio stream (the terminal never reads a blocking stream: this lives with the tests)."""
    first = _exact(stream, 1)[0]
    length = shift = 0
    while True:
        length, shift, done = mqtt.length_done(length, shift, _exact(stream, 1)[0])
        if done:
            break
    if length > mqtt.MAX_IN:
        raise ValueError("mqtt: packet too large")
    return mqtt.parse(first, _exact(stream, length) if length else b"")


def check_remaining_length_uses_7_bits_per_byte(d):
    cases = ((0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16383, b"\xff\x7f"),
             (16384, b"\x80\x80\x01"), (268435455, b"\xff\xff\xff\x7f"))
    for n, want in cases:
        if mqtt.varlen(n) != want:
            return "varlen(%d) = %r" % (n, mqtt.varlen(n))
        length = shift = 0
        for b in want:
            length, shift, done = mqtt.length_done(length, shift, b)
        if length != n or not done:
            return "length_done(%r) = %d" % (want, length)


def check_connect_carries_credentials_keepalive_and_last_will(d):
    got = mqtt.connect("T1", 60, "u", "p", ("s/t", b"off", 1, True))
    want = (b"\x10\x1e\x00\x04MQTT\x04\xee\x00\x3c\x00\x02T1\x00\x03s/t\x00\x03off"
            b"\x00\x01u\x00\x01p")
    if got != want:
        return "CONNECT bytes %r" % (got,)
    if mqtt.connect("T1", 30) != b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x1e\x00\x02T1":
        return "bare CONNECT bytes wrong"


def check_publish_qos1_has_packet_id_and_dup_flag(d):
    got = mqtt.publish("a/b", b"hi", 1, 10, False, True)
    if got != b"\x3a\x09\x00\x03a/b\x00\x0ahi":
        return "PUBLISH qos1 bytes %r" % (got,)
    got = mqtt.publish("a/b", b"x", 0, 0, True)
    if got != b"\x31\x06\x00\x03a/bx":
        return "PUBLISH qos0 retained bytes %r" % (got,)
    big = mqtt.publish_header("t", 200, 1, 1)
    if big != b"\x32\xcd\x01\x00\x01t\x00\x01":
        return "PUBLISH with 2-byte length %r" % (big,)


def check_puback_subscribe_ping_bytes(d):
    if mqtt.puback(0x1234) != b"\x40\x02\x12\x34" or mqtt.puback(7) != b"\x40\x02\x00\x07":
        return "PUBACK bytes"
    got = mqtt.subscribe(1, [("a", 1), ("bc", 0)])
    if got != b"\x82\x0b\x00\x01\x00\x01a\x01\x00\x02bc\x00":
        return "SUBSCRIBE bytes %r" % (got,)
    if mqtt.PINGREQ != b"\xc0\x00":
        return "PINGREQ bytes"


def check_packets_from_the_broker_parse_from_a_stream(d):
    s = io.BytesIO(b"\x20\x02\x00\x00" b"\x33\x0a\x00\x03a/b\x00\x07xyz" b"\x40\x02\x00\x07"
                   b"\x90\x04\x00\x01\x01\x80" b"\xd0\x00" b"\x31\x07\x00\x05a/b/c"
                   b"\x20\x02\x01\x05")
    want = [(mqtt.CONNACK, 0, False), (mqtt.PUBLISH, "a/b", b"xyz", 1, 7, True),
            (mqtt.PUBACK, 7), (mqtt.SUBACK, 1, b"\x01\x80"), (mqtt.PINGRESP,),
            (mqtt.PUBLISH, "a/b/c", b"", 0, 0, True), (mqtt.CONNACK, 5, True)]
    for w in want:
        got = read_packet(s)
        if got != w:
            return "parsed %r, want %r" % (got, w)
    try:
        read_packet(s)
        return "end of stream not reported"
    except OSError:
        pass


def check_garbage_from_the_network_is_refused_not_crashing(d):
    for raw in (b"\x30\x05\x00\x09abc", b"\x36\x03\x00\x01a", b"\xf0\x00", b"\x20\x01\x00",
                b"\x30\xff\xff\xff\x7f", b"\x30\xff\xff\xff\xff\x01"):
        try:
            read_packet(io.BytesIO(raw + b"\x00" * 8))
            return "accepted garbage %r" % (raw,)
        except ValueError:
            pass
        except OSError:
            pass


def check(d):
    n = 0
    failures = []
    g = globals()
    for name in sorted(g):
        if name.startswith("check_"):
            n += 1
            err = g[name](d)
            if err:
                failures.append("%s: %s" % (name, err))
    return n, failures


if __name__ == "__main__":
    import sys
    n, failures = check(sys.argv[1])
    for f in failures:
        print(f)
    print(("mqtt ok %d" if not failures else "mqtt FAILED %d") % n)
