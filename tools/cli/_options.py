"""Options and helpers shared by the command modules (the leading _ keeps it out of the
command discovery in __init__)."""
import sqlite3

import click

from haochaping.daemon.hall import db, settings

CONFIG = click.option("--config", "config_path", default="hall.toml", show_default=True,
                      type=click.Path(dir_okay=False), help="The hall's configuration file.")
ACTOR = click.option("--actor",
                     help="Who makes the change, for the audit log [$SUDO_USER or $USER].")


def hall_db(config_path: str) -> sqlite3.Connection:
    """The hall database named by hall.toml (created or migrated if need be)."""
    return db.connect(settings.load(config_path).hall.database)


def write_or_check(text: str, out: str | None, check: bool, command: str) -> None:
    """A document generated from the code (an OpenAPI spec): printed, written to `out`, or with
    `check` compared with the committed copy at `out` (HcpError naming `command` to rerun)."""
    from haochaping.daemon.errors import HcpError
    if check:
        if not out:
            raise HcpError("--check needs --out FILE: the copy to compare with the code")
        try:
            with open(out, encoding="utf-8") as f:
                same = f.read() == text
        except FileNotFoundError:
            same = False
        if not same:
            raise HcpError("%s differs from the API in the code: run `%s --out %s` and commit it"
                           % (out, command, out))
        click.echo("%s is current" % out)
        return
    if not out:
        click.echo(text, nl=False)
        return
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    click.echo("wrote %s" % out)
