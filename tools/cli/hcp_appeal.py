"""`hcp appeal`: 第十条 appeals against bad reviews, filed by the rated unit, decided by the
office."""
import json
from collections.abc import Mapping, Sequence
from typing import Any

import click

from haochaping.daemon.errors import HcpError
from haochaping.tools.cli import cli
from haochaping.tools.cli.hcp_store import DB, _open

JSON = click.option("--json", "as_json", is_flag=True, help="One JSON object per appeal.")


# An appeal as the store gives it (daemon/store/appeals.py), printed as one JSON object.
Appeal = Mapping[str, Any]


def _show(a: Appeal) -> str:
    from haochaping.daemon.store import access
    line = "%s  %-8s rating %s  unit %s  filed %s  decide by %s" % (
        a["id"], a["status"], a["rating_uid"], a["unit"], access.shown(a["filed_at"]),
        a["decision_due"])
    if a["overdue"]:
        line += "  OVERDUE"
    if a["decision_reason"]:
        line += "\n    decision: " + a["decision_reason"]
    return line


def _print(rows: Sequence[Appeal], as_json: bool, empty: str) -> None:
    if as_json:
        for a in rows:
            click.echo(json.dumps(a, ensure_ascii=False))
    elif not rows:
        click.echo(empty)
    else:
        for a in rows:
            click.echo(_show(a))


@cli.group()
def appeal() -> None:
    """Appeals against bad reviews (第十条): file within 3 working days, decide within 10.

    \b
    Example:
      hcp appeal file --db store.sqlite --rating H01:rating:T001:42 --unit H01 --reason "…"
      hcp appeal overdue --db store.sqlite
    """


@appeal.command("file")
@click.option("--db", help="A SQLite file or a postgresql:// URL (the office files it).")
@click.option("--store", "store_url", help="Or file over HTTPS: the store's URL (needs"
              " --token-file).")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False),
              help="The unit's token (from `hcp appeal add-unit`), with --store.")
@click.option("--ca", type=click.Path(exists=True, dir_okay=False),
              help="The CA that signed the store's certificate, with --store.")
@click.option("--rating", required=True, help="The rating's id, e.g. H01:rating:T001:42.")
@click.option("--unit", help="The rated unit appealing: the rating's hall id or department code"
              " (with --store: the token's unit).")
@click.option("--reason", required=True, help="Why the rating is mistaken or malicious.")
@JSON
def appeal_file(db: str | None, store_url: str | None, token_file: str | None, ca: str | None,
                rating: str, unit: str | None, reason: str, as_json: bool) -> None:
    """File an appeal against a bad review, in time (3 working days after it was received).

    A late filing is refused with its deadline. An upheld appeal removes the rating from
    scoring; the rating is kept, marked, for audit.

    \b
    Example:
      hcp appeal file --db store.sqlite --rating H01:rating:T001:42 --unit H01 --reason "误评"
      hcp appeal file --store https://store.city.local:8443 --token-file H01.token \\
          --ca city-ca.pem --rating H01:rating:T001:42 --reason "误评"
    """
    if store_url:
        a = _file_over_https(store_url, token_file, ca, rating, reason)
    else:
        if not db or not unit:
            raise click.UsageError("give --db and --unit (or --store and --token-file)")
        from haochaping.daemon.store import appeals
        st = _open(db)
        try:
            a = appeals.file(st, rating, unit, reason)
        finally:
            st.close()
    if as_json:
        click.echo(json.dumps(a, ensure_ascii=False))
    else:
        click.echo("appeal %s filed; the office decides by %s (10 working days, 第十条)"
                   % (a["id"], a["decision_due"]))


def _file_over_https(url: str, token_file: str | None, ca: str | None, rating: str,
                     reason: str) -> dict[str, Any]:
    from haochaping.daemon.hall.store_client import StoreClient
    if not token_file:
        raise click.UsageError("--store needs --token-file")
    with open(token_file) as f:
        token = f.read().strip()
    c = StoreClient(url, "", b"", ca=ca)
    try:
        status, doc = c.request("POST", "/v1/appeals", json.dumps(
            {"rating": rating, "reason": reason}, ensure_ascii=False).encode(),
            {"Content-Type": "application/json", "Authorization": "Bearer " + token})
    finally:
        c.close()
    if status != 201:
        raise HcpError("appeal refused (HTTP %d): %s" % (status, doc.get("error", "")))
    return doc


@appeal.command("decide")
@DB
@click.argument("appeal_id")
@click.option("--upheld/--rejected", required=True,
              help="Upheld: the rating was mistaken or malicious and leaves scoring.")
@click.option("--reason", required=True, help="The reply to the unit.")
@JSON
def appeal_decide(db: str, appeal_id: str, upheld: bool, reason: str, as_json: bool) -> None:
    """Decide an appeal (the office, within 10 working days of the filing).

    \b
    Example:
      hcp appeal decide --db store.sqlite A1b2c3d4 --upheld --reason "监控核实为误触"
    """
    from haochaping.daemon.store import appeals
    st = _open(db)
    try:
        a = appeals.decide(st, appeal_id, upheld, reason)
    finally:
        st.close()
    if as_json:
        click.echo(json.dumps(a, ensure_ascii=False))
    elif upheld:
        click.echo("appeal %s upheld: rating %s no longer counts in scores (kept for audit)"
                   % (a["id"], a["rating_uid"]))
    else:
        click.echo("appeal %s rejected: rating %s counts" % (a["id"], a["rating_uid"]))


@appeal.command("list")
@DB
@click.option("--status", type=click.Choice(["pending", "upheld", "rejected", "overdue"]),
              help="Only these.")
@JSON
def appeal_list(db: str, status: str | None, as_json: bool) -> None:
    """List appeals, oldest first.

    \b
    Example:
      hcp appeal list --db store.sqlite --status pending
    """
    from haochaping.daemon.store import appeals
    st = _open(db)
    try:
        rows = appeals.list_appeals(st, status)
    finally:
        st.close()
    _print(rows, as_json, "no appeals")


@appeal.command("overdue")
@DB
@JSON
def appeal_overdue(db: str, as_json: bool) -> None:
    """Appeals still undecided after 10 working days (第十条). Exit 1 if there are any.

    \b
    Example:
      hcp appeal overdue --db store.sqlite
    """
    from haochaping.daemon.store import appeals
    st = _open(db)
    try:
        rows = appeals.overdue(st)
    finally:
        st.close()
    _print(rows, as_json, "no overdue appeals")
    if rows:
        raise SystemExit(1)


@appeal.command("add-unit")
@DB
@click.option("--unit", required=True, help="A hall id or department code.")
@click.option("--token-out", required=True, type=click.Path(dir_okay=False),
              help="Where to write the unit's token (mode 600; never printed).")
def appeal_add_unit(db: str, unit: str, token_out: str) -> None:
    """Give a rated unit a token to file appeals over HTTPS (replaces its old token).

    \b
    Example:
      hcp appeal add-unit --db store.sqlite --unit H01 --token-out H01.token
    """
    import os

    from haochaping.daemon.store import appeals
    if os.path.exists(token_out):
        raise HcpError("%s exists already: choose another --token-out (or remove it)" % token_out)
    st = _open(db)
    try:
        token = appeals.add_unit(st, unit)
    finally:
        st.close()
    fd = os.open(token_out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    click.echo("unit %s can file appeals with the token in %s (mode 600):"
               " POST /v1/appeals, Authorization: Bearer <token>" % (unit, token_out))
