"""Bad input gets its documented outcome in the `rejected` table, and the daemon keeps serving."""
import json

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


def test_a_terminal_cannot_read_another_terminals_prompts(hall, daemon, raw_client, api):
    # if this fails, one terminal could learn another's session tokens
    # (this raw client is T002's only login: the broker allows one connection per user)
    got = []
    c = raw_client("T002")
    c.on_message = lambda cl, ud, msg: got.append(msg.topic)
    c.subscribe("hcp/v1/H01/T001/session", qos=1)
    c.subscribe("hcp/v1/H01/T002/session", qos=1)
    api.start("W01", "A001")
    api.finish("W01")          # T001's prompt is published first: it would arrive first
    api.start("W02", "B001")
    api.finish("W02")
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


def _acks_seen(raw_client, user):
    """Every sequence number the daemon acks to `user` from now on (its own ack topic)."""
    seen = []
    c = raw_client(user)
    c.on_message = lambda cl, ud, msg: seen.extend(json.loads(msg.payload)["seqs"])
    c.subscribe("hcp/v1/H01/%s/ack" % user, qos=1)
    return c, seen


@pytest.mark.parametrize("make, reason", [
    (lambda k: messages.encode_rating(k, "T001", 2 ** 62 + 1, 1, "", 0),
     "malformed: seq: must be a whole number 1..9007199254740991"),
    (lambda k: messages.encode_reason(k, "T001", 3, 2 ** 62 + 1, "attitude", 0),
     "malformed: ref: must be a whole number 1..9007199254740991"),
], ids=["seq", "ref"])
def test_a_signed_rating_numbered_past_2_53_is_refused_not_stored_or_acked(
        hall, daemon, raw_client, hall_db, terminals, make, reason):
    # if this fails, the hall stores and acks what the store refuses (its numbers stop at what
    # every backend and JSON reader keeps exact): the terminal forgets the rating, the store
    # never takes it, and the hall's delivery stops behind it for good
    c, acked = _acks_seen(raw_client, "T001")
    bad = make(_key(hall, "T001"))
    c.publish("hcp/v1/H01/T001/rating", bad, qos=1).wait_for_publish(5)
    wait_until(lambda: hall_db("SELECT COUNT(*) FROM rejected") == [(1,)], what="the rejection")
    assert hall_db("SELECT reason FROM rejected") == [(reason,)]
    t = terminals()["T001"]
    t.press(2)
    wait_until(lambda: t.backlog() == 0, what="the good rating's ack")
    assert hall_db("SELECT seq FROM ratings") == [(1,)]
    assert hall_db("SELECT COUNT(*) FROM reasons") == [(0,)]
    assert 2 ** 62 + 1 not in acked and 3 not in acked


@pytest.mark.parametrize("payload, reason", [
    (b'{"v":1,"kind":"rating","term":"T001","seq":9223372036854775808,"level":1,"token":"",'
     b'"ts":0,"sig":"' + b"0" * 64 + b'"}', "malformed: seq: must be a whole number"),
    (b'{"v":1,"term":"T001","online":true,"fw":["0.1.0"],"board":"b"}',
     "malformed status: fw: must be text"),
    (b'{"v":1,"term":"T001","online":true,"board":{"name":"b"}}',
     "malformed status: board: must be text"),
    (b'{"v":1,"term":"T001","online":true,"heap":18446744073709551616}',
     "malformed status: heap: must be a whole number"),
    (b'{"v":1,"term":"T001","online":true,"errors":["\\ud800"]}',
     "malformed status: errors: must not contain a lone surrogate"),
], ids=["seq-past-2-63", "fw-a-list", "board-an-object", "heap-past-2-64", "error-surrogate"])
def test_a_malformed_message_is_refused_with_a_reason_not_an_internal_error(
        hall, daemon, raw_client, hall_db, payload, reason):
    # if this fails, the message escaped the checks: stored as "internal error" with a
    # traceback in the log, instead of a reason the hall's IT can act on
    topic = "hcp/v1/H01/T001/%s" % ("status" if b'"online"' in payload else "rating")
    raw_client("T001").publish(topic, payload, qos=1).wait_for_publish(5)
    wait_until(lambda: hall_db("SELECT COUNT(*) FROM rejected") == [(1,)], what="the rejection")
    (got,) = hall_db("SELECT reason FROM rejected")
    assert got[0].startswith(reason)
    assert hall_db("SELECT COUNT(*) FROM ratings") == [(0,)]
    assert hall_db("SELECT firmware, board FROM terminal_status WHERE terminal='T001'") == []
    with open(daemon.log_path, encoding="utf-8", errors="replace") as f:
        assert "Traceback" not in f.read()


def test_a_flood_of_junk_is_counted_but_cannot_fill_the_disk(hall, daemon, raw_client, hall_db,
                                                            terminals):
    # 3,000 different junk messages in a second grew hall.sqlite by 5.5 MB: a terminal (or any
    # client of the broker) could fill the hall server's disk. Now each is counted, and only
    # KEEP_PER_MINUTE a minute per terminal are kept with their payload.
    import time

    from haochaping.daemon.hall import ingest
    n = 3000
    c = raw_client("T001")
    first = time.time()
    infos = [c.publish("hcp/v1/H01/T001/rating", b"junk %d " % i + b"x" * 400, qos=1)
             for i in range(n)]
    for info in infos:
        info.wait_for_publish(30)
    wait_until(lambda: hall_db("SELECT total FROM rejected_counts WHERE terminal='T001'")
               == [(n,)], timeout=60, what="every junk message counted")
    minutes = int(time.time() // 60) - int(first // 60) + 1  # the flood may straddle a minute
    kept = hall_db("SELECT COUNT(*) FROM rejected")[0][0]
    assert 0 < kept <= ingest.KEEP_PER_MINUTE * minutes
    assert hall_db("SELECT dropped FROM rejected_counts WHERE terminal='T001'") == [(n - kept,)]
    assert max(len(p) for (p,) in hall_db("SELECT payload FROM rejected")) <= ingest.PAYLOAD_KEPT
    # hall IT sees the count in `hcp terminals`
    from click.testing import CliRunner

    from haochaping.tools.cli import _register, cli
    _register()
    out = CliRunner().invoke(cli, ["terminals", "--config", hall.path, "--json"]).output
    row = [r for r in json.loads(out)["terminals"] if r["terminal"] == "T001"][0]
    assert (row["rejected"], row["last_rejected"]) == (n, "malformed: not JSON")
    t = terminals()["T001"]  # and the terminal's own ratings still get through
    t.press(4)
    wait_until(lambda: t.backlog() == 0, what="the good rating's ack")
    assert hall_db("SELECT level FROM ratings") == [(4,)]
