"""The window API a queue system calls: only callers with a token from hall.toml get in."""
import json
import urllib.error
import urllib.request

import pytest

from haochaping.daemon.errors import HcpError
from haochaping.daemon.hall.api_client import WindowApi


def _raw(api, method, path, body=None, token="default"):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + (api.token if token == "default" else token)
    req = urllib.request.Request(api.base + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.parametrize("token", [None, "wrong-token-but-long-enough"])
def test_a_caller_without_the_right_token_is_refused(api, token):
    # if this fails, anyone on the hall network could open prompts or read windows
    status, body = _raw(api, "POST", "/windows/W01/start", b'{"ticket":"A1"}', token=token)
    assert status == 401 and "token" in body["error"]
    assert _raw(api, "GET", "/windows/W01", token=token)[0] == 401


def test_bad_requests_get_a_clear_error(api):
    assert _raw(api, "POST", "/windows/W01/start", b"not json")[0] == 400
    assert _raw(api, "POST", "/windows/W01/start", b'{"ticket": 5}')[0] == 400
    assert _raw(api, "POST", "/windows/W01/start", b"{}") == (
        400, {"error": "ticket: must be text", "field": "ticket"})
    assert _raw(api, "POST", "/windows/W01/explode", b"{}")[0] == 404
    status, body = _raw(api, "POST", "/windows/W!1/start", b'{"ticket":"A1"}')
    assert status == 400 and "window" in body["error"]
    with pytest.raises(HcpError, match="staff"):
        api.start("W01", "A1", staff="S|01")


def test_window_states_follow_the_service(api, terminals):
    # what a queue system shows at the window: serving -> prompting -> rated
    t = terminals()["T001"]
    assert api.state("W01")["state"] == "idle"
    api.start("W01", "A1")
    assert api.state("W01")["state"] == "serving"
    api.finish("W01")
    assert api.state("W01")["state"] == "prompting"
    t.wait_session()
    t.press(2)
    from tests.conftest import wait_until
    wait_until(lambda: api.state("W01")["state"] == "rated", what="rated")
    assert api.state("W01")["level"] == 2


def test_the_api_listens_on_localhost_only_by_default(hall):
    assert hall.api.listen.startswith("127.0.0.1:")
    assert isinstance(WindowApi(hall).base, str)


def _raw_http(api, body, headers):
    """One POST over a plain socket with exactly these headers (the client libraries would
    correct a bad Content-Length); returns (status, JSON answer)."""
    import http.client
    host, port = api.base.split("//")[1].split("/")[0].split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        c.putrequest("POST", "/api/v1/windows/W02/start", skip_accept_encoding=True)
        c.putheader("Authorization", "Bearer " + api.token)
        for k, v in headers.items():
            c.putheader(k, v)
        c.endheaders(body)
        r = c.getresponse()
        return r.status, json.loads(r.read())
    finally:
        c.close()


@pytest.mark.parametrize("field", ["ticket", "item", "staff"])
def test_a_ticket_with_a_nul_is_refused_with_400_naming_the_field(api, hall_db, field):
    # if this fails, the hall stores a transaction the store (PostgreSQL) can never take, and
    # the hall's delivery to the city stops behind it for good
    body = {"ticket": "A017", "item": "", "staff": "S01"}
    body[field] = "A\u0000B"
    status, answer = _raw(api, "POST", "/windows/W02/start", json.dumps(body).encode())
    assert status == 400
    assert answer["field"] == field and answer["error"].startswith(field + ": ")
    assert hall_db("SELECT COUNT(*) FROM transactions") == [(0,)]


def test_a_ticket_that_reverses_what_follows_it_is_refused(api, hall_db):
    # if this fails, a queue system (or anyone holding its token) can start ticket
    # "A017<U+202E>..." and the staff page, the manager page and the exports show the text
    # after it reversed or hidden: what people read is not what was stored
    status, answer = _raw(api, "POST", "/windows/W02/start",
                          json.dumps({"ticket": "A017\u202e710A"}).encode())
    assert status == 400 and answer["field"] == "ticket"
    assert "invisible or direction-changing character (U+202E" in answer["error"]
    assert hall_db("SELECT COUNT(*) FROM transactions") == [(0,)]


def test_a_lone_surrogate_in_a_ticket_gets_400_not_a_dropped_connection(api, daemon, hall_db):
    # "\ud800" is valid JSON but no UTF-8 text: the daemon dropped the connection with a
    # traceback in its log, and the queue system saw no answer at all
    status, answer = _raw(api, "POST", "/windows/W02/start", b'{"ticket": "A\\ud800"}')
    assert status == 400 and answer["field"] == "ticket"
    assert "lone surrogate" in answer["error"]
    assert hall_db("SELECT COUNT(*) FROM transactions") == [(0,)]
    with open(daemon.log_path, encoding="utf-8", errors="replace") as f:
        assert "Traceback" not in f.read()


@pytest.mark.parametrize("headers, body", [
    ({"Content-Length": "abc"}, b'{"ticket": "A1"}'),
    ({"Content-Length": "-5"}, b'{"ticket": "A1"}'),
    ({"Content-Length": "4"}, b"\xff\xfe{}"),
    ({"Content-Length": "4000"}, b"[" * 2000 + b"]" * 2000),
], ids=["length-not-a-number", "negative-length", "not-utf8", "nested-too-deep"])
def test_a_malformed_request_gets_400_not_a_dropped_connection(api, daemon, hall_db, headers,
                                                              body):
    # if this fails, a queue system that sends a bad header gets no answer (and the daemon's
    # log a traceback) instead of a 400 saying what is wrong
    status, answer = _raw_http(api, body, headers)
    assert status == 400 and answer["error"]
    assert hall_db("SELECT COUNT(*) FROM transactions") == [(0,)]
    with open(daemon.log_path, encoding="utf-8", errors="replace") as f:
        assert "Traceback" not in f.read()
    assert api.start("W02", "A1")["transaction"] == 1  # and the API still serves
