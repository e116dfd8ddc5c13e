"""`hcp store serve --province PROFILE`: the serving store delivers to the province itself
(第十五条), as `hcp province deliver` does, with no second command to keep running."""
import pytest

from haochaping.daemon.store.province import delivery, profiles
from haochaping.tools.sim import processes
from tests.conftest import wait_until
from tests.store.province.conftest import held, owed, profile_file, sandbox


@pytest.mark.parametrize("store_db", ["sqlite"], indirect=True)
def _serving_store(st, certs, tmp_path, profile_path, key_file, sb):
    """`hcp store serve` on the quarter's store, delivering to the sandbox `sb` (not started)."""
    return processes.StoreProcess(st.db, processes.free_port(), certs["cert"], certs["key"],
                                  certs["ca"], str(tmp_path / "store.log"),
                                  extra=["--rules-every", "0", "--province", profile_path,
                                         "--province-key-file", key_file,
                                         "--province-url", sb.url])


def test_a_serving_store_delivers_the_quarter_to_the_province(quarter_store, certs, tmp_path,
                                                              key_file):
    # if this fails, a city that runs only `hcp store serve` (as its service unit does) never
    # sends a result to the province, and its ratings do not count there
    st = quarter_store
    path = profile_file(tmp_path, "gbt39046", settle_s=0)
    sb = sandbox(tmp_path, path, key_file)
    store = _serving_store(st, certs, tmp_path, path, key_file, sb)
    try:
        store.start()
        want = owed(st, profiles.load(path, key_file))
        wait_until(lambda: held(sb) == want, timeout=120, what="the quarter at the province")
        assert "delivering to the province with profile" in store.log_text()
    finally:
        store.kill()
        sb.kill()


def test_killing_the_serving_store_mid_delivery_loses_and_doubles_nothing(quarter_store, certs,
                                                                          tmp_path, key_file):
    # if this fails, a power cut of the city's store (it delivers inside `hcp store serve`)
    # loses results on their way to the province, or the province gets one twice
    st = quarter_store
    path = profile_file(tmp_path, "provincial", settle_s=0, batch_size=20, rate_per_s=100,
                        retry_max_s=0.5)
    p = profiles.load(path, key_file)
    want = owed(st, p)
    total = sum(len(v) for v in want.values())
    sb = sandbox(tmp_path, path, key_file)
    store = _serving_store(st, certs, tmp_path, path, key_file, sb)

    def accepted():
        return len(sb.accepted()["keys"])
    try:
        store.start()
        wait_until(lambda: accepted() > total // 4, timeout=60, what="delivery under way")
        store.kill()                                        # the store, -9, mid-delivery
        assert accepted() < total
        store.start()
        wait_until(lambda: delivery.status(st, p.name)["waiting"] == 0
                   and accepted() == total, timeout=120, what="everything delivered")
        assert held(sb) == want                             # nothing lost, each key once
        assert sb.accepted()["counters"].get("refused_records", 0) == 0
        assert delivery.status(st, p.name)["quarantined"] == 0
    finally:
        store.kill()
        sb.kill()


def test_serve_with_a_bad_province_profile_says_so_before_starting(tmp_path, certs):
    # if this fails, a typo in the profile's name starts a store that never delivers
    from click.testing import CliRunner

    from haochaping.tools.cli import _register, cli
    _register()
    r = CliRunner().invoke(cli, ["store", "serve", "--db", str(tmp_path / "s.sqlite"),
                                 "--cert", certs["cert"], "--key", certs["key"],
                                 "--listen", "127.0.0.1:%d" % processes.free_port(),
                                 "--province", "no-such-province"])
    assert r.exit_code == 1 and "no-such-province" in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "s.sqlite").exists()
