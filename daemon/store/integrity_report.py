"""`hcp integrity report`: the integrity detectors (daemon/rules/integrity.py) over one period
of the store, written as an internal report (HTML and JSON). Never part of the public report:
it names windows and staff numbers, and a finding is a reason to look, not a verdict.

A transaction's delay is from its end (the prompt opening, the hall's clock) to its citizen
rating reaching the hall (the hall's clock): both times come from the same hall daemon, so no
terminal clock enters it. Its press delay is the terminal's own measure (prompt lit to key
press, signed by the terminal, firmware 0.3.0 on), where the rating carries one: `reaction`
prefers it. Terminal outages and staff phone numbers stay at the hall (`hcp integrity
today`). The rater's phone is read only where the store can open the rater's identity (its
identity key) and only to compare it; the report shows it masked.
"""
from __future__ import annotations

import html
import json
import os
from typing import Any

from haochaping.daemon.rules import integrity
from haochaping.daemon.rules.integrity import Case, Finding, Thresholds
from haochaping.daemon.store import access, scores
from haochaping.daemon.store.backends import Store

CASES_SQL = """
SELECT t.uid, t.hall, t.window_id, t.staff, t.finished_at, t.rater_enc,
       r.level, r.hall_received_at, r.terminal, r.seq, r.press_delay_ms
FROM transactions t
LEFT JOIN ratings r ON r.uid = (
    SELECT r2.uid FROM ratings r2 WHERE r2.tx_uid = t.uid AND r2.outcome = 'counted'
      AND r2.is_default = 0 ORDER BY r2.rated_at, r2.uid LIMIT 1)
WHERE t.finished_at >= %s AND t.finished_at < %s
ORDER BY t.finished_at, t.uid
"""
REASONS_SQL = """
SELECT s.hall, s.terminal, s.ref_seq, s.reason FROM reasons s
JOIN ratings r ON r.hall = s.hall AND r.terminal = s.terminal AND r.seq = s.ref_seq
JOIN transactions t ON t.uid = r.tx_uid
WHERE t.finished_at >= %s AND t.finished_at < %s
"""


def cases(store: Store, period: str) -> list[Case]:
    """One Case per transaction of the period (scores.bounds: 2026Q3, 2026-07, 2026)."""
    _first, _last, start, end = scores.bounds(period)
    reasons: dict[tuple[str, str, int], list[str]] = {}
    for hall, terminal, ref, reason in access.query(store, REASONS_SQL, (start, end)):
        reasons.setdefault((hall, terminal, int(ref)), []).append(reason)
    out: list[Case] = []
    for (uid, hall, window, staff, finished, rater_enc, level, received, terminal,
         seq, press_ms) in access.query(store, CASES_SQL, (start, end)):
        phone = ""
        if rater_enc is not None and store.identity is not None:
            phone = str(store.identity.open(uid, rater_enc).get("phone") or "")
        out.append({"hall": hall, "window": window, "staff": staff,
                    "finished_at": float(finished), "level": level,
                    "delay": None if received is None else float(received) - float(finished),
                    "press_delay": None if press_ms is None else press_ms / 1000,
                    "reasons": tuple(sorted(reasons.get((hall, terminal, int(seq)), ())))
                    if terminal is not None else (), "phone": phone, "phone_mac": "",
                    "terminal_offline": None})
    return out


def report(store: Store, period: str, t: Thresholds | None = None) -> dict[str, Any]:
    """The findings of a period, with what was looked at."""
    cs = cases(store, period)
    found = integrity.findings(cs, t)
    return {"period": period, "transactions": len(cs),
            "rated": sum(1 for c in cs if c["level"]),
            "thresholds": vars(t or Thresholds()), "findings": found,
            "note": "内部材料，不对外公开。每条发现只是需要核实的线索，不是结论。"}


def _row(f: Finding) -> str:
    ev = "，".join("%s=%s" % (k, v) for k, v in f["evidence"].items())
    return "<tr><td>%s</td><td>%s</td><td>%s</td><td class=\"ev\">%s</td></tr>" % tuple(
        html.escape(str(x)) for x in (f["unit"], _NAMES.get(f["detector"], f["detector"]),
                                      f["explanation"], ev))


_NAMES = {"reaction": "代按评价器", "skipped_prompts": "未请评价", "skipped_hours": "分时段未评价",
          "offline_terminals": "评价器离线", "too_good": "好评异常", "bursts": "集中评价",
          "patterns": "批量/定时提交", "real_name": "实名信息异常",
          "staff_rater": "工作人员冒充群众评价"}
_CSS = ('body{font-family:"Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:24px;'
        'max-width:1100px}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid'
        ' #ccc;padding:4px 8px;vertical-align:top}.ev{color:#555;font-size:12px}'
        '.note{color:#a33}')


def write(rep: dict[str, Any], out_dir: str) -> dict[str, str]:
    """PERIOD-integrity.json and PERIOD-integrity.html in out_dir; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, "%s-integrity" % rep["period"])
    with open(base + ".json", "w", encoding="utf-8") as f:
        json.dump(rep, f, ensure_ascii=False, indent=1)
    rows = "".join(_row(f) for f in rep["findings"]) or (
        "<tr><td colspan=\"4\">本期未发现异常。</td></tr>")
    page = ("<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>"
            "%(p)s 评价真实性核查（内部）</title><style>%(css)s</style></head><body>"
            "<h1>%(p)s 评价真实性核查（内部）</h1><p class=\"note\">%(note)s</p>"
            "<p>办件 %(n)d 件，群众评价 %(r)d 次，发现 %(f)d 条。</p>"
            "<table><tr><th>单位</th><th>类型</th><th>说明</th><th>依据</th></tr>%(rows)s"
            "</table></body></html>") % {
        "p": html.escape(rep["period"]), "css": _CSS, "note": html.escape(rep["note"]),
        "n": rep["transactions"], "r": rep["rated"], "f": len(rep["findings"]), "rows": rows}
    with open(base + ".html", "w", encoding="utf-8") as f:
        f.write(page)
    return {"json": base + ".json", "html": base + ".html"}
