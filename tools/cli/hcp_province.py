"""hcp province: delivering every result to the provincial 好差评 system (第十五条) through a
delivery profile; its quarantine; reconcile; a reference provincial endpoint to rehearse with."""
from __future__ import annotations

import json
import logging
import signal
import threading
from typing import TYPE_CHECKING, Any, NoReturn

import click

from haochaping.daemon.errors import HcpError
from haochaping.tools.cli import cli
from haochaping.tools.cli._options import ACTOR
from haochaping.tools.cli.hcp_bench import bench

if TYPE_CHECKING:
    from haochaping.daemon.store.backends import Store
    from haochaping.daemon.store.province.profiles import Profile

DB = click.option("--db", required=True,
                  help="The store: a SQLite file (store.sqlite) or a postgresql:// URL.")
PROFILE = click.option("--profile", "profile_name", required=True,
                       help="A shipped profile (gbt39046, provincial) or a profile's TOML file.")
KEY_FILE = click.option("--key-file", type=click.Path(dir_okay=False),
                        help="The province's signing key [the profile's signing.key_file].")
URL = click.option("--url", help="The province's base URL [the profile's endpoint.url].")


def _profile(name: str, key_file: str | None = None, url: str | None = None) -> Profile:
    from haochaping.daemon.store.province import profiles
    return profiles.load(name, key_file, url)


def _store(db: str) -> Store:
    from haochaping.daemon.store import backends
    return backends.open_store(db)


def _when(t: float | None) -> str:
    from haochaping.daemon.store import access
    return access.shown(t) or "never"


def _interrupt(*_: object) -> NoReturn:
    raise KeyboardInterrupt


@cli.group()
def province() -> None:
    """Delivery of every result to the provincial 好差评 system (第十五条), per profile."""


@province.group("profile")
def profile_group() -> None:
    """Delivery profiles: one TOML file per province (field names, codes, envelope, signing)."""


@profile_group.command("example")
def profile_example() -> None:
    """Print a commented template of a province's profile, to fill in from its document.

    \b
    Example:
      hcp province profile example > yunnan.toml
    """
    from haochaping.daemon.store.province import profiles
    click.echo(profiles.example(), nl=False)


@profile_group.command("check")
@click.argument("profile_name", metavar="PROFILE")
@KEY_FILE
def profile_check(profile_name: str, key_file: str | None) -> None:
    """Load a profile and list every problem in it at once (exit 1 if any).

    \b
    Example:
      hcp province profile check yunnan.toml
      hcp province profile check provincial --key-file province.key
    """
    p = _profile(profile_name, key_file)
    click.echo("profile %s (%s): ok; delivers %s to %s, %d records a batch%s"
               % (p.name, p.path, ", ".join(p.kinds), p.url, p.batch_size,
                  ", signed (%s)" % p.algorithm if p.algorithm != "none" else ""))


@province.command("deliver")
@DB
@PROFILE
@KEY_FILE
@URL
@click.option("--once", is_flag=True, help="Deliver what can go now, then stop.")
@click.option("--settle-s", type=click.FloatRange(0), default=None,
              help="How long a bad review waits for its reasons [the profile's settle_s].")
def province_deliver(db: str, profile_name: str, key_file: str | None, url: str | None,
                     once: bool, settle_s: float | None) -> None:
    """Deliver the store's results to the province until SIGTERM or Ctrl-C (or --once).

    One deliverer per profile at a time (a lease in the store); `hcp store serve` can run it
    too. Records the province refuses are held in the quarantine; the rest goes on.

    \b
    Example:
      hcp province deliver --db store.sqlite --profile yunnan.toml
      hcp province deliver --db store.sqlite --profile provincial --key-file p.key --once
    """
    from haochaping.daemon.store.province.delivery import Deliverer
    p = _profile(profile_name, key_file, url)
    st = _store(db)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, _interrupt)
    d = Deliverer(st, p, settle_s=settle_s)
    logging.getLogger(__name__).warning("delivering to %s (%s) as %s", d.url, p.name, d.owner)
    try:
        out = d.run(stop, once=once)
    except KeyboardInterrupt:
        stop.set()
        out = d.summary()
    finally:
        st.close()
    if once:
        click.echo("%d record(s) accepted by the province in %d post(s)%s"
                   % (out["sent"], out["posts"],
                      "; stopped at: %s" % out["last_error"] if out["last_error"] else ""))


@province.command("status")
@DB
@PROFILE
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of words.")
def province_status(db: str, profile_name: str, as_json: bool) -> None:
    """Backlog, last success, last error and refusals held, in words.

    \b
    Example:
      hcp province status --db store.sqlite --profile provincial
    """
    from haochaping.daemon.store.province import delivery, profiles
    name = profiles.resolve(profile_name)
    target = _target(name)
    st = _store(db)
    try:
        s = delivery.status(st, target)
    finally:
        st.close()
    if as_json:
        click.echo(json.dumps(s, ensure_ascii=False, sort_keys=True))
        return
    click.echo("province target %s" % target)
    click.echo("backlog: %d record(s) waiting %s%s" % (
        s["waiting"], json.dumps(s["waiting_by_kind"]),
        ", the oldest for %.0f s" % s["oldest_waiting_s"] if s["oldest_waiting_s"] else ""))
    click.echo("accepted: %d %s" % (s["sent"], json.dumps(s["sent_by_kind"])))
    click.echo("last success: %s" % _when(s["last_success_at"]))
    if s["last_error"]:
        recovered = s["failures"] == 0 and (s["last_success_at"] or 0) > (s["last_error_at"] or 0)
        click.echo("last error: %s, %s (%s)" % (
            _when(s["last_error_at"]), s["last_error"],
            "delivered since" if recovered else "%d failed post(s) in a row" % s["failures"]))
    click.echo("refused, held: %d%s" % (s["quarantined"],
                                        "  (hcp province quarantine list)" if s["quarantined"]
                                        else ""))
    click.echo("dropped: %d; deliverer: %s" % (s["dropped"], s["deliverer"] or "none running"))


def _target(profile_path: str) -> str:
    """The target name of a profile without loading its keys (status and quarantine need no
    signing key)."""
    import tomllib
    try:
        with open(profile_path, "rb") as f:
            name = tomllib.load(f).get("profile", {}).get("name")
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise HcpError("cannot read profile %s: %s" % (profile_path, e)) from None
    if not isinstance(name, str) or not name:
        raise HcpError("profile %s has no [profile] name" % profile_path)
    return name


@province.group("quarantine")
def quarantine() -> None:
    """Records the province refused, held so that the rest moves on.

    \b
    What to do with one:
      hcp province quarantine list --db store.sqlite --profile provincial
      (fix the cause: the profile, the hall's data, or the province's side), then
      hcp province quarantine retry --db store.sqlite --profile provincial 17
    or, when it must never reach the province:
      hcp province quarantine drop --db store.sqlite --profile provincial 17 --reason "test"
    and who did which, when:
      hcp province quarantine audit --db store.sqlite --profile provincial
    """


@quarantine.command("list")
@DB
@PROFILE
@click.option("--all", "every", is_flag=True, help="Also retried and dropped records.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def quarantine_list(db: str, profile_name: str, every: bool, as_json: bool) -> None:
    """The records held: number, kind, 办件编号, when, attempts, the province's code and words.

    \b
    Example:
      hcp province quarantine list --db store.sqlite --profile provincial
    """
    from haochaping.daemon.store.province import delivery, profiles
    target = _target(profiles.resolve(profile_name))
    st = _store(db)
    try:
        rows = delivery.quarantine_list(st, target, every)
    finally:
        st.close()
    for q in rows:
        if as_json:
            click.echo(json.dumps(q, ensure_ascii=False, sort_keys=True))
        else:
            click.echo("%d  %s  %s#%d  %s  %s  %d attempt(s)  %s %s%s" % (
                q["n"], q["kind"], q["project_no"], q["assess_number"], q["state"],
                _when(q["quarantined_at"]), q["attempts"], q["code"] or "", q["reason"] or "",
                "  (decided %s by %s%s)" % (_when(q["decided_at"]), q["decided_by"],
                                            ": " + q["note"] if q["note"] else "")
                if q["decided_at"] is not None else ""))
    if not rows and not as_json:
        click.echo("no record is held")


@quarantine.command("retry")
@DB
@PROFILE
@click.argument("n", type=int)
@ACTOR
def quarantine_retry(db: str, profile_name: str, n: int, actor: str | None) -> None:
    """Put a held record back in the queue (audited), with what was held because of it.

    \b
    Example:
      hcp province quarantine retry --db store.sqlite --profile provincial 17
    """
    from haochaping.daemon.store.province import delivery, profiles
    from haochaping.tools.device.fleet import who
    target = _target(profiles.resolve(profile_name))
    st = _store(db)
    try:
        q = delivery.quarantine_retry(st, target, n, who(actor))
    finally:
        st.close()
    click.echo("record %d (%s %s) is back in the queue for the province"
               % (n, q["kind"], q["project_no"]))


@quarantine.command("drop")
@DB
@PROFILE
@click.argument("n", type=int)
@click.option("--reason", required=True, help="Why it must never reach the province.")
@ACTOR
def quarantine_drop(db: str, profile_name: str, n: int, reason: str, actor: str | None) -> None:
    """Never send a held record (audited, with --reason); the store keeps its facts.

    \b
    Example:
      hcp province quarantine drop --db store.sqlite --profile provincial 17 --reason "test"
    """
    from haochaping.daemon.store.province import delivery, profiles
    from haochaping.tools.device.fleet import who
    target = _target(profiles.resolve(profile_name))
    st = _store(db)
    try:
        q = delivery.quarantine_drop(st, target, n, who(actor), reason)
    finally:
        st.close()
    click.echo("record %d (%s %s) dropped: it will not be sent" % (n, q["kind"],
                                                                    q["project_no"]))


@quarantine.command("audit")
@DB
@PROFILE
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def quarantine_audit(db: str, profile_name: str, as_json: bool) -> None:
    """Who retried or dropped which held record, when, and why, oldest first.

    \b
    Example:
      hcp province quarantine audit --db store.sqlite --profile provincial
    """
    from haochaping.daemon.store.province import delivery, profiles
    target = _target(profiles.resolve(profile_name))
    st = _store(db)
    try:
        rows = delivery.audit(st, target)
    finally:
        st.close()
    for a in rows:
        d = json.loads(a["detail"])
        if as_json:
            click.echo(json.dumps(dict(a, detail=d), ensure_ascii=False, sort_keys=True))
        else:
            click.echo("%s  %s  %s  record %d (%s %s#%d)%s" % (
                _when(a["at"]), a["actor"], a["action"].rpartition("-")[2], a["n"], d["kind"],
                d["project_no"], d["assess_number"], ": " + d["note"] if d["note"] else ""))
    if not rows and not as_json:
        click.echo("no held record was retried or dropped")


@province.command("reconcile")
@DB
@PROFILE
@KEY_FILE
@URL
@click.option("--day", required=True, help="The day, YYYY-MM-DD (Asia/Shanghai).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of words.")
def province_reconcile(db: str, profile_name: str, key_file: str | None, url: str | None,
                       day: str, as_json: bool) -> None:
    """Our counts for a day against what the province acknowledged, record by record.

    Exit 1 when they differ.

    \b
    Example:
      hcp province reconcile --db store.sqlite --profile provincial --day 2026-09-30
    """
    import datetime

    from haochaping.daemon.store.province import delivery
    try:
        datetime.date.fromisoformat(day)
    except ValueError:
        raise HcpError("--day must be YYYY-MM-DD, not %r" % day) from None
    p = _profile(profile_name, key_file, url)
    st = _store(db)
    try:
        r = delivery.reconcile(st, p, day, url)
    finally:
        st.close()
    if as_json:
        click.echo(json.dumps(r, ensure_ascii=False, sort_keys=True))
    else:
        for kind, row in r["kinds"].items():
            click.echo("%-11s store %6d  acknowledged %6d%s" % (
                kind, row["store"], row["acknowledged"],
                "  province %6d" % row["province"] if "province" in row else ""))
        if r["pending"]:
            click.echo("not yet delivered: %s" % json.dumps(r["pending"]))
        click.echo("agrees" if r["agrees"] else "DIFFERS (--json lists the records)")
    if not r["agrees"]:
        raise SystemExit(1)


@province.command("sandbox")
@PROFILE
@KEY_FILE
@click.option("--listen", default="127.0.0.1:8480", show_default=True, help="HOST:PORT.")
@click.option("--db", default="province-sandbox.sqlite", show_default=True,
              help="Where the sandbox keeps what it accepted (SQLite).")
@click.option("--fail-5xx", type=click.IntRange(0), default=0,
              help="Answer the next N posts with 503.")
@click.option("--hang", type=click.IntRange(0), default=0,
              help="Store the next N posts, then answer only after --hang-s seconds.")
@click.option("--hang-s", type=click.FloatRange(0), default=60.0, show_default=True)
@click.option("--refuse", multiple=True, help="Refuse every record of this 办件编号.")
def province_sandbox(profile_name: str, key_file: str | None, listen: str, db: str,
                     fail_5xx: int, hang: int, hang_s: float, refuse: tuple[str, ...]) -> None:
    """A strict reference provincial endpoint for a profile, to rehearse delivery with.

    It refuses what breaks the profile as a province would, keeps what it accepted in --db,
    and fails on purpose when told to (also at run time: POST /_sandbox/faults).

    \b
    Example:
      hcp province sandbox --profile provincial --key-file p.key --listen 127.0.0.1:8480
      hcp province deliver --db store.sqlite --profile provincial --key-file p.key \\
          --url http://127.0.0.1:8480
    """
    from haochaping.tools.sim import province_sandbox as sb
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise HcpError("--listen must be HOST:PORT, not %r" % listen)
    p = _profile(profile_name, key_file)
    faults: dict[str, Any] = {"fail_5xx": fail_5xx, "hang": hang, "hang_s": hang_s,
                              "refuse": list(refuse)}
    click.echo("province sandbox (%s) on http://%s:%s, keeping %s" % (p.name, host, port, db),
               err=True)
    sb.serve(p, host, int(port), db, faults)


@bench.command("province")
@PROFILE
@KEY_FILE
@click.option("--records", type=click.IntRange(100), default=20000, show_default=True,
              help="Transactions in the store (each with its evaluation: twice as many posts).")
@click.option("--batch-size", type=click.IntRange(1, 10000), default=None,
              help="Records per post [the profile's].")
@click.option("--backend", type=click.Choice(["sqlite", "postgres"]), default="sqlite",
              show_default=True)
@click.option("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
              show_default=True, help="Where the postgres backend makes its scratch database.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bench_province(profile_name: str, key_file: str | None, records: int,
                   batch_size: int | None, backend: str, pg_url: str, as_json: bool) -> None:
    """Delivery to a real sandbox process vs posting the same payloads with no store work.

    \b
    Example:
      hcp bench province --profile gbt39046 --records 20000 --json
    """
    from haochaping.tools.bench import province_rate as b
    out = b.run(profile_name, key_file, records, batch_size, backend, pg_url)
    click.echo(json.dumps(out, ensure_ascii=False) if as_json else b.describe(out))
