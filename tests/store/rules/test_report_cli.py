"""`hcp report quarterly` and `hcp rules explain` as the municipal office first runs them."""
import os

from .conftest import Data, hcp


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


def test_a_report_of_a_quarter_without_data_says_where_the_data_is(st, store_db, tmp_path):
    # if this fails, the README's example quarter gives the demo's store an empty report with
    # no hint which quarter holds its data
    Data(st).transaction("2026-11-03 10:00", level=1)
    r = hcp("report", "quarterly", "--db", store_db, "--period", "2026Q3", "--out", tmp_path)
    assert "2026-11-03" in r.output and "2026Q4" in r.output
