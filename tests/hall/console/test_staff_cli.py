"""hcp staff: hall IT manages console accounts; PINs are asked for hidden and stored hashed."""
import pytest
from click.testing import CliRunner

from haochaping.daemon.errors import ConfigError
from haochaping.daemon.hall import db, settings
from haochaping.daemon.hall.console import staff
from haochaping.tools.cli import _register, cli
from haochaping.tools.sim import hall_kit

_register()


@pytest.fixture
def cfg(tmp_path):
    return hall_kit.create(str(tmp_path / "h"), windows=("W01",))


def _run(cfg, *args, **kw):
    argv = ["staff", args[0], "--config", cfg.path] + list(args[1:])
    return CliRunner().invoke(cli, argv, **kw)


def test_add_list_disable_enable_and_set_pin(cfg):
    # if this fails, hall IT cannot give staff a console account or take it away
    r = _run(cfg, "add", "--number", "S0101", "--name", "张三", input="246810\n246810\n")
    assert r.exit_code == 0, r.output
    assert "246810" not in r.output
    r = _run(cfg, "add", "--number", "M01", "--role", "manager", env={"HCP_STAFF_PIN": "135790"})
    assert r.exit_code == 0, r.output
    out = _run(cfg, "list").output
    assert out.split()[:4] == ["NUMBER", "ROLE", "STATE", "NAME"]   # a header, as a table has
    assert "S0101" in out and "张三" in out and "manager" in out and "scrypt" not in out
    conn = db.connect(cfg.hall.database)
    assert staff.verify(conn, "S0101", "246810")["name"] == "张三"
    assert _run(cfg, "disable", "--number", "S0101").exit_code == 0
    assert staff.verify(conn, "S0101", "246810") is None
    assert "disabled" in _run(cfg, "list").output
    assert _run(cfg, "enable", "--number", "S0101").exit_code == 0
    assert _run(cfg, "set-pin", "--number", "S0101", env={"HCP_STAFF_PIN": "112233"}).exit_code == 0
    assert staff.verify(conn, "S0101", "246810") is None
    assert staff.verify(conn, "S0101", "112233") is not None
    actions = [r[0] for r in conn.execute("SELECT action FROM audit ORDER BY id")]
    assert actions == ["staff.add", "staff.add", "staff.disable", "staff.enable", "staff.set-pin"]


@pytest.mark.parametrize("args,expect", [
    (["add", "--number", "S 01"], "staff number"),
    (["add", "--number", "S01", "--role", "boss"], "Invalid value for '--role'"),
    (["disable", "--number", "S404"], "no staff number S404"),
])
def test_mistakes_give_one_line_and_exit_non_zero(cfg, args, expect):
    # if this fails, hall IT sees a traceback instead of what to fix
    r = _run(cfg, *args, env={"HCP_STAFF_PIN": "123456"})
    assert r.exit_code != 0 and expect in r.output and "Traceback" not in r.output


def test_short_pins_and_taken_numbers_are_refused(cfg):
    # if this fails, a 1234 PIN or a second account with a colleague's number gets in
    r = _run(cfg, "add", "--number", "S01", env={"HCP_STAFF_PIN": "1234"})
    assert "PIN: 6 to 32" in r.output
    assert _run(cfg, "add", "--number", "S01", env={"HCP_STAFF_PIN": "123456"}).exit_code == 0
    r = _run(cfg, "add", "--number", "S01", env={"HCP_STAFF_PIN": "654321"})
    assert r.exit_code == 1 and "exists already" in r.output


def test_console_section_of_hall_toml_is_checked(tmp_path):
    # if this fails, `enabled = "no"` or a zero lockout would be taken silently
    base = {"hall": {"id": "H01"}}
    assert settings.validate(dict(base)).console.enabled is True
    assert settings.validate(dict(base, console={"enabled": False})).console.enabled is False
    with pytest.raises(ConfigError) as e:
        settings.validate(dict(base, console={"enabled": "no", "lockout_s": 0, "pins": 3}))
    assert "[console] enabled: must be bool" in str(e.value)
    assert "[console] pins: unknown key" in str(e.value)
    with pytest.raises(ConfigError) as e:
        settings.validate(dict(base, console={"lockout_s": 0}))
    assert "[console] lockout_s: at least 1" in str(e.value)
    with pytest.raises(ConfigError) as e:
        settings.validate(dict(base, console={"language": "../../x"}))
    assert "[console] language: no daemon/hall/console/static/labels.../../x.json" in str(e.value)


def test_demo_accounts_sign_in_with_the_printed_pins(cfg):
    # if this fails, `hcp demo` prints console addresses and PINs that do not let anyone in
    import re
    conn = db.connect(cfg.hall.database)
    lines = staff.demo_accounts(conn, ("W01", "W02"), "http://127.0.0.1:8780")
    assert len(lines) == 3 and "http://127.0.0.1:8780/window/W02" in lines[1]
    assert "http://127.0.0.1:8780/hall" in lines[2]
    for line in lines:
        number, pin = re.search(r"staff number (\w+), PIN (\d{6})", line).groups()
        assert staff.verify(conn, number, pin) is not None
    assert staff.get(conn, "M01")["role"] == "manager"


def test_a_staff_name_with_a_control_character_is_refused(cfg):
    # if this fails, a name pasted with a NUL or an escape sequence reaches every console page
    # and the audit log
    r = _run(cfg, "add", "--number", "S0109", "--name", "张\x1b[2J三",
             env={"HCP_STAFF_PIN": "135790"})
    assert r.exit_code == 1 and "name" in r.output and "control character" in r.output
    assert "S0109" not in _run(cfg, "list").output
