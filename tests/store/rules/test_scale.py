"""The store at scale (#19) gives the answers it gave before: the hourly sweeps that read only
what changed find exactly what a sweep over every row finds, one unit's score read alone is
its score in the whole period's, and the archive holds every row it removed and keeps the
figures of the quarters it took. On a generated year (`hcp bench scale`'s), both backends."""
import csv
import json
import os

import pytest

from haochaping.daemon.errors import HcpError
from haochaping.daemon.rules import scoring
from haochaping.daemon.store import (
    access,
    appeals,
    archive,
    cases,
    defaults,
    quarterly,
    scores,
    sweeps,
)
from haochaping.tools.bench import scale_rate

from .conftest import Data, at, hcp

NOW = scale_rate.NOW


@pytest.fixture
def year(st):
    # 6,000 ratings: ~30 appeals, so that the archived half-year holds some on either backend
    return scale_rate.generate(st, 6000)


def _unrated_due(st):
    """Transactions still without a counted rating whose 第七条 deadline has passed at NOW."""
    return st._query("SELECT COUNT(*) FROM transactions t WHERE t.finished_at < %s AND NOT EXISTS"
                     " (SELECT 1 FROM ratings r WHERE r.tx_uid = t.uid AND r.outcome = 'counted')",
                     (access.day_start(scale_rate.UNRATED_FROM),))[0][0]


def test_hourly_sweep_finds_exactly_the_unrated_ones_and_the_full_sweep_agrees(st, year):
    # if this fails, the sweep that reads only what changed misses a transaction owed its
    # 基本满意 (or gives one twice), and the city's scores differ from the rules
    assert not sweeps.begin(st, "defaults").full  # the year's sweeps are on record
    r = defaults.run_defaults(st, NOW)
    assert year["expected_defaults"] > 0
    assert r["given"] == year["expected_defaults"]
    assert _unrated_due(st) == 0
    st._execute("DELETE FROM store_sweeps", ())
    full = defaults.run_defaults(st, NOW)
    assert full["given"] == 0 and full["waiting"] == r["waiting"]


def test_a_transaction_received_weeks_late_is_found_by_the_hourly_sweep(st, data):
    # if this fails, a hall whose link was down for weeks never gets the defaults it is owed:
    # its transactions finished before the sweep's mark
    data.transaction("2026-09-01 10:00", level=1)
    assert defaults.run_defaults(st, now=at("2026-10-20 12:00"))["given"] == 0
    tx, _ = data.transaction("2026-09-02 10:00")      # stored now, finished long before
    assert not sweeps.begin(st, "defaults").full
    r = defaults.run_defaults(st, now=at("2026-10-20 13:00"))
    assert r["given"] == 1 and r["checked"] == 1
    assert st._query("SELECT tx_uid FROM ratings WHERE is_default = 1", ()) == [(tx,)]


def test_a_bad_review_whose_transaction_comes_later_gets_its_case_from_the_hourly_sweep(
        st, data):
    # if this fails, a bad review stored before its transaction never gets a rectification case
    assert cases.open_new(st, now=at("2026-09-01 10:00")) == 0
    tx = data.transaction_record("2026-09-01 09:00")
    data.put([data.rating_record(tx["id"], 5, at("2026-09-01 09:01"))])
    assert cases.list_cases(st) == []
    data.put([tx])
    assert not sweeps.begin(st, "cases").full
    assert cases.open_new(st, now=at("2026-09-01 10:00")) == 1


def test_one_units_score_read_alone_is_its_score_in_the_whole_period(st, year):
    # if this fails, `hcp rules explain` for a unit says something other than the report
    s = year["sample"]
    whole = scores.unit_scores(st, scale_rate.PERIOD, NOW)
    for kind in ("department", "window", "staff"):
        u = whole[s[kind]]
        alone = scores.explain(st, s[kind], scale_rate.PERIOD, NOW)
        assert alone.data == scoring.explain(u["ratings"], u["pending"], s[kind],
                                             scale_rate.PERIOD).data
        assert alone.score.total > 0


def test_the_archive_holds_every_row_it_removed_and_keeps_the_quarters_figures(
        st, year, tmp_path):
    # if this fails, archiving loses 好差评 records (第十五条 keeps them) or a later report
    # of an archived quarter, or its trend, changes
    tables = list(archive.WHERE)
    before = {t: st._query("SELECT COUNT(*) FROM %s" % t, ())[0][0] for t in tables}
    tx_before = {r[0] for r in st._query("SELECT uid FROM transactions", ())}
    figs = {p: json.loads(json.dumps(quarterly.figures(st, p, now=NOW)))
            for p in ("2025Q1", "2025Q2")}
    q3 = quarterly.figures(st, "2025Q3", now=NOW)
    out = tmp_path / "archive"
    r = archive.archive(st, "2025-07", str(out), now=NOW)
    assert r["periods"] == ["2025Q1", "2025Q2"]
    for t in tables:
        after = st._query("SELECT COUNT(*) FROM %s" % t, ())[0][0]
        with open(r["files"][t], encoding="utf-8") as f:
            written = list(csv.DictReader(f))
        assert before[t] - after == r["rows"][t] == len(written), t
        assert r["rows"][t] > 0, t
        if t == "transactions":
            kept = {row[0] for row in st._query("SELECT uid FROM transactions", ())}
            assert kept | {w["uid"] for w in written} == tx_before
            assert not kept & {w["uid"] for w in written}
            assert all(float(w["finished_at"]) < access.day_start(
                archive.month_start("2025-07")) for w in written)
    for p, fig in figs.items():
        assert quarterly.figures(st, p, now=NOW) == fig
    assert quarterly.figures(st, "2025Q3", now=NOW)["trend"] == json.loads(json.dumps(q3["trend"]))
    assert os.path.exists(r["files"]["manifest"])


def test_archive_refuses_a_month_inside_a_quarter_and_open_cases(st, data, store_db, tmp_path):
    # if this fails, an archive splits a quarter whose figures it must keep whole, or takes
    # away a case still being rectified
    res = hcp("store", "archive", "--db", store_db, "--before", "2025-08", "--out",
              str(tmp_path / "a"), ok=False)
    assert res.exit_code == 1
    assert "first month of a quarter" in res.output and "Traceback" not in res.output
    data.transaction("2025-05-06 10:00", level=5)
    cases.open_new(st, now=at("2025-05-06 11:00"))
    with pytest.raises(HcpError, match="1 rectification case"):
        archive.archive(st, "2025-07", str(tmp_path / "b"))


def test_a_case_with_an_id_of_8_hex_digits_is_still_withdrawn(st, data):
    # if this fails, an upheld appeal no longer withdraws a case opened before #19 widened ids
    _tx, bad = data.transaction("2026-09-01 09:10", level=4)
    assert cases.open_new(st, now=at("2026-09-01 10:00")) == 1
    cid = cases.case_id(bad)
    assert len(cid) == 17
    st._execute("UPDATE cases SET id = %s WHERE id = %s", (cid[:9], cid))
    with access.atomic(st) as t:
        cases.withdraw(t, bad, "A00000001", at("2026-09-02 10:00"))
    assert cases.get(st, cid[:9])["status"] == "withdrawn"


def test_the_scale_benchmark_measures_every_step_of_a_generated_year(st, year):
    # if this fails, `hcp bench scale` stops with a traceback (as it did once ratings carried
    # their channel) and nobody can measure what a province's year costs
    steps = scale_rate.measure(st, year)
    assert steps["ingest_batch_5000"]["rows"] >= 5000   # its transactions, ratings, reasons
    assert steps["province_scores_quarter"]["rows"] == steps["quarterly_report"]["rows"] > 0
    assert steps["defaults_sweep"]["rows"] == year["expected_defaults"]


def test_a_sweep_that_dies_while_writing_defaults_leaves_none_and_the_rerun_gives_each_once(
        st, data, monkeypatch):
    # if this fails, a default sweep that crashes half-way (the store restarted, the database
    # gone) leaves some transactions without their 基本满意 or, rerun, gives some two
    txs = [data.transaction("2026-09-0%d 10:00" % d)[0] for d in range(1, 8)]
    monkeypatch.setattr(defaults, "WRITE_CHUNK", 2)          # 7 defaults: 4 statements
    write = defaults._write_chunk
    calls = []

    def dies_on_the_third(t, rows, now):
        calls.append(len(rows))
        if len(calls) == 3:
            raise RuntimeError("the store went away")
        return write(t, rows, now)

    monkeypatch.setattr(defaults, "_write_chunk", dies_on_the_third)
    with pytest.raises(RuntimeError):
        defaults.run_defaults(st, now=at("2026-10-20 12:00"))
    assert calls == [2, 2, 2]
    assert st._query("SELECT COUNT(*) FROM ratings WHERE is_default = 1", ()) == [(0,)]
    assert st._query("SELECT COUNT(*) FROM store_sweeps", ()) == [(0,)]  # nothing recorded
    monkeypatch.setattr(defaults, "_write_chunk", write)
    assert defaults.run_defaults(st, now=at("2026-10-20 13:00"))["given"] == 7
    assert defaults.run_defaults(st, now=at("2026-10-20 14:00"))["given"] == 0
    per_tx = st._query("SELECT tx_uid, COUNT(*) FROM ratings WHERE outcome = 'counted'"
                       " GROUP BY tx_uid ORDER BY tx_uid", ())
    assert per_tx == sorted((tx, 1) for tx in txs)


def test_defaults_written_again_in_chunks_are_each_written_once(st, data, monkeypatch):
    # if this fails, two default sweeps running at once (cron and `hcp store serve`) give a
    # transaction two 基本满意, or report defaults given that were not
    txs = [data.transaction("2026-09-0%d 10:00" % d)[0] for d in range(1, 6)]
    monkeypatch.setattr(defaults, "WRITE_CHUNK", 2)
    due = [(defaults.default_uid(tx), "H01", tx, at("2026-09-20 00:00")) for tx in txs]
    with access.atomic(st) as t:
        assert defaults.write_defaults(t, due[1:4], at("2026-10-20 12:00")) == 3
    with access.atomic(st) as t:                    # the other run had read them all as due
        assert defaults.write_defaults(t, list(reversed(due)), at("2026-10-20 12:01")) == 2
    rows = st._query("SELECT uid, tx_uid, level, outcome, is_default, rated_at, batch"
                     " FROM ratings WHERE is_default = 1 ORDER BY uid", ())
    assert rows == [(defaults.default_uid(tx), tx, 3, "counted", 1, at("2026-09-20 00:00"),
                     defaults.BATCH) for tx in sorted(txs)]
    assert defaults.run_defaults(st, now=at("2026-10-20 13:00"))["given"] == 0


def test_explain_counted_in_the_database_says_what_the_period_s_transactions_say(st, data):
    # if this fails, `hcp rules explain` (counted by the database since #19) tells a unit a
    # score other than the quarter's report: an upheld appeal, a default, a pending or a
    # doubly rated transaction, a hall without department codes counted another way
    st.add_hall("H02")
    plain = Data(st, department="")                   # H01 sends no department code
    other = Data(st, hall="H02", department="H01")    # a code that happens to be H01's id
    plain.tx = 1000
    for i, level in enumerate((1, 2, 3, 4, 5, 5, None, None, None)):
        for d, day in ((plain, "2026-12-0%d 10:00" % (i % 9 + 1)), (data, "2026-11-2%d 09:00" % i),
                       (other, "2026-10-1%d 11:00" % i)):
            d.transaction(day, level=level, staff="" if i == 2 else "S01%02d" % (i % 2))
    defaults.run_defaults(st, now=at("2026-12-05 12:00"))         # the earlier ones' defaults
    for d, day in ((plain, "2026-12-29 15:00"), (data, "2026-12-30 15:00")):  # still pending
        d.transaction(day, staff="S0100")
    tx, first = plain.transaction("2026-12-10 10:00", level=4)    # rated twice: the first counts
    plain.rating(tx, 1, "2026-12-10 10:05")
    for bad in (first, st._query("SELECT uid FROM ratings WHERE level = 5 AND hall = 'H02'"
                                 " ORDER BY uid LIMIT 1", ())[0][0]):
        filed, decided = (("2026-12-11 10:00", "2026-12-14 10:00") if bad == first
                          else ("2026-10-16 10:00", "2026-10-20 10:00"))
        a = appeals.file(st, bad, "H01", "误评", now=at(filed))
        appeals.decide(st, a["id"], True, "核实为误评", now=at(decided))
    now = at("2026-12-31 17:00")
    whole = scores.unit_scores(st, "2026Q4", now)
    units = ["H01", "D1", "window:H01/W01", "window:H02/W01", "staff:H01/S0100",
             "staff:H01/S0101", "staff:H02/S0100"]
    assert {k for k, u in whole.items() if u["score"].total} >= set(units)
    for unit in units:
        u = whole[unit]
        assert scores.explain(st, unit, "2026Q4", now).data == scoring.explain(
            u["ratings"], u["pending"], unit, "2026Q4").data, unit
    assert whole["H01"]["pending"] == 1 and whole["D1"]["pending"] == 1
    tally = scores.explain(st, "H01", "2026Q4", now).data["tally"]
    assert tally["excluded"] == 2 and tally["defaults"] == 6
    empty = scores.explain(st, "staff:H01/", "2026Q4", now)     # no staff number: no unit
    assert empty.score.total == 0
