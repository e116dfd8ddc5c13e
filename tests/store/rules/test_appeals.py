"""第十条 in the store: appeals filed within 3 working days, decided within 10; an upheld one
takes the rating out of scoring and keeps it, marked, for audit."""
import json

import pytest

from haochaping.daemon.store import appeals, cases, jobs, scores

from .conftest import Data, at, hcp, recent


def test_art10_upheld_appeal_excludes_the_rating_from_scores_and_keeps_it(st, data):
    # if this fails, a malicious bad review keeps dragging a unit's score down after the office
    # found it malicious, or it vanishes from the store and the audit trail with it
    data.transaction("2026-09-01 09:00", level=1)
    _tx, bad = data.transaction("2026-09-01 09:10", level=5, reason="attitude")
    jobs.run_once(st, now=at("2026-09-01 10:00"))
    before = scores.unit_scores(st, "2026Q3", now=at("2026-10-30 00:00"))["D1"]["score"]
    assert before.average == 5                                 # (10 + 0) / 2
    a = appeals.file(st, bad, "D1", "监控显示群众误触", now=at("2026-09-03 17:00"))
    assert a["status"] == "pending" and a["decision_due"] == "2026-09-17"
    appeals.decide(st, a["id"], True, "核实为误评", now=at("2026-09-10 10:00"))
    after = scores.unit_scores(st, "2026Q3", now=at("2026-10-30 00:00"))["D1"]["score"]
    assert after.average == 10 and after.rated == 2           # still an accepted evaluation
    kept = st._query("SELECT level, outcome FROM ratings WHERE uid = %s", (bad,))
    assert kept == [(5, "counted")]                            # kept for audit
    assert appeals.get(st, a["id"])["status"] == "upheld"
    assert cases.get(st, cases.case_id(bad))["status"] == "withdrawn"
    text = scores.explain(st, "D1", "2026Q3", now=at("2026-10-30 00:00")).text
    assert "1 excluded" in text


def test_appeal_ids_carry_64_random_bits_so_a_province_year_does_not_collide(st, data):
    # if this fails, appeal ids are short enough (8 hex digits: 32 bits) that a province's
    # ~240,000 appeals a year share ids about 7 times, and the unit whose new appeal draws a
    # taken id gets a database error instead of a filing
    ids = set()
    for i in range(3):
        _tx, bad = data.transaction("2026-09-01 09:%02d" % (10 + i), level=5)
        ids.add(appeals.file(st, bad, "D1", "误评", now=at("2026-09-02 10:00"))["id"])
    assert len(ids) == 3
    for aid in ids:
        assert aid[0] == "A" and len(aid) == 17 and int(aid[1:], 16) >= 0


def test_art10_a_rejected_appeal_changes_nothing(st, data):
    # if this fails, merely filing an appeal would be enough to lose a bad review
    _tx, bad = data.transaction("2026-09-01 09:10", level=4)
    a = appeals.file(st, bad, "H01", "不认可", now=at("2026-09-02 10:00"))
    appeals.decide(st, a["id"], False, "评价属实", now=at("2026-09-03 10:00"))
    s = scores.unit_scores(st, "2026Q3", now=at("2026-10-30 00:00"))["D1"]["score"]
    assert s.average == 2
    with pytest.raises(appeals.AppealRefused, match="decided already"):
        appeals.decide(st, a["id"], True, "again")


@pytest.mark.parametrize("filed,ok", [("2026-09-30 23:59", True), ("2026-10-01 00:00", False),
                                      ("2026-10-09 10:00", False)])
def test_art10_filing_deadline_is_3_working_days_and_late_is_refused_with_it(st, data, filed, ok):
    # if this fails, a unit appeals weeks later (or is refused on the last allowed day)
    _tx, bad = data.transaction("2026-09-24 09:10", level=5)    # received Thu 24 Sep 2026
    if ok:
        appeals.file(st, bad, "D1", "误评", now=at(filed))
        return
    with pytest.raises(appeals.AppealRefused) as e:
        appeals.file(st, bad, "D1", "误评", now=at(filed))
    assert "2026-09-30T23:59:59+08:00" in str(e.value) and "第十条" in str(e.value)
    assert appeals.list_appeals(st) == []


def test_art10_only_the_rated_unit_appeals_only_a_counted_bad_review_and_once(st, data):
    # if this fails, any unit can strike another's bad reviews, or good reviews get "appealed"
    _tx, good = data.transaction("2026-09-01 09:00", level=2)
    _tx, bad = data.transaction("2026-09-01 09:10", level=4)
    now = at("2026-09-01 12:00")
    with pytest.raises(appeals.AppealRefused, match="not a counted bad review") as e:
        appeals.file(st, good, "D1", "x", now=now)
    with pytest.raises(appeals.AppealRefused, match="not a rating of unit D9") as e:
        appeals.file(st, bad, "D9", "x", now=now)
    assert e.value.status == 403
    with pytest.raises(appeals.AppealRefused, match="reason is required"):
        appeals.file(st, bad, "D1", "  ", now=now)
    appeals.file(st, bad, "D1", "x", now=now)
    with pytest.raises(appeals.AppealRefused, match="appealed already") as e:
        appeals.file(st, bad, "H01", "y", now=now)
    assert e.value.status == 409


def test_art10_overdue_lists_appeals_undecided_after_10_working_days(st, data):
    # if this fails, the office misses appeals it had to answer within 10 working days
    _tx, bad = data.transaction("2026-09-01 09:10", level=4)
    a = appeals.file(st, bad, "D1", "误评", now=at("2026-09-02 10:00"))     # due 16 Sep
    assert appeals.overdue(st, now=at("2026-09-16 23:00")) == []
    assert [x["id"] for x in appeals.overdue(st, now=at("2026-09-17 00:01"))] == [a["id"]]
    appeals.decide(st, a["id"], False, "属实")
    assert appeals.overdue(st, now=at("2026-12-01 00:00")) == []


def test_art10_cli_file_late_refused_with_deadline_decide_and_overdue(st, store_db):
    # if this fails, the office's commands do not do what their help says
    d = Data(st)
    _tx, old = d.transaction("2026-09-01 09:10", level=5)
    r = hcp("appeal", "file", "--db", store_db, "--rating", old, "--unit", "D1", "--reason",
            "误评", ok=False)
    assert r.exit_code == 1 and "2026-09-04T23:59:59+08:00" in r.output
    now = recent()
    _tx, fresh = d.transaction(now, level=4, rated=now)
    out = hcp("appeal", "file", "--db", store_db, "--rating", fresh, "--unit", "D1",
              "--reason", "误评", "--json").output
    aid = json.loads(out)["id"]
    assert "no overdue appeals" in hcp("appeal", "overdue", "--db", store_db).output
    assert aid in hcp("appeal", "list", "--db", store_db, "--status", "pending").output
    out = hcp("appeal", "decide", "--db", store_db, aid, "--upheld", "--reason", "核实误评").output
    assert "no longer counts" in out
    assert appeals.get(st, aid)["status"] == "upheld"
    # an appeal left undecided for longer than 10 working days (filed in September)
    _tx, late = d.transaction("2026-09-01 09:20", level=4)
    stale = appeals.file(st, late, "D1", "误评", now=at("2026-09-02 09:00"))
    r = hcp("appeal", "overdue", "--db", store_db, ok=False)
    assert r.exit_code == 1 and stale["id"] in r.output and "OVERDUE" in r.output


def test_art10_a_unit_files_over_https_with_its_own_token(store, tmp_path):
    # if this fails, a rated unit cannot appeal without database access, or anyone on the
    # network can file appeals in a unit's name
    s = store.open()
    try:
        d = Data(s)
        now = recent()
        _tx, bad = d.transaction(now, level=5, rated=now)
        _tx, other = d.transaction(now, level=4, rated=now)
    finally:
        s.close()
    tok = tmp_path / "D1.token"
    hcp("appeal", "add-unit", "--db", store.db, "--unit", "D1", "--token-out", tok)
    hcp("appeal", "add-unit", "--db", store.db, "--unit", "D7", "--token-out", tmp_path / "D7")
    c = store.client()
    body = json.dumps({"rating": bad, "reason": "误评"}).encode()
    assert c.request("POST", "/v1/appeals", body, {"Authorization": "Bearer nope"})[0] == 401
    assert c.request("POST", "/v1/appeals", body, {})[0] == 401
    d7 = (tmp_path / "D7").read_text().strip()
    status, doc = c.request("POST", "/v1/appeals", body, {"Authorization": "Bearer " + d7})
    assert status == 403 and "not a rating of unit D7" in doc["error"]
    c.close()
    out = hcp("appeal", "file", "--store", store.url, "--token-file", tok, "--ca", store.ca,
              "--rating", bad, "--reason", "误评", "--json").output
    a = json.loads(out)
    assert a["status"] == "pending" and a["unit"] == "D1"
    r = hcp("appeal", "file", "--store", store.url, "--token-file", tok, "--ca", store.ca,
            "--rating", bad, "--reason", "again", ok=False)
    assert "HTTP 409" in r.output
    token = tok.read_text().strip()
    c = store.client()
    status, doc = c.request("GET", "/v1/appeals/" + a["id"], None,
                            {"Authorization": "Bearer " + token})
    assert status == 200 and doc["id"] == a["id"]
    assert c.request("GET", "/v1/appeals/" + a["id"], None,
                     {"Authorization": "Bearer " + d7})[0] == 404
    c.close()
    assert token not in store.proc.log_text()
    assert other  # the unit's other bad review stays unappealed
