"""Each security rule of the console, at the HTTP level against the real daemon (issue 8)."""
import http.client
import json
import urllib.parse

import pytest
from click.testing import CliRunner

from haochaping.tools.cli import _register, cli
from tests.conftest import wait_until

from .conftest import ACCOUNTS

_register()


def _transactions(hall_db, window):
    return hall_db("SELECT ticket, staff FROM transactions WHERE window=?", window)


def test_the_session_cookie_is_httponly_samesite_strict_and_renewed_at_sign_in(client):
    # if this fails, a script injected into a page could read the session, another site could
    # ride on it, or a session id planted before sign-in would be signed in with the staff
    c = client()
    c.get("/window/W01")
    before = c.cookie
    assert c.set_cookie is not None
    r = c.sign_in("/window/W01", "S0101")
    assert r.status == 200
    flags = [f.strip() for f in c.set_cookie.split(";")]
    assert "HttpOnly" in flags and "SameSite=Strict" in flags and "Path=/" in flags
    assert c.cookie != before
    assert r.json["number"] == "S0101" and "pin" not in json.dumps(r.json)


def test_staff_act_only_on_the_window_they_signed_in_at(client, hall_db):
    # if this fails, staff at one window could open prompts or start tickets at another, and
    # ratings would land on the wrong window and the wrong person
    c = client()
    assert c.sign_in("/window/W01", "S0101").status == 200
    r = c.post("/window/W02/start", {"ticket": "X1"})
    assert (r.status, r.error) == (403, "wrong-window")
    assert c.post("/window/W02/finish").status == 403
    assert c.get("/window/W02/state").status == 403
    assert c.get("/window/W02/events").status == 403
    assert _transactions(hall_db, "W02") == []
    assert c.post("/window/W01/start", {"ticket": "A1"}).status == 200
    assert _transactions(hall_db, "W01") == [("A1", "S0101")]


@pytest.mark.parametrize("console_settings", [{"session_idle_s": 2}])
def test_an_idle_session_expires(client, hall_db):
    # if this fails, a staff PC left signed in lets anyone act as that staff member
    c = client()
    assert c.sign_in("/window/W01", "S0101").status == 200
    seen = []
    wait_until(lambda: seen.append(c.get("/window/W01/state")) or seen[-1].status == 401,
               what="the session to expire")
    assert seen[-1].error == "expired"  # the page says so, and shows the sign-in form
    r = c.post("/window/W01/start", {"ticket": "A1"})
    assert r.status == 401
    assert _transactions(hall_db, "W01") == []


@pytest.mark.parametrize("console_settings", [{"session_max_s": 3, "session_idle_s": 600}])
def test_a_busy_session_still_ends_at_its_maximum_age(client):
    # if this fails, a session kept busy never ends, whoever sits at the PC
    c = client()
    assert c.sign_in("/window/W01", "S0101").status == 200
    n = 0

    def refused():
        nonlocal n
        n += 1
        return c.post("/window/W01/start", {"ticket": "A%d" % n}).status == 401
    wait_until(refused, step=0.5, what="the session to reach its maximum age")


def test_every_write_needs_the_csrf_token(client, hall_db, base):
    # if this fails, a page from elsewhere could make a signed-in staff PC start tickets
    c = client()
    assert c.sign_in("/window/W01", "S0101").status == 200
    r = c.post("/window/W01/start", {"ticket": "A1"}, csrf=False)
    assert (r.status, r.error) == (403, "csrf")
    r = c.post("/window/W01/start", {"ticket": "A1"}, headers={"X-CSRF-Token": "guess"})
    assert (r.status, r.error) == (403, "csrf")
    r = c.post("/window/W01/start", {"ticket": "A1"}, headers={"Origin": "http://evil.example"})
    assert (r.status, r.error) == (403, "csrf")
    assert c.post("/window/W01/finish", csrf=False).status == 403
    assert c.post("/window/W01/sign-out", csrf=False).status == 403
    assert _transactions(hall_db, "W01") == []
    other = client()  # sign-in itself: no token, no sign-in (login CSRF)
    other.get("/window/W01")
    r = other.post("/window/W01/sign-in", {"number": "S0101", "pin": "123456"}, csrf=False)
    assert (r.status, r.error) == (403, "csrf")
    host = urllib.parse.urlsplit(base).netloc
    r = c.post("/window/W01/start", {"ticket": "A1"}, headers={"Origin": "http://" + host})
    assert r.status == 200


def _events(base, cookie, timeout=20):
    """Open the window's event stream; return a function that reads the next event."""
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    conn.request("GET", "/window/W01/events", headers={"Cookie": "hcp_console=" + cookie})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Type").startswith("text/event-stream")

    def next_event():
        kind, data = None, None
        while True:
            line = resp.fp.readline().decode()
            if line == "":
                return None, None
            line = line.rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
            elif line == "" and kind:
                return kind, data
    return next_event, conn


def test_a_staff_member_disabled_while_signed_in_is_signed_out_at_once(client, hall, hall_db, base):
    # if this fails, someone hall IT has just disabled keeps working at the window
    c = client()
    assert c.sign_in("/window/W01", "S0101").status == 200
    next_event, conn = _events(base, c.cookie)
    assert next_event()[0] == "state"
    r = CliRunner().invoke(cli, ["staff", "disable", "--config", hall.path, "--number", "S0101"])
    assert r.exit_code == 0, r.output
    kind, data = next_event()
    while kind == "state":
        kind, data = next_event()
    assert (kind, data["error_code"]) == ("signed-out", "expired")
    conn.close()
    r = c.post("/window/W01/start", {"ticket": "A1"})
    assert r.status == 401
    assert _transactions(hall_db, "W01") == []
    again = client()
    r = again.sign_in("/window/W01", "S0101")
    assert (r.status, r.error) == (401, "bad-pin")  # the same answer as a wrong PIN


def test_a_new_pin_ends_the_sessions_signed_in_with_the_old_one(client, hall):
    # if this fails, changing a leaked PIN does not throw out whoever used it
    c = client()
    assert c.sign_in("/window/W01", "S0101").status == 200
    r = CliRunner().invoke(cli, ["staff", "set-pin", "--config", hall.path, "--number", "S0101"],
                           env={"HCP_STAFF_PIN": "777777"})
    assert r.exit_code == 0, r.output
    assert c.get("/window/W01/state").status == 401
    assert client().sign_in("/window/W01", "S0101", "777777").status == 200


def test_the_manager_page_needs_the_manager_role(client):
    # if this fails, any window staff could watch every window and every bad review
    anon = client()
    anon.get("/hall")
    assert anon.get("/hall/state").status == 401
    assert anon.get("/hall/events").status == 401
    c = client()
    assert c.sign_in("/window/W01", "S0101").status == 200
    r = c.get("/hall/state")
    assert (r.status, r.error) == (403, "wrong-role")
    r = client().sign_in("/hall", "S0101")
    assert (r.status, r.error) == (403, "wrong-role")
    m = client()
    r = m.sign_in("/window/W01", "M01")  # and a manager account does not serve at a window
    assert (r.status, r.error) == (403, "wrong-role")
    assert m.sign_in("/hall", "M01").status == 200
    st = m.get("/hall/state")
    assert st.status == 200 and [w["window"] for w in st.json["windows"]] == ["W01", "W02", "W03"]
    assert m.post("/window/W01/start", {"ticket": "A1"}).status in (401, 403)


@pytest.mark.parametrize("console_settings", [{"pin_failures": 3, "lockout_s": 3}])
def test_wrong_pins_are_rate_limited_per_staff_number_then_allowed_again(client, hall_db):
    # if this fails, a PIN can be guessed by trying them all; or a locked account stays
    # locked for ever
    c = client()
    for _ in range(3):
        r = c.sign_in("/window/W01", "S0101", "000000")
        assert (r.status, r.error) == (401, "bad-pin")
    r = c.sign_in("/window/W01", "S0101")
    assert (r.status, r.error) == (429, "locked") and r.json["wait"] >= 1
    assert client().sign_in("/window/W02", "S0201").status == 200  # others can still sign in
    wait_until(lambda: client().sign_in("/window/W01", "S0101").status == 200, step=0.5,
               what="the lockout to end")
    assert hall_db("SELECT COUNT(*) FROM audit WHERE action='console.sign-in-failed'") == [(3,)]


@pytest.mark.parametrize("console_settings", [{"pin_failures": 2}])
def test_guessing_staff_numbers_from_one_pc_is_rate_limited_too(client):
    # if this fails, one PC can try one PIN against every staff number
    c = client()
    for n in range(8):
        r = c.sign_in("/window/W01", "S9%03d" % n, "123456")
        assert (r.status, r.error) == (401, "bad-pin")  # an unknown number: no hint it is unknown
    r = c.sign_in("/window/W01", "S0101")
    assert (r.status, r.error) == (429, "locked")


@pytest.mark.parametrize("console_settings", [{"pin_checks": 1}])
def test_a_sign_in_refused_before_its_pin_is_checked_gives_its_pin_check_back(client):
    # the one PIN check is taken for a sign-in before it goes to a worker thread; if this
    # fails, one malformed or misdirected sign-in keeps it for good, and every sign-in after it,
    # the right PIN included, is answered 429 busy
    c = client()
    c.get("/window/W01")
    assert c.post("/window/W01/sign-in", {"number": 5, "pin": "1"}).status == 400
    assert c.post("/window/W01/sign-in", ["not", "an", "object"]).status == 400
    assert c.post("/window/W99/sign-in", {"number": "S0101", "pin": "1"}).status == 404
    assert client().sign_in("/window/W01", "M01").error == "wrong-role"  # checked, then refused
    r = c.sign_in("/window/W01", "S0101")
    assert r.status == 200, r.json


def test_pins_are_stored_hashed_and_never_logged(hall, hall_db, client):
    # if this fails, whoever copies the hall database or reads the audit log has every PIN
    client().sign_in("/window/W01", "S0101", "999999")
    client().sign_in("/window/W01", "S0101")
    for number, pin_hash in hall_db("SELECT number, pin_hash FROM console_staff"):
        assert pin_hash.startswith("scrypt$") and ACCOUNTS[number][0] not in pin_hash
    audit = json.dumps(hall_db("SELECT actor, action, detail FROM audit"))
    assert "999999" not in audit and "123456" not in audit
    with open(hall.folder + "/daemon.log", encoding="utf-8") as f:
        log = f.read()
    assert "999999" not in log and "123456" not in log


def test_sign_ins_and_request_rating_are_in_the_audit_log(client, hall_db, sim):
    # if this fails, nobody can tell afterwards who opened a rating prompt at which window
    sim("T001")
    c = client()
    c.sign_in("/window/W01", "S0101")
    assert c.post("/window/W01/start", {"ticket": "A7", "item": "530100-001"}).status == 200
    r = c.post("/window/W01/finish")
    assert r.status == 200 and r.json["state"]["state"] == "prompting"
    c.post("/window/W01/sign-out")
    rows = [(a, json.loads(d)) for a, d in hall_db(
        "SELECT action, detail FROM audit WHERE actor='staff:S0101' ORDER BY id")]
    assert [a for a, _ in rows] == ["console.sign-in", "console.start", "console.request-rating",
                                    "console.sign-out"]
    assert rows[0][1]["at"] == "W01"
    assert rows[2][1] == {"window": "W01", "transaction": r.json["transaction"],
                          "terminals": ["T001"]}


def test_request_rating_with_no_ticket_says_to_start_one_first(client):
    # if this fails, staff pressing 「请评价」 too early get no explanation
    c = client()
    c.sign_in("/window/W01", "S0101")
    r = c.post("/window/W01/finish")
    assert (r.status, r.error) == (409, "no-ticket")
    assert "开始办理" in r.json["error"]
    r = c.post("/window/W01/start", {"ticket": "  "})
    assert (r.status, r.error) == (400, "ticket-needed")


@pytest.mark.parametrize("ticket, item, field", [
    ("A\u0000B", "", "ticket"), ("A\ud800", "", "ticket"), ("A1", "530100\u0000", "item"),
    ("A\u001b[2J", "", "ticket")], ids=["nul", "lone-surrogate", "nul-in-item", "escape"])
def test_a_ticket_with_a_nul_is_refused_at_the_console_with_400_naming_the_field(
        client, hall_db, daemon, ticket, item, field):
    # if this fails, the hall stores a transaction the store can never take (and its delivery
    # to the city stops behind it), or the staff's click gets no answer at all
    c = client()
    c.sign_in("/window/W01", "S0101")
    r = c.post("/window/W01/start", {"ticket": ticket, "item": item})
    assert (r.status, r.error) == (400, "bad-input")
    assert r.json["field"] == field and r.json["detail"].startswith(field + ": ")
    assert _transactions(hall_db, "W01") == []
    assert c.post("/window/W01/start", {"ticket": "A1"}).status == 200
    with open(daemon.log_path, encoding="utf-8", errors="replace") as f:
        assert "Traceback" not in f.read()


def test_a_sign_in_with_a_lone_surrogate_gets_400_not_a_dropped_connection(client, daemon):
    # if this fails, the sign-in page gets no answer and the daemon's log a traceback
    c = client()
    r = c.sign_in("/window/W01", "S\ud801", pin="123456")
    assert (r.status, r.error, r.json["field"]) == (400, "bad-input", "number")
    assert c.sign_in("/window/W01", "S0101").status == 200
    with open(daemon.log_path, encoding="utf-8", errors="replace") as f:
        assert "Traceback" not in f.read()


def test_the_console_and_the_window_api_drive_the_same_transactions(client, api, hall_db):
    # if this fails, a hall mixing a queue system and the console counts windows twice
    c = client()
    c.sign_in("/window/W01", "S0101")
    c.post("/window/W01/start", {"ticket": "A1"})
    assert api.state("W01")["state"] == "serving" and api.state("W01")["ticket"] == "A1"
    api.finish("W01")
    st = c.get("/window/W01/state").json
    assert (st["state"], st["show"]) == ("prompting", "offline")  # T001 was never switched on


@pytest.mark.parametrize("console_settings", [{"enabled": False}])
def test_the_console_can_be_switched_off(client, api):
    # if this fails, a hall that does not want the console still serves its pages
    c = client()
    assert c.get("/window/W01").status == 404
    assert c.get("/hall").status == 404
    assert api.health()["ok"] is True


def test_unknown_windows_and_paths_are_refused(client):
    # if this fails, a typo in the address starts tickets at a window that does not exist
    c = client()
    assert c.get("/window/W99").status == 404
    assert c.get("/window/..%2F..%2Fetc").status == 404
    assert c.get("/static/../web.py").status == 404
    assert c.get("/static/console.css").status == 200
    assert c.get("/").status == 200


def test_a_refused_write_leaves_the_connection_usable(base, client):
    # if this fails, the next click after a refused one fails too (the browser reuses the
    # connection, and the refused request's body would be read as the next request)
    c = client()
    c.get("/window/W01")
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=15)
    body = json.dumps({"number": "S0101", "pin": "123456"})
    conn.request("POST", "/window/W01/sign-in", body, {"Cookie": "hcp_console=" + c.cookie,
                                                       "Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 403 and json.loads(r.read())["error_code"] == "csrf"
    conn.request("POST", "/window/W01/sign-in", body, {
        "Cookie": "hcp_console=" + c.cookie, "Content-Type": "application/json",
        "X-CSRF-Token": c.csrf})
    r = conn.getresponse()
    assert r.status == 200, r.read()
    conn.close()


def test_a_refusal_never_shows_an_unfilled_placeholder(client):
    # if this fails, a page shows 输入有误：{detail} to staff instead of what was wrong
    c = client()
    c.get("/window/W01")
    r = c.get("/hall/stat")
    assert (r.status, r.error) == (404, "no-page") and "{" not in r.json["error"]
    r = c.post("/window/W01/sign-in", {"number": 5, "pin": "123456"})
    assert r.status == 400 and "{" not in r.json["error"] and "number" in r.json["error"]
