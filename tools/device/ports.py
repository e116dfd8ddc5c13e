"""USB serial ports and what is on them (`hcp device ports`), and a terminal's console
(`hcp device log`): what hall IT needs before and after plugging a board in."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypedDict

from haochaping.daemon.errors import HcpError

# USB bridges and native USB of the boards hall IT meets, by USB vendor:product id
BRIDGES = {
    (0x10C4, 0xEA60): "CP210x USB-UART (ESP32 DevKitC and most ESP32 boards)",
    (0x1A86, 0x7523): "CH340 USB-UART (low-cost ESP32 boards)",
    (0x1A86, 0x55D4): "CH9102 USB-UART (ESP32 boards)",
    (0x0403, 0x6001): "FTDI FT232 USB-UART",
    (0x0403, 0x6010): "FTDI FT2232 (ESP-Prog, ESP-WROVER-KIT)",
    (0x303A, 0x1001): "ESP32-S3/C3 built-in USB serial",
    (0x303A, 0x4001): "ESP32-S2/S3 MicroPython USB (TinyUSB)",
}


class Port(TypedDict):
    device: str
    what: str          # the chip or bridge in words
    usb: str           # vid:pid, or "" for a port that is not USB
    likely_esp: bool   # a bridge or native USB that ESP boards use


def describe(device: str, vid: int | None, pid: int | None, description: str) -> Port:
    """One port in hall IT's words (pure: tests give it what pyserial reports)."""
    if vid is None or pid is None:
        return {"device": device, "what": description or "not a USB port", "usb": "",
                "likely_esp": False}
    known = BRIDGES.get((vid, pid))
    if known is None and vid == 0x303A:
        known = "Espressif native USB"
    return {"device": device, "what": known or description or "unknown USB serial device",
            "usb": "%04x:%04x" % (vid, pid), "likely_esp": known is not None}


def list_ports() -> list[Port]:
    """The machine's serial ports, ESP-looking ones first."""
    from serial.tools import list_ports as lp
    ports = [describe(p.device, p.vid, p.pid, p.description or "") for p in lp.comports()]
    return sorted(ports, key=lambda p: (not p["likely_esp"], p["device"]))


def follow(port: str, out: Callable[[str], object], seconds: float | None = None,
           baud: int = 115200) -> int:
    """Print what the board on `port` writes to its console, line by line, until `seconds`
    pass (None: until Ctrl-C). Returns the lines seen. A port that cannot be opened or goes
    away is an HcpError saying so."""
    import serial

    from haochaping.tools.device.flash import check_port
    check_port(port)
    try:
        s = serial.Serial(port, baud, timeout=0.2)
    except (serial.SerialException, OSError) as e:
        raise HcpError("cannot open %s (%s): is no serial monitor (or another hcp) using it?"
                       % (port, e)) from None
    n = 0
    end = None if seconds is None else time.monotonic() + seconds
    partial = b""
    try:
        while end is None or time.monotonic() < end:
            try:
                chunk = s.read(4096)
            except (serial.SerialException, OSError) as e:
                raise HcpError("%s went away (%s): the board was unplugged or reset its USB"
                               % (port, e)) from None
            partial += chunk
            *lines, partial = partial.split(b"\n")
            for raw in lines:
                out(raw.rstrip(b"\r").decode("utf-8", "replace"))
                n += 1
    finally:
        s.close()
    if partial:
        out(partial.rstrip(b"\r").decode("utf-8", "replace"))
        n += 1
    return n
