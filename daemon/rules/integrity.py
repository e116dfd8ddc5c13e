"""Integrity detectors (第十一条 弄虚作假; GB/T 39734 4.1 forbids forcing or interfering with a
rating) as pure functions: the store feeds them one record per transaction of a period, they
return findings, each with the unit, the evidence in numbers and an explanation in plain Chinese.
A finding is a reason to look, never a verdict: the report says so.

One record per transaction (``Case``):
  hall, window, staff     where and by whom it was served
  finished_at             when the service ended and the prompt opened (Unix seconds)
  level                   the citizen's own counted rating 1..5, or None (nobody rated: the
                          default 基本满意 is not a citizen's rating and is not judged here)
  delay                   seconds from the prompt opening to the rating reaching the hall, or None
  reasons                 the bad-review reason keys given with it (protocol/levels.REASONS)
  phone                   the rater's phone where a consented real-name rating carries one, or ""

Each detector compares a window (or staff member) with its own hall in the same period, so a
hall's terminals (their correction window, their network) are the baseline, not a constant.
Thresholds are ``Thresholds``; its defaults are documented in docs/integrity.md.
"""
from __future__ import annotations

import dataclasses
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import TypedDict

from haochaping.protocol import levels


class Case(TypedDict):
    hall: str
    window: str
    staff: str
    finished_at: float
    level: int | None
    delay: float | None
    reasons: tuple[str, ...]
    phone: str


class Finding(TypedDict):
    detector: str            # the detector's name (one function of this module)
    unit: str                # window:HALL/W01, staff:HALL/S0101, phone:****1234
    hall: str
    evidence: dict[str, float | int | str]
    explanation: str         # plain Chinese, with the numbers


@dataclasses.dataclass(frozen=True)
class Thresholds:
    min_cases: int = 20             # a unit with fewer rated transactions is not judged
    fast_share: float = 0.5         # reaction: at least this share of a window's presses ...
    fast_factor: float = 0.25       # ... faster than this fraction of the hall's median delay
    unrated_share: float = 0.4      # skipped prompts: at least this share never rated ...
    unrated_factor: float = 3.0     # ... and this many times the hall's share
    top_share_margin: float = 0.3   # too good: 非常满意 share this far above the hall's ...
    top_share_min: float = 0.9      # ... and at least this high
    zero_bad_p: float = 0.001       # zero bad reviews this unlikely at the hall's bad-review rate
    same_reason_run: int = 8        # pattern: this many bad reviews in a row, one reason set
    fixed_offset_std_s: float = 0.5  # pattern: delays this regular (standard deviation) ...
    fixed_offset_min: int = 20       # ... over at least this many ratings ...
    fixed_offset_factor: float = 0.25  # ... and under this fraction of the hall's other windows
    edge_minutes: float = 15        # bursts: the first and last minutes of a window's day
    edge_share: float = 0.5         # ... holding at least this share of its ratings
    phone_max_ratings: int = 5      # real name: one phone rating more transactions than this
    phone_max_units: int = 2        # ... or more windows than this


_REASON_NAMES: dict[str, str] = dict(levels.REASONS)


def _bad(level: int | None) -> bool:
    return level is not None and levels.is_bad(level)


def _window(c: Case) -> str:
    return "window:%s/%s" % (c["hall"], c["window"])


def _by(cases: Iterable[Case], key: Callable[[Case], str]) -> dict[str, list[Case]]:
    out: dict[str, list[Case]] = defaultdict(list)
    for c in cases:
        out[key(c)].append(c)
    return out


def _pct(x: float) -> str:
    return "%.0f%%" % (100 * x)


def reaction(cases: Sequence[Case], t: Thresholds) -> list[Finding]:
    """Presses that come far sooner after the prompt than the hall's citizens press, again and
    again at one window: someone at the counter reaching over (or the staff's own finger)."""
    out: list[Finding] = []
    for hall, hall_cases in _by(cases, lambda c: c["hall"]).items():
        for unit, cs in _by(hall_cases, _window).items():
            mine = [c["delay"] for c in cs if c["delay"] is not None and c["level"]]
            others = [c["delay"] for c in hall_cases if c["delay"] is not None and c["level"]
                      and _window(c) != unit]
            if len(mine) < t.min_cases or len(others) < t.min_cases:
                continue
            median = statistics.median(others)
            fast = median * t.fast_factor
            share = sum(1 for d in mine if d < fast) / len(mine)
            if share >= t.fast_share:
                out.append({"detector": "reaction", "unit": unit, "hall": hall, "evidence": {
                    "ratings": len(mine), "fast_share": round(share, 3),
                    "fast_below_s": round(fast, 3), "hall_median_s": round(median, 3),
                    "window_median_s": round(statistics.median(mine), 3)},
                    "explanation": "%s 的 %d 次评价中有 %s 在提示后 %.1f 秒内按下"
                    "（本厅其他窗口中位数 %.1f 秒）："
                    "可能有人代按评价器。" % (unit, len(mine), _pct(share), fast, median)})
    return out


def skipped_prompts(cases: Sequence[Case], t: Thresholds) -> list[Finding]:
    """Windows whose transactions end unrated far more often than the hall's: the prompt is
    skipped (请评价 never pressed) or the terminal is off."""
    out: list[Finding] = []
    for hall, hall_cases in _by(cases, lambda c: c["hall"]).items():
        for unit, cs in _by(hall_cases, _window).items():
            others = [c for c in hall_cases if _window(c) != unit]
            if len(cs) < t.min_cases or len(others) < t.min_cases:
                continue
            hall_share = sum(1 for c in others if c["level"] is None) / len(others)
            share = sum(1 for c in cs if c["level"] is None) / len(cs)
            if share >= t.unrated_share and share >= t.unrated_factor * hall_share:
                out.append({"detector": "skipped_prompts", "unit": unit, "hall": hall,
                            "evidence": {"transactions": len(cs), "unrated_share": round(share, 3),
                                         "hall_unrated_share": round(hall_share, 3)},
                            "explanation": "%s 的 %d 件办件中 %s 无人评价"
                            "（本厅其他窗口 %s）：可能未请群众评价，"
                            "或评价器离线。" % (unit, len(cs), _pct(share), _pct(hall_share))})
    return out


def too_good(cases: Sequence[Case], t: Thresholds) -> list[Finding]:
    """A window or staff member whose citizens are all 非常满意, far above the hall, or who have
    no bad review over more transactions than the hall's bad-review rate makes likely."""
    out: list[Finding] = []
    for hall, hall_cases in _by(cases, lambda c: c["hall"]).items():
        rated = [c for c in hall_cases if c["level"]]
        units = {**_by(rated, _window), **_by(
            [c for c in rated if c["staff"]], lambda c: "staff:%s/%s" % (c["hall"], c["staff"]))}
        for unit, cs in units.items():
            others = [c for c in rated if c["window"] != cs[0]["window"]]
            if len(cs) < t.min_cases or len(others) < t.min_cases:
                continue
            top = sum(1 for c in others if c["level"] == 1) / len(others)
            bad = sum(1 for c in others if _bad(c["level"])) / len(others)
            mine = sum(1 for c in cs if c["level"] == 1) / len(cs)
            mine_bad = sum(1 for c in cs if _bad(c["level"]))
            p_zero = (1 - bad) ** len(cs)
            if mine >= t.top_share_min and mine >= top + t.top_share_margin:
                out.append({"detector": "too_good", "unit": unit, "hall": hall, "evidence": {
                    "ratings": len(cs), "top_share": round(mine, 3),
                    "hall_top_share": round(top, 3)},
                    "explanation": "%s 的 %d 次评价中 %s 为非常满意，本厅其他窗口为 %s：明显偏高，"
                    "请核实是否有刷好评。" % (unit, len(cs), _pct(mine), _pct(top))})
            elif mine_bad == 0 and bad > 0 and p_zero < t.zero_bad_p:
                out.append({"detector": "too_good", "unit": unit, "hall": hall, "evidence": {
                    "ratings": len(cs), "bad": 0, "hall_bad_share": round(bad, 3),
                    "chance": float("%.2g" % p_zero)},
                    "explanation": "%s 的 %d 次评价无一差评；按本厅其他窗口的差评率 %s，"
                    "这种情况的概率约为 %.2g。"
                    % (unit, len(cs), _pct(bad), p_zero)})
    return out


def bursts(cases: Sequence[Case], t: Thresholds) -> list[Finding]:
    """Ratings piled up in the first or last minutes of a window's day (filled in before the
    doors open or after they close), when the hall's are spread over the day."""
    out: list[Finding] = []
    edge = t.edge_minutes * 60
    for unit, cs in _by([c for c in cases if c["level"]], _window).items():
        if len(cs) < t.min_cases:
            continue
        n_edge = 0
        for day in _by(cs, lambda c: str(int((c["finished_at"] + 8 * 3600) // 86400))).values():
            first = min(c["finished_at"] for c in day)
            last = max(c["finished_at"] for c in day)
            if last - first < 8 * edge:
                continue   # a short day (or the first hour of today): no edges to speak of
            n_edge += sum(1 for c in day if c["finished_at"] - first < edge
                          or last - c["finished_at"] < edge)
        share = n_edge / len(cs)
        if share >= t.edge_share:
            out.append({"detector": "bursts", "unit": unit, "hall": cs[0]["hall"], "evidence": {
                "ratings": len(cs), "edge_share": round(share, 3),
                "edge_minutes": t.edge_minutes},
                "explanation": "%s 的 %s 评价集中在每天开头或结尾 %d 分钟内：请核实是否集中补评。"
                % (unit, _pct(share), t.edge_minutes)})
    return out


def patterns(cases: Sequence[Case], t: Thresholds) -> list[Finding]:
    """Posting by pattern: the same reason set on many bad reviews in a row at one window, or
    ratings arriving a fixed time after each service (integration code posting for citizens)."""
    out: list[Finding] = []
    for unit, cs in _by(cases, _window).items():
        cs = sorted(cs, key=lambda c: c["finished_at"])
        run, longest = 0, 0
        what: tuple[str, ...] = ()
        prev: tuple[str, ...] | None = None
        for c in cs:
            if not _bad(c["level"]):
                continue
            r = tuple(sorted(c["reasons"]))
            run = run + 1 if r and r == prev else 1
            prev = r
            if run > longest:
                longest, what = run, r
        if longest >= t.same_reason_run:
            out.append({"detector": "patterns", "unit": unit, "hall": cs[0]["hall"],
                        "evidence": {"same_reasons_in_a_row": longest, "reasons": ",".join(what)},
                        "explanation": "%s 连续 %d 条差评的原因完全相同（%s）：请核实是否批量代填。"
                        % (unit, longest, "、".join(_REASON_NAMES[k] for k in what))})
        delays = [c["delay"] for c in cs if c["delay"] is not None and c["level"]]
        others = [c["delay"] for c in cases if c["hall"] == cs[0]["hall"]
                  and _window(c) != unit and c["delay"] is not None and c["level"]]
        if len(delays) >= t.fixed_offset_min and len(others) >= t.fixed_offset_min:
            sd = statistics.pstdev(delays)
            # regular in itself, and far more regular than the hall's other windows (whose
            # citizens press on the same terminals)
            if sd < t.fixed_offset_std_s and sd < t.fixed_offset_factor * statistics.pstdev(
                    others):
                out.append({"detector": "patterns", "unit": unit, "hall": cs[0]["hall"],
                            "evidence": {"ratings": len(delays),
                                         "delay_mean_s": round(statistics.fmean(delays), 3),
                                         "delay_std_s": round(sd, 3)},
                            "explanation": "%s 的 %d 次评价都在服务结束后约 %.1f 秒到达"
                            "（标准差 %.2f 秒）："
                            "群众不会如此整齐，可能由系统自动提交。"
                            % (unit, len(delays), statistics.fmean(delays), sd)})
    return out


def _masked(phone: str) -> str:
    return "****" + phone[-4:] if len(phone) > 4 else "****"


def real_name(cases: Sequence[Case], t: Thresholds) -> list[Finding]:
    """One phone number giving many real-name ratings, or at several windows: residents' or
    cadres' numbers filled in for citizens. The number is shown masked."""
    out: list[Finding] = []
    for phone, cs in _by([c for c in cases if c["phone"] and c["level"]],
                         lambda c: c["phone"]).items():
        units = {_window(c) for c in cs}
        if len(cs) > t.phone_max_ratings or len(units) > t.phone_max_units:
            out.append({"detector": "real_name", "unit": "phone:" + _masked(phone),
                        "hall": cs[0]["hall"], "evidence": {"ratings": len(cs),
                                                            "windows": len(units)},
                        "explanation": "同一手机号（%s）实名评价了 %d 件办件、%d 个窗口："
                        "请核实是否冒用"
                        "群众信息。" % (_masked(phone), len(cs), len(units))})
    return out


DETECTORS: tuple[Callable[[Sequence[Case], Thresholds], list[Finding]], ...] = (
    reaction, skipped_prompts, too_good, bursts, patterns, real_name)


def findings(cases: Sequence[Case], t: Thresholds | None = None) -> list[Finding]:
    """Every detector over the cases of one period, findings sorted by unit."""
    t = t or Thresholds()
    out = [f for d in DETECTORS for f in d(cases, t)]
    return sorted(out, key=lambda f: (f["unit"], f["detector"]))
