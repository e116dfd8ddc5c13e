"""The MQTT link: asyncio, reconnect with backoff, the journal as the outbox. No hardware.

One supervisor task (`run`) owns the connection: wait for the network, connect, CONNECT with the
terminal's own user name and password and a last will (retained status "offline"), SUBSCRIBE to
the session and ack topics, publish the retained status, then send every pending journal record
oldest first (QoS 1, packet id derived from the seq, so a resend carries the same id and the DUP
flag). A reader task handles what the broker sends. On any failure both stop, the socket is
closed, and the supervisor backs off (1, 2, 4 ... 60 s, with jitter) and starts again.

The keys never wait for the link: presses are handled by the app in another task, and the link
learns of new records through `app.wake`. Outages are state, not exceptions: `state` (0 down,
1 no network, 2 connecting, UP = 3 online), `last_error`, `connects`, `failures`.

The daemon's ack (by seq) frees the journal, not the broker's PUBACK: a PUBACK only means the
broker has it. If the oldest pending record stays unacked for `resend_s` on a live connection
(daemon down, restarted without a persistent session), every pending record is sent again.
Duplicates are expected; the daemon dedups by terminal + seq.

A dead connection is found quickly, not when lwIP gives up minutes later: every send (drain) has
SEND_TIMEOUT_S, and whatever expects an answer (a QoS 1 publish, a PINGREQ) must get some packet
back within ANSWER_S, or the connection is closed: the link says DOWN and the status light
offline while the journal keeps the ratings (a half-open socket takes writes and answers
nothing).

Packet ids: a rating's is derived from its seq in 1..65534; 65535 is the SUBSCRIBE's alone.
Reconnect jitter comes from os.urandom: terminals that boot together after a power cut spread.

`open_connection` is injectable (default asyncio.open_connection): tests put a socket-level
stand-in there. The broker host is an IP address (config.py): MicroPython resolves names
blocking.

TLS (`tls_ca`, the hall CA in DER, and `tls_name`, the name the broker's certificate must carry):
the socket is wrapped with an ssl.SSLContext that requires a certificate signed by the hall CA,
so the terminal's password never crosses the WiFi in clear and a broker with any other
certificate gets nothing. `ssl` is imported only then. MicroPython's open_connection wraps the
non-blocking socket without a handshake; the handshake runs in the first write and drain, under
the same timeouts as the plain CONNECT, and yields to the other tasks while it waits for the
broker; only its computation (signature checks, key exchange) runs in one piece. A failed
handshake is named in `last_error` ("TLS: ...").

Times are `app.ms()` ticks compared with `ticks_diff` (clock.py); waits are `sleep_ms` with whole
milliseconds. `sleep_ms` is asyncio's own on MicroPython; CPython's asyncio lacks it, and the
stand-in is defined here, the firmware's asyncio module, for main.py too.
"""
try:
    import asyncio
except ImportError:  # pragma: no cover - older MicroPython
    import uasyncio as asyncio  # type: ignore

import os

from . import mqtt
from .clock import ticks_diff

try:
    sleep_ms = asyncio.sleep_ms
except AttributeError:  # CPython
    def sleep_ms(ms):
        return asyncio.sleep(ms / 1000)

from haochaping.protocol.compat import const

_DOWN = const(0)
_NO_NETWORK = const(1)
_CONNECTING = const(2)
UP = const(3)

_TIMEOUT = const(10)  # s for connect and CONNACK
SEND_TIMEOUT_S = 10   # s for one send to leave (drain); plain int: tests shorten it
ANSWER_S = 15         # s for the broker to answer a publish or a ping
_BATCH = const(8)     # records read from the journal per step
SUBSCRIBE_PID = const(65535)


def pid_of(seq):
    """The packet id of a record: 1..65534, never the SUBSCRIBE's."""
    return (seq - 1) % 65534 + 1


def tls_context(ca_der):
    """A client context that accepts only a broker certificate signed by the hall CA (DER)."""
    import ssl  # only on a terminal that uses TLS

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # MicroPython's client default is CERT_NONE. verify_mode is in MicroPython's ssl docs and
    # module, but not in the ESP32 stubs' SSLContext
    ctx.verify_mode = ssl.CERT_REQUIRED  # type: ignore[attr-defined]
    ctx.load_verify_locations(cadata=ca_der)
    return ctx


def tls_failure(e, name):
    """What a failed TLS connection means, in words."""
    text = (str(e) or type(e).__name__).strip()
    if isinstance(e, ValueError) or (e.args and e.args[0] == -9984) or "VERIFY_FAILED" in text:
        return "TLS: the broker's certificate is not from the hall CA or not for %s (%s)" % (
            name, text)
    return "TLS: no session with the broker (%s)" % text


def jitter_ms():
    """0..999 ms from the hardware random source (the same on no two terminals)."""
    b = os.urandom(2)
    return ((b[0] << 8) | b[1]) % 1000


class Link:
    def __init__(self, app, host, port, user, password, keepalive=60, net_ready=None,
                 open_connection=None, backoff_max=60, resend_s=60, status_s=300,
                 tls_ca=None, tls_name=None):
        self.app = app
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.keepalive = keepalive
        self.net_ready = net_ready
        self.open = open_connection or asyncio.open_connection
        self.backoff_max = backoff_max
        self.resend_ms = resend_s * 1000
        self.status_ms = status_s * 1000
        self.tls_ca = tls_ca
        self.tls_name = tls_name
        self._ssl = None       # the SSLContext, made at the first connect
        self.client_id = app.cfg["hall"] + "-" + app.term
        self.state = _DOWN
        self.connects = 0
        self.failures = 0
        self.sent = 0          # publishes written (ratings, reasons, status)
        self.last_error = ""
        self._wake = asyncio.Event()
        self._dead = False
        self._high = 0         # highest seq ever sent since boot: a resend gets the DUP flag
        self._rx = 0
        self._tx = 0
        self._asked = 0        # ticks of the oldest send still waiting for an answer; 0: none
        app.wake = self._wake.set

    # ------------------------------------------------------------ supervisor

    async def run(self):
        backoff = 1
        while True:
            if self.net_ready is not None and not self.net_ready():
                self.state = _NO_NETWORK
                await sleep_ms(1000)
                continue
            self.state = _CONNECTING
            before = self.connects
            try:
                await self._connection()
            except (OSError, ValueError, EOFError, asyncio.TimeoutError) as e:
                self.last_error = "%s: %s" % (type(e).__name__, e)
            self.state = _DOWN
            self.failures += 1
            if self.connects != before:
                backoff = 1
            # jitter from the clock spreads a hall's terminals after a broker restart
            await sleep_ms(backoff * 1000 + jitter_ms())
            backoff = min(backoff * 2, self.backoff_max)

    async def _open(self):
        if self._ssl is None:
            return await asyncio.wait_for(self.open(self.host, self.port), _TIMEOUT)
        return await asyncio.wait_for(
            self.open(self.host, self.port, ssl=self._ssl, server_hostname=self.tls_name),
            _TIMEOUT)

    async def _connection(self):
        """One connection, from CONNECT until it fails (it always ends in an exception)."""
        if self.tls_ca is not None and self._ssl is None:
            try:
                self._ssl = tls_context(self.tls_ca)
            except (ValueError, OSError) as e:
                raise ValueError("TLS: the hall CA in the config is unusable (%s)" % e) from None
        w = None
        reader = None
        try:
            app = self.app
            try:  # with TLS, the handshake happens in here (in the open on CPython)
                r, w = await self._open()
                w.write(mqtt.connect(self.client_id, self.keepalive, self.user, self.password,
                                     app.will()))
                await self._drain(w)
            except (OSError, EOFError, ValueError) as e:  # MicroPython: a bad certificate is
                if self.tls_ca is None:                     # a ValueError
                    raise
                raise OSError(tls_failure(e, self.tls_name)) from None
            pkt = await asyncio.wait_for(self._read(r), _TIMEOUT)  # type: tuple
            if pkt[0] != mqtt.CONNACK:
                raise ValueError("no CONNACK")
            if pkt[1]:
                rc = pkt[1]
                why = mqtt.CONNACK_REASONS[rc] if rc < 6 else str(rc)
                raise ValueError("broker refused: " + why)
            w.write(mqtt.subscribe(SUBSCRIBE_PID, app.subscriptions()))
            self._rx = self._tx = app.ms()
            self._asked = self._tx | 1    # the SUBACK answers
            await self._publish(w, app.t_status, app.status(), 0, 0, True)
            self._dead = False
            self.state = UP
            self.connects += 1
            self.last_error = ""
            reader = asyncio.create_task(self._reader(r, w))
            await self._sender(w)
        finally:
            if reader is not None:
                reader.cancel()
            self.state = _DOWN
            try:
                if w is not None:
                    w.close()
                    await w.wait_closed()
            except (OSError, EOFError):
                pass

    # ------------------------------------------------------------ I/O

    async def _read(self, r):
        first = (await r.readexactly(1))[0]
        length = shift = 0
        while True:
            length, shift, done = mqtt.length_done(length, shift, (await r.readexactly(1))[0])
            if done:
                break
        if length > mqtt.MAX_IN:
            raise ValueError("mqtt: packet too large")
        body = await r.readexactly(length) if length else b""
        return mqtt.parse(first, body)

    async def _drain(self, w):
        """Wait for the bytes to leave, at most SEND_TIMEOUT_S (a dead link blocks sends)."""
        try:
            await asyncio.wait_for(w.drain(), SEND_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise OSError("send blocked for %d s" % SEND_TIMEOUT_S) from None

    async def _publish(self, w, topic, payload, qos, pid, retain=False, dup=False):
        if qos and not self._asked:
            self._asked = self.app.ms() | 1   # before the await: the answer may come during it
        w.write(mqtt.publish_header(topic, len(payload), qos, pid, retain, dup))
        w.write(payload)
        await self._drain(w)
        self._tx = self.app.ms()
        self.sent += 1

    async def _reader(self, r, w):
        try:
            while True:
                pkt = await self._read(r)
                self._rx = self.app.ms()
                self._asked = 0
                if pkt[0] == mqtt.PUBLISH:
                    if pkt[3] == 1:
                        w.write(mqtt.puback(pkt[4]))
                    self.app.on_message(pkt[1], pkt[2], pkt[5])
                elif pkt[0] == mqtt.SUBACK and b"\x80" in pkt[2]:
                    raise ValueError("broker refused a subscription (ACL?)")
        except (OSError, ValueError, EOFError) as e:
            self.last_error = "%s: %s" % (type(e).__name__, e)
        finally:
            self._dead = True
            self._wake.set()

    async def _sender(self, w):
        app = self.app
        after = 0                   # highest seq written on this connection
        oldest = 0
        oldest_since = app.ms()
        status_at = app.ms()
        half = self.keepalive * 500
        while not self._dead:
            for topic, payload, retain in app.notes():  # an update's fetches and its status
                await self._publish(w, topic, payload, 0, 0, retain)
            batch = app.outbox(after, _BATCH)
            for seq, payload in batch:
                await self._publish(w, app.t_rating, payload, 1, pid_of(seq), False,
                                    seq <= self._high)
                after = seq
                if seq > self._high:
                    self._high = seq
            if batch:
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), 1)
            except asyncio.TimeoutError:
                pass
            now = app.ms()
            if self.net_ready is not None and not self.net_ready():
                raise OSError("network lost")
            if ticks_diff(now, self._rx) > self.keepalive * 1500:
                raise OSError("broker silent for 1.5 keep-alive periods")
            if self._asked and ticks_diff(now, self._asked) > ANSWER_S * 1000:
                await sleep_ms(50)  # let the reader take what has arrived meanwhile
                if self._asked and ticks_diff(app.ms(), self._asked) > ANSWER_S * 1000:
                    raise OSError("no answer from the broker for %d s (half-open?)" % ANSWER_S)
            if ticks_diff(now, self._tx) >= half:
                if not self._asked:
                    self._asked = now | 1
                w.write(mqtt.PINGREQ)
                await self._drain(w)
                self._tx = now
            pending = app.journal.pending
            head = pending[0] if pending else 0
            if head != oldest:
                oldest = head
                oldest_since = now
            elif head and ticks_diff(now, oldest_since) >= self.resend_ms:
                after = 0           # the daemon has not acked: send everything pending again
                oldest_since = now
            if ticks_diff(now, status_at) >= self.status_ms:
                status_at = now
                await self._publish(w, app.t_status, app.status(), 0, 0, True)
        raise OSError("connection lost")
