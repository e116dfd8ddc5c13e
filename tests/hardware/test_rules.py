"""The validator refuses every pin that would break a terminal, naming the pin and the reason.

Each test says what a hall would see go wrong if the rule were missing."""
import copy

import pytest

from haochaping.hardware import pins, profile, validate

ESP32 = {
    "name": "t-esp32", "chip": "esp32", "description": "test board", "input": "buttons",
    "keys": [32, 33, 25, 26, 27], "leds": [23, 22, 21, 19, 18], "buzzer": 13,
}
S3 = {
    "name": "t-s3", "chip": "esp32s3", "description": "test board", "input": "buttons",
    "keys": [4, 5, 6, 7, 15], "ws2812": {"pin": 16, "count": 5}, "buzzer": 17,
}
TOUCH = dict(ESP32, input="touch", keys=[32, 33, 27, 14, 4])


def changed(base, **fields):
    p = copy.deepcopy(base)
    p.update(fields)
    return p


def with_pin(base, field, index, pin):
    p = copy.deepcopy(base)
    if index is None:
        p[field] = pin
    else:
        p[field][index] = pin
    return p


def fatal(p):
    return [str(e) for e in validate.errors(validate.validate(p))]


def assert_refused(p, pin, *words):
    found = fatal(p)
    matching = [e for e in found if e.startswith("GPIO%d " % pin)]
    assert matching, "GPIO%d not refused; problems: %s" % (pin, found)
    for w in words:
        assert any(w in e for e in matching), "no %r in %s" % (w, matching)


def test_the_test_bases_are_valid_so_each_refusal_below_is_caused_by_the_one_change():
    for base in (ESP32, S3, TOUCH):
        assert validate.validate(base) == []


@pytest.mark.parametrize("base,field,index,pin,words", [
    (ESP32, "keys", 0, 6, ("SPI flash",)),
    (ESP32, "leds", 2, 11, ("SPI flash",)),
    (S3, "keys", 1, 26, ("SPI flash",)),
    (S3, "buzzer", None, 32, ("SPI flash",)),
])
def test_a_flash_pin_is_refused_or_the_board_crashes_when_the_pin_is_touched(
        base, field, index, pin, words):
    assert_refused(with_pin(base, field, index, pin), pin, *words)


@pytest.mark.parametrize("field,index,pin", [
    ("leds", 0, 34), ("buzzer", None, 35), ("status_led", None, 39),
])
def test_an_output_on_an_esp32_input_only_pin_is_refused_or_the_led_or_buzzer_never_works(
        field, index, pin):
    assert_refused(with_pin(ESP32, field, index, pin), pin, "input-only")


def test_a_ws2812_line_on_an_input_only_pin_is_refused_or_it_stays_dark():
    p = changed(ESP32, ws2812={"pin": 36, "count": 5})
    assert_refused(p, 36, "input-only")


@pytest.mark.parametrize("pin", [34, 35, 36, 39])
def test_a_push_button_on_a_pin_without_pull_up_is_refused_or_the_key_floats_and_rates_itself(pin):
    assert_refused(with_pin(ESP32, "keys", 1, pin), pin, "no internal pull-up")


@pytest.mark.parametrize("base,pin", [(TOUCH, 25), (TOUCH, 26), (TOUCH, 34),
                                      (changed(S3, input="touch", keys=[1, 2, 4, 5, 6]), 15)])
def test_a_touch_key_on_a_pin_that_cannot_sense_touch_is_refused_or_the_key_is_dead(base, pin):
    assert_refused(with_pin(base, "keys", 3, pin), pin, "cannot sense touch")


def test_the_touch_refusal_lists_the_pins_that_do_work_so_the_fitter_knows_what_to_pick():
    [message] = fatal(with_pin(TOUCH, "keys", 0, 25))
    assert "2, 4, 13, 14, 15, 27, 32, 33" in message


@pytest.mark.parametrize("base,field,index", [
    (ESP32, "leds", 0), (ESP32, "buzzer", None), (S3, "keys", 4),
])
def test_a_pin_used_twice_is_refused_or_a_key_press_lights_an_led(base, field, index):
    p = copy.deepcopy(base)
    pin = p["keys"][0]
    p = with_pin(p, field, index, pin)
    found = fatal(p)
    assert any(e.startswith("GPIO%d " % pin) and "used twice" in e and "key 1 非常满意" in e
               for e in found), found


def test_a_display_is_refused_rather_than_left_blank_on_a_stock_install():
    found = fatal(changed(S3, display={"kind": "ssd1306", "sda": 8, "scl": 9}))
    assert any(e.startswith("display:") and "not supported" in e for e in found), found


@pytest.mark.parametrize("keys", [[32, 33, 25, 26], [32, 33, 25, 26, 27, 14], []])
def test_a_wrong_number_of_keys_is_refused_or_a_level_has_no_key(keys):
    found = fatal(changed(ESP32, keys=keys))
    assert any(e.startswith("keys:") and "exactly 5" in e for e in found), found


def test_a_wrong_number_of_leds_is_refused_or_a_level_has_no_light():
    found = fatal(changed(ESP32, leds=[23, 22]))
    assert any(e.startswith("leds:") and "exactly 5" in e for e in found), found


@pytest.mark.parametrize("chip", ["esp8266", "esp32c3", "ESP32", None])
def test_an_unknown_chip_is_refused_or_its_pins_go_unchecked(chip):
    p = copy.deepcopy(ESP32)
    p["chip"] = chip
    found = fatal(p)
    assert any(e.startswith("chip:") and "unknown chip" in e and "esp32, esp32s3" in e
               for e in found), found


@pytest.mark.parametrize("pin,word", [(19, "USB D-"), (20, "USB D+")])
def test_the_s3_usb_pins_are_refused_or_the_usb_serial_to_the_terminal_dies(pin, word):
    assert_refused(with_pin(S3, "keys", 2, pin), pin, word)


@pytest.mark.parametrize("base,pin,word", [
    (ESP32, 1, "UART0"), (ESP32, 3, "UART0"), (S3, 43, "UART0"), (S3, 44, "UART0"),
])
def test_the_serial_console_pins_are_refused_or_hcp_cannot_flash_or_provision(base, pin, word):
    assert_refused(with_pin(base, "buzzer", None, pin), pin, word)


@pytest.mark.parametrize("base,field,index,pin,word", [
    (ESP32, "leds", 0, 12, "flash voltage"),
    (ESP32, "keys", 0, 0, "download mode"),
    (TOUCH, "keys", 0, 12, "flash voltage"),    # GPIO12 can touch-sense, but stops the boot
    (TOUCH, "keys", 0, 0, "download mode"),
    (S3, "keys", 0, 0, "download mode"),
    (S3, "buzzer", None, 45, "VDD_SPI"),
])
def test_a_strapping_pin_that_can_stop_the_boot_is_refused(base, field, index, pin, word):
    assert_refused(with_pin(base, field, index, pin), pin, word)


@pytest.mark.parametrize("base,field,index,pin", [
    (ESP32, "leds", 0, 2), (ESP32, "leds", 1, 5), (ESP32, "leds", 2, 15), (ESP32, "leds", 3, 16),
    (S3, "buzzer", None, 46), (S3, "keys", 0, 3),
])
def test_a_strapping_pin_that_only_has_a_side_effect_is_a_warning_not_a_refusal(
        base, field, index, pin):
    problems = validate.validate(with_pin(base, field, index, pin))
    assert validate.errors(problems) == []
    [warning] = validate.warnings(problems)
    assert str(warning).startswith("GPIO%d " % pin)


@pytest.mark.parametrize("base,pin", [(S3, 35), (S3, 37), (S3, 33)])
def test_s3_octal_memory_pins_are_refused_or_the_profile_breaks_on_r8_modules(base, pin):
    assert_refused(with_pin(base, "keys", 0, pin), pin, "octal")


@pytest.mark.parametrize("base,pin", [(ESP32, 20), (ESP32, 24), (ESP32, 40), (S3, 22), (S3, 49),
                                      (ESP32, -1)])
def test_a_gpio_the_chip_does_not_have_is_refused(base, pin):
    assert_refused(with_pin(base, "buzzer", None, pin), pin, "does not exist")


@pytest.mark.parametrize("value", [True, "4", 4.0, None])
def test_a_pin_that_is_not_a_number_is_refused_rather_than_crashing_the_check(value):
    found = fatal(with_pin(ESP32, "buzzer", None, value))
    assert any("buzzer" in e and "must be a GPIO number" in e for e in found), found


def test_every_problem_is_reported_at_once_so_one_edit_fixes_them_all():
    p = changed(ESP32, keys=[6, 34, 25, 25, 12], leds=[36, 22, 21, 19, 18], extra=1)
    found = fatal(p)
    assert len(found) == 6, found
    for start in ("extra:", "GPIO6 ", "GPIO34 ", "GPIO25 ", "GPIO12 ", "GPIO36 "):
        assert any(e.startswith(start) for e in found), (start, found)


DROP = object()


@pytest.mark.parametrize("change,where", [
    ({"input": "keypad"}, "input:"),
    ({"name": "Bad Name"}, "name:"),
    ({"description": ""}, "description:"),
    ({"description": DROP}, "description:"),
    ({"leds": DROP}, "feedback:"),
    ({"ws2812": {"pin": 4}}, "ws2812.count:"),
    ({"ws2812": {"pin": 4, "count": 3}}, "ws2812.count:"),
    ({"ws2812": {"pin": 4, "count": 5, "colour": "red"}}, "ws2812.colour:"),
    ({"display": {"kind": "ssd1306", "sda": 4, "scl": 14}}, "display:"),
    ({"keys": "32,33,25,26,27"}, "keys:"),
    ({"chip": ["esp32"]}, "chip:"),
])
def test_schema_mistakes_are_named_by_field_so_the_fitter_knows_which_line_to_fix(change, where):
    p = copy.deepcopy(ESP32)
    for key, value in change.items():
        if value is DROP:
            del p[key]
        else:
            p[key] = value
    found = fatal(p)
    assert any(e.startswith(where) for e in found), found


def test_a_profile_that_is_not_an_object_is_refused():
    assert fatal([1, 2, 3]) == ["profile: must be a JSON object"]


def test_the_esp32_touch_table_is_the_datasheets_t0_to_t9():
    touch = pins.CHIPS["esp32"]["touch"]
    assert [p for p, _ in sorted(touch.items(), key=lambda kv: int(kv[1][1:]))] == [
        4, 0, 2, 15, 13, 12, 14, 27, 33, 32]
    assert sorted(pins.CHIPS["esp32s3"]["touch"]) == list(range(1, 15))


def test_key_labels_follow_the_protocol_levels():
    assert [profile.level_label(i) for i in range(5)] == [
        "1 非常满意", "2 满意", "3 基本满意", "4 不满意", "5 非常不满意"]
