"""hcp device: set up a terminal over USB serial (flash, install, provision) and replace one."""
from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

import click

from haochaping.tools.cli import cli
from haochaping.tools.cli._options import ACTOR, CONFIG, hall_db
from haochaping.tools.device import fleet

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

BROKER_DIR = click.option("--broker-dir", type=click.Path(file_okay=False),
                          help="The hall's broker folder [broker/ next to hall.toml].")


@cli.group()
def device() -> None:
    """Set up terminals over USB serial: flash, install, provision; replace a broken one.

    \b
    Example:
      hcp device flash --port /dev/ttyUSB0 --firmware ESP32_GENERIC.bin
      hcp device install --port /dev/ttyUSB0
      hcp device provision --port /dev/ttyUSB0 --terminal T007 --window W03 --profile esp32-devkitc-buttons
    """  # noqa: E501  (the example is one command line in --help)


@device.command("replace")
@CONFIG
@BROKER_DIR
@click.option("--old", required=True, help="The terminal being taken away, e.g. T001.")
@click.option("--new", required=True, help="The provisioned terminal taking its place, e.g. T031.")
@ACTOR
def replace(config_path: str, broker_dir: str | None, old: str, new: str,
            actor: str | None) -> None:
    """Move a terminal's window to a new board and revoke the old board at once.

    The old board's ratings are refused from then on (as from an unknown terminal) and its
    broker login is removed (the broker is reloaded). Provision the new board first.

    \b
    Example:
      hcp device replace --config hall.toml --old T001 --new T031
    """
    conn = hall_db(config_path)
    window, pid = fleet.replace(conn, fleet.broker_folder(config_path, broker_dir), old, new,
                                  fleet.who(actor))
    click.echo("%s replaces %s%s; %s is revoked at the daemon and the broker%s" % (
        new, old, " at window %s" % window if window else " (it had no window)", old,
        "" if pid else " (no running broker found: the change applies when it starts)"))


class _Bar:
    """A click progress bar fed with (done, total) pairs from the library, shown in percent."""

    def __init__(self, label: str) -> None:
        self.bar: ProgressBar[int] = click.progressbar(length=100, label=label, show_percent=True,
                                                       show_eta=False)
        self.shown: int = 0              # the percentage shown so far

    def __call__(self, done: int, total: int) -> None:
        pct = int(100 * done / total) if total else 100
        if pct > self.shown:
            self.bar.update(pct - self.shown)
            self.shown = pct

    def __enter__(self) -> _Bar:
        self.bar.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.bar.__exit__(exc_type, exc, tb)


@device.command("flash")
@click.option("--port", required=True, help="USB serial port of the board, e.g. /dev/ttyUSB0.")
@click.option("--firmware", "image", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The MicroPython image (.bin) for the board's chip.")
@click.option("--baud", default=460800, show_default=True, help="Baud rate for the write.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="hall.toml: with --terminal, checks that terminal's backlog is delivered "
                   "before a change of partition layout.")
@click.option("--terminal", help="The terminal on this board, e.g. T007 (with --config).")
@click.option("--discard-files", is_flag=True,
              help="Write an image with another partition layout even though the board's "
                   "config and undelivered ratings are lost.")
@click.option("--journal-partition", is_flag=True,
              help="Give the board the journal ring's partition (hcpjournal, 128 KB carved from "
                   "the end of vfs): the terminal's flash writes then never erase while a "
                   "citizen is choosing. A layout change: the backlog must be delivered first.")
def flash_cmd(port: str, image: str, baud: int, config_path: str | None, terminal: str | None,
              discard_files: bool, journal_partition: bool) -> None:
    """Write a MicroPython image to a board, after checking its chip and partition layout.

    It reports the image's partition table: with an OTA layout (ESP32_GENERIC-OTA) the
    terminal can later take MicroPython itself over the air (`hcp device update --image`);
    with the stock one it cannot. The board's file system (config, journal of undelivered
    ratings) is kept when the layout stays; an image with another layout is refused unless the
    terminal's backlog is 0 (--config, --terminal) or --discard-files. Running it again is
    safe: an image already on the board is not written twice.

    With --journal-partition the image's partition table is rewritten before the write: vfs
    ends 128 KB sooner and the `hcpjournal` data partition takes those 128 KB, where the
    terminal keeps its journal as a ring of raw sectors (docs/firmware.md, "Journal on a raw
    partition"). Give it on every later flash of that board too (else the layout changes
    back).

    \b
    Example:
      hcp device flash --port /dev/ttyUSB0 --firmware ESP32_GENERIC-OTA-v1.24.1.bin
      hcp device flash --port /dev/ttyUSB0 --firmware ESP32_GENERIC-OTA-v1.24.1.bin \\
          --journal-partition --config hall.toml --terminal T007
    """
    import os
    import tempfile

    from haochaping.tools.device import flash, partitions
    data, _, offset = flash.load_image(image)   # a bad image or a missing port: refused first
    lay = partitions.image_table(data, offset, image)
    written = image
    if journal_partition:
        data, lay = partitions.journal_image(data, offset, image)
    flash.check_port(port)
    if (config_path is None) != (terminal is None):
        raise click.UsageError("--config and --terminal go together")
    ok = discard_files
    if config_path is not None and terminal is not None:
        flash.check_backlog(config_path, terminal)
        ok = True
    click.echo("%s: %s" % (image, partitions.describe(lay)))
    if lay["ota"]:
        click.echo("OTA layout: MicroPython itself can be updated over the air "
                   "(`hcp device update --image`)")
    else:
        click.echo("no OTA layout: MicroPython itself cannot be updated over the air on this "
                   "board (only the app); for that, flash the OTA variant (ESP32_GENERIC-OTA-"
                   "<version>.bin from micropython.org)")
    tmp = None
    if journal_partition:
        j = lay["journal"]
        assert j is not None
        click.echo("journal ring: %s %d KB at 0x%x (the terminal keeps its journal there)"
                   % (j["label"], j["size"] // 1024, j["offset"]))
        tmp = tempfile.mkdtemp(prefix="hcp-flash-")
        written = os.path.join(tmp, os.path.basename(image).rsplit(".", 1)[0]
                               + "-hcpjournal.bin")
        with open(written, "wb") as f:
            f.write(data)
    try:
        with _Bar("flashing %s" % port) as bar:
            done = flash.flash(port, written, on_progress=bar, baud=baud, new_layout_ok=ok)
            bar(1, 1)
    except flash.LayoutChange as e:
        if journal_partition or partitions.JOURNAL_LABEL not in str(e).split("the image:")[0]:
            raise
        raise flash.LayoutChange("%s. The board has the journal ring's partition (%s): add "
                                 "--journal-partition to keep its layout" % (
                                     str(e).rstrip("."), partitions.JOURNAL_LABEL)) from None
    finally:
        if tmp is not None:
            os.unlink(written)
            os.rmdir(tmp)
    if done["skipped"]:
        click.echo("%s already holds this image (%s): nothing written. Next: `hcp device install "
                   "--port %s`" % (port, done["chip"], port))
        return
    click.echo("wrote %d bytes at 0x%x to the %s on %s, verified." % (
        done["bytes"], done["offset"], done["chip"], port))
    if done["fs_lost"]:
        click.echo("the partition layout changed (it was: %s): the board's files are gone. "
                   "Next: `hcp device install --port %s`, then `hcp device provision` again "
                   "(with --again)" % (partitions.describe(done["board_layout"] or lay), port))
    else:
        click.echo("Next: `hcp device install --port %s`" % port)


@device.command("install")
@click.option("--port", required=True, help="USB serial port of the board, e.g. /dev/ttyUSB0.")
@click.option("--no-reset", is_flag=True, help="Do not restart the board afterwards.")
def install_cmd(port: str, no_reset: bool) -> None:
    """Compile the terminal's files for the board's MicroPython and upload what changed.

    Files are compiled with mpy-cross, uploaded over the raw REPL (mpremote), each one written
    beside the old and renamed over it, and every file's SHA-256 is checked on the board. The
    board's config and journal are kept. Running it again uploads only what differs.

    \b
    Example:
      hcp device install --port /dev/ttyUSB0
    """
    from haochaping.tools.device import install
    with _Bar("installing on %s" % port) as bar:
        done = install.install(port, on_progress=bar, reset=not no_reset)
        bar(1, 1)
    if not done["uploaded"] and not done["removed"]:
        click.echo("the board on %s (MicroPython %s) is up to date: %d files checked"
                   % (port, done["version"], done["files"]))
    else:
        click.echo("installed on %s (MicroPython %s): %d of %d files uploaded (%d bytes), %d old "
                   "removed, every file's SHA-256 checked%s" % (
                       port, done["version"], len(done["uploaded"]), done["files"], done["bytes"],
                       len(done["removed"]), "; the board restarts" if done["rebooted"] else ""))
    click.echo("Next: `hcp device provision --port %s --terminal T... --window W... --profile "
               "NAME`" % port)


@device.command("provision")
@click.option("--port", required=True, help="USB serial port of the board, e.g. /dev/ttyUSB0.")
@CONFIG
@click.option("--terminal", required=True, help="The terminal's id in this hall, e.g. T007.")
@click.option("--window", help="Pair it with this window, e.g. W03 (or later: `hcp pair`).")
@click.option("--profile", required=True,
              help="Board profile: a name from `hcp hardware list`, or a .json path.")
@click.option("--wifi-ssid", help="The hall's WiFi for terminals [kept from the board's config].")
@click.option("--wifi-password", envvar="HCP_WIFI_PASSWORD",
              help="Its password; better set HCP_WIFI_PASSWORD (not in the shell history).")
@click.option("--open-wifi", is_flag=True, help="The hall's WiFi has no password.")
@click.option("--broker-host",
              help="The broker's IP address as the terminals reach it, e.g. 10.0.0.2.")
@click.option("--broker-port", type=int,
              help="The broker's port [its TLS port when it has one, else hall.toml's].")
@BROKER_DIR
@click.option("--again", is_flag=True,
              help="Same board after its flash was wiped: new key and broker password.")
@click.option("--no-reset", is_flag=True, help="Do not restart the board afterwards.")
@ACTOR
def provision_cmd(port: str, config_path: str, terminal: str, window: str | None, profile: str,
                  wifi_ssid: str | None, wifi_password: str | None, open_wifi: bool,
                  broker_host: str | None, broker_port: int | None, broker_dir: str | None,
                  again: bool, no_reset: bool, actor: str | None) -> None:
    """Make a board a terminal of this hall: key, broker password, config, registration, pairing.

    Generates the terminal's signing key and broker password, writes the device config (WiFi,
    broker, credentials, board profile) to the board, registers the terminal with the hall
    daemon, adds it to the broker's password file (and reloads the broker), and pairs it with
    the window. Secrets are never printed. Running it again is safe: the board's own config is
    read back, so a rerun after any failure finishes the job with the same secrets.

    \b
    Example:
      HCP_WIFI_PASSWORD=... hcp device provision --port /dev/ttyUSB0 --config hall.toml \\
          --terminal T007 --window W03 --profile esp32-devkitc-buttons \\
          --wifi-ssid hall-iot --broker-host 10.0.0.2
    """
    from haochaping.tools.device import provision
    from haochaping.tools.device.provision import STEPS
    with click.progressbar(length=len(STEPS), label="provisioning %s" % terminal,
                           item_show_func=lambda s: s) as bar:
        def on_step(i: int, what: str) -> None:
            bar.update(i - bar.pos, what)

        done = provision.provision(
            port, config_path, terminal, profile, window=window, wifi_ssid=wifi_ssid,
            wifi_password=wifi_password, broker_host=broker_host, broker_port=broker_port,
            broker_dir=broker_dir, actor=actor, again=again, reset=not no_reset, on_step=on_step,
            open_wifi=open_wifi)
        bar.update(len(STEPS) - bar.pos, "done")
    click.echo("%s is terminal %s of hall %s (%s)%s%s; %s%s" % (
        port, terminal, done["hall"], done["board"],
        ", TLS to the broker (hall CA)" if done["tls"] else "",
        ", paired with window %s" % window if window else ", not paired yet",
        "new key and broker password" if done["new_secrets"] else "its key and password kept",
        "" if done["broker_reloaded"] else "; no running broker found: it applies when it starts"))
    click.echo("Next: %s `hcp terminals --config %s` shows it online once it joins the WiFi"
               % ("`hcp pair --window W... --terminal %s`, then" % terminal if not window else "",
                  config_path))
