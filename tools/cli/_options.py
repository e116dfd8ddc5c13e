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
