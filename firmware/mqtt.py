"""MQTT 3.1.1 packets (OASIS mqtt-v3.1.1-os), the few this terminal needs. Pure core, no I/O.

Build: connect, publish_header (the payload is written after it, no copy), puback, subscribe,
PINGREQ. Parse: `parse(first_byte, body)` for every packet a broker sends to a client, fed by
`length_done` one remaining-length byte at a time (the link reads them from its stream).
`publish` (header and payload in one bytes) is used by the tests' broker stand-in only.
"""
import struct

from haochaping.protocol.compat import const

# packet types: parse() returns them; the terminal's own packets are literal bytes
_CONNECT = const(1)
CONNACK = const(2)
PUBLISH = const(3)
PUBACK = const(4)
_SUBSCRIBE = const(8)
SUBACK = const(9)
_PINGREQ = const(12)
PINGRESP = const(13)

PINGREQ = b"\xc0\x00"
MAX_IN = const(2048)   # larger incoming packets are refused: they cannot be ours

CONNACK_REASONS = ("accepted", "bad protocol version", "client id rejected",
                   "server unavailable", "bad user name or password", "not authorised")


def varlen(n):
    """The remaining-length field: 7 bits per byte, high bit = more."""
    if not 0 <= n <= 268435455:
        raise ValueError("mqtt: length out of range")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _str(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack("!H", len(s)) + s


def connect(client_id, keepalive, user=None, password=None, will=None):
    """CONNECT, always a clean session (the journal, not the broker, keeps what is unsent).
    `will` = (topic, message, qos, retain) or None."""
    flags = 0x02
    payload = _str(client_id)
    if will:
        topic, msg, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += _str(topic) + _str(msg)
    if user is not None:
        flags |= 0x80
        payload += _str(user)
        if password is not None:
            flags |= 0x40
            payload += _str(password)
    var = b"\x00\x04MQTT\x04" + struct.pack("!BH", flags, keepalive)
    return b"\x10" + varlen(len(var) + len(payload)) + var + payload


def publish_header(topic, size, qos=0, pid=0, retain=False, dup=False):
    """Fixed + variable header of a PUBLISH whose payload has `size` bytes."""
    if isinstance(topic, str):
        topic = topic.encode()
    if qos and not 0 < pid < 65536:
        raise ValueError("mqtt: packet id out of range")
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    rest = 2 + len(topic) + (2 if qos else 0) + size
    head = bytes((first,)) + varlen(rest) + struct.pack("!H", len(topic)) + topic
    if qos:
        head += struct.pack("!H", pid)
    return head


def publish(topic, payload, qos=0, pid=0, retain=False, dup=False):
    return publish_header(topic, len(payload), qos, pid, retain, dup) + payload


_PUBACK = bytearray(b"\x40\x02\x00\x00")


def puback(pid):
    struct.pack_into("!H", _PUBACK, 2, pid)
    return bytes(_PUBACK)


def subscribe(pid, topics):
    """SUBSCRIBE to [(topic, qos), ...]."""
    body = struct.pack("!H", pid)
    for t, q in topics:
        body += _str(t) + bytes((q,))
    return b"\x82" + varlen(len(body)) + body


def parse(first, body):
    """Decode a packet from the broker. Returns a tuple whose first item is the type:
    (CONNACK, return_code, session_present), (PUBLISH, topic, payload, qos, pid, retain),
    (PUBACK, pid), (SUBACK, pid, codes), (PINGRESP,). ValueError on anything else."""
    kind = first >> 4
    n = len(body)
    if kind == PUBLISH:
        qos = (first >> 1) & 3
        if qos == 3 or n < 2:
            raise ValueError("mqtt: bad PUBLISH")
        tlen = struct.unpack_from("!H", body, 0)[0]
        at = 2 + tlen
        if at > n:
            raise ValueError("mqtt: bad PUBLISH topic")
        topic = bytes(body[2:at]).decode()
        pid = 0
        if qos:
            if at + 2 > n:
                raise ValueError("mqtt: bad PUBLISH id")
            pid = struct.unpack_from("!H", body, at)[0]
            at += 2
        return (PUBLISH, topic, bytes(body[at:]), qos, pid, bool(first & 1))
    if kind == CONNACK and n == 2:
        return (CONNACK, body[1], bool(body[0] & 1))
    if kind == PUBACK and n == 2:
        return (PUBACK, struct.unpack_from("!H", body, 0)[0])
    if kind == SUBACK and n >= 3:
        return (SUBACK, struct.unpack_from("!H", body, 0)[0], bytes(body[2:]))
    if kind == PINGRESP and n == 0:
        return (PINGRESP,)
    raise ValueError("mqtt: unexpected packet type %d" % kind)


def length_done(length, shift, byte):
    """Feed one remaining-length byte: returns (length, shift, finished)."""
    length |= (byte & 0x7F) << shift
    if shift > 21:
        raise ValueError("mqtt: bad remaining length")
    return length, shift + 7, not byte & 0x80
