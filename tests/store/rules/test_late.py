"""第七条 in the store for ratings that come too late: a citizen's rating that the hall received
after the end of the 5th working day after the day its transaction closed is kept (outcome
`late`, for audit) but does not count; the transaction gets its default 基本满意 instead. The
store decides it itself (not only the hall daemon), whatever order the records arrive in, on
both backends (docs/rules.md, decision 22)."""
import threading
import time

import pytest

from haochaping.daemon.store import appeals, cases, defaults, jobs, scores
from haochaping.daemon.store import quarterly as report
from tests.conftest import wait_until
from tests.store.conftest import encode_v1

from .conftest import at, recent

# Wed 30 Sep 2026; 国庆+中秋 1–7 Oct off, Sat 10 Oct worked (调休): the 5th working day is
# Tue 13 Oct 2026 (counting Monday to Friday only, it would be Wed 7 Oct)
CLOSED = "2026-09-30 16:00"
LATE = "2026-10-14 00:00"
AFTER = at("2026-10-20 12:00")     # "now" for the jobs and the scores: the deadline has passed


def _outcome(st, uid):
    return st._query("SELECT outcome FROM ratings WHERE uid = %s", (uid,))[0][0]


def _counts_as(st, tx):
    """What the transaction counts as in the scores: (level, default?) or None while pending."""
    [t] = [t for t in scores.transactions(st, "2026Q3", now=AFTER) if t["uid"] == tx]
    return None if t["rating"] is None else (t["rating"].level, t["rating"].is_default)


def _ratings_of(st, tx):
    return st._query("SELECT uid, outcome, is_default FROM ratings WHERE tx_uid = %s"
                     " ORDER BY is_default DESC, uid", (tx,))


def test_art7_a_rating_received_after_the_5th_working_day_does_not_count_and_the_default_does(
        st, data):
    # if this fails, a rating that reaches the hall (or any channel posting to the store) after
    # the 5 working days decides the transaction's score instead of the 基本满意 第七条 gives it
    tx, _ = data.transaction(CLOSED)
    late = data.rating(tx, 5, "2026-10-14 09:00")
    assert _outcome(st, late) == "late"                        # kept, for audit
    assert _counts_as(st, tx) == (3, True)                     # before the job ran ...
    run = jobs.run_once(st, now=AFTER)
    assert (run["given"], run["cases_opened"]) == (1, 0)
    assert _counts_as(st, tx) == (3, True)                     # ... and after
    assert _ratings_of(st, tx) == [(defaults.default_uid(tx), "counted", 1), (late, "late", 0)]
    assert cases.list_cases(st) == []                          # a 差评 that does not count


def test_art7_a_rating_received_on_the_5th_working_day_counts_across_national_day_and_its_make_up_saturday(  # noqa: E501
        st, data):
    # if this fails, a citizen who rated in time loses the rating to a default: the holidays
    # are counted as working days, or the make-up Saturday is not, or the last day ends early
    tx1, _ = data.transaction(CLOSED)
    on_saturday = data.rating(tx1, 1, "2026-10-10 10:00")       # Monday-Friday: already late
    tx2, _ = data.transaction(CLOSED)
    last_second = data.rating(tx2, 2, "2026-10-13 23:59:59")
    tx3 = data.transaction_record(CLOSED)
    midnight = data.rating_record(tx3["id"], 1, LATE)
    data.put([tx3, midnight])                                   # one batch, the hall's order
    assert [_outcome(st, r) for r in (on_saturday, last_second, midnight["id"])] == [
        "counted", "counted", "late"]
    assert [_counts_as(st, t) for t in (tx1, tx2, tx3["id"])] == [(1, False), (2, False),
                                                                  (3, True)]
    assert defaults.run_defaults(st, now=AFTER)["given"] == 1


def test_art7_a_late_rating_that_arrives_before_its_transaction_does_not_count_either(st, data):
    # if this fails, the order in which a hall's batches happen to be committed (two are in
    # flight at once) decides whether a late rating counts
    tx = data.transaction_record(CLOSED)
    late = data.rating(tx["id"], 4, "2026-10-15 10:00")        # its batch is committed first
    data.put([tx])                                              # the transaction's, after it
    assert _outcome(st, late) == "late"
    run = jobs.run_once(st, now=AFTER)
    assert (run["given"], run["cases_opened"]) == (1, 0)
    assert _counts_as(st, tx["id"]) == (3, True)


def test_art7_a_late_rating_and_its_transaction_sent_twice_leave_one_late_rating_and_one_default(
        st, data):
    # if this fails, a hall re-sending after a crash (or the job run twice) turns a late
    # rating back into a counted one, or gives the transaction a second rating
    tx = data.transaction_record(CLOSED)
    late = data.rating_record(tx["id"], 5, LATE)
    data.put([late])
    data.put([tx, late])
    assert defaults.run_defaults(st, now=AFTER)["given"] == 1
    data.put([tx])
    data.put([late])
    assert defaults.run_defaults(st, now=AFTER + 86400)["given"] == 0
    assert _ratings_of(st, tx["id"]) == [(defaults.default_uid(tx["id"]), "counted", 1),
                                         (late["id"], "late", 0)]
    assert _counts_as(st, tx["id"]) == (3, True)


def test_art7_a_late_rating_after_the_default_was_given_does_not_replace_it(st, data):
    # if this fails, a 非常满意 pressed weeks later overturns the 基本满意 the transaction was
    # given (a unit could collect late ratings to lift its score)
    tx, _ = data.transaction(CLOSED)
    assert defaults.run_defaults(st, now=AFTER)["given"] == 1
    late = data.rating(tx, 1, "2026-10-19 10:00")
    assert _outcome(st, late) == "late"
    assert _counts_as(st, tx) == (3, True)
    assert defaults.run_defaults(st, now=AFTER + 86400) == {
        "given": 0, "checked": 0, "waiting": 0, "late": 0, "fallback_years": []}


def test_art7_a_late_bad_review_opens_no_case_cannot_be_appealed_and_is_not_in_the_report(
        st, data):
    # if this fails, a unit is made to rectify, or is reported for, a 差评 that does not count
    tx = data.transaction_record(CLOSED)
    bad = data.rating_record(tx["id"], 5, LATE)
    data.seq += 1
    reason = {"type": "reason", "id": "H01:reason:T001:%d" % data.seq, "terminal": "T001",
              "seq": data.seq, "ref": bad["seq"], "reason": "attitude",
              "rated_at": bad["rated_at"] + 5}
    data.put([tx, bad, reason])
    assert jobs.run_once(st, now=AFTER)["cases_opened"] == 0
    try:
        appeals.file(st, bad["id"], "D1", "迟到的差评", now=at("2026-10-14 10:00"))
        raise AssertionError("a late rating was appealed")
    except appeals.AppealRefused as e:
        assert "late" in str(e)
    fig = report.figures(st, "2026Q3", now=AFTER)
    assert fig["reasons"] == [] and fig["rectification"]["cases"] == 0
    assert [(r["level"], r["citizen"], r["default"]) for r in fig["levels"] if
            r["citizen"] or r["default"]] == [(3, 0, 1)]


def test_art7_a_hall_clock_running_fast_does_not_make_an_in_time_rating_late(st, data):
    # if this fails, a hall whose clock runs days ahead has its citizens' ratings thrown out:
    # the hall cannot have received a rating after the store did
    tx, _ = data.transaction(recent(3600))
    r = data.rating(tx, 2, time.time() + 30 * 86400)
    assert _outcome(st, r) == "counted"


def test_art7_late_ratings_stored_before_the_store_applied_the_rule_are_marked_by_the_job(
        st, data):
    # if this fails, the late ratings a store took in before this rule keep counting (and keep
    # their rectification cases open) in every later report
    tx, _ = data.transaction(CLOSED)
    late = data.rating(tx, 4, LATE)
    st._execute("UPDATE ratings SET outcome = 'counted' WHERE uid = %s", (late,))  # as then
    assert cases.open_new(st, now=at("2026-10-14 01:00")) == 1
    run = jobs.run_once(st, now=AFTER)
    assert (run["late"], run["given"]) == (1, 1)
    assert _outcome(st, late) == "late"
    assert _counts_as(st, tx) == (3, True)
    [case] = cases.list_cases(st)
    assert case["status"] == "withdrawn" and "第七条" in case["result"]
    assert jobs.run_once(st, now=AFTER)["late"] == 0


@pytest.mark.parametrize("first", ["rating", "transaction"])
def test_art7_a_late_rating_and_its_transaction_stored_at_the_same_moment_still_do_not_count(
        st, data, monkeypatch, first):
    # if this fails, two batches committed side by side (PostgreSQL's workers write in
    # parallel) each miss the other half, and a late rating counts
    tx = data.transaction_record(CLOSED)
    late = data.rating_record(tx["id"], 5, LATE)
    records = {"rating": [late], "transaction": [tx]}
    second = "transaction" if first == "rating" else "rating"
    paused, go, second_done = threading.Event(), threading.Event(), threading.Event()
    mark = defaults._mark

    def paused_mark(t, uids, now):
        if threading.current_thread().name == "first-batch":
            paused.set()    # the first batch has looked for the other half, not committed
            go.wait()
        return mark(t, uids, now)
    monkeypatch.setattr(defaults, "_mark", paused_mark)

    def second_batch():
        data.put(records[second])
        second_done.set()
    a = threading.Thread(target=data.put, args=(records[first],), name="first-batch")
    a.start()
    wait_until(paused.is_set, what="the first batch before its commit")
    b = threading.Thread(target=second_batch)
    b.start()
    # the second batch either waits for the first (as it must) or is done without it
    wait_until(lambda: second_done.is_set() or _waits_for_the_other(st),
               what="the second batch done or waiting")
    go.set()
    a.join()
    b.join()
    assert _outcome(st, late["id"]) == "late"
    assert _counts_as(st, tx["id"]) == (3, True)


def _waits_for_the_other(st):
    if st.dialect == "sqlite":
        return st.lock.locked()     # the rating's batch holds the one writer's lock
    return bool(st._query("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                          " AND objid = %s AND database = (SELECT oid FROM pg_database"
                          " WHERE datname = current_database())", (defaults.LATE_LOCK,)))


def test_art7_the_store_marks_a_late_rating_posted_through_its_api(store):
    # if this fails, the rule holds for the store's own jobs but not for what halls and other
    # channels post over HTTPS (the batch workers)
    closed, late = at(CLOSED), at("2026-10-16 10:00")
    c = store.client()
    c.post_batch("late-1", encode_v1("H01", "late-1", [
        {"type": "rating", "id": "H01:rating:T001:1", "terminal": "T001", "seq": 1, "level": 5,
         "outcome": "counted", "transaction": "H01:tx:1", "rated_at": late,
         "received_at": late}]))
    c.post_batch("late-2", encode_v1("H01", "late-2", [
        {"type": "transaction", "id": "H01:tx:1", "tx": 1, "window": "W01", "ticket": "A1",
         "started_at": closed - 300, "finished_at": closed},
        {"type": "transaction", "id": "H01:tx:2", "tx": 2, "window": "W01", "ticket": "A2",
         "started_at": closed - 200, "finished_at": closed},
        {"type": "rating", "id": "H01:rating:T001:2", "terminal": "T001", "seq": 2, "level": 4,
         "outcome": "counted", "transaction": "H01:tx:2", "rated_at": late,
         "received_at": late}]))
    c.close()
    rows = store.query(lambda s: [(r["uid"], r["outcome"]) for r in s.ratings("H01", 0)])
    assert rows == [("H01:rating:T001:1", "late"), ("H01:rating:T001:2", "late")]
    assert store.query(lambda s: cases.list_cases(s)) == []
