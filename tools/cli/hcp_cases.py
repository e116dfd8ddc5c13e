"""`hcp cases`: rectification of bad reviews (第十二条, 第十三条): deadlines, follow-ups,
closing."""
import datetime
import json
from collections.abc import Mapping, Sequence
from typing import Any

import click

from haochaping.tools.cli import cli
from haochaping.tools.cli.hcp_rules import parse_day
from haochaping.tools.cli.hcp_store import DB, _open

JSON = click.option("--json", "as_json", is_flag=True, help="One JSON object per case.")


# A rectification case as the store gives it (daemon/store/cases.py), printed as one JSON object.
Case = Mapping[str, Any]


def _show(c: Case) -> str:
    from haochaping.daemon.store import access
    line = "%s  %-9s %s %-5s due %s  follow-ups %d  %s  rating %s" % (
        c["id"], c["status"], c["level_name"], "实名" if c["real_name"] else "匿名", c["due"],
        c["follow_ups"], access.shown(c["opened_at"]), c["rating_uid"])
    if c["overdue"]:
        line += "  OVERDUE"
    return line


def _list(db: str, status: str | None, hall: str | None, as_json: bool,
          empty: str) -> Sequence[Case]:
    from haochaping.daemon.store import cases, jobs
    st = _open(db)
    try:
        # a bad review that arrived since the last sweep has its case too (not the month
        # figures: a listing must not wait for a month's count)
        jobs.run_once(st, months=False)
        rows = cases.list_cases(st, status, hall)
    finally:
        st.close()
    if as_json:
        for c in rows:
            click.echo(json.dumps(c, ensure_ascii=False))
    elif not rows:
        click.echo(empty)
    else:
        for c in rows:
            click.echo(_show(c))
    return rows


@cli.group()
def cases() -> None:
    """Rectification cases of bad reviews (第十二条): 15 working days, follow-ups, closing.

    \b
    Example:
      hcp cases list --db store.sqlite --status open
      hcp cases overdue --db store.sqlite
    """


@cases.command("list")
@DB
@click.option("--status", type=click.Choice(["open", "closed", "withdrawn", "overdue"]),
              help="Only these.")
@click.option("--hall", help="Only this hall's cases.")
@JSON
def cases_list(db: str, status: str | None, hall: str | None, as_json: bool) -> None:
    """List rectification cases, oldest first (opens any that are missing first).

    \b
    Example:
      hcp cases list --db store.sqlite --status open --hall H01
    """
    _list(db, status, hall, as_json, "no cases")


@cases.command("overdue")
@DB
@click.option("--hall", help="Only this hall's cases.")
@JSON
def cases_overdue(db: str, hall: str | None, as_json: bool) -> None:
    """Open cases past their deadline (第十二条). Exit 1 if there are any.

    \b
    Example:
      hcp cases overdue --db store.sqlite
    """
    if _list(db, "overdue", hall, as_json, "no overdue cases"):
        raise SystemExit(1)


@cases.command("show")
@DB
@click.argument("case_id")
@JSON
def cases_show(db: str, case_id: str, as_json: bool) -> None:
    """One case with its whole history (opened, follow-ups, extensions, closing).

    \b
    Example:
      hcp cases show --db store.sqlite C1a2b3c4d
    """
    from haochaping.daemon.store import access
    from haochaping.daemon.store import cases as cases_lib
    st = _open(db)
    try:
        c = cases_lib.get(st, case_id)
        c["follow_ups"] = 0
        c["events"] = cases_lib.events(st, case_id)
    finally:
        st.close()
    c["follow_ups"] = sum(1 for e in c["events"] if e["kind"] == "follow-up")
    if as_json:
        click.echo(json.dumps(c, ensure_ascii=False))
        return
    click.echo(_show(c))
    for e in c["events"]:
        extra = " ".join(x for x in (
            cases_lib.CHANNEL_NAMES.get(e["channel"], ""),
            cases_lib.FEEDBACK_NAMES.get(e["feedback"], ""),
            ("due " + e["due"]) if e["due"] else "", e["note"] or "") if x)
        click.echo("  %s  %-9s %s" % (access.shown(e["at"]), e["kind"], extra))


@cases.command("follow-up")
@DB
@click.argument("case_id")
@click.option("--channel", type=click.Choice(["phone", "sms", "online"]),
              help="回访: phone (人工), sms (短信), online (网上自助评价).")
@click.option("--feedback", type=click.Choice(["satisfied", "unsatisfied", "no-answer"]),
              help="What the citizen said about the rectification.")
@click.option("--note", default="", help="What was said or done (no contact details here).")
@click.option("--show-contact", is_flag=True,
              help="Only show the real-name rater's contact, to call them (needs"
                   " --identity-key; shown on this terminal only, never logged).")
@click.option("--identity-key", type=click.Path(exists=True, dir_okay=False),
              help="The store's identity key file (as given to `hcp store serve`).")
def cases_follow_up(db: str, case_id: str, channel: str | None, feedback: str | None, note: str,
                    show_contact: bool, identity_key: str | None) -> None:
    """Record a follow-up (回访) with the citizen's feedback, or show whom to call.

    \b
    Example:
      hcp cases follow-up --db store.sqlite C1a2b3c4d --show-contact --identity-key id.key
      hcp cases follow-up --db store.sqlite C1a2b3c4d --channel phone --feedback satisfied
    """
    from haochaping.daemon.store import cases as cases_lib
    if show_contact:
        if not identity_key:
            raise click.UsageError("--show-contact needs --identity-key")
        st = _open(db, identity_key)
        try:
            who = cases_lib.contact(st, case_id)
        finally:
            st.close()
        click.echo("case %s: contact the rater (第六条: confidential, for this follow-up only)"
                   % case_id)
        for k in sorted(who):
            click.echo("  %s: %s" % (k, who[k]))
        return
    if not channel or not feedback:
        raise click.UsageError("give --channel and --feedback (or --show-contact)")
    st = _open(db)
    try:
        cases_lib.follow_up(st, case_id, channel, feedback, note)
    finally:
        st.close()
    click.echo("case %s: %s follow-up recorded, citizen %s" % (
        case_id, cases_lib.CHANNEL_NAMES[channel], cases_lib.FEEDBACK_NAMES[feedback]))


@cases.command("extend")
@DB
@click.argument("case_id")
@click.option("--to", "new_day", required=True, callback=parse_day, metavar="YYYY-MM-DD",
              help="The new deadline (a later day).")
@click.option("--reason", required=True, help="Why it cannot be rectified in time (第十二条).")
def cases_extend(db: str, case_id: str, new_day: datetime.date, reason: str) -> None:
    """Move a case's deadline, with a reason and a later date (第十二条).

    \b
    Example:
      hcp cases extend --db store.sqlite C1a2b3c4d --to 2026-11-30 --reason "需上级部门协调"
    """
    from haochaping.daemon.store import cases as cases_lib
    st = _open(db)
    try:
        day = cases_lib.extend(st, case_id, new_day, reason)
    finally:
        st.close()
    click.echo("case %s: due %s (end of day)" % (case_id, day.isoformat()))


@cases.command("close")
@DB
@click.argument("case_id")
@click.option("--result", required=True, help="What was rectified, as told to the citizen.")
def cases_close(db: str, case_id: str, result: str) -> None:
    """Close a case once rectified (a real-name case needs a follow-up first).

    \b
    Example:
      hcp cases close --db store.sqlite C1a2b3c4d --result "已对窗口人员进行培训并回访"
    """
    from haochaping.daemon.store import cases as cases_lib
    st = _open(db)
    try:
        cases_lib.close(st, case_id, result)
    finally:
        st.close()
    click.echo("case %s closed" % case_id)
