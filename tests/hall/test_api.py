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
