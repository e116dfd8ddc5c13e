"""Console sessions against the real daemon process, killed and started again: a restart signs
nobody out, the database keeps no session id, and a page learns why it was signed out."""
import hashlib
import time

import pytest

from tests.conftest import wait_until


def _restart(daemon):
    daemon.kill()  # SIGKILL: a power cut, no goodbye
    daemon.start()


def test_a_signed_in_manager_and_staff_stay_signed_in_across_a_daemon_kill(client, daemon,
                                                                           hall_db):
    # if this fails, every restart of the hall server drops the manager's wall screen and the
    # staff PCs to the login page
    manager, staff = client(), client()
    assert manager.sign_in("/hall", "M01").status == 200
    assert staff.sign_in("/window/W01", "S0101").status == 200
    _restart(daemon)
    assert manager.get("/hall/state").status == 200
    page = manager.get("/hall")
    assert b'"me": {"number": "M01"' in page.body  # the page opens signed in
    r = staff.post("/window/W01/start", {"ticket": "A1"})  # the CSRF token still works too
    assert r.status == 200, r.json
    assert hall_db("SELECT ticket, staff FROM transactions") == [("A1", "S0101")]


def test_the_database_keeps_a_hash_of_the_session_id_never_the_id(client, hall_db):
    # if this fails, whoever reads a copy of hall.sqlite can sign in as the duty manager
    c = client()
    assert c.sign_in("/hall", "M01").status == 200
    rows = hall_db("SELECT * FROM console_sessions")
    assert len(rows) == 1
    assert c.cookie not in [str(v) for v in rows[0]]
    assert hall_db("SELECT key FROM console_sessions") == [
        (hashlib.sha256(c.cookie.encode()).hexdigest(),)]


def test_signing_out_before_a_restart_stays_signed_out_after_it(client, daemon, hall_db):
    # if this fails, a staff member who signed out is signed in again by a restart
    c = client()
    assert c.sign_in("/window/W01", "S0101").status == 200
    old_cookie, old_csrf = c.cookie, c.csrf
    assert c.post("/window/W01/sign-out").status == 200
    assert hall_db("SELECT COUNT(*) FROM console_sessions") == [(0,)]
    _restart(daemon)
    c.cookie, c.csrf = old_cookie, old_csrf
    assert c.get("/window/W01/state").status == 401
    assert c.post("/window/W01/start", {"ticket": "A1"}).status == 401


@pytest.mark.parametrize("console_settings", [{"session_idle_s": 2}])
def test_an_idle_session_still_expires_across_a_restart(client, daemon, hall_db):
    # if this fails, a restart gives a forgotten signed-in PC a new lease of life
    c = client()
    assert c.sign_in("/window/W01", "S0101").status == 200
    daemon.kill()
    wait_until(lambda: hall_db("SELECT COUNT(*) FROM console_sessions WHERE seen < ?",
                               time.time() - 3)[0][0] == 1, what="the session idle for 3 s")
    daemon.start()
    r = c.get("/window/W01/state")
    assert (r.status, r.error) == (401, "expired")
    wait_until(lambda: hall_db("SELECT COUNT(*) FROM console_sessions") == [(0,)],
               what="the expired session deleted")


def test_signing_in_at_another_window_tells_the_first_page_signed_in_elsewhere(client):
    # if this fails, staff who moved to another window are told their login expired, and
    # think something is wrong with the system
    first, second = client(), client()
    assert first.sign_in("/window/W01", "S0101").status == 200
    assert second.sign_in("/window/W02", "S0101").status == 200
    r = first.get("/window/W01/state")
    assert (r.status, r.error) == (401, "elsewhere")
    assert r.json["error"] == "已在其他窗口登录（窗口 W02），本页已退出"
    assert r.json["signed_in_at"] == "W02"
    assert second.get("/window/W02/state").status == 200


def test_two_staff_signed_in_at_one_window_are_both_named_on_its_page(client):
    # if this fails, a second person signed in at a window goes unnoticed, and ratings land on
    # whoever started the ticket
    a, b = client(), client()
    assert a.sign_in("/window/W01", "S0101").status == 200
    assert b.sign_in("/window/W01", "S0201").status == 200
    here = a.get("/window/W01/state").json["signed_in"]
    assert sorted(s["number"] for s in here) == ["S0101", "S0201"]
