"""`hcp hardware`: check board profiles against their chip's pin rules, draw wiring diagrams."""
import click

from haochaping.daemon.errors import HcpError
from haochaping.hardware import diagram, profile, validate
from haochaping.tools.cli import cli


@cli.group()
def hardware() -> None:
    """Board profiles: check their pins, draw wiring diagrams and parts lists.

    \b
    Example:
      hcp hardware check
      hcp hardware diagram esp32-devkitc-buttons --out wiring/
    """


@hardware.command("list")
def list_profiles() -> None:
    """List the committed board profiles.

    \b
    Example:
      hcp hardware list
    """
    for name in profile.committed_names():
        _path, data = profile.load(name)
        click.echo("%-28s %s" % (name, data.get("description", "")))


@hardware.command("check")
@click.argument("profiles", nargs=-1, metavar="[PROFILE]...")
def check(profiles: tuple[str, ...]) -> None:
    """Check board profiles against their chip's GPIO rules.

    PROFILE is the name of a committed profile or the path of a .json file; with none, every
    committed profile is checked. Each problem is printed with its pin and the reason; a
    refused profile makes the exit status 1.

    \b
    Example:
      hcp hardware check esp32-devkitc-buttons my-board.json
    """
    names = list(profiles) or profile.committed_names()
    refused: list[str] = []
    for name in names:
        _path, _data, problems = validate.check(name)
        shown = str(name)
        fatal = validate.errors(problems)
        for w in validate.warnings(problems):
            click.echo("%s: warning: %s" % (shown, w), err=True)
        if fatal:
            refused.append(shown)
            for p in fatal:
                click.echo("%s: %s" % (shown, p), err=True)
        else:
            click.echo("ok  %s" % shown)
    if refused:
        raise HcpError("%d of %d profile(s) refused (%s): change the pins named above"
                       % (len(refused), len(names), ", ".join(refused)))


@hardware.command("diagram")
@click.argument("profile_name", metavar="PROFILE")
@click.option("--out", "out_dir", default=".", show_default=True,
              type=click.Path(file_okay=False), help="Folder to write the files into.")
def draw(profile_name: str, out_dir: str) -> None:
    """Write a profile's wiring diagram (NAME.svg) and parts list (NAME-bom.csv).

    \b
    Example:
      hcp hardware diagram esp32-touch-ws2812 --out wiring/
    """
    _path, data = profile.load(profile_name)
    svg_path, bom_path = diagram.write(data, out_dir)
    click.echo("wrote %s" % svg_path)
    click.echo("wrote %s" % bom_path)
