"""hall.toml is validated at start with every problem listed at once; secrets never shown."""
import pytest

from haochaping.daemon.errors import ConfigError
from haochaping.daemon.hall import settings


def test_every_problem_is_listed_at_once(tmp_path):
    p = tmp_path / "hall.toml"
    p.write_text('[hall]\nid = "bad id!"\n[mqtt]\nport = "x"\npassword = 5\nfoo = 1\n'
                 '[api.tokens]\nq = "short"\n[extra]\n')
    with pytest.raises(ConfigError) as e:
        settings.load(str(p))
    msg = str(e.value)
    for part in ("[extra]: unknown section", "[mqtt] port: must be int", "[mqtt] foo: unknown key",
                 "[mqtt] password: must be str, got '***'"):
        assert part in msg


def test_value_problems_are_listed_together(tmp_path):
    p = tmp_path / "hall.toml"
    p.write_text('[hall]\nid = "bad id!"\n[sessions]\ntimeout_s = 1\n[api]\nlisten = "nowhere"\n'
                 '[api.tokens]\nq = "short"\n')
    with pytest.raises(ConfigError) as e:
        settings.load(str(p))
    msg = str(e.value)
    assert "4 problem(s)" in msg
    for part in ("[hall] id", "timeout_s", "[api] listen", "[api.tokens] q"):
        assert part in msg


def test_missing_hall_id_and_bad_toml(tmp_path):
    p = tmp_path / "hall.toml"
    p.write_text("[mqtt]\n")
    with pytest.raises(ConfigError, match=r"\[hall\] id: required"):
        settings.load(str(p))
    p.write_text("[hall\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        settings.load(str(p))


def test_redacted_config_hides_passwords_and_tokens():
    cfg = settings.validate({"hall": {"id": "H1"}, "mqtt": {"password": "s3cret"},
                           "api": {"tokens": {"q": "x" * 20}}})
    text = repr(settings.redacted(cfg))
    assert "s3cret" not in text and "x" * 20 not in text
