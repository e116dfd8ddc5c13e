"""A terminal whose config is wrong names every bad field in its retained status, so that hall
IT sees it in `hcp terminals` instead of a dark terminal at the window. Real MicroPython, the
firmware's own boot (main.serve), a real mosquitto and the real hall daemon."""
import json
import os
import subprocess

from click.testing import CliRunner

from haochaping.tools.cli import _register, cli
from haochaping.tools.sim import firmware_host, hall_kit
from tests import mpy
from tests.conftest import wait_until

_register()


def test_bad_config_fields_are_named_in_the_status_and_in_hcp_terminals(hall, daemon, hall_db,
                                                                        tmp_path):
    dev = [d for d in hall_kit.devices(hall.folder) if d["terminal"] == "T001"][0]
    cfg = firmware_host.device_config(dev, str(tmp_path / "T001.journal"))
    cfg["journal_max"] = 5          # out of range
    cfg["colour"] = "red"           # unknown field
    path = tmp_path / "T001.config.json"
    path.write_text(json.dumps(cfg))
    env = dict(os.environ, MICROPYPATH=":".join(
        [str(firmware_host.device_tree(str(tmp_path))), str(firmware_host.SIM_DEVICE), ".frozen"]))
    proc = subprocess.Popen([mpy.micropython_binary(), str(firmware_host.SCRIPT), "--board", "10",
                             str(path)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, cwd=str(tmp_path))
    try:
        wait_until(lambda: hall_db("SELECT errors FROM terminal_status WHERE terminal='T001'")
                   not in ([], [(None,)]), what="the status naming the bad fields")
        errors = json.loads(
            hall_db("SELECT errors FROM terminal_status WHERE terminal='T001'")[0][0])
        assert any(e.startswith("journal_max") for e in errors), errors
        assert any(e.startswith("colour") for e in errors), errors
        out = CliRunner().invoke(cli, ["terminals", "--config", hall.path]).output
        assert "T001 cannot rate, its config is wrong" in out and "journal_max" in out, out
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
