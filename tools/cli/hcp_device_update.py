"""hcp device update / update-key: over-the-air updates of the terminals' app, or of MicroPython
itself (--image)."""
import json
import time

import click

from haochaping.daemon.hall import updates
from haochaping.tools.cli._options import ACTOR, CONFIG, hall_db
from haochaping.tools.cli.hcp_device import device
from haochaping.tools.device import rollout


@device.command("update-key")
@CONFIG
@click.option("--key", type=click.Path(dir_okay=False),
              help="Where to keep the private key [update-key.pem next to hall.toml].")
def update_key(config_path: str, key: str | None) -> None:
    """Make the hall update key: terminals provisioned afterwards take only bundles it signed.

    The private key signs bundles (`hcp device update`); keep it with hall IT, off the hall
    server if you can. Its public part (update-key.pub next to hall.toml) is written onto
    every terminal by `hcp device provision`: provision the terminals again once.

    \b
    Example:
      hcp device update-key --config hall.toml
    """
    path, pub = rollout.make_key(config_path, key)
    click.echo("update key: %s (private, 0600)\npublic part: %s\nnow provision each terminal "
               "again (`hcp device provision ...`) so that it trusts this key" % (path, pub))


@device.command("update")
@CONFIG
@click.option("--all", "everyone", is_flag=True, help="Every terminal of the hall.")
@click.option("--window", help="The terminals paired with this window, e.g. W03.")
@click.option("--terminal", help="One terminal, e.g. T007.")
@click.option("--canary", default=0, show_default=True, type=click.IntRange(min=0),
              help="This many terminals go first; the rest only once they run the new version "
                   "healthy for --hold.")
@click.option("--hold", "hold_s", default=600, show_default=True, type=click.IntRange(min=0),
              help="Seconds the canaries must stay healthy before the rest are offered it.")
@click.option("--version", help="The bundle's version [the firmware's version + a hash].")
@click.option("--key", type=click.Path(dir_okay=False),
              help="The hall update key [update-key.pem next to hall.toml].")
@click.option("--source", type=click.Path(file_okay=False, exists=True),
              help="A folder with protocol/ and firmware/ [this installation's].")
@click.option("--image", type=click.Path(exists=True, dir_okay=False),
              help="Update MicroPython itself with this image (the OTA build's .bin or .app-bin)"
                   " instead of the app; only terminals flashed with an OTA layout take it.")
@click.option("--status", "show", is_flag=True, help="Show the latest rollouts, change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")
@ACTOR
def update_cmd(config_path: str, everyone: bool, window: str | None, terminal: str | None,
               canary: int, hold_s: int, version: str | None, key: str | None,
               source: str | None, image: str | None, show: bool, as_json: bool,
               actor: str | None) -> None:
    """Update the terminals' app (or MicroPython itself) over the air: build, sign, roll out.

    Terminals fetch the bundle between prompts, check its signature and hashes, switch at a
    quiet moment, test themselves and keep the new version only then; otherwise they roll
    back by themselves. With --canary N, N terminals go first and the rest follow once those
    run it healthy for --hold seconds; a canary that rolls back halts the rollout.
    Follow it with `hcp terminals` (column UPDATE) or --status.

    With --image, the bundle is MicroPython itself: a terminal writes it into its other OTA
    slot between prompts, restarts into it, tests itself and keeps it, or its bootloader goes
    back to the old image. A terminal flashed with a stock image (no OTA slot) says "unable"
    and keeps running; flash it with ESP32_GENERIC-OTA over USB (`hcp device flash`).

    \b
    Example:
      hcp device update --config hall.toml --all --canary 2
      hcp device update --config hall.toml --all --canary 1 --image ESP32_GENERIC-OTA-v1.24.1.bin
      hcp device update --config hall.toml --window W03
      hcp device update --config hall.toml --status
    """
    if show:
        rows = updates.rollouts(hall_db(config_path))
        if as_json:
            click.echo(json.dumps(rows, ensure_ascii=False))
            return
        for r in rows:
            counts: dict[str, int] = {}
            for s in r["targets"].values():
                counts[s] = counts.get(s, 0) + 1
            click.echo("#%d %s%s  %s  %s, canary %d  %s  %s%s" % (
                r["id"], r["version"], " (image)" if r["kind"] == "image" else "", r["state"],
                r["scope"], r["canary"],
                time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"])),
                " ".join("%s=%d" % kv for kv in sorted(counts.items())),
                ("  (%s)" % r["note"]) if r["note"] else ""))
        if not rows:
            click.echo("no update rolled out yet")
        return
    res = rollout.hand_over(config_path, everyone, window, terminal, canary, hold_s, version,
                            key, source, actor, image)
    if as_json:
        click.echo(json.dumps(res))
        return
    click.echo("%s bundle %s (%d bytes) handed to the daemon: %s" % (
        "MicroPython image" if res["kind"] == "image" else "app", res["version"], res["bytes"],
        res["path"]))
    if res["canary"]:
        click.echo("rollout #%d: %d canary terminal(s) first, then the other %d after %d s "
                   "healthy" % (res["rollout"], res["canary"], res["terminals"] - res["canary"],
                                hold_s))
    else:
        click.echo("rollout #%d: offered to %d terminal(s)" % (res["rollout"], res["terminals"]))
    click.echo("follow it: hcp terminals --config %s" % config_path)
