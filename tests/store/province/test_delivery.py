"""第十五条: every result of the city reaches the province, once, whatever fails in between.
A real sandbox process (FastAPI/uvicorn) over real HTTP, a real SQLite store and the machine's
PostgreSQL; processes are killed with SIGKILL."""
import json
import threading

import pytest
from click.testing import CliRunner

from haochaping.daemon.store import access
from haochaping.daemon.store.province import delivery, profiles
from haochaping.daemon.store.province.delivery import Deliverer
from haochaping.tools.cli import _register, cli
from haochaping.tools.sim.processes import Service
from tests.conftest import wait_until
from tests.store.province.conftest import PROFILES, held, owed, profile_file, sandbox

_register()


def hcp(*args, ok=True):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    if ok:
        assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    return r


def deliver_once(st, profile, url):
    return Deliverer(st, profile, url=url, settle_s=0).run(threading.Event(), once=True)


@pytest.mark.parametrize("name", PROFILES)
def test_art15_a_quarter_reaches_the_province_under_each_profile_and_reconcile_agrees(
        quarter_store, name, tmp_path, key_file):
    # if this fails, results of the quarter never reach the province (they do not count for
    # the city), or reconcile cannot prove they did
    st = quarter_store
    p = profiles.load(name, key_file)
    sb = sandbox(tmp_path, name, key_file)
    try:
        out = deliver_once(st, p, sb.url)
        want = owed(st, p)
        assert held(sb) == want
        assert len(want["service"]) == st.made["transactions"]
        assert len(want["evaluation"]) == st.made["transactions"]  # rated or by default
        assert len(want["correction"]) == st.made["upheld"] > 0
        acc = sb.accepted()
        assert acc["counters"].get("refused_records", 0) == 0
        assert acc["counters"].get("refused_posts", 0) == 0
        assert out["sent"] == sum(len(v) for v in want.values())
        assert delivery.quarantine_list(st, p.name) == []
        days = sorted({r[0] for r in access.query(
            st, "SELECT day FROM province_items WHERE target = %s", (p.name,))})
        for day in days:
            r = delivery.reconcile(st, p, day, sb.url)
            assert r["agrees"], r
        r = hcp("province", "reconcile", "--db", st.db, "--profile", name, "--key-file",
                key_file, "--url", sb.url, "--day", days[-1], "--json")
        assert json.loads(r.output)["agrees"]
        # delivering again sends nothing: every record once
        assert deliver_once(st, p, sb.url)["sent"] == 0
        assert sb.accepted()["duplicates"] == 0
    finally:
        sb.kill()


class DelivererProcess(Service):
    def __init__(self, db, profile, key_file, url, log_path):
        super().__init__(log_path)
        self.args = ["province", "deliver", "--db", db, "--profile", profile, "--key-file",
                     key_file, "--url", url, "--settle-s", "0"]

    def start(self):
        import sys
        self._spawn([sys.executable, "-m", "haochaping.tools.cli", "-v", *self.args])
        return self


def test_art15_killing_the_deliverer_and_the_province_and_5xx_lose_and_double_nothing(
        quarter_store, tmp_path, key_file):
    # if this fails, a power cut of the store or the province, or an outage answering 503,
    # loses results on the way up or makes the province count one twice
    st = quarter_store
    path = profile_file(tmp_path, "provincial", batch_size=20, rate_per_s=300, retry_max_s=0.5)
    p = profiles.load(path, key_file)
    want = owed(st, p)
    total = sum(len(v) for v in want.values())
    sb = sandbox(tmp_path, path, key_file)
    d = DelivererProcess(st.db, path, key_file, sb.url, str(tmp_path / "deliver.log")).start()

    def accepted():
        return len(sb.accepted()["keys"])
    try:
        wait_until(lambda: accepted() > total // 5, timeout=60, what="delivery under way")
        d.kill()                                            # the store's deliverer, -9
        d.start()
        wait_until(lambda: accepted() > total * 2 // 5, timeout=60, what="delivery again")
        sb.faults(hang=1, hang_s=30)                        # stored, the answer lost
        wait_until(lambda: sb.accepted()["counters"].get("posts", 0) > 0, timeout=10)
        sb.kill()                                           # the province, -9
        sb.start()
        sb.faults(fail_5xx=6)                               # then 503 for a while
        wait_until(lambda: delivery.status(st, p.name)["waiting"] == 0
                   and accepted() == total, timeout=120, what="everything delivered")
        assert held(sb) == want                             # nothing lost, each key once
        acc = sb.accepted()
        assert acc["counters"].get("refused_records", 0) == 0
        assert acc["counters"].get("failed_5xx", 0) == 6
        assert delivery.status(st, p.name)["quarantined"] == 0
        # hall IT asking after the outage: the 503s are history, not a delivery still failing
        out = hcp("province", "status", "--db", st.db, "--profile", path).output
        assert "last error:" in out and "(delivered since)" in out, out
    finally:
        d.kill()
        sb.kill()


@pytest.mark.parametrize("name", PROFILES)
def test_art15_a_record_the_province_refuses_is_quarantined_and_the_rest_go_through(
        quarter_store, name, tmp_path, key_file):
    # if this fails, one record the province will not take holds up every result behind it,
    # or disappears without anyone deciding so
    st = quarter_store
    p = profiles.load(name, key_file)
    victim = sorted(owed(st, p)["service"])[7].split("#")[0]
    sb = sandbox(tmp_path, name, key_file)
    try:
        sb.faults(refuse=[victim], refuse_words="\x00 bad\x1b[31m" + "长" * 900)
        deliver_once(st, p, sb.url)
        want = owed(st, p)
        got = held(sb)
        for kind in p.kinds:
            assert got.get(kind, set()) == {k for k in want[kind]
                                            if not k.startswith(victim + "#")}
        q = delivery.quarantine_list(st, p.name)
        assert [(r["kind"], r["project_no"]) for r in q][:2] == [
            ("service", victim), ("evaluation", victim)]
        assert q[1]["code"] == "held"
        assert "\x00" not in q[0]["reason"] and "\x1b" not in q[0]["reason"]
        assert len(q[0]["reason"]) <= delivery.MAX_REASON
        r = hcp("province", "quarantine", "list", "--db", st.db, "--profile", name)
        assert victim in r.output
        assert delivery.status(st, p.name)["quarantined"] == len(q)
        sb.faults(refuse=[])
        hcp("province", "quarantine", "drop", "--db", st.db, "--profile", name, q[0]["n"],
            ok=False)  # --reason is required
        hcp("province", "quarantine", "retry", "--db", st.db, "--profile", name, q[0]["n"],
            "--actor", "it-wang")
        deliver_once(st, p, sb.url)
        assert held(sb) == want
        assert delivery.quarantine_list(st, p.name) == []
        assert [a["actor"] for a in delivery.audit(st, p.name)] == ["it-wang"]
        r = hcp("province", "quarantine", "audit", "--db", st.db, "--profile", name)
        assert "it-wang  retry  record %d (service %s#0)" % (q[0]["n"], victim) in r.output
    finally:
        sb.kill()


def test_art15_the_provinces_malformed_answer_is_not_stored_and_is_retried(
        quarter_store, tmp_path, key_file):
    # if this fails, garbage from the province's gateway marks records delivered that it never
    # took, or quarantines good records
    st = quarter_store
    p = profiles.load("provincial", key_file)
    sb = sandbox(tmp_path, "provincial", key_file)
    try:
        sb.faults(garbage=1)
        out = deliver_once(st, p, sb.url)
        assert out["sent"] == 0 and "malformed" in out["last_error"]
        s = delivery.status(st, p.name)
        assert s["sent"] == 0 and s["quarantined"] == 0 and "malformed" in s["last_error"]
        deliver_once(st, p, sb.url)
        assert held(sb) == owed(st, p)
    finally:
        sb.kill()
