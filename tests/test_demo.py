"""`hcp demo`, as a new user runs it: a whole hall on this machine, its output piped to a file."""
import os
import re
import signal
import subprocess
import sys
import time

from click.testing import CliRunner

from haochaping.daemon.hall import api_client, settings
from haochaping.tools.cli import _register, cli
from tests.conftest import hall_query, wait_until
from tests.hall.console.conftest import Client

_register()


def hall_query_at(path):
    return hall_query(settings.load(path))


def _demo(tmp_path, *extra):
    with open(tmp_path / "demo.log", "wb") as out:   # the child keeps its own copy
        proc = subprocess.Popen(
            [sys.executable, "-m", "haochaping.tools.cli", "demo", "--dir",
             str(tmp_path / "hall"), "--windows", "2", "--ratings", "4", "--time-scale", "10"]
            + list(extra),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin"))
    return proc, lambda: (tmp_path / "demo.log").read_text(errors="replace")


def test_a_kept_demo_keeps_running_with_its_output_in_a_file_until_sigterm(tmp_path):
    # if this fails, `hcp demo --keep > log` or under a service manager stops at once, and the
    # new user's console pages go dead before they open them
    proc, text = _demo(tmp_path, "--keep")
    try:
        wait_until(lambda: "keeps running" in text() or proc.poll() is not None, timeout=120,
                   what="the demo's day to end")
        assert "keeps running" in text(), text()
        time.sleep(1.5)
        assert proc.poll() is None, text()
        # a new user plays the citizen on the virtual keypad: 不满意, reason 服务态度
        hall_toml = str(tmp_path / "hall" / "hall.toml")
        r = CliRunner().invoke(cli, ["terminal", "press", "--config", hall_toml,
                                     "--terminal", "T001", "--level", "4",
                                     "--reason", "attitude"])
        assert r.exit_code == 0 and "不满意 confirmed" in r.output, r.output
        assert "reason attitude stored" in r.output, r.output
        query = hall_query_at(hall_toml)
        wait_until(lambda: (4, "attitude") in query(
            "SELECT r.level, s.reason FROM ratings r JOIN reasons s ON s.terminal = r.terminal"
            " AND s.ref = r.seq"), what="the keypad's rating and reason at the daemon")
        r = CliRunner().invoke(cli, ["terminal", "press", "--config", hall_toml,
                                     "--terminal", "T009", "--level", "1"])
        assert r.exit_code == 1 and "T001, T002" in r.output
        # ... and on the console's index page, the simulated-terminal panel's keys
        cfg = settings.load(hall_toml)
        assert cfg.console.demo_keypad is True
        page = Client("http://" + cfg.api.listen)
        assert b'id="demo-keys"' in page.get("/").body
        r = page.post("/demo/press", {"terminal": "T002", "level": 2})
        assert r.status == 200 and r.json["ok"] is True, r.json
        # a second set of the same terminals would throw the demo's off the broker
        r = CliRunner().invoke(cli, ["simulate", "--config", hall_toml, "--ratings", "2"])
        assert r.exit_code == 1 and "hcp terminal press" in r.output, r.output
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "stopped the daemon and mosquitto" in text()
    assert "each in the hall database exactly once" in text()
    # once the demo is gone, the keypad says so
    r = CliRunner().invoke(cli, ["terminal", "press", "--config", hall_toml, "--terminal",
                                 "T001", "--level", "1"])
    assert r.exit_code == 1 and "hcp demo --keep" in r.output


def test_the_demo_piped_into_a_file_runs_the_day_and_ends_by_itself(tmp_path):
    # if this fails, README's `make demo > log` hangs or fails for a new user, or the demo
    # shows no citizen rating by phone (评价二维码)
    proc, text = _demo(tmp_path, "--ratings", "16")
    try:
        assert proc.wait(180) == 0, text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "each in the hall database exactly once" in text()
    phone = re.search(r"(\d+) rated by phone", text())
    assert phone and int(phone.group(1)) >= 1, text()
    assert re.search(r"二维码 \(phone\) %s" % phone.group(1), text()), text()


def test_simulate_leaves_a_staff_members_ticket_alone_and_counts_only_its_own_run(
        hall, daemon, hall_db):
    # if this fails, `hcp simulate` replaces the ticket a signed-in staff member is serving,
    # reuses the day's ticket numbers and reports the whole hall's figures as its own
    api = api_client.WindowApi(hall)
    api.start("W01", "A017", staff="S0101")
    for run in range(2):
        r = CliRunner().invoke(cli, ["simulate", "--config", hall.path, "--ratings", "3",
                                     "--seed", str(run)])
        assert r.exit_code == 0, r.output
        assert "window W01 is serving ticket A017: left to its staff" in r.output
        rows = [ln.split() for ln in r.output.splitlines() if ln.startswith("W0")]
        assert [(w[0], w[1]) for w in rows] == [("W02", "3")], r.output   # this run's only
    assert api.state("W01")["ticket"] == "A017" and api.state("W01")["state"] == "serving"
    tickets = [t for (t,) in hall_db("SELECT ticket FROM transactions WHERE window = 'W02'")]
    assert len(tickets) == 6 and len(set(tickets)) == 6
