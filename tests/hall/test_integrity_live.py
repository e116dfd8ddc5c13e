"""Today's integrity findings at the hall (`hcp integrity today`) on the demo's honest
citizens: a finding there is a bug in a detector (issue 20)."""
import subprocess
import sys

from click.testing import CliRunner

from haochaping.tools.cli import _register, cli

_register()


def test_the_demos_honest_citizens_give_no_finding(tmp_path):
    # if this fails, the duty manager sees honest windows named as gaming the ratings
    folder = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "haochaping.tools.cli", "demo", "--dir",
                        str(folder), "--windows", "3", "--ratings", "105"],
                       capture_output=True, text=True, timeout=600,
                       env={"PATH": "/usr/bin:/bin:/usr/sbin"})
    assert r.returncode == 0, r.stdout + r.stderr
    out = CliRunner().invoke(cli, ["integrity", "today", "--config", str(folder / "hall.toml")])
    assert out.exit_code == 0 and "今日未发现异常" in out.output, out.output
