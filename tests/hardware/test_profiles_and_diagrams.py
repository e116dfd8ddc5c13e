"""The committed profiles pass, and their committed diagrams and parts lists are what the
generator makes today (so a fitter never wires from a stale drawing)."""
import csv
import io
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from haochaping.daemon.errors import HcpError
from haochaping.hardware import boards, diagram, profile, validate

DIAGRAMS = Path(profile.PROFILE_DIR).parent / "diagrams"
NAMES = profile.committed_names()
SVG_NS = "{http://www.w3.org/2000/svg}"


def test_the_three_kinds_of_terminal_the_issue_asks_for_are_committed():
    kinds = set()
    for name in NAMES:
        data = profile.load(name)[1]
        kinds.add((data["chip"], data["input"], "leds" in data, "ws2812" in data))
    assert ("esp32", "buttons", True, False) in kinds, "no ESP32 with buttons and five LEDs"
    assert ("esp32", "touch", False, True) in kinds, "no ESP32 with touch pads and a WS2812 strip"
    assert any(k[0] == "esp32s3" for k in kinds), "no ESP32-S3 board"


@pytest.mark.parametrize("name", NAMES)
def test_a_committed_profile_passes_without_warnings(name):
    path, data, problems = validate.check(name)
    assert [str(p) for p in problems] == [], "a fitter following %s would hit these" % name
    assert data["name"] == path.stem, "hcp device provision --profile NAME would not find it"


@pytest.mark.parametrize("name", NAMES)
def test_the_firmware_accepts_every_committed_profile_as_its_board_config(name):
    from haochaping.firmware import config
    assert config.board_errors(profile.load(name)[1]) == [], "provisioning %s would fail" % name


@pytest.mark.parametrize("name", NAMES)
def test_every_pin_of_a_committed_profile_is_on_its_boards_headers(name):
    data = profile.load(name)[1]
    for _role, label, pin, _kind in profile.pin_uses(data):
        assert boards.header_position(data["chip"], pin), "%s on GPIO%d cannot be wired" % (
            label, pin)


@pytest.mark.parametrize("name", NAMES)
def test_the_committed_diagram_and_bom_are_up_to_date_with_the_generator(name):
    data = profile.load(name)[1]
    svg_name, bom_name = diagram.file_names(name)
    hint = "regenerate: hcp hardware diagram %s --out hardware/diagrams" % name
    assert (DIAGRAMS / svg_name).read_text(encoding="utf-8") == diagram.svg(data), hint
    assert (DIAGRAMS / bom_name).read_text(encoding="utf-8") == diagram.bom_csv(data), hint


def test_no_diagram_is_left_behind_for_a_profile_that_is_gone():
    expected = {f for name in NAMES for f in diagram.file_names(name)}
    assert {p.name for p in DIAGRAMS.iterdir()} == expected


@pytest.mark.parametrize("name", NAMES)
def test_the_diagram_is_valid_svg_and_wires_every_pin_with_its_bilingual_key_label(name):
    data = profile.load(name)[1]
    root = ET.fromstring(diagram.svg(data))
    assert root.tag == SVG_NS + "svg"
    texts = [t.text for t in root.iter(SVG_NS + "text")]
    for _role, _label, pin, _kind in profile.pin_uses(data):
        assert "GPIO%d" % pin in texts, "GPIO%d is not drawn" % pin
    for i, level in enumerate(("1 非常满意", "2 满意", "3 基本满意", "4 不满意", "5 非常不满意")):
        assert level in texts, "key %s has no label" % level
        assert any(t and t.startswith(profile.LEVEL_EN[i]) for t in texts)
    assert "Legend and notes 图例与说明" in texts


def test_the_button_diagram_tells_the_fitter_about_the_internal_pull_up():
    svg = diagram.svg(profile.load("esp32-devkitc-buttons")[1])
    assert "internal pull-up, so no resistor is needed" in svg
    assert "GPIO34-39 have no pull-up" in svg


def test_a_warning_is_printed_on_the_diagram_for_the_fitter():
    data = dict(profile.load("esp32-devkitc-buttons")[1], status_led=2)
    assert "⚠ GPIO2 (status LED, status_led): strapping pin" in diagram.svg(data)


def bom(name):
    rows = list(csv.DictReader(io.StringIO(diagram.bom_csv(profile.load(name)[1]))))
    assert rows and list(rows[0]) == ["part", "quantity", "value", "notes"]
    return {(r["part"], r["value"]): int(r["quantity"]) for r in rows}


def test_the_button_bom_has_five_switches_five_leds_and_their_resistors_and_a_buzzer_driver():
    parts = bom("esp32-devkitc-buttons")
    assert parts[("Push button", "momentary, normally open (12 mm tactile or 24 mm arcade)")] == 5
    assert parts[("LED", "5 mm, green / yellow / red")] == 5
    assert parts[("Resistor", "330 Ω, 1/4 W")] == 6          # five level LEDs + the status LED
    assert parts[("Passive buzzer", "magnetic, 3-5 V")] == 1
    assert parts[("NPN transistor", "S8050 (or 2N2222)")] == 1
    assert parts[("Resistor", "1 kΩ, 1/4 W")] == 1


def test_the_touch_bom_has_five_pads_and_a_strip_and_no_push_buttons():
    parts = bom("esp32-touch-ws2812")
    assert parts[("Touch pad", "copper pad, about 15 × 15 mm")] == 5
    assert parts[("WS2812B LED strip", "5 LEDs, 5 V")] == 1
    assert parts[("Electrolytic capacitor", "1000 µF, 10 V")] == 1
    assert not any(part == "Push button" for part, _ in parts)


def test_the_generator_refuses_a_bad_profile_and_names_the_pin():
    data = dict(profile.load("esp32-devkitc-buttons")[1], buzzer=6)
    with pytest.raises(HcpError, match="GPIO6 .*SPI flash"):
        diagram.svg(data)
    with pytest.raises(HcpError, match="GPIO6 .*SPI flash"):
        diagram.bom_csv(data)


def test_write_puts_both_files_in_a_new_folder(tmp_path):
    data = profile.load("esp32s3-devkitc1-buttons")[1]
    svg_path, bom_path = diagram.write(data, tmp_path / "new" / "dir")
    assert svg_path.read_text(encoding="utf-8") == diagram.svg(data)
    assert bom_path.read_text(encoding="utf-8") == diagram.bom_csv(data)
    assert (svg_path.name, bom_path.name) == ("esp32s3-devkitc1-buttons.svg",
                                              "esp32s3-devkitc1-buttons-bom.csv")
