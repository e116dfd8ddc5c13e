"""Bad input gets its documented outcome in the `rejected` table, and the daemon keeps serving."""
import pytest

from haochaping.protocol import messages
from tests.conftest import wait_until


def _key(hall, terminal):
    from haochaping.tools.sim import hall_kit
    for d in hall_kit.devices(hall.folder):
        if d["terminal"] == terminal:
            return bytes.fromhex(d["key"])


CASES = {
    "forged signature": ("T001", "hcp/v1/H01/T001/rating",
                         lambda k: messages.encode_rating(b"not-the-key" * 3, "T001", 1, 1, "", 0),
                         "bad signature"),
    "unknown terminal": ("observer", "hcp/v1/H01/T999/rating",
                         lambda k: messages.encode_rating(k, "T999", 1, 1, "", 0),
                         "unknown terminal"),
    "wrong topic": ("observer", "hcp/v1/H01/T 01/rating",
                    lambda k: messages.encode_rating(k, "T001", 1, 1, "", 0), "wrong topic"),
    "garbage bytes": ("T001", "hcp/v1/H01/T001/rating", lambda k: b"\x00\xffgarbage{",
                      "malformed: not JSON"),
    "oversized payload": ("T001", "hcp/v1/H01/T001/rating",
                          lambda k: b'{"v":1,"pad":"' + b"x" * 5000 + b'"}', "payload too large"),
    "replayed from another terminal": (
        "T002", "hcp/v1/H01/T002/rating",
        lambda k: messages.encode_rating(k, "T001", 1, 1, "", 0), "does not match the topic"),
    "malformed status": ("T001", "hcp/v1/H01/T001/status", lambda k: b'{"v":1,"term":"T001"}',
                         "malformed status: online: must be true or false"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_message_is_rejected_with_its_reason_and_the_daemon_keeps_serving(
        case, hall, daemon, raw_client, terminals, hall_db):
    # if this fails, a forged or broken message is counted, silently lost, or stops the hall
    user, topic, make, reason = CASES[case]
    c = raw_client(user)
    c.publish(topic, make(_key(hall, "T001")), qos=1).wait_for_publish(5)
    wait_until(lambda: hall_db("SELECT COUNT(*) FROM rejected") == [(1,)], what="the rejection")
    (got,) = hall_db("SELECT reason FROM rejected")
    assert reason in got[0]
    assert hall_db("SELECT COUNT(*) FROM ratings") == [(0,)]
    # and a good rating right after is stored and acked
    t = terminals()["T001"]
    t.press(2)
    wait_until(lambda: t.backlog() == 0, what="the good rating's ack")
    assert hall_db("SELECT terminal, level FROM ratings") == [("T001", 2)]
    assert daemon.proc.poll() is None


def test_the_same_bad_message_twice_is_kept_once(hall, daemon, raw_client, hall_db, terminals):
    # a redelivered bad message must not flood the rejected table
    c = raw_client("T001")
    for _ in range(2):
        c.publish("hcp/v1/H01/T001/rating", b"junk", qos=1).wait_for_publish(5)
    t = terminals()["T001"]
    t.press(1)
    wait_until(lambda: t.backlog() == 0, what="ack after the junk")
    assert hall_db("SELECT COUNT(*) FROM rejected") == [(1,)]


def test_a_terminal_cannot_publish_on_another_terminals_topics(
        hall, daemon, raw_client, hall_db, terminals):
    # broker ACL: if this fails, one stolen terminal could rate in the name of every other one
    c = raw_client("T002")
    signed_by_t1 = messages.encode_rating(_key(hall, "T001"), "T001", 7, 5, "", 0)
    c.publish("hcp/v1/H01/T001/rating", signed_by_t1, qos=1).wait_for_publish(5)
    c.publish("hcp/v1/H01/T001/status", messages.encode_status("T001", False), qos=1,
              retain=True).wait_for_publish(5)
    # a message T002 may send, after those: once it is stored, the others would have been too
    t = terminals()["T002"]
    t.press(3)
    wait_until(lambda: t.backlog() == 0, what="T002's own rating acked")
    assert hall_db("SELECT terminal, level FROM ratings") == [("T002", 3)]
    assert hall_db("SELECT COUNT(*) FROM rejected") == [(0,)]
    assert hall_db("SELECT online FROM terminal_status WHERE terminal='T001'") in ([], [(1,)])


def test_a_terminal_cannot_read_another_terminals_prompts(hall, daemon, raw_client, api, terminals):
    # if this fails, one terminal could learn another's session tokens
    got = []
    c = raw_client("T002")
    c.on_message = lambda cl, ud, msg: got.append(msg.topic)
    c.subscribe("hcp/v1/H01/T001/session", qos=1)
    c.subscribe("hcp/v1/H01/T002/session", qos=1)
    t = terminals()
    api.start("W01", "A001")
    api.finish("W01")
    api.start("W02", "B001")
    api.finish("W02")
    t["T001"].wait_session()
    wait_until(lambda: "hcp/v1/H01/T002/session" in got, what="T002's own prompt")
    assert "hcp/v1/H01/T001/session" not in got


def test_a_reused_sequence_number_with_other_content_is_kept_aside_not_dropped(
        hall, daemon, raw_client, hall_db, terminals):
    # a terminal re-flashed without its journal starts again at seq 1: if this fails, its new
    # ratings are silently taken for redeliveries of old ones and lost
    t = terminals()["T001"]
    t.press(1)
    wait_until(lambda: t.backlog() == 0, what="first rating acked")
    c = raw_client("T001")
    c.publish("hcp/v1/H01/T001/rating",
              messages.encode_rating(_key(hall, "T001"), "T001", 1, 5, "", 99),
              qos=1).wait_for_publish(5)
    wait_until(lambda: hall_db("SELECT COUNT(*) FROM rejected") == [(1,)], what="the rejection")
    assert "reused" in hall_db("SELECT reason FROM rejected")[0][0]
    assert hall_db("SELECT seq, level FROM ratings") == [(1, 1)]
