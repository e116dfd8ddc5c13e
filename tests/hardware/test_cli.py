"""`hcp hardware` as a hall IT person uses it: exit codes, one clear line on error, never a
traceback, files written where asked."""
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from haochaping.hardware import diagram, profile
from haochaping.tools.cli import cli
from haochaping.tools.cli import hcp_hardware as hardware_cli  # noqa: F401  (registers the group)

BAD = {"name": "bad-board", "chip": "esp32", "description": "keys on flash and input-only pins",
       "input": "buttons", "keys": [6, 34, 25, 26, 27], "leds": [23, 22, 21, 19, 18]}


def run(*args):
    result = CliRunner().invoke(cli, list(args))
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        "unhandled %r" % result.exception)
    return result


def write_json(path, data):
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return str(path)


def test_check_with_no_argument_passes_every_committed_profile():
    result = run("hardware", "check")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["ok  %s" % n for n in profile.committed_names()]


def test_check_refuses_a_bad_profile_naming_each_pin_and_reason_with_exit_status_1(tmp_path):
    bad = write_json(tmp_path / "bad.json", BAD)
    result = run("hardware", "check", "esp32-devkitc-buttons", bad)
    assert result.exit_code == 1
    assert "ok  esp32-devkitc-buttons" in result.stdout
    lines = result.stderr.splitlines()
    assert any("GPIO6" in line and "SPI flash" in line for line in lines), lines
    assert any("GPIO34" in line and "no internal pull-up" in line for line in lines), lines
    assert lines[-1] == ("Error: 1 of 2 profile(s) refused (%s): change the pins named above"
                         % bad)


def test_check_shows_warnings_but_passes(tmp_path):
    warned = write_json(tmp_path / "w.json", dict(BAD, keys=[32, 33, 25, 26, 27], buzzer=2))
    result = run("hardware", "check", warned)
    assert result.exit_code == 0
    assert "warning: GPIO2 (buzzer, buzzer): strapping pin" in result.stderr


@pytest.mark.parametrize("content,words", [
    (None, "no profile named 'no-such-board'"),
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
])
def test_an_unreadable_profile_is_one_line_of_error_and_exit_status_1(tmp_path, content, words):
    if content is None:
        arg = "no-such-board"
    else:
        arg = str(tmp_path / "p.json")
        (tmp_path / "p.json").write_text(content, encoding="utf-8")
    for command in (["hardware", "check", arg], ["hardware", "diagram", arg]):
        result = run(*command)
        assert result.exit_code == 1
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert result.stderr.startswith("Error: ") and words in result.stderr


def test_a_missing_file_path_is_named(tmp_path):
    result = run("hardware", "check", str(tmp_path / "gone.json"))
    assert result.exit_code == 1
    assert result.stderr == "Error: no profile file %s\n" % (tmp_path / "gone.json")


def test_diagram_writes_the_svg_and_bom_into_the_folder_given(tmp_path):
    out = tmp_path / "wiring"
    result = run("hardware", "diagram", "esp32-touch-ws2812", "--out", str(out))
    assert result.exit_code == 0, result.output
    data = profile.load("esp32-touch-ws2812")[1]
    assert (out / "esp32-touch-ws2812.svg").read_text(encoding="utf-8") == diagram.svg(data)
    assert (out / "esp32-touch-ws2812-bom.csv").read_text(encoding="utf-8") == diagram.bom_csv(data)
    assert str(out / "esp32-touch-ws2812.svg") in result.stdout


def test_diagram_of_a_user_file_by_path(tmp_path):
    mine = dict(profile.load("esp32-devkitc-buttons")[1], name="hall-3-window-7")
    path = write_json(tmp_path / "mine.json", mine)
    result = run("hardware", "diagram", path, "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "hall-3-window-7.svg").is_file()
    assert (tmp_path / "hall-3-window-7-bom.csv").is_file()


def test_diagram_refuses_a_bad_profile_in_one_line_and_writes_nothing(tmp_path):
    bad = write_json(tmp_path / "bad.json", BAD)
    out = tmp_path / "out"
    result = run("hardware", "diagram", bad, "--out", str(out))
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1
    assert "GPIO6" in result.stderr and "SPI flash" in result.stderr
    assert not out.exists()


def test_diagram_into_a_folder_that_cannot_be_made_is_one_line_of_error(tmp_path):
    (tmp_path / "a-file").write_text("x")
    result = run("hardware", "diagram", "esp32-devkitc-buttons", "--out",
                 str(tmp_path / "a-file" / "sub"))
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot write the diagram into ")
    assert len(result.stderr.splitlines()) == 1


def test_list_names_every_committed_profile():
    result = run("hardware", "list")
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == profile.committed_names()


@pytest.mark.parametrize("command", [[], ["check"], ["diagram"], ["list"]])
def test_every_command_explains_itself_with_a_runnable_example(command):
    result = run("hardware", *command, "--help")
    assert result.exit_code == 0
    summary = result.stdout.split("\n\n")[1].strip()
    assert summary and summary.endswith(".")
    assert "Example:" in result.stdout and "hcp hardware" in result.stdout.split("Example:")[1]


def test_the_real_hcp_command_has_the_hardware_group_registered():
    result = subprocess.run([sys.executable, "-m", "haochaping.tools.cli", "hardware", "check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ok  esp32-devkitc-buttons" in result.stdout
