"""Wiring diagrams (SVG) and bills of materials (CSV) for board profiles.

`svg(profile)` and `bom_csv(profile)` are pure: a valid profile in, the same text out every time
(the committed diagrams in hardware/diagrams are checked against them). `write()` is the thin
shell that puts both in a folder. An invalid profile is refused with every problem named.
"""
import csv
import io
import os
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from haochaping.daemon.errors import HcpError
from haochaping.hardware import boards, pins
from haochaping.hardware.boards import Side
from haochaping.hardware.profile import LEVEL_EN, PinUse, Profile, level_label, pin_uses
from haochaping.hardware.validate import Problem, require_valid

W = 1160                 # canvas width
ROW = 32                 # pitch of the header pins
TOP = 96                 # top of the board
BOARD_X, BOARD_W = 440, 280
CHAIN = 20               # gap between the board edge and the start of a component chain
LABEL_AT = 150           # where the labels start, counted from the start of the chain
FONT = "'Noto Sans CJK SC','Source Han Sans SC','Microsoft YaHei','PingFang SC',sans-serif"

LEVEL_COLOURS = ("#2e7d32", "#7cb342", "#f9a825", "#ef6c00", "#c62828")
COLOURS = {"button": "#1565c0", "touch": "#b8652a", "ws2812": "#6a1b9a", "buzzer": "#00838f",
           "status_led": "#5c6bc0", "display": "#d81b60"}
REFUSED, WARNED, FREE = "#c62828", "#e69500", "#9e9e9e"

# x of a point `d` along a component chain, away from the board (the chain runs left or right)
Chain = Callable[[int], int]
# a bill of materials line: (part, quantity, value, notes)
BomRow = tuple[str, int, str, str]


def _text(x: int, y: int, s: str, size: int = 12, anchor: str = "start", fill: str = "#212121",
          weight: str = "normal") -> str:
    return ('<text x="%d" y="%d" font-size="%s" text-anchor="%s" fill="%s" font-weight="%s">%s'
            '</text>' % (x, y, size, anchor, fill, weight, escape(s)))


def _line(x1: int, y1: int, x2: int, y2: int, stroke: str = "#212121",
          width: float = 1.5) -> str:
    return ('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="%s"/>'
            % (x1, y1, x2, y2, stroke, width))


def _ground(x: int, y: int) -> list[str]:
    """The ground symbol hanging below (x, y)."""
    return [_line(x, y, x, y + 6), _line(x - 7, y + 6, x + 7, y + 6),
            _line(x - 4, y + 9, x + 4, y + 9), _line(x - 1, y + 12, x + 1, y + 12)]


def _resistor(X: Chain, y: int, value: str, colour: str) -> list[str]:
    left, right = sorted((X(12), X(44)))
    return [_line(X(0), y, X(12), y, colour, 2),
            '<rect x="%d" y="%d" width="%d" height="10" fill="#fff" stroke="#212121"/>'
            % (left, y - 5, right - left),
            _text((left + right) // 2, y - 8, value, 9, "middle", "#424242"),
            _line(X(44), y, X(56), y, colour, 2)]


def _led(X: Chain, y: int, colour: str, fill: str) -> list[str]:
    tip = X(70)
    return ['<polygon points="%d,%d %d,%d %d,%d" fill="%s" stroke="#212121"/>'
            % (X(56), y - 7, X(56), y + 7, tip, y, fill),
            _line(tip, y - 7, tip, y + 7, "#212121", 2),
            _line(X(62), y - 9, X(67), y - 15, "#212121", 1),
            _line(X(67), y - 9, X(72), y - 15, "#212121", 1),
            _line(tip, y, X(90), y, colour, 2)] + _ground(X(90), y)


def _button(X: Chain, y: int, colour: str) -> list[str]:
    return [_line(X(0), y, X(30), y, colour, 2),
            '<circle cx="%d" cy="%d" r="3" fill="#fff" stroke="#212121"/>' % (X(32), y),
            '<circle cx="%d" cy="%d" r="3" fill="#fff" stroke="#212121"/>' % (X(62), y),
            _line(X(34), y - 2, X(60), y - 11, "#212121", 2),
            _line(X(47), y - 7, X(47), y - 14, "#212121", 1.5),
            _line(X(41), y - 14, X(53), y - 14, "#212121", 2),
            _line(X(65), y, X(90), y, "#212121", 1.5)] + _ground(X(90), y)


def _touch(X: Chain, y: int, colour: str, channel: str) -> list[str]:
    left, right = sorted((X(60), X(100)))
    return [_line(X(0), y, X(60), y, colour, 2),
            '<rect x="%d" y="%d" width="%d" height="22" rx="4" fill="%s" stroke="#5d3a1a"/>'
            % (left, y - 11, right - left, colour),
            _text((left + right) // 2, y + 4, channel, 10, "middle", "#fff", "bold")]


def _strip(X: Chain, y: int, count: int) -> list[str]:
    left, right = sorted((X(56), X(136)))
    out = ['<rect x="%d" y="%d" width="%d" height="18" rx="2" fill="#eeeeee" stroke="#212121"/>'
           % (left, y - 9, right - left)]
    for i in range(min(count, 5)):
        out.append('<rect x="%d" y="%d" width="10" height="10" fill="%s" stroke="#424242"/>'
                   % (left + 6 + 15 * i, y - 5, LEVEL_COLOURS[i]))
    return out


def _buzzer(X: Chain, y: int, colour: str) -> list[str]:
    return [_line(X(0), y, X(12), y, colour, 2)] + _resistor(X, y, "1 kΩ", colour)[1:] + [
        '<circle cx="%d" cy="%d" r="10" fill="#fff" stroke="#212121"/>' % (X(66), y),
        _text(X(66), y + 4, "Q", 10, "middle"),
        _line(X(76), y, X(88), y, "#212121", 1.5),
        '<circle cx="%d" cy="%d" r="12" fill="%s" stroke="#212121"/>' % (X(100), y, colour),
        _text(X(100), y + 4, "BZ", 9, "middle", "#fff", "bold")]


def _display(X: Chain, y: int, colour: str, line: str) -> list[str]:
    left, right = sorted((X(40), X(110)))
    return [_line(X(0), y, X(40), y, colour, 2),
            '<rect x="%d" y="%d" width="%d" height="20" rx="3" fill="%s"/>'
            % (left, y - 10, right - left, colour),
            _text((left + right) // 2, y + 4, "OLED " + line, 10, "middle", "#fff", "bold")]


def _component(use: PinUse, profile: Profile, X: Chain,
               y: int) -> tuple[list[str], str, str, str]:
    """Symbols, colour, label and sub-label for one pin use."""
    role, _label, pin, kind = use
    if role.startswith("keys["):
        i = int(role[5])
        if kind == "touch":
            channel = pins.CHIPS[profile["chip"]]["touch"][pin]
            c = COLOURS["touch"]
            return (_touch(X, y, c, channel), c, level_label(i),
                    "%s · touch pad %s" % (LEVEL_EN[i], channel))
        c = COLOURS["button"]
        return _button(X, y, c), c, level_label(i), "%s · push button to GND" % LEVEL_EN[i]
    if role.startswith("leds["):
        i = int(role[5])
        c = LEVEL_COLOURS[i]
        return (_resistor(X, y, "330 Ω", c) + _led(X, y, c, c), c, "LED " + level_label(i),
                "%s · 330 Ω, LED to GND" % LEVEL_EN[i])
    if role == "ws2812.pin":
        c = COLOURS["ws2812"]
        count = profile["ws2812"]["count"]
        return (_resistor(X, y, "330 Ω", c) + _strip(X, y, count), c,
                "WS2812 × %d 灯带 (DIN)" % count, "330 Ω in series · strip on 5V + GND")
    if role == "buzzer":
        c = COLOURS["buzzer"]
        return (_buzzer(X, y, c), c, "Buzzer 蜂鸣器",
                "1 kΩ to NPN base · buzzer 3V3 → collector")
    if role == "status_led":
        c = COLOURS["status_led"]
        return (_resistor(X, y, "330 Ω", c) + _led(X, y, c, "#90caf9"), c, "Status LED 状态灯",
                "330 Ω, LED to GND")
    line = role.split(".")[1].upper()
    c = COLOURS["display"]
    return (_display(X, y, c, line), c, "OLED %s 显示屏" % line,
            "SSD1306, I²C, on 3V3 + GND")


def _notes(profile: Profile, warnings: Iterable[Problem]) -> list[str]:
    chip = profile["chip"]
    rules = pins.CHIPS[chip]
    board = boards.BOARDS[chip]
    notes = []
    if profile["input"] == "buttons":
        text = ("Keys 按键: one push button between each GPIO and GND. The firmware turns on "
                "the internal pull-up, so no resistor is needed.")
        if rules["no_pull_up"]:
            text += (" GPIO%d-%d have no pull-up and are refused for keys."
                     % (min(rules["no_pull_up"]), max(rules["no_pull_up"])))
        notes.append(text)
    else:
        notes.append("Touch pads 触摸: a copper pad of about 15 × 15 mm behind at most 3 mm of "
                     "acrylic or glass per key; keep each wire short (≤ 10 cm) and apart from the "
                     "others.")
    notes.append("Key order: left to right 1 非常满意, 2 满意, 3 基本满意, 4 不满意, "
                 "5 非常不满意, as in the profile's \"keys\" list.")
    if "leds" in profile or "status_led" in profile:
        notes.append("LEDs: GPIO → 330 Ω → LED anode (long leg); cathode (short leg) to GND.")
    if "ws2812" in profile:
        notes.append("WS2812: strip on 5V and GND with 1000 µF across them; data from the GPIO "
                     "through 330 Ω to DIN. If the strip flickers, add a 74AHCT125 level shifter.")
    if "buzzer" in profile:
        notes.append("Buzzer: passive buzzer from 3V3 to the collector of an NPN (S8050), 1N4148 "
                     "across the buzzer, emitter to GND, base through 1 kΩ from the GPIO.")
    if "display" in profile:
        notes.append("Display: SSD1306 I²C module (address 0x3C) on 3V3 and GND; the module "
                     "carries the I²C pull-ups.")
    notes.append("Pins: coloured = used here; red = not usable on the %s (flash, USB serial, "
                 "boot%s); amber = usable with care; grey = free."
                 % (rules["label"], ", input-only" if rules["input_only"] else ""))
    notes.append("Drawn on the %s (%s); any %s board works if it brings out the same GPIOs."
                 % (board["label"], board["module"], rules["label"]))
    for w in warnings:
        notes.append("⚠ " + str(w))
    return notes


def _header(chip: str, side: Side, used: dict[int, str], x: int, first_y: int) -> list[str]:
    """Pads and labels of one header; used maps GPIO -> colour."""
    rules = pins.CHIPS[chip]
    name, row_pins = boards.BOARDS[chip][side]
    out = [_text(x, first_y - 22, name, 11, "middle", "#cfd8dc", "bold")]
    label_x, anchor = (x + 14, "start") if side == "left" else (x - 14, "end")
    for row, p in enumerate(row_pins):
        y = first_y + row * ROW
        if isinstance(p, str):
            fill, stroke, label, colour = "#fff", "#fff", p, "#ffffff"
        elif p in used:
            fill, stroke, label, colour = used[p], "#fff", "GPIO%d" % p, "#ffffff"
        elif p in rules["refused"] or p in rules["input_only"] or p not in rules["gpios"]:
            fill, stroke, label, colour = "#4a1f1f", REFUSED, "GPIO%d" % p, "#ef9a9a"
        elif p in rules["warned"]:
            fill, stroke, label, colour = "#4a3a12", WARNED, "GPIO%d" % p, "#ffe082"
        else:
            fill, stroke, label, colour = "#37474f", FREE, "GPIO%d" % p, "#b0bec5"
        weight = "bold" if p in used and not isinstance(p, str) else "normal"
        out.append('<rect x="%d" y="%d" width="12" height="12" rx="2" fill="%s" stroke="%s" '
                   'stroke-width="1.5"/>' % (x - 6, y - 6, fill, stroke))
        out.append(_text(label_x, y + 4, label, 11, anchor, colour, weight))
    return out


def _source(profile: object) -> str:
    name = profile.get("name") if isinstance(profile, dict) else None
    return name if isinstance(name, str) else "profile"


def svg(profile: Profile) -> str:
    """The wiring diagram of a valid profile, as an SVG document (text)."""
    warnings = require_valid(profile, _source(profile))
    chip = profile["chip"]
    board = boards.BOARDS[chip]
    rows = max(len(board["left"][1]), len(board["right"][1]))
    first_y = TOP + 150
    board_h = 150 + (rows - 1) * ROW + 60
    notes: list[str] = []
    for n in _notes(profile, warnings):
        notes.extend(textwrap.wrap(n, 150, subsequent_indent="    "))
    legend_y = TOP + board_h + 40
    height = legend_y + 40 + 19 * len(notes) + 20

    body = [_text(20, 38, "好差评 terminal wiring · %s" % profile["name"], 22, weight="bold"),
            _text(20, 62, profile["description"], 13, fill="#424242"),
            _text(20, 82, "%s · %s input · keys in level order 1-5"
                  % (pins.CHIPS[chip]["label"], profile["input"]), 12, fill="#616161")]
    # the board
    body.append('<rect x="%d" y="%d" width="%d" height="%d" rx="10" fill="#1e3a5f"/>'
                % (BOARD_X, TOP, BOARD_W, board_h))
    mx, mw = BOARD_X + 60, BOARD_W - 120
    body.append('<rect x="%d" y="%d" width="%d" height="26" fill="#90a4ae"/>'
                % (mx, TOP + 12, mw))
    body.append(_text(BOARD_X + BOARD_W // 2, TOP + 30, "antenna 天线", 10, "middle", "#263238"))
    body.append('<rect x="%d" y="%d" width="%d" height="78" fill="#cfd8dc" stroke="#90a4ae"/>'
                % (mx, TOP + 38, mw))
    body.append(_text(BOARD_X + BOARD_W // 2, TOP + 72, board["module"], 11, "middle",
                      "#263238", "bold"))
    body.append(_text(BOARD_X + BOARD_W // 2, TOP + 92, board["label"], 10, "middle", "#37474f"))
    usb_y = TOP + board_h - 30
    body.append('<rect x="%d" y="%d" width="56" height="30" rx="3" fill="#b0bec5" '
                'stroke="#eceff1"/>' % (BOARD_X + BOARD_W // 2 - 28, usb_y))
    body.append(_text(BOARD_X + BOARD_W // 2, usb_y + 19, "USB", 11, "middle", "#263238", "bold"))

    used: dict[int, str] = {}
    wiring: list[str] = []
    for use in pin_uses(profile):
        pin = use[2]
        position = boards.header_position(chip, pin)
        # every pin a valid profile may use is on the board's headers (tests check each chip)
        assert position is not None, "GPIO%d is not on the %s headers" % (pin, chip)
        side, row = position
        y = first_y + row * ROW
        if side == "left":
            pad_x, edge, s = BOARD_X + 18, BOARD_X, -1
        else:
            pad_x, edge, s = BOARD_X + BOARD_W - 18, BOARD_X + BOARD_W, 1
        x0 = edge + s * CHAIN

        def X(d: int, x0: int = x0, s: int = s) -> int:
            return x0 + s * d

        parts, colour, label, sub = _component(use, profile, X, y)
        used[pin] = colour
        wiring.append(_line(pad_x, y, x0, y, colour, 2))
        wiring.extend(parts)
        anchor = "start" if s > 0 else "end"
        wiring.append(_text(X(LABEL_AT), y - 1, label, 13, anchor, "#212121", "bold"))
        wiring.append(_text(X(LABEL_AT), y + 12, sub, 10, anchor, "#616161"))
    body.extend(wiring)
    body.extend(_header(chip, "left", used, BOARD_X + 18, first_y))
    body.extend(_header(chip, "right", used, BOARD_X + BOARD_W - 18, first_y))

    # legend and notes
    body.append('<rect x="20" y="%d" width="%d" height="%d" rx="6" fill="#fafafa" '
                'stroke="#bdbdbd"/>' % (legend_y, W - 40, height - legend_y - 20))
    body.append(_text(36, legend_y + 24, "Legend and notes 图例与说明", 14, weight="bold"))
    for i, n in enumerate(notes):
        warn = n.startswith("⚠")
        body.append(_text(36, legend_y + 46 + 19 * i, n, 12, fill="#b26a00" if warn else "#212121"))

    head = ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
            'font-family=%s>\n<title>%s</title>\n'
            '<rect width="100%%" height="100%%" fill="#ffffff"/>\n'
            % (W, height, W, height, quoteattr(FONT), escape("wiring: " + profile["name"])))
    return head + "\n".join(body) + "\n</svg>\n"


def bom_rows(profile: Profile) -> list[BomRow]:
    """The bill of materials of a valid profile: [(part, quantity, value, notes)], parts with the
    same name and value merged."""
    require_valid(profile, _source(profile))
    chip = profile["chip"]
    board = boards.BOARDS[chip]
    label = pins.CHIPS[chip]["label"]
    items = [("Development board", 1, "%s (%s)" % (board["label"], board["module"]),
              "any %s board that brings out the GPIOs in the diagram" % label),
             ("USB cable", 1, "with data lines", "to flash and set up the terminal; charge-only "
                                                 "cables do not work"),
             ("USB power supply", 1, "5 V, 1 A or more", "powers the terminal at the window")]
    if profile["input"] == "buttons":
        items.append(("Push button", 5, "momentary, normally open (12 mm tactile or 24 mm "
                                        "arcade)", "one per key, GPIO to GND; internal pull-up"))
    else:
        items.append(("Touch pad", 5, "copper pad, about 15 × 15 mm",
                      "behind at most 3 mm of acrylic or glass; wire 10 cm or shorter"))
    items.append(("Key label", 5, "1 非常满意 / 2 满意 / 3 基本满意 / 4 不满意 / 5 非常不满意",
                  "one per key, in this order"))
    if "leds" in profile:
        items.append(("LED", 5, "5 mm, green / yellow / red", "one per level, cathode to GND"))
        items.append(("Resistor", 5, "330 Ω, 1/4 W", "in series with each LED"))
    if "status_led" in profile:
        items.append(("LED", 1, "3 mm, blue", "status LED, cathode to GND"))
        items.append(("Resistor", 1, "330 Ω, 1/4 W", "in series with the status LED"))
    if "ws2812" in profile:
        count = profile["ws2812"]["count"]
        items.append(("WS2812B LED strip", 1, "%d LEDs, 5 V" % count,
                      "5V and GND from the board; DIN from the GPIO"))
        items.append(("Resistor", 1, "330 Ω, 1/4 W", "in series on the strip's data line"))
        items.append(("Electrolytic capacitor", 1, "1000 µF, 10 V", "across the strip's 5V and "
                                                                    "GND"))
    if "buzzer" in profile:
        items.append(("Passive buzzer", 1, "magnetic, 3-5 V", "driven by PWM, from 3V3 to the "
                                                               "transistor's collector"))
        items.append(("NPN transistor", 1, "S8050 (or 2N2222)", "switches the buzzer"))
        items.append(("Resistor", 1, "1 kΩ, 1/4 W", "transistor base resistor"))
        items.append(("Diode", 1, "1N4148", "across the buzzer"))
    if "display" in profile:
        items.append(("OLED display", 1, "SSD1306 128 × 64, I²C, 3.3 V",
                      "module with on-board pull-ups, address 0x3C"))
    items.append(("Jumper wire", 2 * len(pin_uses(profile)) + 4, "Dupont, 20 cm",
                  "about one per line in the diagram, plus power and ground"))
    quantity: dict[tuple[str, str], int] = {}       # (part, value) -> quantity, in first-seen order
    notes: dict[tuple[str, str], list[str]] = {}
    for part, qty, value, note in items:
        key = (part, value)
        quantity[key] = quantity.get(key, 0) + qty
        notes.setdefault(key, []).append(note)
    return [(part, qty, value, "; ".join(notes[part, value]))
            for (part, value), qty in quantity.items()]


def bom_csv(profile: Profile) -> str:
    """The bill of materials of a valid profile as CSV text with a header row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("part", "quantity", "value", "notes"))
    writer.writerows(bom_rows(profile))
    return out.getvalue()


def file_names(name: str) -> tuple[str, str]:
    return name + ".svg", name + "-bom.csv"


def write(profile: Profile, out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write <name>.svg and <name>-bom.csv into out_dir (created if missing); return both paths."""
    drawing, bom = svg(profile), bom_csv(profile)
    out = Path(out_dir)
    svg_name, bom_name = file_names(profile["name"])
    svg_path, bom_path = out / svg_name, out / bom_name
    try:
        out.mkdir(parents=True, exist_ok=True)
        svg_path.write_text(drawing, encoding="utf-8")
        bom_path.write_text(bom, encoding="utf-8")
    except OSError as e:
        raise HcpError("cannot write the diagram into %s: %s" % (out, e.strerror or e)) from None
    return svg_path, bom_path
