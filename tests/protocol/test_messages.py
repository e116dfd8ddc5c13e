"""Malformed input is refused with a reason in words, never crashes the receiver."""
import pytest

from haochaping.protocol import levels, messages, topics

KEY = b"0123456789abcdef0123456789abcdef"
TOK = "ab" * 16


def test_levels_follow_the_regulation_article_14_points_and_article_7_bad_reviews():
    assert [(lv[1], levels.points(lv[0]), levels.is_bad(lv[0])) for lv in levels.LEVELS] == [
        ("非常满意", 10, False), ("满意", 8, False), ("基本满意", 6, False),
        ("不满意", 2, True), ("非常不满意", 0, True)]
    assert levels.name(levels.DEFAULT_LEVEL) == "基本满意"


SIG = b',"sig":"' + b"0" * 64 + b'"}'   # a well-formed (but wrong) signature, closing the object
RATING = b'{"v":1,"kind":"rating",'


@pytest.mark.parametrize("payload,reason", [
    (b"\xff\xfe garbage", "not JSON"),
    (b"[1,2]", "not a JSON object"),
    (b'{"v":2}', "unsupported version"),
    (b"x" * 600, "payload too large"),
    (RATING + b'"term":"T/1","seq":1,"ts":0' + SIG, "^term: "),
    (RATING + b'"term":"T1","seq":0,"ts":0' + SIG, "^seq: "),
    (RATING + b'"term":"T1","seq":true,"ts":0' + SIG, "^seq: "),
    (RATING + b'"term":"T1","seq":1,"ts":0,"level":6,"token":""' + SIG, "^level: "),
    (RATING + b'"term":"T1","seq":1,"ts":0,"level":1,"token":"zz"' + SIG, "^token: "),
    (RATING + b'"term":"T1","seq":1,"ts":0,"level":1,"token":""}', "^sig: "),
    (RATING + b'"term":"T1","seq":1,"ts":0,"level":1,"token":"%s","delay_ms":-1' % TOK.encode()
     + SIG, "^delay_ms: "),
    (RATING + b'"term":"T1","seq":1,"ts":0,"level":1,"token":"%s","delay_ms":86400001'
     % TOK.encode() + SIG, "^delay_ms: "),
    (RATING + b'"term":"T1","seq":1,"ts":0,"level":1,"token":"%s","delay_ms":1.5'
     % TOK.encode() + SIG, "^delay_ms: "),
    (RATING + b'"term":"T1","seq":1,"ts":0,"level":1,"token":"%s","delay_ms":null'
     % TOK.encode() + SIG, "^delay_ms: "),
    (RATING + b'"term":"T1","seq":1,"ts":0,"level":1,"token":"","delay_ms":900' + SIG,
     "^delay_ms: only with a session token"),
    (b'{"v":1,"kind":"bogus","term":"T1","seq":1,"ts":0' + SIG, "^kind: "),
    (b'{"v":1,"kind":"reason","term":"T1","seq":2,"ref":1,"reason":"rude","ts":0' + SIG,
     "^reason: "),
])
def test_malformed_uplinks_are_refused_with_a_reason(payload, reason):
    with pytest.raises(ValueError, match=reason):
        messages.decode_uplink(payload)


def test_a_rating_round_trips_and_a_tampered_level_fails_the_signature():
    raw = messages.encode_rating(KEY, "T01", 7, 2, TOK, 1700000000)
    msg = messages.decode_uplink(raw)
    assert messages.verify_uplink(KEY, msg)
    tampered = messages.decode_uplink(raw.replace(b'"level":2', b'"level":1'))
    assert not messages.verify_uplink(KEY, tampered)


def test_the_press_delay_is_signed_and_a_rating_without_it_still_verifies():
    # if this fails, either someone on the hall network can change or strip a terminal's press
    # delay (making a staff member's press look like a citizen's), or older terminals' ratings
    # are refused as forged once the hall is upgraded
    raw = messages.encode_rating(KEY, "T01", 7, 2, TOK, 1700000000, 4210)
    msg = messages.decode_uplink(raw)
    assert msg["delay_ms"] == 4210 and messages.verify_uplink(KEY, msg)
    for forged in (raw.replace(b'"delay_ms":4210', b'"delay_ms":9999'),
                   raw.replace(b',"delay_ms":4210', b"")):
        assert not messages.verify_uplink(KEY, messages.decode_uplink(forged))
    old = messages.encode_rating(KEY, "T01", 8, 2, TOK, 1700000000)
    assert b"delay_ms" not in old
    msg = messages.decode_uplink(old)
    assert "delay_ms" not in msg and messages.verify_uplink(KEY, msg)
    grafted = old.replace(b',"sig"', b',"delay_ms":500,"sig"')
    assert not messages.verify_uplink(KEY, messages.decode_uplink(grafted))


def test_a_forged_ack_is_refused_so_the_terminal_keeps_its_rating():
    raw = messages.encode_ack(KEY, "T01", [1, 2], 5)
    assert messages.decode_ack(KEY, raw)["seqs"] == [1, 2]
    with pytest.raises(ValueError, match="bad signature"):
        messages.decode_ack(b"other-key", raw)


def test_an_empty_session_payload_means_no_prompt():
    assert messages.decode_session(KEY, b"") is None
    raw = messages.encode_session(KEY, "T01", TOK, "W1", "S1", 100, 50)
    assert messages.decode_session(KEY, raw)["window"] == "W1"


def test_topics_parse_only_our_own_names():
    t = topics.topic("H1", "T01", topics.RATING)
    assert t == "hcp/v1/H1/T01/rating"
    assert topics.parse(t) == ("H1", "T01", "rating")
    for bad in ("hcp/v1/H1/T01", "hcp/v2/H1/T01/rating", "hcp/v1/H1/T 1/rating",
                "hcp/v1/H1/T01/evil"):
        assert topics.parse(bad) is None
