"""hcp store serve / add-hall / halls / ratings: the municipal store that every hall forwards to."""
from __future__ import annotations

import csv
import datetime
import json
import os
import sys
import threading
from typing import TYPE_CHECKING

import click

from haochaping.daemon.errors import HcpError
from haochaping.tools.cli import cli
from haochaping.tools.cli._options import write_or_check

if TYPE_CHECKING:
    from haochaping.daemon.store.backends import PostgresStore, SqliteStore

DB = click.option("--db", required=True,
                  help="A SQLite file (store.sqlite) or a postgresql:// URL.")
_TZ = datetime.timezone(datetime.timedelta(hours=8))  # Asia/Shanghai, no DST


def _open(db: str, identity_key: str | None = None,
          create_key: bool = False) -> SqliteStore | PostgresStore:
    from haochaping.daemon.store import backends, identity
    ident = identity.IdentityKey.load(identity_key, create=create_key) if identity_key else None
    return backends.open_store(db, ident)


def _when(t: float | None) -> str:
    if t is None:
        return ""
    return datetime.datetime.fromtimestamp(t, _TZ).strftime("%Y-%m-%d %H:%M:%S")


@cli.group()
def store() -> None:
    """The municipal store: receives every hall's batches over HTTPS (SQLite or PostgreSQL)."""


@store.command("serve")
@DB
@click.option("--cert", type=click.Path(exists=True, dir_okay=False),
              help="The server certificate (PEM, with its chain).")
@click.option("--key", "keyfile", type=click.Path(exists=True, dir_okay=False),
              help="The certificate's private key (PEM).")
@click.option("--listen", default="0.0.0.0:8443", show_default=True, help="HOST:PORT to listen on.")
@click.option("--identity-key", type=click.Path(dir_okay=False),
              help="Key file for raters' identity at rest (AES-GCM; created with mode 600 if"
                   " missing). Without it, batches that carry an identity are refused.")
@click.option("--insecure-http", is_flag=True,
              help="Plain HTTP, NO TLS: anyone on the network reads and alters ratings. Only"
                   " behind a TLS-terminating proxy on the same host.")
@click.option("--rules-every", type=click.IntRange(min=0), default=3600, show_default=True,
              help="Seconds between runs of the default ratings (第七条) and the sweep that opens"
                   " rectification cases (第十二条); first run at start; 0: never.")
@click.option("--workers", type=click.IntRange(0, 64), default=2, show_default=True,
              help="Server worker processes (one decodes a batch while another writes); one that"
                   " dies is replaced at once. 0: this process serves alone, nothing replaces it.")
@click.option("--read-timeout", type=click.FloatRange(min=1), default=60, show_default=True,
              help="Seconds a request has to arrive whole, headers and body; then it is cut off.")
@click.option("--keep-alive", type=click.FloatRange(min=1), default=15, show_default=True,
              help="Seconds an idle keep-alive connection stays open.")
@click.option("--max-connections", type=click.IntRange(min=1), default=256, show_default=True,
              help="Connections (and requests) at once per worker; past it, 503 at once.")
@click.option("--province", "province_profile",
              help="Deliver every result to the province (第十五条) with this delivery profile"
                   " (a name from `hcp province profile`, or a .toml path), as `hcp province"
                   " deliver` does.")
@click.option("--province-key-file", type=click.Path(exists=True, dir_okay=False),
              help="The province's signing key, where the profile signs.")
@click.option("--province-url", help="The province's endpoint [the profile's url].")
def store_serve(db: str, cert: str | None, keyfile: str | None, listen: str,
                identity_key: str | None, insecure_http: bool, rules_every: int,
                workers: int, read_timeout: float, keep_alive: float,
                max_connections: int, province_profile: str | None,
                province_key_file: str | None, province_url: str | None) -> None:
    """Serve the store's HTTPS API until SIGTERM or Ctrl-C.

    Creates or migrates the database at start.

    \b
    Example:
      hcp store serve --db store.sqlite --cert store.pem --key store-key.pem --listen 0.0.0.0:8443
      hcp store serve --db postgresql://hcp@db.city.local/hcp --cert store.pem --key store-key.pem
    """
    from haochaping.daemon.store import workers as serving
    from haochaping.daemon.store.server import Settings
    # what can be wrong with the command line, found before anything is created or started
    serving.check_tls(cert, keyfile, insecure_http)
    profile = None
    if province_profile:
        from haochaping.daemon.store.province import profiles
        profile = profiles.load(province_profile, province_key_file, province_url)
    sock = serving.listen(listen)
    if insecure_http:
        click.echo("WARNING: --insecure-http: plain HTTP, no TLS. Ratings and signatures cross the"
                   " network in clear; use it only behind a TLS proxy on this host.", err=True)
    try:
        st = _open(db, identity_key, create_key=True)   # creates or migrates, once
    except BaseException:
        sock.close()
        raise
    host, port = sock.getsockname()[:2]

    def ready() -> None:   # a line for whoever started it (and StoreProcess waits for it)
        click.echo("store (%s) listening on %s://%s:%d" % (
            st.dialect, "http" if insecure_http else "https", host, port), err=True)
    stop = threading.Event()
    jobs: threading.Thread | None = None
    if rules_every:   # here, once, not in every worker
        from haochaping.daemon.store import jobs as jobs_lib
        jobs = threading.Thread(target=jobs_lib.every, args=(st, rules_every, stop),
                                name="store-rules", daemon=True)
        jobs.start()
    province: threading.Thread | None = None
    province_st = None
    if profile is not None:   # here, once, with a store handle of its own
        from haochaping.daemon.store.province.delivery import Deliverer
        province_st = _open(db, identity_key)
        province = Deliverer(province_st, profile).start(stop)
        click.echo("delivering to the province with profile %s (%s)" % (profile.name,
                                                                        profile.url), err=True)
    try:
        serving.serve(Settings(db, identity_key, os.getpid() if workers else None), sock, workers,
                      None if insecure_http else cert, None if insecure_http else keyfile,
                      serving.Limits(read_timeout, keep_alive, max_connections), ready)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        if jobs is not None:
            jobs.join(30)
        if province is not None:
            province.join(30)
        if province_st is not None:
            province_st.close()
        sock.close()
        st.close()


@store.command("openapi")
@click.option("--out", type=click.Path(dir_okay=False),
              help="Write the document to this file (default: print it).")
@click.option("--check", is_flag=True,
              help="Write nothing; exit 1 if --out differs from what the code says.")
def store_openapi(out: str | None, check: bool) -> None:
    """Write the store API's OpenAPI document, generated from the code (as /openapi.json).

    \b
    Example:
      hcp store openapi --out docs/store-openapi.json
      hcp store openapi --out docs/store-openapi.json --check    # in CI: is the copy current?
    """
    from haochaping.daemon.store.server import openapi_text
    text = openapi_text()
    write_or_check(text, out, check, "hcp store openapi")


@store.command("run-defaults")
@DB
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def store_run_defaults(db: str, as_json: bool) -> None:
    """Give 基本满意 (default) to every transaction not rated within 5 working days (第七条).

    Also opens a rectification case for any bad review that has none (第十二条). Running it
    twice changes nothing; `hcp store serve` runs it on a schedule (--rules-every).

    \b
    Example:
      hcp store run-defaults --db store.sqlite
    """
    from haochaping.daemon.store import jobs as jobs_lib
    st = _open(db)
    try:
        result = jobs_lib.run_once(st)
    finally:
        st.close()
    if result.get("warning"):
        click.echo("WARNING: " + result["warning"], err=True)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
        return
    click.echo("default ratings given: %d (%d transactions still within their 5 working days)"
               % (result["given"], result["waiting"]))
    click.echo("rectification cases opened: %d" % result["cases_opened"])
    click.echo("unit figures of closed months kept: %d" % result.get("unit_months", 0))


@store.command("add-hall")
@DB
@click.option("--hall", required=True, help="The hall's id, as in its hall.toml [hall] id.")
@click.option("--name", default="", help="A name people recognise, e.g. 五华区政务服务中心.")
@click.option("--key-out", required=True, type=click.Path(dir_okay=False),
              help="Where to write the hall's signing key (mode 600; copy it to the hall).")
def store_add_hall(db: str, hall: str, name: str, key_out: str) -> None:
    """Register a hall and write its signing key to a file (never printed).

    \b
    Example:
      hcp store add-hall --db store.sqlite --hall H01 --name 五华区政务服务中心 --key-out H01.key
    """
    from haochaping.daemon import batches
    if not batches.valid_id(hall):
        raise HcpError("--hall %r: use 1-32 of A-Z a-z 0-9 _ -" % hall)
    if os.path.exists(key_out):
        raise HcpError("%s exists already: choose another --key-out (or remove it)" % key_out)
    st = _open(db)
    try:
        key = st.add_hall(hall, name)
        batches.write_key_file(key_out, key)
    finally:
        st.close()
    click.echo("hall %s registered; its key is in %s (mode 600). Copy it to the hall and set"
               " [forward] key_file in its hall.toml." % (hall, key_out))


@store.command("revoke-hall")
@DB
@click.option("--hall", required=True, help="The hall's id.")
def store_revoke_hall(db: str, hall: str) -> None:
    """Refuse a hall's batches from now on (a lost or leaked key); its records stay.

    To give the hall a new key afterwards, register it under a new id.

    \b
    Example:
      hcp store revoke-hall --db store.sqlite --hall H01
    """
    st = _open(db)
    try:
        st.revoke_hall(hall)
    finally:
        st.close()
    click.echo("hall %s revoked: its batches are refused (403) from now on" % hall)


@store.command("halls")
@DB
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def store_halls(db: str, as_json: bool) -> None:
    """List registered halls with what each has delivered.

    \b
    Example:
      hcp store halls --db store.sqlite
    """
    st = _open(db)
    try:
        rows = st.halls()
    finally:
        st.close()
    if as_json:
        for r in rows:
            click.echo(json.dumps(r, ensure_ascii=False))
        return
    if not rows:
        click.echo("no halls yet: `hcp store add-hall --hall H01 --key-out H01.key`")
        return
    click.echo("%-10s %-20s %8s %12s %9s  %s" % ("hall", "last batch", "batches", "transactions",
                                                  "ratings", "name"))
    for r in rows:
        state = " (revoked)" if r["revoked_at"] else ""
        click.echo("%-10s %-20s %8d %12d %9d  %s%s" % (
            r["hall"], _when(r["last_batch_at"]) or "never", r["batches"], r["transactions"],
            r["ratings"], r["name"], state))


@store.command("ratings")
@DB
@click.option("--hall", required=True, help="The hall's id.")
@click.option("--since", required=True, type=click.DateTime(["%Y-%m-%d", "%Y-%m-%d %H:%M:%S"]),
              help="From this date (Asia/Shanghai), e.g. 2026-11-01.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True, help="CSV with a header, or one JSON object per line.")
def store_ratings(db: str, hall: str, since: datetime.datetime, fmt: str) -> None:
    """Print the ratings a hall delivered since a date, with their 办件 (CSV or JSON lines).

    \b
    Example:
      hcp store ratings --db store.sqlite --hall H01 --since 2026-11-01 --format csv > H01.csv
    """
    from haochaping.daemon.store.backends import EXPORT_COLUMNS
    st = _open(db)
    try:
        rows = st.ratings(hall, since.replace(tzinfo=_TZ).timestamp())
    finally:
        st.close()
    for r in rows:
        for k in ("rated_at", "hall_received_at", "finished_at", "received_at"):
            r[k] = _when(r[k])
        r["default"] = bool(r["default"])
    if fmt == "json":
        for r in rows:
            click.echo(json.dumps(r, ensure_ascii=False))
        return
    w = csv.DictWriter(sys.stdout, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
