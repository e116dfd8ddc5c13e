"""The daemon's HTTP listeners run in a child process (daemon/hall/web_process.py): at a lower
CPU priority, started again if it dies, gone when the daemon is; the writer's refusals reach the
HTTP code as the exceptions they were."""
import os
import signal
import time

from haochaping.daemon.errors import InvalidInput
from haochaping.daemon.hall import api, commands, web_process
from haochaping.daemon.hall.console.refused import Refused
from haochaping.tools.bench.ingest_rate import children
from tests.conftest import wait_until


def _nice(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rpartition(")")[2].split()[16])  # field 19: nice


def _gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"  # a zombie is gone too
    except OSError:
        return True


def test_a_killed_http_process_is_started_again_and_the_ratings_never_depended_on_it(
        hall, daemon, api):
    # if this fails, a crash of the console's process (a bug, the OOM killer) would leave the
    # window API and the console down until someone restarts the daemon
    [child] = children(daemon.proc.pid)
    assert _nice(child) >= web_process.WEB_NICE  # the writer gets the CPU first
    os.kill(child, signal.SIGKILL)
    wait_until(lambda: children(daemon.proc.pid) not in ([], [child]), timeout=30,
               what="a new HTTP process")
    wait_until(lambda: _answers(api), timeout=30, what="the window API again")
    assert api.start("W01", "A1")["window"] == "W01"
    assert daemon.proc.poll() is None


def _answers(api):
    try:
        return api.health()["ok"]
    except Exception:
        return False


def test_the_http_process_dies_with_the_daemon(hall, daemon, api):
    # if this fails, a daemon killed with SIGKILL leaves its listener holding the port, and the
    # daemon started again cannot bind it
    [child] = children(daemon.proc.pid)
    os.kill(daemon.proc.pid, signal.SIGKILL)
    daemon.proc.wait()
    end = time.monotonic() + 10
    while not _gone(child) and time.monotonic() < end:
        time.sleep(0.05)
    assert _gone(child)


def test_the_writers_refusals_arrive_as_the_exceptions_they_were():
    for e in (Refused(409, "no-ticket"), Refused(429, "locked", wait=3),
              InvalidInput("ticket: must be text", "ticket"), api.Refused(400, "bad", "w"),
              TimeoutError("late")):
        back = web_process.unpack_error(web_process.pack_error(e))
        assert type(back) is type(e) and back.args == e.args and vars(back) == vars(e)


def test_every_command_takes_the_writers_connection_and_time_first():
    import inspect
    for name, fn in commands.COMMANDS.items():
        params = list(inspect.signature(fn).parameters)
        assert params[:2] == ["conn", "now"], name
