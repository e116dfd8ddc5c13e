"""hall.toml as hall IT writes it: `hcp init`, editors that add a BOM or save GBK, and the
README's placeholder secrets."""
import os
import socket
import stat
import subprocess

import pytest
from click.testing import CliRunner

from haochaping.daemon.errors import ConfigError
from haochaping.daemon.hall import settings
from haochaping.tools.cli import _register, cli
from haochaping.tools.device import mosquitto_setup
from haochaping.tools.sim import processes

_register()

README_EXAMPLE = """\
[hall]
id = "H01"
database = "hall.sqlite"
[mqtt]
host = "127.0.0.1"
port = 1883
username = "hall-daemon"
password = "..."
[api]
listen = "127.0.0.1:8780"
[api.tokens]
queue-system = "a-long-random-token"
"""


def _hcp(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert "Traceback" not in r.output, r.output
    return r


def test_hcp_init_writes_a_hall_the_daemon_and_the_broker_start_from(tmp_path):
    # if this fails, hall IT has no way to a working hall.toml but copying the README's
    # example, placeholder secrets included
    port = processes.free_port()
    r = _hcp("init", "--dir", tmp_path / "hall", "--hall", "H07", "--mqtt-port", port,
             "--broker-listen", "127.0.0.1", "--api-listen",
             "127.0.0.1:%d" % processes.free_port())
    assert r.exit_code == 0, r.output
    path = tmp_path / "hall" / "hall.toml"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    cfg = settings.load(str(path))
    assert cfg.hall.id == "H07" and len(cfg.mqtt.password) >= 20
    assert cfg.mqtt.password not in r.output
    assert all(len(t) >= 30 and t not in r.output for t in cfg.api.tokens.values())
    # the broker starts from it, from another working directory, and the daemon connects
    conf = str(tmp_path / "hall" / "broker" / mosquitto_setup.CONF)
    b = processes.Mosquitto(conf, port).start()
    try:
        d = processes.DaemonProcess(cfg).start()   # waits until it is connected to the broker
        d.kill()
    finally:
        b.stop()
    # a second init into the same folder would replace secrets in use: refused
    r = _hcp("init", "--dir", tmp_path / "hall", "--hall", "H07")
    assert r.exit_code == 1 and "already holds a hall" in r.output


def test_init_says_when_mosquitto_would_run_as_root_and_runs_it_as_the_user_asked(tmp_path):
    # if this fails, hall IT who ran `sudo hcp init` get a broker running as root on the
    # terminals' network without a word, or a --run-as that names nobody writes a folder anyway
    if os.getuid() != 0:
        pytest.skip("the note is for root")
    r = _hcp("init", "--dir", tmp_path / "as-root", "--hall", "H07")
    assert r.exit_code == 0 and "mosquitto runs as root" in r.output
    assert "--run-as mosquitto" in r.output
    r = _hcp("init", "--dir", tmp_path / "nobody", "--hall", "H07", "--run-as", "no-such-user")
    assert r.exit_code == 1 and "no such system user" in r.output
    assert not os.path.exists(tmp_path / "nobody")
    r = _hcp("init", "--dir", tmp_path / "as-mosquitto", "--hall", "H07",
             "--run-as", "mosquitto")
    assert r.exit_code == 0 and "note:" not in r.output, r.output
    conf = tmp_path / "as-mosquitto" / "broker" / mosquitto_setup.CONF
    assert "\nuser mosquitto\n" in conf.read_text()


def test_broker_config_written_with_a_relative_folder_holds_absolute_paths(tmp_path,
                                                                         monkeypatch):
    # if this fails, `hcp broker config --out broker/` writes a mosquitto.conf that fails when
    # mosquitto is started from any other directory
    monkeypatch.chdir(tmp_path)
    conf = mosquitto_setup.write_config("broker", 1883, "H01", {"hall-daemon": "x" * 20})
    with open(conf) as f:
        paths = [ln.split(None, 1)[1] for ln in f if ln.startswith(
            ("password_file", "acl_file", "persistence_location", "pid_file", "log_dest file"))]
    assert paths and all(p.replace("file ", "").startswith(str(tmp_path)) for p in paths)


@pytest.mark.parametrize("secret", ["password", "token"])
def test_the_readme_placeholder_secrets_are_refused_at_start(tmp_path, secret):
    # if this fails, a hall copied from the README runs with a password and a token every
    # reader of the README knows
    text = README_EXAMPLE
    if secret == "password":
        text = text.replace('"a-long-random-token"', '"%s"' % ("k" * 24))
    else:
        text = text.replace('password = "..."', 'password = "%s"' % ("p" * 24))
    path = tmp_path / "hall.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        settings.load(str(path))
    assert ("[mqtt] password" if secret == "password" else "[api.tokens]") in str(e.value)
    assert "hcp init" in str(e.value)


def test_a_hall_toml_saved_with_a_bom_loads_and_one_saved_as_gbk_is_explained(tmp_path):
    # if this fails, a hall.toml saved by a Windows editor stops the daemon with a traceback
    good = README_EXAMPLE.replace('"..."', '"%s"' % ("p" * 24)).replace(
        '"a-long-random-token"', '"%s"' % ("k" * 24))
    path = tmp_path / "hall.toml"
    path.write_bytes(b"\xef\xbb\xbf" + good.encode())
    assert settings.load(str(path)).hall.id == "H01"
    path.write_bytes((good + '# 五华区政务服务中心\n').encode("gbk"))
    with pytest.raises(ConfigError) as e:
        settings.load(str(path))
    assert "not UTF-8" in str(e.value) and "GBK" in str(e.value)
    r = _hcp("daemon", "run", "--config", path)
    assert r.exit_code == 1 and "save it as UTF-8" in r.output


def test_mosquittos_own_error_reaches_whoever_started_it_not_only_its_log_file(tmp_path):
    # if this fails, `mosquitto -c broker/mosquitto.conf` (or the broker's service) on a port
    # already taken exits without a word on the terminal or in the journal
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        conf = mosquitto_setup.write_config(str(tmp_path / "broker"), taken.getsockname()[1],
                                            "H01", {"hall-daemon": "x" * 20})
        r = subprocess.run([mosquitto_setup.mosquitto_binary(), "-c", conf], capture_output=True,
                           text=True, timeout=30)
    finally:
        taken.close()
    assert r.returncode != 0
    assert "Address already in use" in r.stderr, (r.stdout, r.stderr)
