"""第十一条 quarterly report: HTML with five charts drawn in headless Chromium, CSV and JSON of
the same figures, a public variant without personal data; on data that flowed through the real
chain (terminals → MQTT → hall daemon → forwarder → store over HTTPS)."""
import csv
import json
import os
import re

import pytest

from haochaping.daemon.store import jobs
from haochaping.daemon.store import quarterly as report
from tests.hall.console.conftest import _playwright, browser, screenshot  # noqa: F401
from tests.store.conftest import delivered, hall_day

from .conftest import Data, at, hcp

CHARTS = ("chart-scores", "chart-levels", "chart-trend", "chart-reasons", "chart-rectification")
QUARTER = "2026Q4"           # the real chain's transactions are today's (the workplace clock)


def _history(s):
    """A second hall, H02 (department D2), with three earlier quarters, bad reviews with
    reasons, an upheld appeal and cases in every state, so that every chart has data."""
    from haochaping.daemon.store import appeals, cases
    s.add_hall("H02", "盘龙区政务服务中心")
    d = Data(s, hall="H02", department="D2")
    plan = {"2026-02-10": (1, 1, 2, 3, 4), "2026-05-12": (1, 1, 1, 2, 5),
            "2026-08-11": (1, 1, 1, 1, 2, 4, 5)}
    bad = []
    for day, lv in plan.items():
        for i, level in enumerate(lv):
            reason = ("attitude", "efficiency", "other")[i % 3] if level >= 4 else None
            _tx, r = d.transaction("%s 10:%02d" % (day, i), level=level, reason=reason,
                                   staff="S9%02d" % (i % 2))
            if level >= 4:
                bad.append(r)
        d.transaction("%s 16:00" % day, staff="S900")           # a default 基本满意
    jobs.run_once(s, now=at("2026-11-01 00:00"))
    a = appeals.file(s, bad[0], "D2", "误评", now=at("2026-02-11 09:00"))
    appeals.decide(s, a["id"], True, "核实为误评", now=at("2026-02-12 09:00"))
    cases.follow_up(s, cases.case_id(bad[1]), "phone", "satisfied", now=at("2026-05-20 10:00"))
    cases.close(s, cases.case_id(bad[1]), "已整改", now=at("2026-05-21 10:00"))
    cases.extend(s, cases.case_id(bad[3]), _day("2099-01-31"), "需上级部门协调")


def _day(text):
    import datetime
    return datetime.date.fromisoformat(text)


def _charts_drawn(page):
    """For each chart: its size and how many of its shapes have a non-empty box."""
    return page.evaluate("""() => Array.from(document.querySelectorAll('svg.chart')).map(s => {
        const box = s.getBoundingClientRect();
        const shapes = Array.from(s.querySelectorAll('rect.bar, polyline.line, circle.point'))
            .filter(e => { const b = e.getBBox(); return b.width > 0 && b.height > 0; });
        return {id: s.id, w: box.width, h: box.height, shapes: shapes.length,
                text: s.textContent};
    })""")


def test_art11_quarterly_report_from_the_real_chain_draws_every_chart(store, daemon, hall,
                                                                     hall_db, tmp_path, browser,  # noqa: F811
                                                                     request):
    # if this fails, the quarterly 通报 the city publishes has blank or missing charts, or
    # figures that differ between the page, the CSV and the JSON
    did = hall_day(hall, 80, seed=5)
    assert did["rated"] > 30
    delivered(store, hall_db)
    store.query(_history)
    out = tmp_path / "reports"
    r = hcp("report", "quarterly", "--db", store.db, "--period", QUARTER, "--out", out)
    assert "internal report 2026Q4" in r.output
    hcp("report", "quarterly", "--db", store.db, "--period", QUARTER, "--out", out, "--public")
    fig = json.loads((out / "2026Q4.json").read_text(encoding="utf-8"))
    tx = hall_db("SELECT COUNT(*) FROM transactions WHERE finished_at IS NOT NULL")[0][0]
    chain = [u for u in fig["units"] if u["unit"] == "H01"][0]
    assert chain["transactions"] == tx and chain["provisional"]       # citizens may still rate
    counted = hall_db("SELECT COUNT(*) FROM ratings WHERE outcome = 'counted'")[0][0]
    assert chain["rated"] == counted
    assert {u["kind"] for u in fig["units"]} == {"department", "window", "staff"}
    # the CSV holds the same figures as the JSON
    with open(out / "2026Q4-scores.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["unit"], r["transactions"]) for r in rows] == [
        (u["unit"], str(u["transactions"])) for u in fig["units"]]
    for name in ("levels", "trend", "reasons", "rectification", "appeals"):
        assert (out / ("2026Q4-%s.csv" % name)).stat().st_size > 20
    assert [t["period"] for t in fig["trend"] if t["unit"] == "all"] == [
        "2026Q1", "2026Q2", "2026Q3", "2026Q4"]
    page = browser()
    for variant in ("2026Q4.html", "2026Q4-public.html"):
        html = (out / variant).read_text(encoding="utf-8")
        assert not re.search(r"(src|href)=\"?https?:", html)       # offline: nothing fetched
        page.goto("file://%s" % (out / variant))
        drawn = {c["id"]: c for c in _charts_drawn(page)}
        assert sorted(drawn) == sorted(CHARTS)
        for cid in CHARTS:
            assert drawn[cid]["w"] > 100 and drawn[cid]["h"] > 50, cid
            assert drawn[cid]["shapes"] > 0, (variant, cid)
        assert drawn["chart-trend"]["shapes"] >= 4
        if variant == "2026Q4.html" and request.node.callspec.params["store_db"] == "sqlite":
            screenshot(page, "report-quarterly.png", tmp_path)
    # the public variant: no staff numbers, no tickets, no rating ids, anywhere
    staff = {r[0] for r in hall_db("SELECT staff FROM transactions WHERE staff != ''")}
    staff |= {"S900", "S901"}
    tickets = {r[0] for r in hall_db("SELECT ticket FROM transactions")}
    assert staff and tickets
    internal = (out / "2026Q4.html").read_text(encoding="utf-8")
    assert any(s in internal for s in staff)                         # the internal one has them
    for name in os.listdir(out):
        if "-public" not in name:
            continue
        text = (out / name).read_text(encoding="utf-8")
        for secret in staff:
            assert "staff:" not in text and secret not in text, (name, secret)
        assert not any(re.search(r"\b%s\b" % re.escape(t), text) for t in tickets), name
        assert ":rating:" not in text and ":tx:" not in text, name


def test_art11_a_quarter_with_no_transactions_still_renders_saying_no_data(st, tmp_path):
    # if this fails, the report for a quiet quarter crashes instead of saying "no data"
    fig, paths = report.quarterly(st, "2026Q1", str(tmp_path), now=at("2026-05-01 00:00"))
    assert fig["units"] == [] and fig["overall"]["final"] is None
    assert fig["overall"]["reason"] == "no data"
    with open(paths["html"], encoding="utf-8") as f:
        assert f.read().count("<svg") == len(CHARTS)


def test_art11_report_periods_before_2020Q3_are_refused(st, store_db, tmp_path):
    # if this fails, a typo (2019Q3) yields an empty report instead of an explanation
    r = hcp("report", "quarterly", "--db", store_db, "--period", "2019Q3", "--out", tmp_path,
            ok=False)
    assert r.exit_code == 1 and "2020Q3" in r.output


@pytest.mark.parametrize("public", [False, True])
def test_art11_json_and_csv_hold_the_same_figures(st, tmp_path, public):
    # if this fails, a spreadsheet made from the CSV disagrees with the published page
    d = Data(st)
    d.transaction("2026-08-03 10:00", level=1)
    d.transaction("2026-08-03 10:05", level=4, reason="efficiency", staff="S0102")
    fig, paths = report.quarterly(st, "2026Q3", str(tmp_path), public=public,
                                  now=at("2026-12-01 00:00"))
    with open(paths["levels"], encoding="utf-8") as f:
        levels = list(csv.DictReader(f))
    assert [int(r["citizen"]) for r in levels] == [r["citizen"] for r in fig["levels"]] == [
        1, 0, 0, 1, 0]
    with open(paths["reasons"], encoding="utf-8") as f:
        assert list(csv.DictReader(f)) == [
            {"reason": "efficiency", "label": "服务效率", "count": "1"}]
    kinds = {u["kind"] for u in fig["units"]}
    assert kinds == ({"department", "window"} if public else {"department", "window", "staff"})
