"""第十二条, 第十三条 in the store: every bad review opens a rectification case, due in 15 working
days, extendable only with a reason and a later date; follow-ups recorded; real-name cases
followed up before they close."""
import json
import time

import pytest

from haochaping.daemon.errors import HcpError
from haochaping.daemon.store import cases, jobs
from haochaping.daemon.store import quarterly as report
from tests.conftest import wait_until
from tests.store.conftest import encode_v1

from .conftest import Data, at, hcp


def test_art12_every_counted_bad_review_opens_one_case_due_in_15_working_days(st, data):
    # if this fails, a 差评 is never rectified because nobody was told it exists (or is
    # counted twice in the rectification figures)
    data.transaction("2026-09-24 09:00", level=1)
    data.transaction("2026-09-24 09:05")                      # unrated: its default is 基本满意
    _tx, bad4 = data.transaction("2026-09-24 09:10", level=4, reason="efficiency")
    _tx, bad5 = data.transaction("2026-09-24 09:20", level=5)
    data.put([{"type": "rating", "id": "H01:rating:T002:1", "terminal": "T002", "seq": 1,
               "level": 5, "outcome": "duplicate", "transaction": "H01:tx:1",
               "rated_at": at("2026-09-24 09:01"), "received_at": at("2026-09-24 09:01")}])
    opened = jobs.run_once(st, now=at("2026-10-20 00:00"))
    assert opened["cases_opened"] == 2 and opened["given"] == 1
    assert jobs.run_once(st, now=at("2026-10-21 00:00"))["cases_opened"] == 0
    rows = cases.list_cases(st, now=at("2026-10-20 00:00"))
    assert sorted(c["rating_uid"] for c in rows) == sorted([bad4, bad5])
    # received Thu 24 Sep 2026: 15 working days across 中秋/国庆 (1–8 Oct off, Sat 10 Oct worked)
    assert {c["due"] for c in rows} == {"2026-10-22"}
    assert cases.list_cases(st, "overdue", now=at("2026-10-22 23:59")) == []
    assert len(cases.list_cases(st, "overdue", now=at("2026-10-23 00:00"))) == 2


def _one_bad_review(batch, received_at=None, finished=None):
    """The body of a batch with one transaction and its 非常不满意, Mon 2 Nov 2026 10:00 (or
    at `finished`, seconds)."""
    t = at("2026-11-02 10:00") if finished is None else finished
    return encode_v1("H01", batch, [
        {"type": "transaction", "id": "H01:tx:1", "tx": 1, "window": "W01", "ticket": "A1",
         "started_at": t, "finished_at": t},
        {"type": "rating", "id": "H01:rating:T001:1", "terminal": "T001", "seq": 1, "level": 5,
         "outcome": "counted", "transaction": "H01:tx:1", "rated_at": t,
         "received_at": t if received_at is None else received_at}])


def test_art12_the_store_opens_the_case_when_the_batch_arrives(store):
    # if this fails, a bad review waits up to an hour (the next sweep) before anyone sees it
    c = store.client()
    assert c.post_batch("x1", _one_bad_review("x1"))["status"] == "stored"
    c.close()
    wait_until(lambda: store.query(lambda s: cases.list_cases(s)), what="the case opened")
    rows = store.query(lambda s: cases.list_cases(s))
    assert [(r["rating_uid"], r["status"], r["due"]) for r in rows] == [
        ("H01:rating:T001:1", "open", "2026-11-23")]


def test_a_bad_review_whose_deadline_cannot_be_computed_is_stored_all_the_same(store):
    # if this fails, one odd record (a hall clock gone wild) blocks its hall's forwarding for good:
    # the cases open in the batch's own transaction, and a rule must never refuse the batch
    c = store.client()
    # a transaction of today's: the hall's time is no use, and the store's own time of receipt
    # (decision 22) keeps the review within its 5 working days (第七条), so it counts
    body = _one_bad_review("x2", received_at=1e15, finished=time.time() - 60)
    assert c.post_batch("x2", body) == {
        "status": "stored", "batch": "x2", "records": 2, "new": 2}
    c.close()
    assert store.query(lambda s: s.uids("rating", "H01")) == ["H01:rating:T001:1"]
    assert store.query(lambda s: cases.list_cases(s)) == []
    assert "its case waits for the sweep" in store.proc.log_text()


def test_a_broken_calendar_file_does_not_stop_the_store_taking_batches(store_db, certs, tmp_path,
                                                                       monkeypatch):
    # if this fails, a typo in the calendar override file stops every hall's forwarding
    from tests.store.conftest import serve_store
    bad = tmp_path / "calendar.toml"
    bad.write_text("[2027\nnot toml", encoding="utf-8")
    monkeypatch.setenv("HCP_CALENDAR_FILE", str(bad))
    store = serve_store(store_db, certs, tmp_path / "store", ["--rules-every", "0"])
    try:
        c = store.client()
        assert c.post_batch("k1", _one_bad_review("k1"))["new"] == 2
        c.close()
    finally:
        store.proc.kill()
    assert "its cases wait for the sweep" in store.proc.log_text()
    assert store.query(lambda s: s.uids("rating", "H01")) == ["H01:rating:T001:1"]
    assert store.query(lambda s: cases.list_cases(s)) == []


def test_art12_extension_needs_a_reason_and_a_later_date(st, data):
    # if this fails, a deadline is quietly pushed back (or forward) with nothing on record
    _tx, bad = data.transaction("2026-09-01 09:10", level=4)
    cases.open_new(st, now=at("2026-09-01 10:00"))
    cid = cases.case_id(bad)
    assert cases.get(st, cid)["due"] == "2026-09-21"
    with pytest.raises(HcpError, match="reason for the extension .* is required"):
        cases.extend(st, cid, when_("2026-10-30"), "  ")
    with pytest.raises(HcpError, match="must be after"):
        cases.extend(st, cid, when_("2026-09-21"), "需协调")
    assert cases.extend(st, cid, when_("2026-10-30"), "需上级部门协调").isoformat() == "2026-10-30"
    c = cases.get(st, cid, now=at("2026-10-01 00:00"))
    assert c["due"] == "2026-10-30" and not c["overdue"]
    ev = cases.events(st, cid)
    assert [(e["kind"], e["due"]) for e in ev] == [("opened", "2026-09-21"),
                                                   ("extended", "2026-10-30")]
    assert ev[1]["note"] == "需上级部门协调"


def when_(text):
    import datetime
    return datetime.date.fromisoformat(text)


def test_art12_real_name_case_closes_only_after_a_follow_up_and_the_rate_is_reported(st, data):
    # if this fails, a real-name citizen's bad review is closed without anyone calling back,
    # and the report shows a 100% follow-up rate that is not true
    _tx, named = data.transaction("2026-09-01 09:10", level=5, reason="attitude",
                                  rater={"name": "赵六", "phone": "13800000000"})
    _tx, anon = data.transaction("2026-09-01 09:20", level=4)
    cases.open_new(st, now=at("2026-09-01 10:00"))
    cn, ca = cases.case_id(named), cases.case_id(anon)
    assert cases.get(st, cn)["real_name"] and not cases.get(st, ca)["real_name"]
    with pytest.raises(HcpError, match="record the follow-up"):
        cases.close(st, cn, "已整改")
    cases.close(st, ca, "已整改, 匿名无法回访")
    fig = report.figures(st, "2026Q3", now=at("2026-10-30 00:00"))
    r = fig["rectification"]
    assert (r["real_name_cases"], r["real_name_followed_up"]) == (1, 0)
    assert r["real_name_follow_up_rate"] == 0
    cases.follow_up(st, cn, "phone", "satisfied", "已电话告知整改结果")
    cases.close(st, cn, "已对窗口人员批评教育")
    with pytest.raises(HcpError, match="closed already"):
        cases.close(st, cn, "again")
    with pytest.raises(HcpError, match="no case C00000000"):
        cases.follow_up(st, "C00000000", "sms", "satisfied")
    fig = report.figures(st, "2026Q3", now=at("2026-10-30 00:00"))
    assert fig["rectification"]["real_name_follow_up_rate"] == 1
    assert fig["rectification"]["by_status"]["closed"] == 2


def test_art13_cli_cases_list_overdue_follow_up_extend_close_show(st, store_db):
    # if this fails, the duty office cannot run the rectification loop from the command line
    d = Data(st)
    _tx, bad = d.transaction("2026-09-01 09:10", level=5)
    cid = cases.case_id(bad)
    out = hcp("cases", "list", "--db", store_db).output          # opens the missing case
    assert cid in out and "非常不满意" in out
    r = hcp("cases", "overdue", "--db", store_db, ok=False)
    assert r.exit_code == 1 and cid in r.output and "OVERDUE" in r.output
    r = hcp("cases", "extend", "--db", store_db, cid, "--to", "2026-08-01", "--reason", "x",
            ok=False)
    assert "must be after" in r.output
    hcp("cases", "extend", "--db", store_db, cid, "--to", "2099-12-31", "--reason", "需协调")
    assert "no overdue cases" in hcp("cases", "overdue", "--db", store_db).output
    hcp("cases", "follow-up", "--db", store_db, cid, "--channel", "sms", "--feedback",
        "unsatisfied", "--note", "群众仍不满意")
    hcp("cases", "follow-up", "--db", store_db, cid, "--channel", "phone", "--feedback",
        "satisfied")
    hcp("cases", "close", "--db", store_db, cid, "--result", "已整改")
    shown = json.loads(hcp("cases", "show", "--db", store_db, cid, "--json").output)
    assert shown["status"] == "closed" and shown["follow_ups"] == 2
    assert [e["kind"] for e in shown["events"]] == ["opened", "extended", "follow-up",
                                                     "follow-up", "closed"]
    assert "短信回访" in hcp("cases", "show", "--db", store_db, cid).output
    r = hcp("cases", "follow-up", "--db", store_db, cid, "--channel", "fax", "--feedback",
            "satisfied", ok=False)
    assert r.exit_code == 2
