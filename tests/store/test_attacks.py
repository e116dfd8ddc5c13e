"""The attacks on the store's HTTP side, replayed against a real `hcp store serve` on both
backends (issue 14): a client that trickles its request is cut off, and idle or half-sent
connections, many more than the store takes at once, do not keep a hall's batches out for
longer than the read deadline."""
import socket
import ssl
import threading
import time

import pytest

from haochaping.daemon.hall.store_client import StoreUnavailable

from .conftest import serve_store
from .test_workers import _body

READ_S = 2          # the store's --read-timeout in these tests
MAX_CONN = 8        # its --max-connections (per worker; 2 workers)


@pytest.fixture
def tight_store(store_db, certs, tmp_path):
    s = serve_store(store_db, certs, tmp_path / "store",
                    ["--read-timeout", READ_S, "--max-connections", MAX_CONN])
    yield s
    s.proc.kill()


def _tls(store):
    ctx = ssl.create_default_context(cafile=store.ca)
    port = int(store.url.rsplit(":", 1)[1])
    return ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=60),
                           server_hostname="127.0.0.1")


def _answer(sock):
    """What the store sent before it closed the connection (b"" for nothing)."""
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except (ssl.SSLError, OSError):
        pass
    return data


def _trickle(sock, data, every_s=0.2):
    """Send `data` one byte at a time; how many bytes got out before the store cut us off."""
    for i in range(len(data)):
        try:
            sock.sendall(data[i:i + 1])
        except (ssl.SSLError, OSError):
            return i
        time.sleep(every_s)
    return len(data)


@pytest.mark.parametrize("part", ["headers", "body"])
def test_a_client_trickling_its_request_is_cut_off_at_the_read_deadline(tight_store, part):
    # if this fails, one client sending a byte now and then keeps a connection of the store
    # (a file, a slot) for ever, and a few hundred of them shut every hall out
    body = _body("t1", 1, 2)
    head = ("POST /v1/batches HTTP/1.1\r\nHost: store\r\nX-Hcp-Hall: H01\r\nX-Hcp-Batch: t1\r\n"
            "X-Hcp-Signature: %s\r\nContent-Length: %d\r\n\r\n" % ("0" * 64, len(body))).encode()
    s = _tls(tight_store)
    try:
        if part == "body":
            s.sendall(head)
            slow = body
        else:
            slow = head
        # far more bytes than the deadline lets through: a byte every 0.2 s for 10+ seconds
        assert len(slow) * 0.2 > 5 * READ_S
        sent = _trickle(s, slow)
        assert sent < len(slow), "the store let a trickling client send its whole request"
        answer = _answer(s)
    finally:
        s.close()
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 ")
    assert "not read whole within" in tight_store.proc.log_text()
    c = tight_store.client()
    try:
        assert c.post_batch("ok", _body("ok", 1, 2))["status"] == "stored"
    finally:
        c.close()
    assert tight_store.query(lambda st: st.counts()["batches"]) == 1


def test_many_idle_connections_do_not_keep_a_halls_batches_out(tight_store):
    # if this fails, an attacker opening more connections than the store takes (and saying
    # nothing, or half a request) stops every hall's forwarding for as long as they stay open
    idle = []
    for i in range(3 * 2 * MAX_CONN):       # three times what the two workers take at once
        s = _tls(tight_store)
        if i % 2:
            s.sendall(b"POST /v1/batches HTTP/1.1\r\nHost: store\r\nX-Hcp-Ha")   # half-sent
        idle.append(s)
    answers, errors = [], []

    def hall():
        """Forward 10 batches as a hall does: each again after "unavailable" until stored."""
        c = tight_store.client()
        try:
            for n in range(10):
                body = _body("h%d" % n, 1 + 5 * n, 5)
                while True:
                    try:
                        answers.append(c.post_batch("h%d" % n, body))
                        break
                    except StoreUnavailable:
                        time.sleep(0.2)
        except Exception as e:  # collected and checked below
            errors.append(e)
        finally:
            c.close()
    t = threading.Thread(target=hall)
    t.start()
    cut = [_answer(s) for s in idle]          # each returns once the store has closed it
    t.join(120)
    for s in idle:
        s.close()
    assert not t.is_alive() and errors == []
    assert all(a == b"" or a.startswith(b"HTTP/1.1 408 ") for a in cut)
    assert [a["status"] for a in answers] == ["stored"] * 10
    assert tight_store.query(lambda st: st.counts()) == {"batches": 10, "transactions": 50,
                                                         "ratings": 50, "reasons": 0}
    c = tight_store.client()            # and a new connection is answered as ever
    try:
        assert c.health()["ok"]
    finally:
        c.close()
