"""`hcp broker config` writes a config that a real mosquitto runs, with the ACL enforced."""
import os
import pathlib
import stat
import threading

import paho.mqtt.client as paho
import pytest
from click.testing import CliRunner

from haochaping.daemon.errors import HcpError
from haochaping.daemon.hall import db, registry
from haochaping.tools.cli import _register, cli
from haochaping.tools.device import hall_ca, mosquitto_setup
from haochaping.tools.sim import hall_kit, processes

_register()


def _config(tmp_path, port):
    out = tmp_path / "broker"
    r = CliRunner().invoke(cli, ["broker", "config", "--out", str(out), "--hall", "H9",
                                 "--port", str(port), "--listen", "127.0.0.1"])
    assert r.exit_code == 0, r.output
    return out, r.output


def test_generated_config_runs_and_each_terminal_keeps_to_its_own_topics(tmp_path, run_broker,
                                                                           clients):
    port = processes.free_port()
    out, output = _config(tmp_path, port)
    daemon_pw = (out / "hall-daemon.password").read_text().strip()
    assert daemon_pw not in output                       # never printed
    assert stat.S_IMODE(os.stat(out / "passwd").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(out / "hall-daemon.password").st_mode) == 0o600
    mosquitto_setup.set_users(str(out), {"T1": "pw-one-xxxxxxxx", "T2": "pw-two-xxxxxxxx"})
    assert "pw-one" not in (out / "passwd").read_text()  # hashed
    run_broker(str(out / "mosquitto.conf"), port)

    daemon = clients(port, "hall-daemon", daemon_pw)
    assert daemon.connect()
    daemon.subscribe("hcp/v1/H9/#")
    t1 = clients(port, "T1", "pw-one-xxxxxxxx")
    assert t1.connect()
    t1.publish("hcp/v1/H9/T1/rating", b"mine")
    t1.publish("hcp/v1/H9/T2/rating", b"forged")       # another terminal's topic: dropped
    t1.publish("hcp/v1/H9/T1/ack", b"self-ack")        # the daemon's topic: dropped
    got = [p for _t, p in daemon.received()]
    assert got == [b"mine"]

    t1.subscribe("hcp/v1/H9/T2/session")               # may not read another's prompts
    t1.subscribe("hcp/v1/H9/T1/session")
    daemon.publish("hcp/v1/H9/T2/session", b"for T2")
    daemon.publish("hcp/v1/H9/T1/session", b"for T1")
    assert [p for _t, p in t1.received()] == [b"for T1"]

    assert not clients(port, "T1", "wrong-password", "t-bad").connect()
    assert not clients(port, "nobody", "pw-one-xxxxxxxx").connect()

    # revoke T2 and reload the running broker: its credentials are refused from then on
    assert clients(port, "T2", "pw-two-xxxxxxxx", "t2-before").connect()
    assert mosquitto_setup.remove_users(str(out), ["T2"]) == ["T2"]
    r = CliRunner().invoke(cli, ["broker", "reload", "--dir", str(out)])
    assert r.exit_code == 0, r.output
    assert not clients(port, "T2", "pw-two-xxxxxxxx", "t2-after").connect()
    assert clients(port, "T1", "pw-one-xxxxxxxx", "t1-after").connect()


def test_running_it_again_keeps_the_terminals(tmp_path):
    port = processes.free_port()
    out, _ = _config(tmp_path, port)
    mosquitto_setup.set_users(str(out), {"T1": "pw-one-xxxxxxxx"})
    before = mosquitto_setup.read_passwd(str(out / "passwd"))
    _config(tmp_path, port)
    assert mosquitto_setup.read_passwd(str(out / "passwd")) == before


def test_tls_lines_and_reload_without_a_broker(tmp_path):
    cert = tmp_path / "srv.pem"
    key = tmp_path / "srv.key"
    cert.write_text("x")
    key.write_text("x")
    out = tmp_path / "b"
    r = CliRunner().invoke(cli, ["broker", "config", "--out", str(out), "--hall", "H1",
                                 "--tls-cert", str(cert), "--tls-key", str(key)])
    assert r.exit_code == 0, r.output
    conf = (out / "mosquitto.conf").read_text()
    assert "listener 8883 0.0.0.0" in conf and "certfile %s" % cert in conf
    r = CliRunner().invoke(cli, ["broker", "reload", "--dir", str(out)])
    assert r.exit_code == 1 and "no running broker" in r.output


def test_run_as_hands_the_files_to_the_broker_user_and_edits_keep_it(request, run_broker, clients):
    import pwd

    import pytest
    try:
        user = pwd.getpwnam("mosquitto")
    except KeyError:
        pytest.skip("no mosquitto system user")
    if os.getuid() != 0:
        pytest.skip("needs root to hand files to another user")
    import pathlib
    import shutil
    import tempfile
    port = processes.free_port()
    top = pathlib.Path(tempfile.mkdtemp(prefix="hcp-broker-"))   # pytest's tmp is 0700 root-only
    top.chmod(0o755)
    request.addfinalizer(lambda: shutil.rmtree(top, ignore_errors=True))
    out = top / "broker"
    r = CliRunner().invoke(cli, ["broker", "config", "--out", str(out), "--hall", "H9", "--port",
                                 str(port), "--listen", "127.0.0.1", "--run-as", "mosquitto"])
    assert r.exit_code == 0, r.output
    mosquitto_setup.set_users(str(out), {"T1": "pw-one-xxxxxxxx"})          # edited as root
    assert os.stat(out / "passwd").st_uid == user.pw_uid
    run_broker(str(out / "mosquitto.conf"), port)                       # drops to mosquitto
    assert clients(port, "T1", "pw-one-xxxxxxxx").connect()
    r = CliRunner().invoke(cli, ["broker", "config", "--out", str(out), "--hall", "H9",
                                 "--run-as", "nosuchuser"])
    assert r.exit_code == 1 and "no such system user" in r.output


def test_config_from_hall_toml_names_the_terminals_that_have_no_broker_password(tmp_path):
    hall = hall_kit.create(str(tmp_path / "hall"), windows=("W01",))
    registry.add_terminal(db.connect(hall.hall.database), "T009")     # registered, never given one
    out = str(tmp_path / "hall" / "broker")
    r = CliRunner().invoke(cli, ["broker", "config", "--config", hall.path, "--out", out])
    assert r.exit_code == 0, r.output
    assert "no broker password for T009:" in r.output and "T001" not in r.output
    assert "password is in" not in r.output          # the daemon's is in hall.toml already
    assert set(mosquitto_setup.read_passwd(os.path.join(out, "passwd"))) == {"hall-daemon", "T001"}
    r = CliRunner().invoke(cli, ["broker", "config", "--config", hall.path, "--hall", "H02",
                                 "--out", out])
    assert r.exit_code == 1 and "differs from" in r.output


def test_a_terminal_cannot_get_the_daemons_broker_user(tmp_path):
    # if this fails, a terminal provisioned under the daemon's user name gets the daemon's rights
    # over the whole hall, with the password for them on a board in the public hall
    out, _ = _config(tmp_path, processes.free_port())
    before = mosquitto_setup.read_passwd(str(out / "passwd"))
    with pytest.raises(HcpError, match="is the daemon's"):
        mosquitto_setup.set_users(str(out), {"hall-daemon": "pw-thief-xxxxxxx"})
    assert mosquitto_setup.read_passwd(str(out / "passwd")) == before
    # nor the other way round: a daemon user that is a terminal's already
    mosquitto_setup.set_users(str(out), {"T7": "pw-seven-xxxxxxx"})
    with pytest.raises(HcpError, match="is a terminal's"):
        mosquitto_setup.write_config(str(out), 1883, "H9", {}, daemon_user="T7", keep_users=True)
    hall = hall_kit.create(str(tmp_path / "hall"), windows=("W01",))
    toml = pathlib.Path(hall.path)
    toml.write_text(toml.read_text().replace('username = "hall-daemon"', 'username = "T001"'))
    r = CliRunner().invoke(cli, ["broker", "config", "--config", hall.path,
                                 "--out", str(tmp_path / "hall" / "broker")])
    assert r.exit_code == 1 and "T001 is a terminal of this hall" in r.output


def test_the_config_bounds_one_clients_packets_and_queue_and_mosquitto_runs_it(tmp_path,
                                                                              run_broker, clients):
    # if this fails, one terminal's password (on a board in the public hall) can send messages
    # of any size, or queue messages for the daemon without end while it is down, until the
    # broker's memory and the hall server's disk are full
    port = processes.free_port()
    out, _ = _config(tmp_path, port)
    lines = (out / "mosquitto.conf").read_text().splitlines()
    assert "max_packet_size 65536" in lines
    assert "max_queued_messages 1000000" in lines and "max_queued_bytes 268435456" in lines
    assert not [ln for ln in lines if ln.startswith(("memory_limit", "max_queued_messages 0",
                                                     "max_queued_bytes 0"))]
    run_broker(str(out / "mosquitto.conf"), port)          # mosquitto takes every line
    assert clients(port, "hall-daemon",
                   (out / "hall-daemon.password").read_text().strip()).connect()


def test_rewriting_a_config_from_before_client_ids_were_tied_says_to_restart_and_clean_up(
        tmp_path, run_broker):
    # if this fails, hall IT reloads instead of restarting (the broker keeps letting anyone take
    # the daemon's client id), and the daemon's old session keeps collecting every rating
    port = processes.free_port()
    out, _ = _config(tmp_path, port)
    conf = out / "mosquitto.conf"
    old = conf.read_text().replace("use_username_as_clientid true\n", "")   # as hcp wrote it
    conf.write_text(old)
    daemon_pw = (out / "hall-daemon.password").read_text().strip()
    b = run_broker(str(conf), port)
    subscribed = threading.Event()
    daemon = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="hcp-daemon-H9",
                         clean_session=False)      # the daemon's session, as it was named
    daemon.username_pw_set("hall-daemon", daemon_pw)
    daemon.on_connect = lambda c, *_: c.subscribe("hcp/v1/H9/+/rating", qos=1)
    daemon.on_subscribe = lambda *_: subscribed.set()
    daemon.connect("127.0.0.1", port)
    daemon.loop_start()
    assert subscribed.wait(10)
    daemon.disconnect()
    daemon.loop_stop()
    b.stop()                                       # writes the old session to data/mosquitto.db
    run_broker(str(conf), port)
    _, output = _config(tmp_path, port)
    assert "restart it" in output and "use_username_as_clientid true" in output
    assert "mv %s" % (out / "data" / "mosquitto.db") in output
    _, output = _config(tmp_path, port)          # once tied, nothing more to say
    assert "restart it" not in output and "mosquitto.db" not in output


def _tls(out, *extra):
    return CliRunner().invoke(cli, ["broker", "config", "--out", str(out), "--hall", "H9",
                                    "--tls", *extra])


def test_tls_makes_a_hall_ca_once_and_a_tls_listener_with_plain_on_localhost(tmp_path):
    # if this failed, a second run would replace the hall CA (every terminal locked out until
    # provisioned again), or private keys would be readable by other users of the server
    out = tmp_path / "b"
    r = _tls(out, "--tls-host", "hall-srv", "--tls-host", "10.0.0.2")
    assert r.exit_code == 0, r.output
    f = hall_ca.files(str(out))
    for key in (f.ca_key, f.key):
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    conf = (out / "mosquitto.conf").read_text().splitlines()
    tls_at = conf.index("listener 8883 0.0.0.0")
    assert conf[tls_at + 1:tls_at + 3] == ["certfile %s" % f.cert, "keyfile %s" % f.key]
    assert "tls_version tlsv1.2" in conf
    assert "listener 1883 127.0.0.1" in conf          # the daemon on this server, no further
    assert mosquitto_setup.tls_port(str(out)) == 8883
    assert hall_ca.cert_hosts(f.cert) == ["hall-srv", "10.0.0.2"]
    ca = pathlib.Path(f.ca_cert).read_bytes()
    cert = pathlib.Path(f.cert).read_bytes()

    r = _tls(out)                                      # again: everything kept
    assert r.exit_code == 0 and "kept the hall CA" in r.output, r.output
    assert pathlib.Path(f.cert).read_bytes() == cert

    r = _tls(out, "--tls-host", "other-name")          # other names: never silently
    assert r.exit_code == 1 and "add --new-server-cert" in r.output, r.output
    assert pathlib.Path(f.cert).read_bytes() == cert
    r = _tls(out, "--tls-host", "other-name", "--new-server-cert")
    assert r.exit_code == 0, r.output
    assert hall_ca.cert_hosts(f.cert) == ["other-name"]
    assert pathlib.Path(f.ca_cert).read_bytes() == ca  # the terminals' trust is untouched

    r = _tls(out, "--plain", "none")
    assert r.exit_code == 0, r.output
    conf = (out / "mosquitto.conf").read_text().splitlines()
    assert [ln for ln in conf if ln.startswith("listener")] == ["listener 8883 0.0.0.0"]


def test_the_certificates_are_valid_on_a_terminal_whose_clock_was_never_set(tmp_path):
    # if this failed, an ESP32 without NTP (its clock starts at 2000-01-01, and MicroPython's
    # mbedtls checks certificate dates) would find the broker's certificate "not yet valid"
    import datetime

    from cryptography import x509
    out = tmp_path / "b"
    assert _tls(out).exit_code == 0
    f = hall_ca.files(str(out))
    for path in (f.ca_cert, f.cert):
        cert = x509.load_pem_x509_certificate(pathlib.Path(path).read_bytes())
        assert cert.not_valid_before_utc <= datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
        assert cert.not_valid_after_utc.year >= datetime.datetime.now().year + 9


def test_tls_options_refuse_bad_input_with_a_clear_error(tmp_path):
    # if this failed, hall IT would get a traceback, or a broker config that cannot start
    out = tmp_path / "b"
    cases = [
        (["--tls", "--tls-cert", __file__, "--tls-key", __file__], "one or the other"),
        (["--plain", "all"], "go(es) with --tls"),
        (["--tls-host", "hall-srv"], "go(es) with --tls"),
        (["--new-server-cert"], "go(es) with --tls"),
        (["--tls", "--tls-host", "bad name!"], "--tls-host 'bad name!': a host name"),
        (["--tls", "--tls-host", "10.0.0.2"], "at least one host name"),
        (["--tls", "--tls-port", "1883"], "also the plain listener's port"),
        (["--tls", "--tls-port", "70000"], "70000 is not in the range"),
        (["--tls", "--plain", "sometimes"], "'sometimes' is not one of"),
    ]
    for args, message in cases:
        r = CliRunner().invoke(cli, ["broker", "config", "--out", str(out), "--hall", "H9",
                                     *args])
        assert r.exit_code != 0 and message in r.output, (args, r.output)
        assert r.exception is None or isinstance(r.exception, SystemExit), (args, r.exception)
    assert not (out / "tls").exists()                  # nothing made on the way
    r = _tls(out)
    assert r.exit_code == 0
    os.unlink(hall_ca.files(str(out)).ca_key)          # a CA without its key: say so, keep it
    r = _tls(out)
    assert r.exit_code == 1 and "hall-ca.key is missing" in r.output, r.output
