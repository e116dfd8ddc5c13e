"""The reference development board drawn for each chip: its module and its two pin headers, top
to bottom, as printed on the board (GPIO numbers as ints, power and control pins as text).

Sources: ESP32-DevKitC V4 user guide, "Header Block" (J1, J3); ESP32-S3-DevKitC-1 v1.1 user
guide, "Header Block" (J1, J3). The v1.0 DevKitC-1 drives its RGB LED from GPIO48, v1.1 from
GPIO38; the headers are the same.
"""
from typing import Literal, TypedDict

Side = Literal["left", "right"]
_SIDES: tuple[Side, Side] = ("left", "right")


class Board(TypedDict):
    """One reference board: its label, its module, and each header as (name, pins top to
    bottom)."""
    label: str
    module: str
    left: tuple[str, list[int | str]]
    right: tuple[str, list[int | str]]


BOARDS: dict[str, Board] = {
    "esp32": {
        "label": "ESP32-DevKitC V4",
        "module": "ESP32-WROOM-32E",
        "left": ("J1", ["3V3", "EN", 36, 39, 34, 35, 32, 33, 25, 26, 27, 14, 12, "GND", 13, 9, 10,
                        11, "5V"]),
        "right": ("J3", ["GND", 23, 22, 1, 3, 21, "GND", 19, 18, 5, 17, 16, 4, 0, 2, 15, 8, 7,
                         6]),
    },
    "esp32s3": {
        "label": "ESP32-S3-DevKitC-1",
        "module": "ESP32-S3-WROOM-1",
        "left": ("J1", ["3V3", "3V3", "RST", 4, 5, 6, 7, 15, 16, 17, 18, 8, 3, 46, 9, 10, 11, 12,
                        13, 14, "5V", "GND"]),
        "right": ("J3", ["GND", 43, 44, 1, 2, 42, 41, 40, 39, 38, 37, 36, 35, 0, 45, 48, 47, 21,
                         20, 19, "GND", "GND"]),
    },
}


def header_position(chip: str, pin: int) -> tuple[Side, int] | None:
    """(side, row) of a GPIO on the chip's reference board, side "left" or "right"; None if the
    board does not bring the pin out."""
    board = BOARDS[chip]
    for side in _SIDES:
        pins = board[side][1]
        if pin in pins:
            return side, pins.index(pin)
    return None
