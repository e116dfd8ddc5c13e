"""Press -> daemon -> SQLite -> ack, with the real broker, daemon process and terminals."""
import json

from tests.conftest import wait_until


def _rate(api, term, window, ticket, level, staff="S01"):
    api.start(window, ticket, item="530100-001", staff=staff)
    api.finish(window)
    s = term.wait_session()
    assert s is not None and s["window"] == window, "the terminal never showed the prompt"
    return term.press(level)


def test_a_rating_is_stored_bound_to_its_transaction_and_acked(api, terminals, hall_db):
    # if this fails, a citizen's rating is lost or lands on another window's transaction
    t = terminals()
    api.start("W02", "B001", staff="S02")  # another window serving at the same time
    seq = _rate(api, t["T001"], "W01", "A001", 2)
    wait_until(lambda: t["T001"].backlog() == 0, what="the ack")
    rows = hall_db("SELECT r.seq, r.level, r.outcome, x.window, x.ticket, x.staff,"
                   " x.prompt_closed_by FROM ratings r JOIN transactions x"
                   " ON x.id=r.transaction_id")
    assert rows == [(seq, 2, "counted", "W01", "A001", "S01", "rated")]
    assert api.state("W01")["state"] == "rated"
    assert api.state("W02")["state"] == "serving"


def test_the_prompt_is_cleared_on_the_terminal_once_rated(api, terminals):
    # if this fails, the keys stay lit after the citizen rated and invite a second rating
    t = terminals()["T001"]
    _rate(api, t, "W01", "A001", 1)
    wait_until(lambda: t.core.session is None and t.backlog() == 0, what="prompt cleared")


def test_second_press_is_kept_as_duplicate_and_does_not_count(api, terminals, hall_db):
    # 第五条 一次一评: a child pressing twice must not give the window two ratings
    t = terminals()["T001"]
    api.start("W01", "A001")
    api.finish("W01")
    t.wait_session()
    t.press(1, keep_session=True)
    t.press(5)
    wait_until(lambda: t.backlog() == 0, what="both acked")
    assert hall_db("SELECT level, outcome FROM ratings ORDER BY seq") == [
        (1, "counted"), (5, "duplicate")]
    assert hall_db("SELECT COUNT(*) FROM transactions WHERE rating_id IS NOT NULL") == [(1,)]


def test_a_press_with_no_prompt_is_kept_as_unsolicited(api, terminals, hall_db):
    # if this fails, a press with no transaction would be counted against someone
    t = terminals()["T001"]
    t.press(4)
    wait_until(lambda: t.backlog() == 0, what="ack")
    assert hall_db("SELECT level, outcome, transaction_id FROM ratings") == [
        (4, "unsolicited", None)]


def test_a_press_long_after_the_prompt_closed_is_expired(api, terminals, hall_db):
    # a rating given after the next citizen was called must not be pinned on the previous one
    t = terminals()["T001"]
    api.start("W01", "A001")
    api.finish("W01")
    shown = t.wait_session()
    api.start("W01", "A002")  # next ticket closes the prompt...
    wait_until(lambda: t.core.session is None, what="prompt cleared")
    t.core.session = shown    # ...but this terminal was offline and still shows it,
    t.core.offset += 60       # and the citizen presses a minute later (terminal clock, signed)
    t.press(3, keep_session=True)
    wait_until(lambda: t.backlog() == 0, what="ack")
    assert hall_db("SELECT outcome FROM ratings") == [("expired",)]
    assert hall_db("SELECT prompt_closed_by, rating_id FROM transactions"
                   " WHERE ticket='A001'") == [("next", None)]


def test_a_bad_review_reason_is_attached_to_its_rating(api, terminals, hall_db):
    # if this fails, the duty manager never learns why the citizen was unhappy
    t = terminals()["T001"]
    seq = _rate(api, t, "W01", "A001", 5)
    t.reason(seq, "attitude")
    wait_until(lambda: t.backlog() == 0, what="ack")
    assert hall_db("SELECT level, reason FROM ratings") == [(5, "attitude")]


def test_finishing_a_window_with_no_ticket_is_a_clear_error(api):
    import pytest

    from haochaping.daemon.errors import HcpError
    with pytest.raises(HcpError, match="no ticket is being served at window W01"):
        api.finish("W01")


def test_the_terminal_status_and_last_will_reach_the_daemon(daemon, terminals, hall_db):
    # if this fails, hall IT cannot see that a terminal went offline
    t = terminals()["T001"]
    online = "SELECT online FROM terminal_status WHERE terminal='T001'"
    wait_until(lambda: hall_db(online) == [(1,)], what="online status")
    t.client._sock.close()  # the link dies without a DISCONNECT: the broker sends the will
    t.stop()
    wait_until(lambda: hall_db(online) == [(0,)], what="offline from the last will")


def test_sigterm_stops_the_daemon_cleanly(daemon):
    # hall IT restarting the service must not see an error exit or a half-written batch
    assert daemon.terminate() == 0


def test_a_late_rating_for_the_previous_citizen_does_not_wipe_the_next_prompt(
        api, terminals, hall_db, raw_client):
    # if this fails, the next citizen's keys go dark before they can rate
    t = terminals()["T001"]
    api.start("W01", "A001")
    api.finish("W01")
    first = t.wait_session()
    api.start("W01", "A002")            # next ticket: the first prompt closes...
    api.finish("W01")
    second = t.wait_session(token_not=first["token"])
    t.core.session = first               # ...but a press for it was still on its way
    t.press(2)
    wait_until(lambda: t.backlog() == 0, what="the late rating acked")
    assert hall_db("SELECT x.ticket, r.outcome FROM ratings r JOIN transactions x"
                   " ON x.id=r.transaction_id") == [("A001", "counted")]
    # what the broker now keeps for the terminal (a reconnecting terminal would get this)
    retained = []
    c = raw_client("observer")
    c.on_message = lambda cl, ud, m: retained.append(m.payload)
    c.subscribe("hcp/v1/H01/T001/session", qos=1)
    wait_until(lambda: retained, what="the retained prompt")
    assert json.loads(retained[-1])["token"] == second["token"]
    assert api.state("W01")["state"] == "prompting"
