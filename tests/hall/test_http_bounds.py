"""Each attack of issue 14 on the daemon's HTTP listener, replayed against the real daemon (its own
process, its real uvicorn listener): parallel PIN guessing, a flood of sign-ins, idle and
half-sent connections, a client that trickles its request."""
import contextlib
import os
import socket
import threading

import pytest

from tests.conftest import wait_until
from tests.hall.console.conftest import ACCOUNTS, Client, console_hall


@pytest.fixture
def bounds():
    """({[api] keys}, {[console] keys}) for hall.toml; a test overrides it with parametrize."""
    return {}, {}


@pytest.fixture
def hall(tmp_path, bounds):
    api_keys, console_keys = bounds
    return console_hall(str(tmp_path / "hall"), windows=("W01", "W02"), api_keys=api_keys,
                        console_keys=console_keys)


@pytest.fixture
def base(hall, daemon):
    host, _, port = hall.api.listen.rpartition(":")
    return "http://%s:%s" % (host, port)


def _address(hall):
    host, _, port = hall.api.listen.rpartition(":")
    return host, int(port)


def _parallel_sign_ins(base, pins, number="S0101"):
    """Each PIN from its own browser (session, CSRF token), all sent at the same moment."""
    clients = [Client(base) for _ in pins]
    for c in clients:
        c.get("/window/W01")
    go = threading.Barrier(len(pins))
    answers = [None] * len(pins)

    def one(i):
        go.wait()
        answers[i] = clients[i].post("/window/W01/sign-in", {"number": number, "pin": pins[i]})
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(pins))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return answers


def _fds(daemon):
    return len(os.listdir("/proc/%d/fd" % daemon.proc.pid))


def _peak_rss_kib(daemon):
    with open("/proc/%d/status" % daemon.proc.pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/<pid>/status")


@pytest.mark.parametrize("bounds", [({}, {"pin_failures": 5, "pin_checks": 40})])
def test_forty_parallel_sign_ins_check_no_more_pins_than_the_lockout_allows(base, hall_db):
    # the attack: 40 sign-ins at once from one address, each with its own session and CSRF
    # token; 39 wrong PINs were checked and the right one signed in. If this fails, the
    # lockout can be beaten by sending guesses in parallel. (pin_checks is raised so that only
    # the lockout is at work here.)
    pins = ["%06d" % i for i in range(39)] + [ACCOUNTS["S0101"][0]]
    answers = _parallel_sign_ins(base, pins)
    statuses = [a.status for a in answers]
    # at most 5 wrong PINs checked (the right one, once it succeeds, clears the count: a
    # guess racing it may still be checked, but the PIN is then found anyway)
    assert statuses.count(401) <= 5, statuses
    assert statuses.count(429) >= 34 and {a.error for a in answers if a.status == 429} == {
        "locked"}
    failed = hall_db("SELECT COUNT(*) FROM audit WHERE action='console.sign-in-failed'")[0][0]
    assert failed == statuses.count(401) <= 5
    if 200 not in statuses:  # the right PIN came too late: the account is locked for now
        r = Client(base).sign_in("/window/W01", "S0101")
        assert (r.status, r.error) == (429, "locked")


@pytest.mark.parametrize("bounds", [({}, {"pin_failures": 1000, "pin_checks": 2})])
def test_a_hundred_parallel_sign_ins_hash_a_few_pins_at_once_and_the_rest_get_429(
        base, api, daemon, hall_db):
    # the attack: 100 concurrent sign-ins took the daemon from 277 MB to 1.8 GB (16 MiB of
    # scrypt each, threads unbounded). If this fails, a flood of sign-ins grows the daemon's
    # memory with the flood, or queues sign-ins behind each other instead of refusing them.
    before = _peak_rss_kib(daemon)
    answers = _parallel_sign_ins(base, ["%06d" % i for i in range(100)],
                                 number="S9999")  # not an account: the same cost, no lockout
    statuses = [a.status for a in answers]
    assert set(statuses) <= {401, 429} and len(statuses) == 100
    busy = [a for a in answers if a.status == 429]
    assert busy and {a.error for a in busy} == {"busy"} and all(a.json["wait"] >= 1 for a in busy)
    assert hall_db("SELECT COUNT(*) FROM audit WHERE action='console.sign-in-failed'") == [
        (statuses.count(401),)]
    # at most 2 scrypt hashes (16 MiB each) at once: the peak grew by far less than 100 of them
    assert _peak_rss_kib(daemon) - before < 20 * 16 * 1024
    assert api.health()["ok"] is True
    assert Client(base).sign_in("/window/W01", "S0101").status == 200


@pytest.mark.parametrize("bounds", [({"read_timeout_s": 3, "keepalive_s": 2}, {})])
def test_122_idle_and_half_sent_connections_neither_block_the_api_nor_the_broker_link(
        hall, api, daemon, broker):
    # the attack: 122 half-sent requests exhausted the daemon's file descriptors; the window
    # API timed out and, after a broker restart, the daemon could not reconnect ("Too many open
    # files"). If this fails, anyone on the hall network can stop the hall with open sockets.
    fds_before = _fds(daemon)
    socks = []
    for i in range(122):
        s = socket.create_connection(_address(hall), timeout=10)
        if i % 2:  # half of them start a request and never finish its head
            s.sendall(b"POST /api/v1/windows/W01/start HTTP/1.1\r\nHost: x\r\nContent-Le")
        socks.append(s)
    assert api.health()["ok"] is True
    assert api.start("W01", "A1")["transaction"] == 1
    broker.stop()
    wait_until(lambda: api.health()["broker"] is False, what="the daemon to see the broker gone")
    broker.start()
    wait_until(lambda: api.health()["broker"] is True, what="the daemon to reconnect")
    # and the daemon itself closes every one of them: idle ones after keepalive_s, half-sent
    # ones at their read deadline, with a 408
    for s in socks:
        s.settimeout(30)
        got = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        assert got == b"" or got.startswith(b"HTTP/1.1 408 "), got
        s.close()
    wait_until(lambda: _fds(daemon) <= fds_before + 2, what="the daemon's sockets closed")
    with open(daemon.log_path, encoding="utf-8", errors="replace") as f:
        assert "Traceback" not in f.read()


@pytest.mark.parametrize("bounds", [({"read_timeout_s": 2}, {})])
@pytest.mark.parametrize("part", ["head", "body"])
def test_a_client_trickling_its_request_a_byte_at_a_time_is_cut_off(hall, api, daemon, part):
    # the attack: one byte a minute kept a connection open for ever (a timeout per read, none
    # in total). If this fails, a few slow clients hold the daemon's connections for ever.
    head = (b"POST /api/v1/windows/W01/start HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + api.token.encode() + b"\r\nContent-Type: application/json\r\nContent-Length: 400"
            b"\r\n\r\n")
    s = socket.create_connection(_address(hall))  # blocking: only the server ends a recv
    if part == "body":
        s.sendall(head)
        trickle = b'{"ticket": "' + b"A" * 386 + b'"}'
    else:
        trickle = head + b" " * 400
    cut = threading.Event()  # set when the server closes the connection
    answer = []

    def read():
        try:
            while chunk := s.recv(4096):
                answer.append(chunk)
        except ConnectionResetError:
            pass
        cut.set()
    reader = threading.Thread(target=read)
    reader.start()
    sent = 0
    for byte in trickle:  # a byte every 0.2 s: the whole request would take over a minute
        if cut.wait(0.2):
            break
        try:
            s.sendall(bytes([byte]))
        except OSError:
            break
        sent += 1
    cut_by_server = cut.is_set()
    # the server's close may come as a reset (a byte it had not read): nothing left to shut
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    reader.join(30)
    s.close()
    assert cut_by_server and sent < len(trickle)
    if part == "head":  # still in the head: told why
        assert b"".join(answer).startswith(b"HTTP/1.1 408 ")
    assert api.health()["ok"] is True
    assert api.state("W01")["state"] == "idle"  # the trickled start never happened
    with open(daemon.log_path, encoding="utf-8", errors="replace") as f:
        assert "Traceback" not in f.read()


@pytest.mark.parametrize("bounds", [({"max_connections": 20, "read_timeout_s": 3}, {})])
def test_connections_beyond_the_limit_are_closed_at_once_and_the_api_answers_again(
        hall, api, daemon):
    # if this fails, open connections are limited only by the daemon's file descriptors, and
    # past those the daemon cannot open its database or reconnect to its broker
    fds_before = _fds(daemon)
    socks = [socket.create_connection(_address(hall), timeout=10) for _ in range(60)]
    for s in socks:
        s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHo")
    wait_until(lambda: _fds(daemon) <= fds_before + 20, what="the extra connections closed")
    closed = 0
    for s in socks:
        s.settimeout(30)
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass
        closed += 1
        s.close()
    assert closed == 60
    assert api.health()["ok"] is True  # the half-sent ones were cut off: room again
