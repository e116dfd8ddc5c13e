# A socket-level stand-in for the broker and the hall daemon, in one asyncio process, for tests
# that need the whole firmware app but not a real network (proof 6, memory). Common subset: runs
# under MicroPython and CPython. Proof 5 uses a real mosquitto and the real daemon instead.
#
# `open_connection(host, port)` returns (reader, writer) stand-ins as asyncio would. The "broker"
# answers CONNECT/SUBSCRIBE/PINGREQ, delivers the retained session, and plays the daemon: every
# verified rating or reason is stored once (by terminal + seq) and acked with a signed ack.
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from haochaping.firmware import mqtt
from haochaping.protocol import messages


class Pipe:
    def __init__(self):
        self.buf = b""
        self.ev = asyncio.Event()
        self.closed = False

    def put(self, b):
        if self.closed:
            raise OSError("closed")
        self.buf += bytes(b)
        self.ev.set()

    async def readexactly(self, n):
        while len(self.buf) < n:
            if self.closed:
                raise EOFError("closed")
            self.ev.clear()
            await self.ev.wait()
        out = self.buf[:n]
        self.buf = self.buf[n:]
        return out

    def close(self):
        self.closed = True
        self.ev.set()


class Writer:
    def __init__(self, pipe):
        self.pipe = pipe

    def write(self, b):
        self.pipe.put(b)

    async def drain(self):
        await asyncio.sleep(0)

    def close(self):
        self.pipe.close()

    async def wait_closed(self):
        pass


class Broker:
    def __init__(self, key, hall, term):
        self.key = key
        self.term = term
        self.t_session = "hcp/v1/%s/%s/session" % (hall, term)
        self.t_ack = "hcp/v1/%s/%s/ack" % (hall, term)
        self.t_rating = "hcp/v1/%s/%s/rating" % (hall, term)
        self.session = b""
        self.stored = 0         # distinct records stored (kept as counts: the heap is measured)
        self.top = 0            # highest seq stored; records arrive oldest first
        self.levels = [0, 0, 0, 0, 0, 0]
        self.tokens = 0         # ratings bound to a session token
        self.reasons = 0
        self.duplicates = 0
        self.error = ""         # what the daemon refused (forged, out of order): a failure
        self.now = 1700000000
        self.connects = 0
        self.refuse = 0         # CONNACK return code to answer with (5 = not authorised)
        self.acking = True      # False: the daemon is down, the broker still takes messages
        self.forge = False      # True: acks signed with a wrong key
        self.seen = None        # a list to log (seq, packet id, dup) of every rating publish
        self.status = None
        self.subscribe_pid = None
        self._down = None       # broker -> client pipe of the live connection
        self._up = None

    async def open_connection(self, host, port):
        up = Pipe()      # client -> broker
        down = Pipe()    # broker -> client
        self._up = up
        self._down = down
        asyncio.create_task(self._serve(up, down))
        return down, Writer(up)

    def drop(self):
        """The WiFi goes: the connection dies under the terminal."""
        if self._up is not None:
            self._up.close()
            self._down.close()

    def _send(self, topic, payload, qos=0, retain=False):
        if self._down is not None and not self._down.closed:
            self._down.put(mqtt.publish(topic, payload, qos, 7 if qos else 0, retain))

    def open_session(self, token, exp_in=600):
        self.session = messages.encode_session(self.key, self.term, token, "W1", "S1",
                                               self.now + exp_in, self.now)
        self._send(self.t_session, self.session, 1)  # live: RETAIN clear on delivery

    def close_session(self):
        self.session = b""
        self._send(self.t_session, b"", 1)

    async def _packet(self, up):
        first = (await up.readexactly(1))[0]
        length = shift = 0
        while True:
            length, shift, done = mqtt.length_done(length, shift, (await up.readexactly(1))[0])
            if done:
                break
        return first, (await up.readexactly(length) if length else b"")

    async def _serve(self, up, down):
        try:
            while True:
                first, body = await self._packet(up)
                kind = first >> 4
                if kind == 1:
                    if self.refuse:
                        down.put(b"\x20\x02\x00" + bytes((self.refuse,)))
                        break
                    self.connects += 1
                    down.put(b"\x20\x02\x00\x00")
                elif kind == 8:
                    self.subscribe_pid = (body[0] << 8) | body[1]
                    down.put(b"\x90\x04" + body[:2] + b"\x01\x01")
                    if self.session:  # the retained copy: RETAIN set, as a broker does
                        self._send(self.t_session, self.session, 1, True)
                elif kind == 12:
                    down.put(b"\xd0\x00")
                elif kind == 3:
                    pkt = mqtt.parse(first, body)
                    if pkt[3]:
                        down.put(mqtt.puback(pkt[4]))
                    self._daemon(pkt[1], pkt[2], pkt[4], bool(first & 8))
                elif kind == 14:
                    break
        except (EOFError, OSError):
            pass
        except ValueError as e:
            self.error = str(e)
        up.close()
        down.close()

    def _daemon(self, topic, payload, pid, dup):
        if topic != self.t_rating:
            self.status = payload
            return
        msg = messages.decode_uplink(payload)
        if not messages.verify_uplink(self.key, msg):
            raise ValueError("forged")
        seq = msg["seq"]
        if self.seen is not None:
            self.seen.append((seq, pid, dup))
        if not self.acking:
            return
        if seq <= self.top:
            self.duplicates += 1
        else:
            if seq != self.top + 1:
                raise ValueError("seq %d after %d: a record was skipped" % (seq, self.top))
            self.top = seq
            self.stored += 1
            if msg["kind"] == "rating":
                self.levels[msg["level"]] += 1
                if msg["token"]:
                    self.tokens += 1
            else:
                self.reasons += 1
        self.now += 1
        key = b"forged-key" if self.forge else self.key
        self._send(self.t_ack, messages.encode_ack(key, self.term, [seq], self.now), 1)
