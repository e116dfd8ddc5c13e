"""The terminal's tests: real MicroPython running the firmware against stand-ins, on clocks and
step limits made for a machine that gives it a core. Starved by the parallel workers of
`make test`, a prompt ran out before the terminal took the press (test_e2e), an ack did not
come within a check script's limit (test_tls, test_shell): these tests run alone, after the
parallel pass (marker "serial", pyproject.toml and the Makefile)."""
import pathlib

import pytest

_HERE = pathlib.Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _HERE in pathlib.Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.serial)
