"""`hcp store archive`: retention of the store's old quarters (docs/scale.md)."""
import json

import click

from haochaping.daemon.store import archive as archive_lib
from haochaping.daemon.store import backends
from haochaping.tools.cli.hcp_store import DB, store


@store.command("archive")
@DB
@click.option("--before", required=True, metavar="YYYY-MM",
              help="The first month kept: every quarter before it is archived.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the CSV files (one per table) and the manifest.")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
def store_archive(db: str, before: str, out_dir: str, as_json: bool) -> None:
    """Export the rows of every quarter before a month to CSV and remove them from the store,
    keeping each quarter's report figures (hcp report quarterly still answers for them).

    Refused while a case of those quarters is open or an appeal pending. The files are written
    and synced before anything is removed, and the counts removed must match them.

    \b
    Example:
      hcp store archive --db postgresql://hcp@db.city.local/hcp --before 2023-01 --out /archive
    """
    st = backends.open_store(db)
    try:
        r = archive_lib.archive(st, before, out_dir)
    finally:
        st.close()
    if as_json:
        click.echo(json.dumps(r, ensure_ascii=False, sort_keys=True))
        return
    click.echo("archived before %s: %s; figures kept for %s" % (
        before, ", ".join("%s %d" % kv for kv in r["rows"].items()),
        ", ".join(r["periods"]) or "no quarter"))
    click.echo("files in %s" % out_dir)
