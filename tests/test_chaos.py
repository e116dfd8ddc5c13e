"""The chaos run (tools/bench/chaos.py, `hcp bench chaos`) in the suite, short: real firmware
terminals under MicroPython rate at three windows while the hall daemon, its broker and the
city's store (SQLite, then PostgreSQL) are killed with SIGKILL and started again in turn, and
poison is mixed in (bad MQTT messages from a terminal's own credentials, bad tickets at the
window API, a record in hall.sqlite the store refuses).

If this failed, a citizen could be thanked for a rating the city never counts (or counts twice)
on a day when the hall's server, broker or the city's store crash, or one bad input could stop a
hall's delivery."""
import pytest

from haochaping.tools.bench import chaos


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_every_confirmed_rating_reaches_the_store_once_through_random_kills_and_poison(
        backend, tmp_path):
    r = chaos.run(seconds=20, backend=backend, seed=3, folder=str(tmp_path))
    print("chaos:", r)
    assert r["faults"] == {s: r["faults"][s] for s in chaos.SERVICES}
    assert all(n >= 1 for n in r["faults"].values()), r["faults"]  # each service killed
    assert r["ratings_confirmed"] >= 20
    # every confirmed rating and reason in the store, once; nothing else
    assert (r["lost"], r["doubled"], r["unconfirmed_in_store"]) == (0, 0, 0)
    assert (r["reasons_lost"], r["reasons_doubled"], r["reasons_unknown_in_store"]) == (0, 0, 0)
    assert r["citizen_errors"] == []
    # the poison: each kind sent, refused at its door or set apart, never in the store
    assert all(n >= 1 for n in r["poison_sent"].values()), r["poison_sent"]
    assert r["rejected"] >= 1 and r["rejected_from_real_terminals"] == 0
    assert r["http_poison_refused"] == r["poison_sent"]["http"]
    assert r["http_poison_accepted"] == []
    assert r["quarantined"] == r["poison_sent"]["import"]
    assert r["poison_imported_not_quarantined"] == [] and r["poison_in_store"] == []
    assert r["ok"] is True
