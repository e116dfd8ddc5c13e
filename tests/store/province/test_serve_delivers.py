"""`hcp store serve --province PROFILE`: the serving store delivers to the province itself
(第十五条), as `hcp province deliver` does, with no second command to keep running."""
import pytest

from haochaping.daemon.store.province import profiles
from haochaping.tools.sim import processes
from tests.conftest import wait_until
from tests.store.province.conftest import held, owed, profile_file, sandbox


@pytest.mark.parametrize("store_db", ["sqlite"], indirect=True)
def test_a_serving_store_delivers_the_quarter_to_the_province(quarter_store, certs, tmp_path,
                                                              key_file):
    # if this fails, a city that runs only `hcp store serve` (as its service unit does) never
    # sends a result to the province, and its ratings do not count there
    st = quarter_store
    path = profile_file(tmp_path, "gbt39046", settle_s=0)
    sb = sandbox(tmp_path, path, key_file)
    store = processes.StoreProcess(st.db, processes.free_port(), certs["cert"], certs["key"],
                                   certs["ca"], str(tmp_path / "store.log"),
                                   extra=["--rules-every", "0", "--province", path,
                                          "--province-key-file", key_file,
                                          "--province-url", sb.url])
    try:
        store.start()
        want = owed(st, profiles.load(path, key_file))
        wait_until(lambda: held(sb) == want, timeout=120, what="the quarter at the province")
        assert "delivering to the province with profile" in store.log_text()
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
