"""Crash things mid-flight: every rating a terminal sent is stored exactly once and acked."""
import sys
import threading
import time

from haochaping.daemon.errors import HcpError
from haochaping.tools.sim import hall_kit, processes
from tests.conftest import wait_until

N = 300  # presses per terminal


def _stream(term, n, done):
    for i in range(n):
        term.press(i % 5 + 1)
        time.sleep(0.004)
    done.set()


def _run_stream_with(fault, terminals, hall_db):
    ts = terminals(resend_s=1.5)
    dones = []
    for t in ts.values():
        d = threading.Event()
        threading.Thread(target=_stream, args=(t, N, d), daemon=True).start()
        dones.append(d)
    wait_until(lambda: hall_db("SELECT COUNT(*) FROM ratings")[0][0] >= N // 3,
               what="stream under way")
    fault()
    for d in dones:
        assert d.wait(60)
    wait_until(lambda: all(t.backlog() == 0 for t in ts.values()), timeout=90,
               what="every rating acked after the fault")
    for name in ts:
        rows = hall_db("SELECT seq, level FROM ratings WHERE terminal=? ORDER BY seq", name)
        # nothing lost, nothing doubled, nothing altered
        assert rows == [(i + 1, i % 5 + 1) for i in range(N)], name
    assert hall_db("SELECT COUNT(*) FROM rejected") == [(0,)]


def test_daemon_sigkill_mid_stream_loses_and_doubles_nothing(daemon, terminals, hall_db):
    # if this fails, a power cut or crash of the hall server loses citizens' ratings
    def crash():
        daemon.kill()
        time.sleep(0.5)
        daemon.start()
    _run_stream_with(crash, terminals, hall_db)


def test_broker_kill_and_restart_mid_stream_loses_and_doubles_nothing(
        daemon, broker, terminals, hall_db):
    # if this fails, restarting mosquitto loses or double-counts ratings
    def crash():
        broker.kill()
        time.sleep(1.0)
        broker.start()
    _run_stream_with(crash, terminals, hall_db)


def test_prompts_survive_a_daemon_restart(daemon, api, terminals, hall_db):
    # if this fails, a citizen who rates right after a daemon restart is counted as unsolicited
    t = terminals()["T001"]
    api.start("W01", "A001")
    api.finish("W01")
    shown = t.wait_session()
    daemon.kill()
    daemon.start()
    t.press(1)
    wait_until(lambda: t.backlog() == 0, what="ack")
    assert hall_db("SELECT outcome FROM ratings") == [("counted",)]
    assert hall_db("SELECT token FROM transactions") == [(shown["token"],)]


def test_under_load_many_ratings_share_one_commit(api, terminals, hall_db):
    # group commit: if this fails, every rating costs its own fsync and a busy hall falls behind
    ts = terminals()
    for t in ts.values():
        for i in range(300):
            t.press(i % 5 + 1)
    wait_until(lambda: all(t.backlog() == 0 for t in ts.values()), what="all acked")
    h = api.health()
    assert hall_db("SELECT COUNT(*) FROM ratings") == [(600,)]
    assert h["commits"] < h["messages"] / 2, h


def test_a_terminal_flushing_a_long_backlog_can_read_every_ack(hall, broker, terminals, hall_db):
    # if this fails, a terminal back from an outage with a long backlog gets acks larger than it
    # accepts (512 bytes), keeps every rating in its journal and re-sends it again and again
    d = processes.DaemonProcess(hall).start()
    d.kill()                         # its session stays: the broker queues for it meanwhile
    ts = terminals(resend_s=60.0)    # no resend during the test: the first acks must do
    for t in ts.values():
        for i in range(200):
            t.press(i % 5 + 1)
    d.start()
    try:
        wait_until(lambda: all(t.backlog() == 0 for t in ts.values()), timeout=60,
                   what="every rating acked at once")
        assert {name: t.errors for name, t in ts.items()} == {name: [] for name in ts}
        assert hall_db("SELECT COUNT(*) FROM ratings") == [(200 * len(ts),)]
    finally:
        d.kill()


def test_the_largest_ack_the_daemon_sends_fits_what_a_terminal_accepts():
    # if this fails, terminals with long ids and large sequence numbers refuse every full ack
    from haochaping.daemon.hall.service import ACK_SEQS
    from haochaping.protocol import fields, messages
    key, term = b"k" * 32, "T" * 32
    seqs = [fields.MAX_INT - i for i in range(ACK_SEQS)]
    payload = messages.encode_ack(key, term, seqs, fields.MAX_TS)
    assert messages.decode_ack(key, payload)["seqs"] == seqs


def test_a_daemon_that_cannot_reach_its_broker_says_so_in_its_log(hall, tmp_path):
    # if this fails, hall IT with a wrong [mqtt] port or a stopped mosquitto sees "daemon
    # running" and then nothing for minutes
    d = processes.DaemonProcess(hall, log_path=str(tmp_path / "daemon.log"))
    d._spawn([sys.executable, "-m", "haochaping.tools.cli", "daemon", "run",
              "--config", hall.path])
    try:
        wait_until(lambda: "cannot reach the broker" in d.log_text(), timeout=20,
                   what="the daemon to say it cannot reach its broker")
        assert "127.0.0.1:%d" % hall.mqtt.port in d.log_text()
        assert "[mqtt] host and port" in d.log_text()
    finally:
        d.kill()


def test_a_service_that_stops_at_start_says_why_not_only_where_its_log_is(hall, tmp_path):
    # if this fails, `hcp demo` (and a test run) whose broker cannot start says only "exited at
    # start; see …log", a file that is gone once the run is cleaned up
    with open(hall_kit.broker_conf(hall), encoding="utf-8") as f:
        conf = f.read() + "no_such_option true\n"
    path = tmp_path / "broken.conf"
    path.write_text(conf, encoding="utf-8")
    broken = processes.Mosquitto(str(path), processes.free_port(),
                                 log_path=str(tmp_path / "broken.out"))
    try:
        broken.start()
    except HcpError as e:
        assert "exited at start" in str(e)
        assert "no_such_option" in str(e), str(e)   # mosquitto's own words, in the error
    else:
        broken.stop()
        raise AssertionError("mosquitto started with an option it does not know")
