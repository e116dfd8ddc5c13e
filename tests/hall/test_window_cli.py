"""`hcp window` and `hcp terminal add` as window staff and hall IT first type them: typos and
bad paths get one clear line, and change nothing."""
from click.testing import CliRunner

from haochaping.daemon.hall import db, registry
from haochaping.tools.cli import _register, cli

_register()


def _hcp(hall, *args):
    r = CliRunner().invoke(cli, [str(a) for a in args] + ["--config", hall.path])
    assert "Traceback" not in r.output, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.output
    return r


def test_a_mistyped_window_is_refused_and_becomes_no_new_window(hall, daemon, hall_db):
    # if this fails, a typo (W1, w01) starts a transaction at a window that does not exist,
    # and the hall's figures gain a window nobody works at
    r = _hcp(hall, "window", "start", "--window", "w01", "--ticket", "A001")
    assert r.exit_code == 1 and "did you mean W01?" in r.output
    r = _hcp(hall, "window", "start", "--window", "W9", "--ticket", "A001")
    assert r.exit_code == 1 and "W01, W02" in r.output and "hcp pair" in r.output
    assert hall_db("SELECT COUNT(*) FROM transactions") == [(0,)]
    assert _hcp(hall, "window", "start", "--window", "W01", "--ticket", "A001").exit_code == 0


def test_a_window_id_with_a_space_is_a_clear_error_on_every_window_command(hall, daemon):
    # if this fails, `hcp window finish --window "W0 1"` ends in a traceback about URLs
    for cmd in (["start", "--ticket", "A1"], ["finish"], ["state"]):
        r = _hcp(hall, "window", cmd[0], "--window", "W0 1", *cmd[1:])
        assert r.exit_code == 1 and "window: must be" in r.output, (cmd, r.output)


def test_a_ticket_typed_in_a_gbk_shell_or_with_a_control_character_is_refused_naming_it(
        hall, daemon, hall_db):
    # if this fails, `hcp window start` run from a GBK terminal (its bytes reach Python as lone
    # surrogates) or with an escape sequence in the ticket stores a transaction the city's store
    # refuses, or ends in a traceback instead of a line saying which field is wrong
    gbk = "A政务".encode("gbk").decode("utf-8", "surrogateescape")   # A\udcd5\udcfe...
    for args, field in ((["--ticket", gbk], "ticket"), (["--ticket", "A\x1b[2J"], "ticket"),
                        (["--ticket", "A1", "--item", "5301\x07"], "item")):
        r = _hcp(hall, "window", "start", "--window", "W01", *args)
        assert r.exit_code == 1 and r.output.startswith("Error: %s: " % field), (args, r.output)
    assert hall_db("SELECT COUNT(*) FROM transactions") == [(0,)]
    assert _hcp(hall, "window", "start", "--window", "W01", "--ticket", "A1").exit_code == 0


def test_terminal_add_with_an_unwritable_out_registers_nothing(hall, tmp_path):
    # if this fails, the terminal is registered, its key is written nowhere, and a rerun says
    # "already registered": the id is lost
    r = _hcp(hall, "terminal", "add", "--terminal", "T009", "--out",
             tmp_path / "missing" / "T009.json")
    assert r.exit_code == 1 and "nothing was registered" in r.output
    conn = db.connect(hall.hall.database)
    assert registry.terminal_state(conn, "T009") == (None, False)
    r = _hcp(hall, "terminal", "add", "--terminal", "T009", "--out", tmp_path / "T009.json")
    assert r.exit_code == 0, r.output


def test_terminal_add_run_again_keeps_the_key_file_it_wrote_the_first_time(hall, tmp_path):
    # if this fails, a rerun of the same `hcp terminal add` says "already registered" and
    # deletes the key file of the terminal registered the first time: its key is lost
    (tmp_path / "keys").mkdir()
    out = tmp_path / "keys" / "T009.json"
    assert _hcp(hall, "terminal", "add", "--terminal", "T009", "--out", out).exit_code == 0
    first = out.read_bytes()
    r = _hcp(hall, "terminal", "add", "--terminal", "T009", "--out", out)
    assert r.exit_code == 1 and "already registered" in r.output
    assert out.read_bytes() == first and oct(out.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in out.parent.iterdir()] == ["T009.json"]   # no temporary file left
