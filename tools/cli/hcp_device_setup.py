"""hcp device setup / ports / log: one guided set-up of a new board, the USB serial ports and
what is on them, and a terminal's console."""
from __future__ import annotations

import contextlib
import sys

import click

from haochaping.daemon.errors import HcpError
from haochaping.tools.cli._options import ACTOR, CONFIG
from haochaping.tools.cli.hcp_device import BROKER_DIR, _Bar, device


@device.command("ports")
def ports_cmd() -> None:
    """List this machine's serial ports and what is on them (ESP boards first).

    \b
    Example:
      hcp device ports
    """
    from haochaping.tools.device import ports
    found = ports.list_ports()
    if not found:
        click.echo("no serial ports: plug a board in with a data cable (a charge-only cable "
                   "shows nothing), then run this again")
        return
    for p in found:
        click.echo("%-16s %-9s %s" % (p["device"], p["usb"] or "-", p["what"]))


@device.command("log")
@click.option("--port", required=True, help="USB serial port of the board, e.g. /dev/ttyUSB0.")
@click.option("--seconds", type=click.FloatRange(0.1), help="Stop after this long [Ctrl-C].")
def log_cmd(port: str, seconds: float | None) -> None:
    """Show what a terminal writes to its serial console (boot, WiFi, broker, errors).

    \b
    Example:
      hcp device log --port /dev/ttyUSB0
    """
    from haochaping.tools.device import ports
    click.echo("console of %s (Ctrl-C stops):" % port, err=True)
    with contextlib.suppress(KeyboardInterrupt):   # Ctrl-C is how it ends
        ports.follow(port, click.echo, seconds)


@device.command("setup")
@click.option("--port", required=True, help="USB serial port of the board, e.g. /dev/ttyUSB0.")
@CONFIG
@click.option("--firmware", "image", type=click.Path(exists=True, dir_okay=False),
              help="A MicroPython image to flash first [skip: MicroPython is on the board].")
@click.option("--terminal", help="The terminal's id in this hall, e.g. T007.")
@click.option("--window", help="Pair it with this window, e.g. W03.")
@click.option("--profile", help="Board profile (`hcp hardware list`).")
@click.option("--wifi-ssid", help="The hall's WiFi for terminals.")
@click.option("--wifi-password", envvar="HCP_WIFI_PASSWORD",
              help="Its password; better set HCP_WIFI_PASSWORD (not in the shell history).")
@click.option("--open-wifi", is_flag=True, help="The hall's WiFi has no password.")
@click.option("--broker-host", help="The broker's IP address as the terminals reach it.")
@BROKER_DIR
@ACTOR
def setup_cmd(port: str, config_path: str, image: str | None, terminal: str | None,
              window: str | None, profile: str | None, wifi_ssid: str | None,
              wifi_password: str | None, open_wifi: bool, broker_host: str | None,
              broker_dir: str | None, actor: str | None) -> None:
    """A new board to a working terminal in one go: flash, install, provision.

    Asks for what is missing when run at a terminal; otherwise every missing option is named
    at once. Each step is the command of the same name (`hcp device flash`, `install`,
    `provision`): if one stops (a cable pulled), run the same setup again.

    \b
    Example:
      HCP_WIFI_PASSWORD=... hcp device setup --port /dev/ttyUSB0 --config hall.toml \\
          --firmware ESP32_GENERIC.bin --terminal T007 --window W03 \\
          --profile esp32-devkitc-buttons --wifi-ssid hall-iot --broker-host 10.0.0.2
    """
    from haochaping.tools.device import flash, install, provision
    asked = {"terminal": terminal, "profile": profile, "wifi_ssid": wifi_ssid,
             "broker_host": broker_host}
    missing = [k for k, v in asked.items() if not v]
    if wifi_password is None and not open_wifi:
        missing.append("wifi_password")
    if missing and not sys.stdin.isatty():
        raise HcpError("give %s (or run it at a terminal to be asked)" % ", ".join(
            "HCP_WIFI_PASSWORD" if k == "wifi_password" else "--" + k.replace("_", "-")
            for k in missing))
    for k in missing:
        asked[k] = click.prompt(
            "WiFi password (Enter alone: the WiFi has none)" if k == "wifi_password"
            else k.replace("_", " "), hide_input=k == "wifi_password",
            default="" if k == "wifi_password" else None, show_default=False)
    if "wifi_password" in missing:
        wifi_password = asked.pop("wifi_password") or None
        open_wifi = wifi_password is None
    steps = 3 if image else 2
    n = 1
    if image:
        flash.load_image(image)
        flash.check_port(port)
        with _Bar("%d/%d flashing %s" % (n, steps, port)) as bar:
            flash.flash(port, image, on_progress=bar)
            bar(1, 1)
        n += 1
    with _Bar("%d/%d installing the terminal's files" % (n, steps)) as bar:
        install.install(port, on_progress=bar)
        bar(1, 1)
    n += 1
    with _Bar("%d/%d provisioning %s" % (n, steps, asked["terminal"])) as bar:
        done = provision.provision(
            port, config_path, str(asked["terminal"]), str(asked["profile"]), window=window,
            wifi_ssid=asked["wifi_ssid"], wifi_password=wifi_password,
            broker_host=asked["broker_host"], broker_dir=broker_dir, actor=actor,
            open_wifi=open_wifi, on_step=lambda i, what: bar(i, len(provision.STEPS)))
        bar(1, 1)
    click.echo("%s is terminal %s of hall %s (%s)%s. Watch it join: `hcp device log --port %s`,"
               " then `hcp terminals --config %s`" % (
                   port, asked["terminal"], done["hall"], done["board"],
                   ", paired with window %s" % window if window else "", port, config_path))
