"""第十一条 quarterly report from the store: figures (scores per unit, level distribution, trend
over quarters, bad-review reasons, rectification and appeals), written as one HTML page with
inline SVG charts drawn here (no script, no CDN: offices run on closed networks), plus CSV and
JSON of the same figures.

Personal data (第六条): no report ever holds a rater's identity, a ticket (办件编号) or a rating
id. The internal report scores staff by staff number (工号, shown on every window's badge; the
store keeps no names); the public one (--public) has departments and windows only, as staff
scores are personnel assessment (第十四条), not a publication.
"""
from __future__ import annotations

import csv
import html
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, TypedDict

from haochaping.daemon.rules import scoring
from haochaping.daemon.store import access, scores
from haochaping.protocol import levels

if TYPE_CHECKING:
    from haochaping.daemon.rules.workdays import Calendar
    from haochaping.daemon.store.backends import Store

TREND_QUARTERS = 4
REASON_NAMES = dict(levels.REASONS)
LEVEL_COLOURS = {1: "#1a7f37", 2: "#4ca34f", 3: "#c9a227", 4: "#e36b2c", 5: "#c0392b"}
STATUS_NAMES = {"open": "整改中", "overdue": "逾期未整改", "closed": "已整改",
                "withdrawn": "已撤销"}
# why a unit has no score, as scoring.Score.reason gives it
NO_SCORE = {scoring.NO_DATA: "无办件", scoring.NO_COUNTED_RATINGS: "无有效评价"}
STATUS_COLOURS = {"open": "#2f6fb0", "overdue": "#c0392b", "closed": "#1a7f37",
                  "withdrawn": "#888888"}

REASONS_SQL = """
SELECT s.reason, COUNT(*) FROM reasons s
JOIN ratings r ON r.hall = s.hall AND r.terminal = s.terminal AND r.seq = s.ref_seq
JOIN transactions t ON t.uid = r.tx_uid
WHERE r.outcome = 'counted' AND r.is_default = 0 AND r.level >= 4
  AND t.finished_at >= %s AND t.finished_at < %s
  AND NOT EXISTS (SELECT 1 FROM appeals a WHERE a.rating_uid = r.uid AND a.status = 'upheld')
GROUP BY s.reason ORDER BY COUNT(*) DESC, s.reason
"""
CASES_SQL = """
SELECT c.id, c.status, c.due, c.real_name,
  (SELECT COUNT(*) FROM case_events e WHERE e.case_id = c.id AND e.kind = 'follow-up')
FROM cases c JOIN transactions t ON t.uid = c.tx_uid
WHERE t.finished_at >= %s AND t.finished_at < %s
"""
APPEALS_SQL = """
SELECT a.status, a.decision_due FROM appeals a
JOIN ratings r ON r.uid = a.rating_uid JOIN transactions t ON t.uid = r.tx_uid
WHERE t.finished_at >= %s AND t.finished_at < %s
"""


# --- figures ----------------------------------------------------------------------------------

class Overall(scoring.ScoreDict):
    """The period's score over all its transactions, with their counts."""
    defaults: int
    excluded: int
    pending: int


class UnitRow(TypedDict):
    """One unit's score (a row of PERIOD-scores.csv)."""
    kind: str
    unit: str
    label: str                      # the unit, with the hall's name for a department
    final: int | None
    rate_points: int | None
    average_points: int | None
    acceptance_rate: float | None
    average: float | None
    rate_band: str | None
    average_band: str | None
    transactions: int
    rated: int
    defaults: int
    excluded: int
    pending: int
    reason: str | None
    provisional: bool


class TrendRow(TypedDict):
    period: str                     # 2026Q3
    unit: str                       # a department, or "all"
    final: int | None
    average: float | None


class ReasonRow(TypedDict):
    reason: str
    label: str
    count: int


class Rectification(TypedDict):
    cases: int
    by_status: dict[str, int]       # STATUS_NAMES' keys
    real_name_cases: int
    real_name_followed_up: int
    real_name_follow_up_rate: float | None
    target_rate: float


# figures(): every figure of the report, what PERIOD.json holds ("from" is a keyword, hence
# this form); "appeals": filed, pending, upheld, rejected, overdue
Figures = TypedDict("Figures", {
    "title": str, "period": str, "from": str, "to": str, "public": bool, "generated_at": str,
    "articles": str, "overall": Overall, "units": list[UnitRow],
    "levels": list[scoring.LevelCount], "trend": list[TrendRow], "reasons": list[ReasonRow],
    "rectification": Rectification, "appeals": dict[str, int],
})


def quarters_up_to(period: str, n: int = TREND_QUARTERS) -> list[str]:
    """The quarter holding the period's last day and the n-1 before it (from 2020Q3 on)."""
    _first, last = scoring.parse_period(period)
    y, q = last.year, (last.month - 1) // 3 + 1
    out: list[str] = []
    while len(out) < n and (y, q) >= scoring.FIRST_REPORT_PERIOD:
        out.append("%dQ%d" % (y, q))
        y, q = (y, q - 1) if q > 1 else (y - 1, 4)
    return out[::-1]


def unit_label(kind: str, unit: str, names: Mapping[str, str]) -> str:
    """A unit as a reader of the report knows it: the hall's name rather than its code, 窗口
    and 工号 in words (the store keeps no staff names: 第六条 keeps it to what it needs)."""
    if kind == "department":
        return names.get(unit) or unit
    hall, _, rest = unit.partition(":")[2].partition("/")
    where = names.get(hall) or hall
    return "%s %s窗口" % (where, rest) if kind == "window" else "%s 工号%s" % (where, rest)


def _unit_row(u: scores.UnitScore, names: Mapping[str, str]) -> UnitRow:
    s = u["score"]
    t = scoring.tally(u["ratings"], u["pending"])
    label = unit_label(u["kind"], u["unit"], names)
    return {"kind": u["kind"], "unit": u["unit"], "label": label, "final": s.final,
            "rate_points": s.rate_points, "average_points": s.average_points,
            "acceptance_rate": _f(s.acceptance_rate), "average": _f(s.average),
            "rate_band": s.rate_band, "average_band": s.average_band, "transactions": s.total,
            "rated": s.rated, "defaults": t["defaults"], "excluded": t["excluded"],
            "pending": t["pending"], "reason": s.reason, "provisional": s.provisional}


def _f(x: Fraction | float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def kept(store: Store, period: str) -> Figures | None:
    """The figures kept for a quarter whose rows were archived (archive.py), or None."""
    rows = access.query(store, "SELECT figures FROM archived_reports WHERE period = %s",
                        (period,))
    if not rows:
        return None
    fig: Figures = json.loads(rows[0][0])
    return fig


def figures(store: Store, period: str, public: bool = False, now: float | None = None,
            calendar: Calendar | None = None) -> Figures:
    """Every figure of the report, as plain data (what the JSON file holds). A quarter whose
    rows were archived: the figures kept when they were (public: without staff)."""
    old = kept(store, period)
    if old is not None:
        if public:
            old["units"] = [u for u in old["units"] if u["kind"] != "staff"]
            old["public"] = True
        return old
    now = time.time() if now is None else now
    first, last, start, end = scores.bounds(period)
    names = {r[0]: r[1] for r in access.query(store, "SELECT id, name FROM halls")}
    txs = scores.transactions(store, period, now, calendar)
    units = scores.unit_scores(store, period, now, calendar, txs)
    kinds = ("department", "window") if public else scores.KINDS
    overall = scoring.score([t["rating"] for t in txs if t["rating"]],
                          sum(1 for t in txs if t["rating"] is None))
    t_all = scoring.tally([t["rating"] for t in txs if t["rating"]],
                        sum(1 for t in txs if t["rating"] is None))
    level_rows: list[scoring.LevelCount] = [
        {"level": r["level"], "name": r["name"], "points": r["points"], "citizen": r["citizen"],
         "default": r["default"], "excluded": r["excluded"]}
        for r in t_all["per_level"]]
    trend: list[TrendRow] = []
    for q in quarters_up_to(period):
        q_kept = kept(store, q) if q != period else None
        if q_kept is not None:
            trend.extend(t for t in q_kept["trend"] if t["period"] == q)
            continue
        q_units = units if q == period else scores.unit_scores(store, q, now, calendar)
        q_txs = [r for u in q_units.values() if u["kind"] == "department" for r in u["ratings"]]
        q_pending = sum(u["pending"] for u in q_units.values() if u["kind"] == "department")
        s = scoring.score(q_txs, q_pending)
        trend.append({"period": q, "unit": "all", "final": s.final, "average": _f(s.average)})
        for u in q_units.values():
            if u["kind"] == "department":
                trend.append({"period": q, "unit": u["unit"], "final": u["score"].final,
                              "average": _f(u["score"].average)})
    reason_counts: list[tuple[str, int]] = access.query(store, REASONS_SQL, (start, end))
    reasons: list[ReasonRow] = [{"reason": r, "label": REASON_NAMES.get(r, r), "count": n}
                                for r, n in reason_counts]
    today = access.when(now).date().isoformat()
    rect = dict.fromkeys(STATUS_NAMES, 0)
    real_total = real_followed = 0
    for _cid, status, due, real, follow_ups in access.query(store, CASES_SQL, (start, end)):
        key = "overdue" if status == "open" and due < today else status
        rect[key] += 1
        if real and status != "withdrawn":
            real_total += 1
            real_followed += 1 if follow_ups else 0
    rectification: Rectification = {"cases": sum(rect.values()), "by_status": rect,
                     "real_name_cases": real_total, "real_name_followed_up": real_followed,
                     "real_name_follow_up_rate": _f(real_followed / real_total)
                     if real_total else None, "target_rate": 1.0}
    appeal_counts: dict[str, int] = {"filed": 0, "pending": 0, "upheld": 0, "rejected": 0,
                                     "overdue": 0}
    for status, due in access.query(store, APPEALS_SQL, (start, end)):
        appeal_counts["filed"] += 1
        appeal_counts[status] += 1
        if status == "pending" and due < today:
            appeal_counts["overdue"] += 1
    return {
        "title": "政务服务“好差评”季度通报 %s" % period, "period": period,
        "from": first.isoformat(), "to": last.isoformat(), "public": public,
        "generated_at": access.when(now).isoformat(timespec="seconds"),
        "articles": "依据: 第十一条 (通报), 第十四条 (得分), 第十二条 (整改), 第十条 (复核)",
        "overall": {**overall.to_dict(), "defaults": t_all["defaults"],
                    "excluded": t_all["excluded"], "pending": t_all["pending"]},
        "units": [_unit_row(u, names) for u in units.values() if u["kind"] in kinds],
        "levels": level_rows, "trend": trend, "reasons": reasons,
        "rectification": rectification, "appeals": appeal_counts,
    }


# --- charts: inline SVG -----------------------------------------------------------------------

def _e(s: object) -> str:
    return html.escape(str(s), quote=True)


def _svg(chart_id: str, width: int, height: int, body: Iterable[str], title: str) -> str:
    return ('<svg id="%s" class="chart" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d"'
            ' viewBox="0 0 %d %d" role="img" aria-label="%s"><title>%s</title>%s</svg>'
            % (chart_id, width, height, width, height, _e(title), _e(title), "".join(body)))


def hbars(chart_id: str, title: str, rows: Sequence[tuple[str, float | None, str, str]],
          vmax: float, unit_text: str = "", width: int = 760) -> str:
    """Horizontal bars: rows of (label, value or None, colour, text at the bar's end)."""
    bar_h, gap, left, top = 22, 8, 230, 10
    height = top + max(1, len(rows)) * (bar_h + gap) + 30
    span = width - left - 80
    body = ['<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444"/>'
            % (left, top - 4, left, height - 24)]
    n = _divisions(vmax, 10)
    for i in range(n + 1):
        x = left + span * i / n
        body.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>'
                    % (x, top - 4, x, height - 24))
        body.append('<text x="%.1f" y="%d" font-size="10" text-anchor="middle" fill="#555">'
                    '%s</text>' % (x, height - 10, _tick(vmax * i / n)))
    if not rows:
        body.append('<text x="%d" y="%d" font-size="13" fill="#555">无数据</text>'
                    % (left + 10, top + 16))
    for i, (label, value, colour, text) in enumerate(rows):
        y = top + i * (bar_h + gap)
        body.append('<text x="%d" y="%d" font-size="12" text-anchor="end">%s</text>'
                    % (left - 6, y + 15, _e(label)))
        w = 0 if value is None or vmax == 0 else max(1.5, span * value / vmax)
        if value is not None:
            body.append('<rect class="bar" x="%d" y="%d" width="%.1f" height="%d" fill="%s">'
                        '<title>%s: %s%s</title></rect>'
                        % (left, y, w, bar_h, colour, _e(label), _e(text), _e(unit_text)))
        body.append('<text x="%.1f" y="%d" font-size="12" fill="#222">%s</text>'
                    % (left + w + 5, y + 15, _e(text)))
    return _svg(chart_id, width, height, body, title)


def _divisions(vmax: float, most: int) -> int:
    """Grid lines for an axis from 0 to vmax: at most `most`, and for a whole vmax (counts,
    scores) a number that divides it, so that every tick is a whole number."""
    if not float(vmax).is_integer() or vmax <= 0:
        return most
    return max(d for d in range(1, most + 1) if int(vmax) % d == 0)


def _tick(v: float) -> str:
    return ("%d" % v) if float(v).is_integer() else ("%.1f" % v)


def vbars(chart_id: str, title: str, groups: Sequence[tuple[str, Sequence[tuple[int, str, str]]]],
          width: int = 760, height: int = 300) -> str:
    """Stacked vertical bars: groups of (label, [(value, colour, series name)])."""
    left, bottom, top = 50, 50, 20
    vmax = max([sum(v for v, _c, _n in parts) for _l, parts in groups] + [1])
    vmax = _nice(vmax)
    span_h = height - top - bottom
    step = (width - left - 20) / max(1, len(groups))
    body = ['<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444"/>'
            % (left, height - bottom, width - 10, height - bottom)]
    n = _divisions(vmax, 5)
    for i in range(n + 1):
        y = height - bottom - span_h * i / n
        body.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>'
                    % (left, y, width - 10, y))
        body.append('<text x="%d" y="%.1f" font-size="10" text-anchor="end" fill="#555">%s'
                    '</text>' % (left - 5, y + 3, _tick(vmax * i / n)))
    for i, (label, parts) in enumerate(groups):
        x = left + i * step + step * 0.2
        y = height - bottom
        for value, colour, name in parts:
            h = span_h * value / vmax
            if value:
                body.append('<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f"'
                            ' fill="%s"><title>%s %s: %d</title></rect>'
                            % (x, y - h, step * 0.6, max(h, 1.5), colour, _e(label), _e(name),
                               value))
            y -= h
        total = sum(v for v, _c, _n in parts)
        body.append('<text x="%.1f" y="%.1f" font-size="12" text-anchor="middle">%d</text>'
                    % (x + step * 0.3, y - 4, total))
        body.append('<text x="%.1f" y="%d" font-size="12" text-anchor="middle">%s</text>'
                    % (x + step * 0.3, height - bottom + 16, _e(label)))
    return _svg(chart_id, width, height, body, title)


def _nice(v: int) -> int:
    for n in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if v <= n:
            return n
    return v


def lines(chart_id: str, title: str, periods: Sequence[str],
          series: Sequence[tuple[str, str, Sequence[float | None]]], width: int = 760,
          height: int = 300) -> str:
    """Scores over quarters: series of (name, colour, [value or None per period]), 0..10."""
    left, bottom, top, right = 50, 70, 20, 20
    span_w, span_h = width - left - right, height - top - bottom
    body = ['<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444"/>'
            % (left, height - bottom, width - right, height - bottom)]
    for v in range(0, 11, 2):
        y = height - bottom - span_h * v / 10
        body.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>'
                    % (left, y, width - right, y))
        body.append('<text x="%d" y="%.1f" font-size="10" text-anchor="end" fill="#555">%d'
                    '</text>' % (left - 5, y + 3, v))

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (span_w * (i + 0.5) / max(1, len(periods)))
        return x, height - bottom - span_h * v / 10
    for i, p in enumerate(periods):
        body.append('<text x="%.1f" y="%d" font-size="12" text-anchor="middle">%s</text>'
                    % (xy(i, 0)[0], height - bottom + 16, _e(p)))
    for k, (name, colour, values) in reversed(list(enumerate(series))):
        pts = [xy(i, v) for i, v in enumerate(values) if v is not None]
        if len(pts) > 1:   # the first series (all units) is drawn last, dashed, on top
            body.append('<polyline class="line" fill="none" stroke="%s" stroke-width="%d"%s'
                        ' points="%s"/>' % (colour, 3 if k == 0 else 2,
                                            ' stroke-dasharray="6 4"' if k == 0 else "",
                                            " ".join("%.1f,%.1f" % p for p in pts)))
        for (x, y), value in zip(pts, [v for v in values if v is not None], strict=True):
            body.append('<circle class="point" cx="%.1f" cy="%.1f" r="4" fill="%s"><title>%s:'
                        ' %s</title></circle>' % (x, y, colour, _e(name), value))
        lx = left + 10 + (k % 4) * 170
        ly = height - 30 + (k // 4) * 14
        body.append('<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d"'
                    ' font-size="11">%s</text>' % (lx, ly - 9, colour, lx + 14, ly, _e(name)))
    if not any(v is not None for _n, _c, vals in series for v in vals):
        body.append('<text x="%d" y="%d" font-size="13" fill="#555">无数据</text>'
                    % (left + 10, top + 20))
    return _svg(chart_id, width, height, body, title)


PALETTE = ("#2f6fb0", "#e36b2c", "#1a7f37", "#8e44ad", "#c9a227", "#16a085", "#c0392b",
           "#7f8c8d")


def charts(fig: Figures) -> dict[str, str]:
    """The five charts of the report, as SVG strings keyed by chart id."""
    out = {}
    dept = [u for u in fig["units"] if u["kind"] == "department"]
    windows = [u for u in fig["units"] if u["kind"] == "window"]
    rows: list[tuple[str, float | None, str, str]] = []
    for u in dept + windows:
        text = (("%d / 10" % u["final"]) if u["final"] is not None
                else "无数据 (%s)" % NO_SCORE.get(u["reason"] or "", u["reason"]))
        if u["provisional"] and u["final"] is not None:
            text += " (暂定: 尚有办件在评价期内)"
        rows.append((u["label"], u["final"], "#2f6fb0" if u["kind"] == "department"
                     else "#6fa8dc", text))
    out["chart-scores"] = hbars("chart-scores", "得分 (第十四条): 部门与窗口", rows, 10)
    out["chart-levels"] = vbars("chart-levels", "评价等级分布", [
        (r["name"], [(r["citizen"], LEVEL_COLOURS[r["level"]], "群众评价"),
                     (r["default"], "#e8d27a", "默认好评"),
                     (r["excluded"], "#bbbbbb", "复核排除")])
        for r in fig["levels"]])
    periods: list[str] = []
    for t in fig["trend"]:
        if t["period"] not in periods:
            periods.append(t["period"])
    names = ["all"] + sorted({t["unit"] for t in fig["trend"] if t["unit"] != "all"})
    labels = {u["unit"]: u["label"] for u in fig["units"]}
    series = []
    for k, n in enumerate(names):
        vals = {t["period"]: t["final"] for t in fig["trend"] if t["unit"] == n}
        series.append(("全部" if n == "all" else labels.get(n, n), PALETTE[k % len(PALETTE)],
                       [vals.get(p) for p in periods]))
    out["chart-trend"] = lines("chart-trend", "季度得分走势", periods, series)
    vmax = max([r["count"] for r in fig["reasons"]] + [1])
    out["chart-reasons"] = hbars("chart-reasons", "差评原因", [
        (r["label"], r["count"], "#e36b2c", str(r["count"])) for r in fig["reasons"]],
        _nice(vmax))
    rect = fig["rectification"]["by_status"]
    vmax = max(list(rect.values()) + [1])
    out["chart-rectification"] = hbars("chart-rectification", "差评整改情况 (第十二条)", [
        (STATUS_NAMES[k], rect[k], STATUS_COLOURS[k], str(rect[k])) for k in STATUS_NAMES],
        _nice(vmax))
    return out


# --- files ------------------------------------------------------------------------------------

CSS = ('body{font-family:"Noto Sans CJK SC","Noto Sans SC","Microsoft YaHei",sans-serif;'
       'margin:24px;\ncolor:#222;max-width:1000px}h1{font-size:22px}h2{font-size:17px;'
       'margin-top:28px;border-bottom:1px\nsolid #ccc}table{border-collapse:collapse;'
       'font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;\ntext-align:right}'
       'td:first-child,th:first-child{text-align:left}.note{color:#555;font-size:13px}\n'
       '.bad{color:#c0392b;font-weight:bold}')


def _pct(x: float | None) -> str:
    return "-" if x is None else scoring.percent(scoring._exact(x, "rate"))


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = ["<table><tr>%s</tr>" % "".join("<th>%s</th>" % _e(h) for h in headers)]
    for r in rows:
        out.append("<tr>%s</tr>" % "".join("<td>%s</td>" % _e("" if v is None else v)
                                           for v in r))
    out.append("</table>")
    return "".join(out)


def html_page(fig: Figures) -> str:
    c = charts(fig)
    o = fig["overall"]
    rect = fig["rectification"]
    rate = rect["real_name_follow_up_rate"]
    rate_text = "无实名差评" if rate is None else _pct(rate)
    parts = [
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">",
        "<title>%s</title><style>%s</style></head><body>" % (_e(fig["title"]), CSS),
        "<h1>%s%s</h1>" % (_e(fig["title"]), " (公开版)" if fig["public"] else " (内部版)"),
        "<p class=\"note\">%s 至 %s · 生成于 %s · %s</p>" % (
            _e(fig["from"]), _e(fig["to"]),
            _e(fig["generated_at"].replace("T", " ").partition("+")[0]), _e(fig["articles"])),
        "<p>全部办件 %d, 群众评价 %d, 默认好评 %d, 复核排除 %d, 尚在评价期 %d; 得分 %s</p>" % (
            o["total"], o["rated"], o["defaults"], o["excluded"], o["pending"],
            "无数据" if o["final"] is None else "%d / 10" % o["final"]),
        "<h2>得分 (第十四条)</h2>", c["chart-scores"],
        _table(("单位", "得分", "接受评价率", "平均分", "办件", "群众评价", "默认", "排除",
                "评价期内"),
               [(u["label"], "无数据" if u["final"] is None else u["final"],
                 _pct(u["acceptance_rate"]),
                 "-" if u["average"] is None else "%.3f" % u["average"], u["transactions"],
                 u["rated"], u["defaults"], u["excluded"], u["pending"]) for u in fig["units"]]),
        "<h2>评价等级分布</h2>", c["chart-levels"],
        "<h2>季度得分走势</h2>", c["chart-trend"],
        "<h2>差评原因</h2>", c["chart-reasons"],
        "<h2>差评整改 (第十二条, 第十三条)</h2>", c["chart-rectification"],
        "<p>实名差评回访整改率: <span class=\"%s\">%s</span> (%d / %d; 要求 100%%)</p>" % (
            "bad" if rate is not None and rate < 1 else "", _e(rate_text),
            rect["real_name_followed_up"], rect["real_name_cases"]),
        "<h2>复核 (第十条)</h2>",
        _table(("申请", "待复核", "撤销差评", "驳回", "逾期未复核"),
               [(fig["appeals"]["filed"], fig["appeals"]["pending"], fig["appeals"]["upheld"],
                 fig["appeals"]["rejected"], fig["appeals"]["overdue"])]),
        "<p class=\"note\">不含评价人信息 (第六条)%s。</p>" % (
            "; 公开版不含工作人员个人得分" if fig["public"] else "; 内部版按工号列出工作人员得分"),
        "</body></html>",
    ]
    return "\n".join(parts)


CSV_FILES = {
    "scores": ("kind", "unit", "label", "final", "rate_points", "average_points",
               "acceptance_rate", "average", "transactions", "rated", "defaults", "excluded",
               "pending", "reason", "provisional"),
    "levels": ("level", "name", "points", "citizen", "default", "excluded"),
    "trend": ("period", "unit", "final", "average"),
    "reasons": ("reason", "label", "count"),
}


def write(fig: Figures, out_dir: str | os.PathLike[str]) -> dict[str, str]:
    """Write the HTML page, the JSON and the CSV files; return their paths."""
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, fig["period"] + ("-public" if fig["public"] else ""))
    paths = {"html": base + ".html", "json": base + ".json"}
    with open(paths["html"], "w", encoding="utf-8") as f:
        f.write(html_page(fig))
    with open(paths["json"], "w", encoding="utf-8") as f:
        json.dump(fig, f, ensure_ascii=False, indent=1)
    rows: dict[str, Sequence[Mapping[str, object]]] = {
        "scores": fig["units"], "levels": fig["levels"], "trend": fig["trend"],
        "reasons": fig["reasons"]}
    for name, cols in CSV_FILES.items():
        paths[name] = "%s-%s.csv" % (base, name)
        _csv(paths[name], cols, rows[name])
    paths["rectification"] = base + "-rectification.csv"
    r = fig["rectification"]
    _csv(paths["rectification"], ("status", "cases"),
         [{"status": k, "cases": v} for k, v in r["by_status"].items()] + [
             {"status": "real_name_cases", "cases": r["real_name_cases"]},
             {"status": "real_name_followed_up", "cases": r["real_name_followed_up"]}])
    paths["appeals"] = base + "-appeals.csv"
    _csv(paths["appeals"], tuple(fig["appeals"]), [fig["appeals"]])
    return paths


def _csv(path: str, cols: Sequence[str], rows: Iterable[Mapping[str, object]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def quarterly(store: Store, period: str, out_dir: str | os.PathLike[str], public: bool = False,
              now: float | None = None,
              calendar: Calendar | None = None) -> tuple[Figures, dict[str, str]]:
    fig = figures(store, period, public, now, calendar)
    return fig, write(fig, out_dir)
