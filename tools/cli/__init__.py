"""The `hcp` command line. Each command group lives in its own module here and only parses,
calls the library, and prints; errors from the library become one line and exit code 1.
A new module in this folder is picked up by itself: it attaches its commands to `cli`."""
import importlib
import logging
import pkgutil
import sys

import click

from haochaping.daemon.errors import HcpError


class _Group(click.Group):
    """Turns the project's own errors into one clear line, never a traceback, and lists each
    command with its whole one-line summary (wrapped, not cut off with "...")."""

    group_class = type  # subgroups are _Group too

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=200)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except HcpError as e:
            raise click.ClickException(str(e)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"],
                                          "max_content_width": 110})
@click.option("-v", "--verbose", is_flag=True, help="Log what happens (to stderr).")
@click.version_option(package_name="haochaping", prog_name="hcp")
def cli(verbose: bool) -> None:
    """haochaping: 好差评 rating terminals, the hall daemon and its tools.

    \b
    Example:
      hcp demo            # a whole simulated hall on this machine
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)


def _register() -> None:
    """Import every command module in this package (each adds its commands to `cli`)."""
    for m in pkgutil.iter_modules(__path__):
        if not m.name.startswith("_"):
            importlib.import_module(__name__ + "." + m.name)


def main() -> None:
    _register()
    cli(prog_name="hcp")
