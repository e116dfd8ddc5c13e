"""The broker behind one adapter: the only daemon module that imports paho.

A persistent session (clean_session=False) with manual acks: the broker hands a rating to the
daemon again until the daemon has committed it and sent the PUBACK. Messages arrive on paho's
network thread and are put on a queue; the daemon's writer thread does everything else.

With a CA (hall.toml [mqtt] tls/ca), the connection is TLS 1.2 or later and the broker's
certificate must be signed by that CA and name the host the daemon connects to.
"""
from __future__ import annotations

import logging
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from haochaping.daemon.errors import ConfigError

log = logging.getLogger(__name__)
_REPEAT_S = 60  # while the broker stays away, say so again this often


class Incoming:
    __slots__ = ("topic", "payload", "mid", "qos", "generation")

    def __init__(self, topic: str, payload: bytes | bytearray, mid: int, qos: int,
                 generation: int) -> None:
        self.topic = topic
        self.payload = payload
        self.mid = mid
        self.qos = qos
        self.generation = generation


def tls_context(ca: str) -> ssl.SSLContext:
    """TLS 1.2 or later, the broker's certificate checked against the CA file and its name."""
    try:
        ctx = ssl.create_default_context(cafile=ca)
    except FileNotFoundError:
        raise ConfigError("[mqtt] ca: %s not found (the hall CA: `hcp broker config --tls` makes"
                          " it in broker/tls/hall-ca.pem)" % ca) from None
    except (ssl.SSLError, OSError) as e:
        raise ConfigError("[mqtt] ca: %s is not a PEM certificate (%s)" % (ca, e)) from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _verify_failure(err: ssl.SSLCertVerificationError) -> str:
    """What is wrong with the broker's certificate, in words."""
    why = err.verify_message or str(err)
    if "unable to get local issuer" in why or "self-signed" in why or "self signed" in why:
        return "the hall CA in [mqtt] ca did not sign (%s)" % why
    if "mismatch" in why or "match" in why:
        return "does not name the host the daemon connects to (%s)" % why
    return "is not accepted (%s)" % why


class Link:
    def __init__(self, host: str, port: int, client_id: str, username: str, password: str,
                 keepalive: int, subscriptions: Sequence[str],
                 deliver: Callable[[Incoming], None],
                 on_connected: Callable[[], None] | None = None, ca: str | None = None) -> None:
        self._subs = subscriptions
        self._deliver = deliver
        self._on_connected = on_connected
        self._stopping = False
        self.generation = 0  # bumped on every (re)connect; PUBACKs only go to the current one
        self.connected = threading.Event()
        self.last_error: str | None = None  # why the broker is not connected, in words
        self._said_at = 0.0                 # when last_error was last logged
        c = self._client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                                       clean_session=False, manual_ack=True)
        if username:
            c.username_pw_set(username, password)
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(min_delay=1, max_delay=10)
        c.on_connect = self._connected
        c.on_disconnect = self._disconnected
        c.on_connect_fail = self._connect_failed
        c.on_message = self._message
        self._host, self._port, self._keepalive = host, port, keepalive
        self._ca = ca
        if ca:
            c.tls_set_context(tls_context(ca))

    def start(self) -> None:
        # connect_async + loop_start: paho keeps reconnecting with backoff on its own thread
        self._client.connect_async(self._host, self._port, self._keepalive)
        self._client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()

    def _connected(self, client: paho.Client, userdata: Any, flags: paho.ConnectFlags,
                   reason: ReasonCode, properties: Properties | None) -> None:
        if reason.is_failure:
            self._failed("the broker at %s:%s refused the connection: %s (check [mqtt] username"
                         " and password in hall.toml and the broker's password file)"
                         % (self._host, self._port, reason), logging.ERROR)
            return
        self.last_error, self._said_at = None, 0.0
        self.generation += 1
        sock = client.socket()
        if isinstance(sock, socket.socket):  # TCP or TLS (paho's websocket wrapper is not one)
            # acks leave at once instead of waiting for Nagle's algorithm
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.subscribe([(t, 1) for t in self._subs])
        log.info("connected to broker %s:%s (session present: %s)", self._host, self._port,
                 flags.session_present)
        self.connected.set()
        if self._on_connected:
            self._on_connected()

    def _disconnected(self, client: paho.Client, userdata: Any, flags: paho.DisconnectFlags,
                      reason: ReasonCode, properties: Properties | None) -> None:
        self.connected.clear()
        if self._stopping:
            return
        log.warning("disconnected from broker: %s; reconnecting", reason)

    def _connect_failed(self, client: paho.Client, userdata: Any) -> None:
        # paho calls this inside its `except OSError:`, so the error is at hand
        err = sys.exc_info()[1]
        if isinstance(err, ssl.SSLCertVerificationError):
            self._failed("the broker at %s:%s has a certificate that %s: check [mqtt] ca (the"
                         " hall CA, broker/tls/hall-ca.pem) and host in hall.toml; retrying"
                         % (self._host, self._port, _verify_failure(err)), logging.ERROR)
        elif self._ca and isinstance(err, (ssl.SSLError, ConnectionResetError, EOFError)):
            self._failed("no TLS session with the broker at %s:%s (%s): is that its TLS port?"
                         " check [mqtt] port in hall.toml; retrying"
                         % (self._host, self._port, err), logging.ERROR)
        else:
            self._failed("cannot reach the broker at %s:%s (is mosquitto running there? check"
                         " [mqtt] host and port in hall.toml); retrying" % (self._host, self._port))

    def _failed(self, why: str, level: int = logging.WARNING) -> None:
        """Say why there is no broker: at once the first time, then once a minute."""
        now = time.monotonic()
        if why != self.last_error or now - self._said_at >= _REPEAT_S:
            log.log(level, "%s", why)
            self._said_at = now
        self.last_error = why

    def _message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        self._deliver(Incoming(msg.topic, msg.payload, msg.mid, msg.qos, self.generation))

    def ack(self, incoming: Incoming) -> None:
        """PUBACK a message once it is durably stored (only on the connection it came on)."""
        if incoming.qos and incoming.generation == self.generation:
            self._client.ack(incoming.mid, incoming.qos)

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=qos, retain=retain)
