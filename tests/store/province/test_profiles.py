"""Delivery profiles (第十五条): validated at load with every problem listed at once, and the
sandbox refusing what breaks a profile as a province would."""
import pytest
from click.testing import CliRunner

from haochaping.daemon.store.province import delivery, mapping, profiles
from haochaping.tools.cli import _register, cli
from tests.store.province.conftest import PROFILES, sandbox

_register()

BAD = """
[profile]
name = "bad name!"
[endpoint]
url = "ftp://x"
evaluation = "nope"
[delivery]
batch_size = 0
[envelope]
shape = "soap"
[time]
format = "%Y-%m-%d %Q"
[ids]
project_no = "{hall}"
[codes.level]
1 = "1"
2 = "1"
[evaluation.fields]
projectNo = "project_no"
x = { from = "nonsense" }
"""


def test_art15_a_bad_profile_is_refused_with_every_problem_listed_at_once(tmp_path):
    # if this fails, a city's IT fixes a new province's profile one error per attempt, or a
    # broken profile starts delivering wrong codes to the province
    path = tmp_path / "bad.toml"
    path.write_text(BAD, encoding="utf-8")
    r = CliRunner().invoke(cli, ["province", "profile", "check", str(path)])
    assert r.exit_code == 1 and "Traceback" not in r.output
    for words in ("profile.name", "endpoint.url", "endpoint.evaluation", "delivery.batch_size",
                  "envelope.shape", "time.format", "ids.project_no: must hold {tx}",
                  "codes.level: two levels share a code", "codes.level.3",
                  "codes.reasons.5.attitude", "evaluation.fields.x: unknown source",
                  "no field from assess_number"):
        assert words in r.output, words


def test_art15_the_example_profile_is_a_working_template(tmp_path, key_file):
    # if this fails, `hcp province profile example` hands the city a template that does not load
    r = CliRunner().invoke(cli, ["province", "profile", "example"])
    path = tmp_path / "yunnan.toml"
    path.write_text(r.output, encoding="utf-8")
    p = profiles.load(str(path), key_file)
    assert p.name == "yunnan" and "FILL IN" in r.output


def _post(sb, p, kind, records):
    poster = delivery.Poster(sb.url)
    try:
        st, body = poster.request("POST", p.endpoints[kind], mapping.envelope(p, records, 0))
    finally:
        poster.close()
    return delivery.read_answer(p, st, body, len(records))


FACT = {"project_no": "530102H010000000001", "uid": "H01:tx:1", "hall": "H01", "tx": 1,
        "ticket": "A001", "window": "W01", "item": "530100-XK-001", "item_version": "",
        "department": "11530102MB1234567X", "region": "530102", "staff": "S0101",
        "channel": "PJQ", "started_at": 1790000000.0, "finished_at": 1790000300.0,
        "assess_number": 1, "level": 4, "reasons": ["attitude"], "rated_at": 1790000360.0,
        "is_default": False}


@pytest.mark.parametrize("name", PROFILES)
def test_art15_the_sandbox_refuses_what_breaks_the_profile_as_a_province_would(
        name, tmp_path, key_file):
    # if this fails, the city rehearses against a sandbox that takes what the province refuses:
    # a reversed scale, a wrong time format, a wrong channel code, an evaluation before its
    # service data
    p = profiles.load(name, key_file)
    sb = sandbox(tmp_path, name, key_file)
    try:
        ev = mapping.build(p, "evaluation", FACT)
        a = _post(sb, p, "evaluation", [ev])
        why = a.whole[1] if a.whole else a.refusals[0][1]
        assert "no service data" in why
        assert _post(sb, p, "service", [mapping.build(p, "service", FACT)]).accepted == [True]
        level_field = next(f.name for f in p.fields["evaluation"] if f.source == "level")
        time_field = next(f.name for f in p.fields["evaluation"] if f.source == "rated_at")
        reversed_scale = dict(ev, **{level_field: p.level_codes[2]})   # 满意 with a 差评 reason
        a = _post(sb, p, "evaluation", [reversed_scale])
        why = a.whole[1] if a.whole else a.refusals[0][1]
        assert "reversed scale" in why or "only for 不满意" in why
        a = _post(sb, p, "evaluation", [dict(ev, **{time_field: "2026/09/01 10:00"})])
        why = a.whole[1] if a.whole else a.refusals[0][1]
        assert "is not a time in the format" in why
        channel_field = next(f.name for f in p.fields["evaluation"] if f.source == "channel")
        a = _post(sb, p, "evaluation", [dict(ev, **{channel_field: "9"})])   # a wrong pf code
        why = a.whole[1] if a.whole else a.refusals[0][1]
        assert "is not a channel code" in why
        assert _post(sb, p, "evaluation", [ev]).accepted == [True]
        assert len(sb.accepted()["keys"]) == 2
    finally:
        sb.kill()


@pytest.mark.parametrize("name", PROFILES)
def test_art15_a_phone_rating_reaches_the_province_with_the_qr_channels_code(
        name, tmp_path, key_file):
    # if this fails, the province is told a rating made by scanning the window's 评价二维码
    # came from the hall's key terminal (第五条: the two are separate channels)
    p = profiles.load(name, key_file)
    field = next(f.name for f in p.fields["evaluation"] if f.source == "channel")
    phone = mapping.build(p, "evaluation", dict(FACT, channel="QR"))
    key = mapping.build(p, "evaluation", FACT)
    assert phone[field] == p.channel_codes["QR"] != key[field] == p.channel_codes["PJQ"]
    sb = sandbox(tmp_path, name, key_file)
    try:
        assert _post(sb, p, "service", [mapping.build(p, "service", FACT)]).accepted == [True]
        assert _post(sb, p, "evaluation", [phone]).accepted == [True]
    finally:
        sb.kill()
