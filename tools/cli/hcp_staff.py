"""hcp staff: accounts for the hall web console (window staff and duty managers)."""
import datetime

import click

from haochaping.daemon.hall.console import staff as staff_lib
from haochaping.daemon.rules.workdays import SHANGHAI
from haochaping.tools.cli import cli
from haochaping.tools.cli._options import CONFIG, hall_db
from haochaping.tools.device import fleet

NUMBER = click.option("--number", required=True, help="Staff number (工号), e.g. S0101.")
PIN = click.option("--pin", prompt="PIN", hide_input=True, confirmation_prompt=True,
                   envvar="HCP_STAFF_PIN",
                   help="Asked for (hidden) when not given; or set HCP_STAFF_PIN. "
                        "%d-%d characters." % (staff_lib.PIN_MIN, staff_lib.PIN_MAX))




def _actor() -> str:
    return fleet.who()


@cli.group()
def staff() -> None:
    """Console accounts: window staff (/window/<W>) and duty managers (/hall)."""


@staff.command("add")
@CONFIG
@NUMBER
@click.option("--name", default="", help="Name shown on the pages, e.g. 张三.")
@click.option("--role", type=click.Choice(staff_lib.ROLES), default="staff", show_default=True,
              help="staff: signs in at a window page; manager: signs in at the hall page.")
@PIN
def staff_add(config_path: str, number: str, name: str, role: str, pin: str) -> None:
    """Add a console account; its PIN is stored only as a scrypt hash.

    \b
    Example:
      hcp staff add --config hall.toml --number S0101 --name 张三
      hcp staff add --config hall.toml --number M01 --name 李四 --role manager
    """
    staff_lib.add(hall_db(config_path), number, pin, role=role, name=name, actor=_actor())
    where = "/hall" if role == "manager" else "/window/<W>"
    click.echo("%s %s added; signs in at %s" % (role, number, where))


@staff.command("disable")
@CONFIG
@NUMBER
def staff_disable(config_path: str, number: str) -> None:
    """Stop an account signing in; a signed-in page of it is signed out at once.

    \b
    Example:
      hcp staff disable --config hall.toml --number S0101
    """
    staff_lib.disable(hall_db(config_path), number, actor=_actor())
    click.echo("%s disabled" % number)


@staff.command("enable")
@CONFIG
@NUMBER
def staff_enable(config_path: str, number: str) -> None:
    """Let a disabled account sign in again.

    \b
    Example:
      hcp staff enable --config hall.toml --number S0101
    """
    staff_lib.enable(hall_db(config_path), number, actor=_actor())
    click.echo("%s enabled" % number)


@staff.command("set-pin")
@CONFIG
@NUMBER
@PIN
def staff_set_pin(config_path: str, number: str, pin: str) -> None:
    """Give an account a new PIN (its open sessions end).

    \b
    Example:
      hcp staff set-pin --config hall.toml --number S0101
    """
    staff_lib.set_pin(hall_db(config_path), number, pin, actor=_actor())
    click.echo("%s has a new PIN" % number)


@staff.command("set-phone")
@CONFIG
@NUMBER
@click.option("--phone", prompt="Phone", hide_input=True, envvar="HCP_STAFF_PHONE",
              help="Asked for (hidden, so it stays out of the shell's history) when not given;"
                   " or set HCP_STAFF_PHONE.")
def staff_set_phone(config_path: str, number: str, phone: str) -> None:
    """Record a staff member's phone number, kept only as a keyed hash and its last 4 digits.

    Today's integrity findings then name a staff member whose number is given as a real-name
    citizen rater on the phone page (第十一条). Needs [mobile] identity_key_file (the hash key is
    derived from it).

    \b
    Example:
      hcp staff set-phone --config hall.toml --number S0101
    """
    from haochaping.daemon.errors import HcpError
    from haochaping.daemon.hall import phone_ratings, phones, settings
    cfg = settings.load(config_path)
    if not cfg.mobile.identity_key_file:
        raise HcpError("[mobile] identity_key_file is not set: staff phone numbers are hashed"
                       " with a key derived from it")
    if not 5 <= len(phones.digits(phone)) <= 20:
        raise HcpError("--phone: 5 to 20 digits (+, spaces and - allowed)")
    key = phones.mac_key(phone_ratings.read_identity_key(cfg.mobile.identity_key_file))
    staff_lib.set_phone(hall_db(config_path), number, phones.mac(key, phone), phones.tail(phone),
                        actor=_actor())
    click.echo("%s: phone number ****%s recorded (as a keyed hash)" % (number, phones.tail(phone)))


@staff.command("clear-phone")
@CONFIG
@NUMBER
def staff_clear_phone(config_path: str, number: str) -> None:
    """Forget a staff member's phone number (its keyed hash and last 4 digits).

    \b
    Example:
      hcp staff clear-phone --config hall.toml --number S0101
    """
    staff_lib.set_phone(hall_db(config_path), number, None, actor=_actor())
    click.echo("%s: phone number forgotten" % number)


@staff.command("list")
@CONFIG
def staff_list(config_path: str) -> None:
    """List console accounts (never PINs).

    \b
    Example:
      hcp staff list --config hall.toml
    """
    rows = staff_lib.listing(hall_db(config_path))
    if rows:
        click.echo("%-12s %-8s %-9s %s" % ("NUMBER", "ROLE", "STATE", "NAME"))
    for r in rows:
        state = "enabled" if r["disabled_at"] is None else "disabled " + _day(r["disabled_at"])
        click.echo("%-12s %-8s %-9s %s" % (r["number"], r["role"], state, r["name"]))
    if not rows:
        click.echo("no accounts yet: `hcp staff add --number S0101 --name 张三`")


def _day(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, SHANGHAI).strftime("%Y-%m-%d")
