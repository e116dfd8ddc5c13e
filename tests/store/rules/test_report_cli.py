"""`hcp report quarterly` and `hcp rules explain` as the municipal office first runs them."""
import os
import re
import sqlite3

from haochaping.daemon.hall import db as hall_db
from haochaping.daemon.store import quarterly as report

from .conftest import Data, at, hcp


def test_a_report_of_a_store_file_that_does_not_exist_is_refused_without_creating_it(tmp_path):
    # if this fails, a mistyped --db gives an empty official report (exit 0) and a new empty
    # store file next to it
    missing = tmp_path / "missing.sqlite"
    r = hcp("report", "quarterly", "--db", missing, "--period", "2026Q3", "--out",
            tmp_path / "out", ok=False)
    assert r.exit_code == 1 and "no store database at" in r.output
    r = hcp("rules", "explain", "--db", missing, "--unit", "H01", "--period", "2026Q3", ok=False)
    assert r.exit_code == 1 and "no store database at" in r.output
    assert not os.path.exists(missing)


def test_a_report_of_the_demos_hall_database_says_it_is_not_the_store_and_leaves_it_alone(
        tmp_path):
    # if this fails, a new user who points the README's report at the hall.sqlite the demo
    # printed meets a traceback (table transactions already exists), and the hall's database
    # gains a table of the store's
    path = str(tmp_path / "hall.sqlite")
    hall_db.connect(path).close()
    tables = sqlite3.connect(path).execute("SELECT name FROM sqlite_master").fetchall()
    r = hcp("report", "quarterly", "--db", path, "--period", "2026Q3", "--out",
            tmp_path / "out", ok=False)
    assert r.exit_code == 1 and "a hall daemon's database" in r.output, r.output
    assert "hcp summary" in r.output
    r = hcp("rules", "explain", "--db", path, "--unit", "H01", "--period", "2026Q3", ok=False)
    assert r.exit_code == 1 and "a hall daemon's database" in r.output, r.output
    assert sqlite3.connect(path).execute("SELECT name FROM sqlite_master").fetchall() == tables


def test_a_report_of_a_quarter_without_data_says_where_the_data_is(st, store_db, tmp_path):
    # if this fails, the README's example quarter gives the demo's store an empty report with
    # no hint which quarter holds its data
    Data(st).transaction("2026-11-03 10:00", level=1)
    r = hcp("report", "quarterly", "--db", store_db, "--period", "2026Q3", "--out", tmp_path)
    assert "2026-11-03" in r.output and "2026Q4" in r.output


def test_the_report_is_in_chinese_names_its_units_and_counts_in_whole_numbers(st, tmp_path):
    # if this fails, the official 通报 mixes English into Chinese, names units by internal codes
    # (staff:H01/S0101) and puts 0.2 steps on the axes of things that are counted
    d = Data(st)
    d.transaction("2026-08-03 10:00", level=1)
    d.transaction("2026-08-03 10:05", level=4, reason="efficiency", staff="S0102")
    _fig, paths = report.quarterly(st, "2026Q3", str(tmp_path), now=at("2026-08-04 00:00"))
    with open(paths["html"], encoding="utf-8") as f:
        page = f.read()
    text = re.sub(r"<[^>]+>", " ", re.sub(r"<style>.*?</style>", " ", page, flags=re.S))
    assert re.findall(r"[A-Za-z]{3,}", text.replace("PJQ", "")) == []
    assert "staff:" not in page and "window:" not in page
    assert "五华区政务服务中心 W01窗口" in page and "五华区政务服务中心 工号S0102" in page
    for chart in ("chart-levels", "chart-reasons", "chart-rectification"):
        svg = re.search(r'<svg id="%s".*?</svg>' % chart, page, flags=re.S).group(0)
        ticks = re.findall(r'font-size="10"[^>]*>([^<]*)</text>', svg)
        assert ticks and all(t.isdigit() for t in ticks), (chart, ticks)
