"""Each chip's GPIO rules as data: which pins exist, which only read, which touch-sense, which
must not be used (refused) and which may be used with care (warned about).

A pin is refused when using it can stop a terminal from booting, being flashed or being set up
over USB; a pin is warned about when it works but has a side effect at power-up a fitter should
know. The facts and their sources:

ESP32 (ESP-IDF "GPIO & RTC GPIO" page for the ESP32; ESP32 Series Datasheet, "Strapping Pins";
esptool docs, "Boot Mode Selection"; ESP FAQ "What should I pay attention to for ESP32 pin
configurations?"; ESP32-DevKitC V4 user guide, "Header Block"):
- GPIO 0-19, 21-23, 25-27, 32-39 exist (GPIO20 only on the ESP32-PICO-V3 package).
- GPIO34-39 are input-only and have no software pull-up or pull-down.
- GPIO6-11 are wired to the module's SPI flash; GPIO16/17 to the PSRAM of WROVER modules.
- Strapping pins 0, 2, 5, 12 (MTDI), 15 (MTDO). GPIO0 low at reset = serial download mode (and
  it is the BOOT button and the auto-reset line on DevKitC boards); GPIO2 must be low/floating for
  download; GPIO12 high at reset sets the flash regulator to 1.8 V and a 3.3 V flash browns out;
  GPIO15 low silences the ROM boot log; GPIO5 and GPIO15 set SDIO slave timing.
- GPIO1/3 are UART0 TX/RX: the USB serial link used to flash and set up a terminal.
- Touch channels T0..T9 = GPIO 4, 0, 2, 15, 13, 12, 14, 27, 33, 32.

ESP32-S3 (ESP-IDF "GPIO & RTC GPIO" page for the ESP32-S3; ESP32-S3 Series Datasheet, "Strapping
Pins"; esptool docs, "Set Flash Voltage" for the S3; ESP32-S3-DevKitC-1 v1.1 user guide):
- GPIO 0-21 and 26-48 exist; none is input-only, all have internal pull-ups.
- GPIO26-32 are wired to the SPI flash and PSRAM; with octal flash or PSRAM (WROOM-1 ...R8,
  WROOM-2) GPIO33-37 are used too.
- Strapping pins 0 (boot mode, the BOOT button), 3 (JTAG signal source), 45 (VDD_SPI: high at
  reset = 1.8 V flash supply) and 46 (boot mode and ROM log; must be low/floating to download).
- GPIO19/20 are USB D-/D+ (MicroPython's USB serial REPL on the S3); GPIO43/44 are UART0 TX/RX
  (the DevKitC-1's USB-to-UART bridge).
- Touch channels TOUCH1..TOUCH14 = GPIO1..GPIO14.
"""
from collections.abc import Iterable
from typing import TypedDict


class ChipRules(TypedDict):
    """One chip's GPIO rules. `touch` maps a GPIO to its touch channel name; `refused` and
    `warned` map a GPIO to the reason."""
    label: str
    gpios: frozenset[int]
    gpio_ranges: str
    input_only: frozenset[int]
    no_pull_up: frozenset[int]
    touch: dict[int, str]
    refused: dict[int, str]
    warned: dict[int, str]


def _span(first: int, last: int) -> list[int]:
    return list(range(first, last + 1))


def _reasons(pins: Iterable[int], reason: str) -> dict[int, str]:
    return dict.fromkeys(pins, reason)


_ESP32_REFUSED: dict[int, str] = {}
_ESP32_REFUSED.update(_reasons([1, 3], "UART0, the USB serial link that hcp uses to flash and set "
                                       "up the terminal"))
_ESP32_REFUSED.update(_reasons(_span(6, 11), "wired to the module's SPI flash (GPIO6-11); using it "
                                             "crashes the board"))
_ESP32_REFUSED[0] = ("strapping pin (boot mode): low at reset keeps the board in download mode; "
                     "it is also the BOOT button and the USB auto-reset line")
_ESP32_REFUSED[12] = ("strapping pin MTDI (flash voltage): high at reset selects 1.8 V and the "
                      "3.3 V flash browns out, so the board does not boot")
_ESP32_REFUSED.update(_reasons([37, 38], "not brought out on ESP32 modules (WROOM, WROVER) or on "
                                         "the DevKitC"))

_ESP32_WARNED = {
    2: "strapping pin: must be low or floating at reset for firmware download; keep it unloaded "
       "at power-up (some boards have an LED on it)",
    5: "strapping pin (SDIO timing, weak pull-up): do not pull it low at power-up",
    15: "strapping pin MTDO: low at reset silences the ROM boot log on the serial port",
    16: "wired to the PSRAM on ESP32-WROVER modules; use it only on WROOM boards",
    17: "wired to the PSRAM on ESP32-WROVER modules; use it only on WROOM boards",
}

_S3_REFUSED: dict[int, str] = {}
_S3_REFUSED[0] = ("strapping pin (boot mode): low at reset keeps the board in download mode; "
                  "it is also the BOOT button")
_S3_REFUSED[19] = "USB D- of the native USB port (MicroPython's USB serial REPL on the ESP32-S3)"
_S3_REFUSED[20] = "USB D+ of the native USB port (MicroPython's USB serial REPL on the ESP32-S3)"
_S3_REFUSED.update(_reasons(_span(26, 32), "wired to the module's SPI flash and PSRAM "
                                           "(GPIO26-32)"))
_S3_REFUSED.update(_reasons(_span(33, 37), "used by octal flash/PSRAM on ESP32-S3-WROOM-1 ...R8 "
                                           "and WROOM-2 modules (GPIO33-37); refused so that "
                                           "the profile works on every module"))
_S3_REFUSED[43] = "UART0 TX, the USB-to-UART bridge that hcp uses to flash and set up the terminal"
_S3_REFUSED[44] = "UART0 RX, the USB-to-UART bridge that hcp uses to flash and set up the terminal"
_S3_REFUSED[45] = ("strapping pin (VDD_SPI): high at reset powers the flash at 1.8 V and a 3.3 V "
                   "flash fails, so the board does not boot")

_S3_WARNED = {
    3: "strapping pin (JTAG signal source): keep it unpulled at power-up",
    46: "strapping pin (boot mode, ROM log; weak pull-down): pulled high at reset, firmware "
        "download fails",
}

# name -> the chip's rules. `touch` maps a GPIO to its touch channel name.
CHIPS: dict[str, ChipRules] = {
    "esp32": {
        "label": "ESP32",
        "gpios": frozenset(_span(0, 19) + _span(21, 23) + _span(25, 27) + _span(32, 39)),
        "gpio_ranges": "0-19, 21-23, 25-27, 32-39",
        "input_only": frozenset(_span(34, 39)),
        "no_pull_up": frozenset(_span(34, 39)),
        "touch": {4: "T0", 0: "T1", 2: "T2", 15: "T3", 13: "T4", 12: "T5", 14: "T6", 27: "T7",
                  33: "T8", 32: "T9"},
        "refused": _ESP32_REFUSED,
        "warned": _ESP32_WARNED,
    },
    "esp32s3": {
        "label": "ESP32-S3",
        "gpios": frozenset(_span(0, 21) + _span(26, 48)),
        "gpio_ranges": "0-21, 26-48",
        "input_only": frozenset(),
        "no_pull_up": frozenset(),
        "touch": {p: "TOUCH%d" % p for p in _span(1, 14)},
        "refused": _S3_REFUSED,
        "warned": _S3_WARNED,
    },
}


def usable_touch_pins(chip: str) -> list[int]:
    """The touch-capable GPIOs of a chip that are not refused, in ascending order."""
    rules = CHIPS[chip]
    return sorted(p for p in rules["touch"] if p not in rules["refused"])
