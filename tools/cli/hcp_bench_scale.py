"""hcp bench scale: the store's rules against a city's or a province's year (issue #19)."""
import json
from collections.abc import Callable

import click

from haochaping.tools.cli.hcp_bench import bench

GROUPS = ("ingest", "sweeps", "explain", "quarter", "lookups")  # scale_rate.GROUPS, not imported


@bench.command("scale")
@click.option("--ratings", type=click.IntRange(1000), default=200000, show_default=True,
              help="Ratings of the generated year (the growth run uses a tenth).")
@click.option("--backend", type=click.Choice(["sqlite", "postgres"]), default="postgres",
              show_default=True, help="The store's database.")
@click.option("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
              show_default=True, help="With --backend postgres: where scratch databases are made.")
@click.option("--fixed-day", is_flag=True,
              help="Also a store with the full size's halls and daily volume in December but a"
                   " tenth of its history: growth_fixed_day, what grows with the past alone.")
@click.option("--only", default=",".join(GROUPS), show_default=True,
              help="The groups of steps measured, comma-separated (quarter: the province's"
                   " quarter and report, the long ones).")
@click.option("--keep", is_flag=True, help="Keep the generated databases (their ids in the JSON).")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON.")
def bench_scale(ratings: int, backend: str, pg_url: str, fixed_day: bool, only: str,
                keep: bool, as_json: bool) -> None:
    """A year of ratings generated in the store's schema, then the rule jobs, scores, reports
    and lookups timed against it, and again at a tenth of the size.

    Prints one JSON document: per size the rows generated and, per step, seconds, rows touched
    and the plan (EXPLAIN ANALYZE on PostgreSQL); `growth`: each step's time at the full size
    over its time at a tenth.

    \b
    Example:
      hcp bench scale --ratings 2000000 --backend postgres --json
      hcp bench scale --ratings 20000000 --fixed-day --json
      hcp bench scale --ratings 200000 --backend sqlite
      hcp bench scale --ratings 20000000 --only ingest,sweeps,explain,lookups
    """
    from haochaping.tools.bench import scale_rate as b
    say: Callable[[str], None] = ((lambda m: None) if as_json
                                  else (lambda m: click.echo(m, err=True)))
    groups = tuple(g.strip() for g in only.split(",") if g.strip())
    if not groups or set(groups) - set(GROUPS):
        raise click.BadParameter("groups of %s" % ", ".join(GROUPS), param_hint="--only")
    r = b.scale(ratings, backend, pg_url, progress=say, keep=keep, fixed_day=fixed_day,
                groups=groups)
    click.echo(json.dumps(r, ensure_ascii=False, indent=None if as_json else 1))
