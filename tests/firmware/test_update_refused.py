"""What a terminal and hall IT's tooling refuse about an update. If these failed, a bundle
signed by anyone but hall IT (a stolen terminal's owner, a compromised hall server) could put
code on every terminal of the hall, or a mistyped command would start a rollout nobody meant."""
import json

import pytest
from click.testing import CliRunner

from haochaping.firmware import update
from haochaping.protocol import ota
from haochaping.tools.cli import _register, cli
from haochaping.tools.device import bundle, rollout
from haochaping.tools.sim import hall_kit


class _Panel:
    mode = 0
    token = ""
    changes = 0


class _App:
    cfg = {"hall": "H1", "terminal": "T1"}
    term = "T1"
    t_status = "hcp/v1/H1/T1/status"
    version = "0.2.0"
    wake = None

    def __init__(self):
        self.t = 0
        self.panel = _Panel()

    def ms(self):
        return self.t

    def status(self):
        return b"{}"


class _Link:
    state = 3


def _drive(tmp_path, data, trusted):
    """Offer `data` to a terminal trusting modulus `trusted`; serve its fetches; return its
    update state when it settles."""
    m, mlen = bundle.read(data)
    app = _App()
    u = update.Updater(app, bytes.fromhex(trusted), str(tmp_path), _Link(), lambda: None)
    u.on_message(u.t_update, ota.encode_offer(m["version"], len(data), mlen))
    for _ in range(5000):
        app.t += 50
        u.tick(app.t)
        for topic, payload, _ in u.take_notes():
            if topic == u.t_fetch:
                req = json.loads(payload)
                u.on_message(u.t_chunk, ota.encode_chunk(m["version"], req["at"],
                                                         data[req["at"]:req["at"] + req["n"]]))
        u.step(app.t)
        if u.text().startswith(("failed", "staged")):
            break
    return u.text()


@pytest.fixture(scope="module")
def files():
    return bundle.compile_files()


def test_a_bundle_signed_with_another_key_is_refused_and_nothing_is_staged(tmp_path, files):
    hall_key = bundle.make_key(str(tmp_path / "hall.pem"))
    other = bundle.make_key(str(tmp_path / "other.pem"))
    forged = bundle.build(files, "9.9.9", other)
    assert _drive(tmp_path, forged, bundle.public_hex(hall_key)) == "failed 9.9.9 bad signature"
    assert not (tmp_path / "next" / "haochaping" / "manifest.json").exists()
    # the same files signed by hall IT are taken (the check can pass)
    good = bundle.build(files, "9.9.9", hall_key)
    assert _drive(tmp_path / "b", good, bundle.public_hex(hall_key)) == "staged 9.9.9"
    with pytest.raises(Exception, match="signature does not match"):
        bundle.read(forged, bundle.public_hex(hall_key))


def test_update_commands_say_what_is_missing(tmp_path):
    _register()
    cfg = hall_kit.create(str(tmp_path / "hall"), windows=("W01",))
    run = CliRunner().invoke
    r = run(cli, ["device", "update", "--config", cfg.path, "--all"])
    assert r.exit_code != 0 and "no hall update key" in r.output, r.output
    rollout.make_key(cfg.path)
    r = run(cli, ["device", "update", "--config", cfg.path, "--all", "--window", "W01"])
    assert r.exit_code != 0 and "--all, --window W or --terminal T" in r.output, r.output
    r = run(cli, ["device", "update", "--config", cfg.path, "--terminal", "T999"])
    assert r.exit_code != 0 and "T999 is not registered" in r.output, r.output
    r = run(cli, ["device", "update-key", "--config", cfg.path])
    assert r.exit_code != 0 and "exists" in r.output, r.output
