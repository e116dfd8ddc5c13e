"""hcp explains itself, and bad arguments give one line and a non-zero exit, never a traceback."""
import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from haochaping.tools.cli import _register, cli

_register()


def _all_commands(group, prefix=()):
    for name, cmd in group.commands.items():
        yield prefix + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from _all_commands(cmd, prefix + (name,))


def test_every_command_has_a_summary_and_a_runnable_example():
    # if this fails, hall IT meets a command that does not say what it does or how to run it
    missing = []
    for path, cmd in _all_commands(cli):
        help_text = cmd.help or ""
        if not cmd.get_short_help_str().strip():
            missing.append(" ".join(path) + ": no summary")
        if not isinstance(cmd, click.Group) and "hcp " + " ".join(path) not in help_text:
            missing.append(" ".join(path) + ": no runnable example")
    assert missing == []


def test_top_level_help_lists_every_command():
    out = CliRunner().invoke(cli, ["--help"]).output
    for name in cli.commands:
        assert name in out


@pytest.mark.parametrize("args,expect", [
    (["window", "start", "--ticket", "A1"], "Missing option '--window'"),
    (["daemon", "run", "--config", "/nonexistent/hall.toml"], "not found"),
    (["pair", "--config", "/nonexistent/hall.toml", "--window", "W1", "--terminal", "T1"],
     "not found"),
    (["no-such-command"], "No such command"),
])
def test_bad_arguments_give_one_line_and_exit_non_zero(args, expect):
    r = CliRunner().invoke(cli, args)
    assert r.exit_code != 0
    assert expect in r.output
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_pairing_an_unregistered_terminal_says_what_to_do(tmp_path):
    from haochaping.tools.sim import hall_kit
    cfg = hall_kit.create(str(tmp_path / "h"), windows=("W01",))
    r = CliRunner().invoke(cli, ["pair", "--config", cfg.path, "--window", "W01",
                                 "--terminal", "T404"])
    assert r.exit_code == 1
    assert "hcp terminal add" in r.output
    r = CliRunner().invoke(cli, ["pair", "--config", cfg.path, "--window", "W02",
                                 "--terminal", "T001"])
    assert r.exit_code == 0
    r = CliRunner().invoke(cli, ["pairings", "--config", cfg.path])
    assert "W02        T001" in r.output


def test_window_commands_without_a_running_daemon_say_so(tmp_path):
    from haochaping.tools.sim import hall_kit
    cfg = hall_kit.create(str(tmp_path / "h"), windows=("W01",))
    r = CliRunner().invoke(cli, ["window", "finish", "--config", cfg.path, "--window", "W01"])
    assert r.exit_code == 1
    assert "is `hcp daemon run` running?" in r.output


def test_window_commands_when_the_daemon_dies_mid_answer_say_so(tmp_path):
    # if this fails, staff (or a queue system) get a Python traceback when the daemon is
    # restarted in the middle of their request, instead of being told to check the daemon
    import socket
    import struct
    import threading
    import time

    from haochaping.tools.sim import hall_kit
    cfg = hall_kit.create(str(tmp_path / "h"), windows=("W01",))
    host, _, port = cfg.api.listen.rpartition(":")
    srv = socket.create_server((host, int(port)))

    def reset_once():
        conn, _ = srv.accept()
        got = b""
        while b"\r\n\r\n" not in got:  # the whole request: the client now waits for the answer
            got += conn.recv(65536)
        head, _, body = got.partition(b"\r\n\r\n")
        length = int(next((ln.split(b":")[1] for ln in head.split(b"\r\n")
                           if ln.lower().startswith(b"content-length:")), b"0"))
        while len(body) < length:
            body += conn.recv(65536)
        time.sleep(0.2)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # linger 0: the client reads a connection reset, not an answer
    t = threading.Thread(target=reset_once, daemon=True)
    t.start()
    try:
        r = CliRunner().invoke(cli, ["window", "finish", "--config", cfg.path,
                                     "--window", "W01"])
    finally:
        t.join(5)
        srv.close()
    assert r.exit_code == 1, r.output
    assert "did not answer" in r.output and "is `hcp daemon run` running?" in r.output
    assert "Traceback" not in r.output


def test_generic_module_names_are_not_installed():
    # the distribution must not shadow other packages called protocol, daemon, tools, firmware
    for mod in ("protocol", "daemon", "tools", "firmware", "hardware"):
        r = subprocess.run([sys.executable, "-c", "import " + mod], cwd="/", capture_output=True,
                           env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
        assert r.returncode != 0, mod
    r = subprocess.run([sys.executable, "-c", "import haochaping.protocol.messages"], cwd="/")
    assert r.returncode == 0


@pytest.mark.parametrize("ticket", ["A\x01B", "A\udcff"], ids=["control", "undecodable-byte"])
def test_window_start_with_a_bad_ticket_says_which_field_in_one_line(hall, api, hall_db, ticket):
    # "\udcff" is what Python makes of an argument byte that is not UTF-8. If this fails, the
    # ticket is stored for a store that cannot take it, or the user sees "did not answer"
    r = CliRunner().invoke(cli, ["window", "start", "--config", hall.path, "--window", "W01",
                                 "--ticket", ticket])
    assert r.exit_code != 0
    assert r.output.startswith("Error: ticket: must not contain") and r.output.count("\n") == 1
    assert hall_db("SELECT COUNT(*) FROM transactions") == [(0,)]
