"""The shipped systemd units start commands that exist with options hcp accepts: if this fails,
a hall's service does not come back after a reboot."""
import configparser
import pathlib
import shlex

import click
import pytest

from haochaping.tools.cli import _register, cli

UNITS = sorted((pathlib.Path(__file__).parent.parent / "daemon" / "systemd").glob("*.service"))
_register()


def _unit(path):
    p = configparser.ConfigParser(strict=False, interpolation=None)
    p.optionxform = str
    p.read(path)
    return p


def _parse(argv):
    """Walk hcp's groups to the command and parse its options for real (without running it)."""
    cmd, args = cli, list(argv)
    while isinstance(cmd, click.Group):
        cmd, args = cmd.commands[args[0]], args[1:]
    # the option parser alone: unknown options fail, files named need not exist on this machine
    opts, rest, _ = cmd.make_parser(click.Context(cmd, info_name=cmd.name)).parse_args(args)
    return cmd, opts, rest


def test_units_are_shipped_and_installable():
    assert {u.name for u in UNITS} >= {"haochaping-daemon.service", "haochaping-broker.service",
                                       "haochaping-store.service"}
    for u in UNITS:
        assert _unit(u)["Install"]["WantedBy"] == "multi-user.target", u.name


@pytest.mark.parametrize("unit", [u for u in UNITS if "/hcp " in _unit(u)["Service"]["ExecStart"]],
                         ids=lambda u: u.name)
def test_the_unit_runs_a_real_hcp_command_with_accepted_options(unit):
    argv = shlex.split(_unit(unit)["Service"]["ExecStart"])
    cmd, opts, rest = _parse(argv[1:])
    assert rest == []
    required = {p.name for p in cmd.params if getattr(p, "required", False)}
    assert required <= set(opts), required - set(opts)


def test_a_wrong_option_in_a_unit_would_be_caught():
    with pytest.raises(click.NoSuchOption):
        _parse(["daemon", "run", "--confg", "/etc/haochaping/hall.toml"])
