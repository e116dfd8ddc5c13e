"""Integrity detectors (第十一条 弄虚作假; GB/T 39734 4.1 forbids forcing or interfering with a
rating) as pure functions: the store (a period) and the hall (today) feed them one record per
transaction, they return findings, each with the unit, the evidence in numbers and an
explanation in plain Chinese. A finding is a reason to look, never a verdict: the report says so.

One record per transaction (``Case``):
  hall, window, staff     where and by whom it was served
  finished_at             when the service ended and the prompt opened (Unix seconds)
  level                   the citizen's own counted rating 1..5, or None (nobody rated: the
                          default 基本满意 is not a citizen's rating and is not judged here)
  delay                   seconds from the prompt opening to the rating reaching the hall, or None
  press_delay             seconds from the prompt lighting on the terminal to the key press, as
                          the terminal measured and signed it (firmware 0.3.0 on), or None (an
                          older terminal, a phone, nobody rated)
  reasons                 the bad-review reason keys given with it (protocol/levels.REASONS)
  phone                   the rater's phone where a consented real-name rating carries one, or ""
  phone_mac               the keyed hash of a real-name phone rater's number (the hall only,
                          daemon/hall/phones.py), or ""
  terminal_offline        True when every terminal of the window was offline as the service
                          ended (or none was paired), False when one was online; None where
                          that is not known (the store)

``StaffPhone`` (the hall only): a staff member's number as its keyed hash and last 4 digits.

Each detector compares a window (or staff member) with its own hall in the same period, so a
hall's terminals (their correction window, their network) are the baseline, not a constant.
Thresholds are ``Thresholds``; its defaults are documented in docs/integrity.md.
"""
from __future__ import annotations

import dataclasses
import math
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
    press_delay: float | None
    reasons: tuple[str, ...]
    phone: str
    phone_mac: str
    terminal_offline: bool | None


class StaffPhone(TypedDict):
    hall: str
    staff: str               # the staff number (工号)
    mac: str                 # keyed hash of the number (daemon/hall/phones.py)
    tail: str                # its last 4 digits: the finding shows ****1234


class Finding(TypedDict):
    detector: str            # the detector's name (one function of this module)
    unit: str                # window:HALL/W01, staff:HALL/S0101, phone:****1234 (the
    #                          store) or phone:#1a2b3c4d (the hall: its keyed hash)
    hall: str
    evidence: dict[str, float | int | str]
    explanation: str         # plain Chinese, with the numbers


@dataclasses.dataclass(frozen=True)
class Thresholds:
    min_cases: int = 20             # a unit with fewer rated transactions is not judged
    fast_share: float = 0.5         # reaction: at least this share of a window's presses ...
    fast_factor: float = 0.25       # ... faster than this fraction of the hall's median delay,
    fast_share_factor: float = 3.0  # ... and this many times the share of the hall's other
    #                                 windows' presses that are as fast
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
    offline_share: float = 0.3      # offline: at least this share of a window's transactions
    offline_factor: float = 3.0     # ... ended with its terminal offline, this many times the
    #                                 hall's other windows' share
    hour_min: int = 10              # skipped hours: an hour of the day with this many
    hour_unrated_share: float = 0.8  # ... transactions at a window, this share unrated, while
    #                                 its other hours are under unrated_share and the hall's
    #                                 other windows at that hour under 1/unrated_factor of it
    staff_phone_own: int = 1        # staff phone: a staff member's number rating their own
    staff_phone_others: int = 2     # ... service this often, or colleagues' this often


_REASON_NAMES: dict[str, str] = dict(levels.REASONS)


def _bad(level: int | None) -> bool:
    return level is not None and levels.is_bad(level)


def _window(c: Case) -> str:
    return "window:%s/%s" % (c["hall"], c["window"])


def _staff(c: Case) -> str:
    return "staff:%s/%s" % (c["hall"], c["staff"])


def _by(cases: Iterable[Case], key: Callable[[Case], str]) -> dict[str, list[Case]]:
    out: dict[str, list[Case]] = defaultdict(list)
    for c in cases:
        out[key(c)].append(c)
    return out


def _pct(x: float) -> str:
    return "%.0f%%" % (100 * x)


_Delay = Callable[[Case], "float | None"]
# the terminal's own measure first (free of its 3 s correction window and of the network),
# the hall's for windows (or halls) whose terminals do not report one
_DELAY_SOURCES: tuple[tuple[str, _Delay], ...] = (
    ("terminal", lambda c: c["press_delay"] if c["level"] else None),
    ("hall", lambda c: c["delay"] if c["level"] else None))


def _delays(cs: Sequence[Case], rest: Sequence[Case],
            t: Thresholds) -> tuple[str, list[float], list[float]] | None:
    """(source, the unit's delays, the rest of the hall's) from the first source of which both
    have min_cases, or None."""
    for source, get in _DELAY_SOURCES:
        mine = [d for d in map(get, cs) if d is not None]
        others = [d for d in map(get, rest) if d is not None]
        if len(mine) >= t.min_cases and len(others) >= t.min_cases:
            return source, mine, others
    return None


def reaction(cases: Sequence[Case], t: Thresholds) -> list[Finding]:
    """Presses that come far sooner after the prompt than the hall's citizens press, again and
    again at one window: someone at the counter reaching over (or the staff's own finger).

    The delay is the terminal's own (prompt lit to key press, signed) where the window and the
    rest of its hall each have enough of them; otherwise the hall's (prompt opened to rating
    received), which also holds the terminal's correction window and the network: like is
    compared with like."""
    out: list[Finding] = []
    for hall, hall_cases in _by(cases, lambda c: c["hall"]).items():
        for unit, cs in _by(hall_cases, _window).items():
            found = _delays(cs, [c for c in hall_cases if _window(c) != unit], t)
            if found is None:
                continue
            source, mine, others = found
            median = statistics.median(others)
            fast = median * t.fast_factor
            share = sum(1 for d in mine if d < fast) / len(mine)
            hall_share = sum(1 for d in others if d < fast) / len(others)
            if share >= t.fast_share and share >= t.fast_share_factor * hall_share:
                since = "评价器亮起后" if source == "terminal" else "提示后"
                out.append({"detector": "reaction", "unit": unit, "hall": hall, "evidence": {
                    "ratings": len(mine), "fast_share": round(share, 3),
                    "fast_below_s": round(fast, 3), "hall_median_s": round(median, 3),
                    "window_median_s": round(statistics.median(mine), 3),
                    "hall_fast_share": round(hall_share, 3),
                    "delay_source": source},
                    "explanation": "%s 的 %d 次评价中有 %s 在%s %.1f 秒内按下"
                    "（本厅其他窗口中位数 %.1f 秒）："
                    "可能有人代按评价器。" % (unit, len(mine), _pct(share), since, fast, median)})
    return out


def skipped_prompts(cases: Sequence[Case], t: Thresholds) -> list[Finding]:
    """Windows, and staff members, whose transactions end unrated far more often than the rest
    of the hall's: the prompt is skipped (请评价 never pressed) or the terminal is off; for a
    staff member, ratings that arrive for colleagues but not for them."""
    out: list[Finding] = []
    for hall, hall_cases in _by(cases, lambda c: c["hall"]).items():
        units = [(_window, "其他窗口", "的"), (_staff, "其他工作人员", "经办的")]
        for key, whom, of in units:
            mine = hall_cases if key is _window else [c for c in hall_cases if c["staff"]]
            for unit, cs in _by(mine, key).items():
                others = [c for c in hall_cases if key(c) != unit]
                if len(cs) < t.min_cases or len(others) < t.min_cases:
                    continue
                hall_share = sum(1 for c in others if c["level"] is None) / len(others)
                share = sum(1 for c in cs if c["level"] is None) / len(cs)
                if share >= t.unrated_share and share >= t.unrated_factor * hall_share:
                    out.append({"detector": "skipped_prompts", "unit": unit, "hall": hall,
                                "evidence": {"transactions": len(cs),
                                             "unrated_share": round(share, 3),
                                             "hall_unrated_share": round(hall_share, 3)},
                                "explanation": "%s %s %d 件办件中 %s 无人评价"
                                "（本厅%s %s）：可能未请群众评价，或评价器离线。"
                                % (unit, of, len(cs), _pct(share), whom, _pct(hall_share))})
    return out


def _hour(c: Case) -> int:
    return int((c["finished_at"] + 8 * 3600) % 86400 // 3600)   # Beijing time


def skipped_hours(cases: Sequence[Case], t: Thresholds) -> list[Finding]:
    """An hour of the day in which a window's transactions go unrated while its other hours,
    and the hall's other windows in that hour, are rated: the terminal switched off, or the
    prompt skipped, at certain times only. (A window that skips all day is skipped_prompts'.)"""
    out: list[Finding] = []
    for hall, hall_cases in _by(cases, lambda c: c["hall"]).items():
        # (transactions, unrated) by window and hour, by window, by hour: one pass
        n: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
        for c in hall_cases:
            k = n[(_window(c), _hour(c))]
            k[0] += 1
            k[1] += c["level"] is None
        per_window: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        per_hour: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for (unit, hour), (total, unrated) in n.items():
            for acc in (per_window[unit], per_hour[hour]):
                acc[0] += total
                acc[1] += unrated
        for (unit, hour), (total, unrated) in sorted(n.items()):
            rest = per_window[unit][0] - total
            others = per_hour[hour][0] - total
            if total < t.hour_min or rest < t.min_cases or others < t.hour_min:
                continue
            share = unrated / total
            rest_share = (per_window[unit][1] - unrated) / rest
            hall_share = (per_hour[hour][1] - unrated) / others
            if (share >= t.hour_unrated_share and rest_share < t.unrated_share
                    and share >= t.unrated_factor * hall_share):
                out.append({"detector": "skipped_hours", "unit": unit, "hall": hall,
                            "evidence": {"hour": hour, "transactions": total,
                                         "unrated_share": round(share, 3),
                                         "other_hours_unrated_share": round(rest_share, 3),
                                         "hall_unrated_share": round(hall_share, 3)},
                            "explanation": "%s 在 %02d:00-%02d:00 的 %d 件办件中 %s 无人评价，"
                            "而该窗口其他时段为 %s、本厅其他窗口同一时段为 %s："
                            "可能在该时段关闭评价器或未请评价。"
                            % (unit, hour, hour + 1, total, _pct(share), _pct(rest_share),
                               _pct(hall_share))})
    return out


def offline_terminals(cases: Sequence[Case], t: Thresholds) -> list[Finding]:
    """Windows that serve while their terminal is offline (unplugged, its network cut) far
    more often than the hall's other windows: nobody can rate them there. Weighted by
    transactions: a terminal off at lunch while nobody is served is no finding."""
    out: list[Finding] = []
    known = [c for c in cases if c["terminal_offline"] is not None]
    for hall, hall_cases in _by(known, lambda c: c["hall"]).items():
        for unit, cs in _by(hall_cases, _window).items():
            others = [c for c in hall_cases if _window(c) != unit]
            if len(cs) < t.min_cases or len(others) < t.min_cases:
                continue
            share = sum(1 for c in cs if c["terminal_offline"]) / len(cs)
            hall_share = sum(1 for c in others if c["terminal_offline"]) / len(others)
            if share >= t.offline_share and share >= t.offline_factor * hall_share:
                out.append({"detector": "offline_terminals", "unit": unit, "hall": hall,
                            "evidence": {"transactions": len(cs), "offline_share": round(share, 3),
                                         "hall_offline_share": round(hall_share, 3)},
                            "explanation": "%s 的 %d 件办件中 %s 结束时评价器离线"
                            "（本厅其他窗口 %s）：请核实评价器是否被断电、断网或撤下。"
                            % (unit, len(cs), _pct(share), _pct(hall_share))})
    return out


def _tail(n: int, k: int, p: float) -> float:
    """The chance of k or more of n at rate p (the binomial's upper tail)."""
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1))


def too_good(cases: Sequence[Case], t: Thresholds) -> list[Finding]:
    """A window or staff member whose citizens are all 非常满意, far above the hall, or who have
    no bad review over more transactions than the hall's bad-review rate makes likely."""
    out: list[Finding] = []
    for hall, hall_cases in _by(cases, lambda c: c["hall"]).items():
        rated = [c for c in hall_cases if c["level"]]
        units = {**_by(rated, _window), **_by(
            [c for c in rated if c["staff"]], lambda c: "staff:%s/%s" % (c["hall"], c["staff"]))}
        # the chance is judged for the hall as a whole: zero_bad_p shared among the units
        # judged (Bonferroni), so that an honest hall is named at most zero_bad_p of the time;
        # the same bound for a share of 非常满意 far above the hall's as for zero bad reviews
        judged = sum(1 for cs in units.values() if len(cs) >= t.min_cases)
        for unit, cs in units.items():
            others = [c for c in rated if c["window"] != cs[0]["window"]]
            if len(cs) < t.min_cases or len(others) < t.min_cases:
                continue
            top = sum(1 for c in others if c["level"] == 1) / len(others)
            bad = sum(1 for c in others if _bad(c["level"])) / len(others)
            mine = sum(1 for c in cs if c["level"] == 1) / len(cs)
            mine_bad = sum(1 for c in cs if _bad(c["level"]))
            p_zero = (1 - bad) ** len(cs)
            n_top = sum(1 for c in cs if c["level"] == 1)
            if (mine >= t.top_share_min and mine >= top + t.top_share_margin
                    and _tail(len(cs), n_top, top) < t.zero_bad_p / judged):
                out.append({"detector": "too_good", "unit": unit, "hall": hall, "evidence": {
                    "ratings": len(cs), "top_share": round(mine, 3),
                    "hall_top_share": round(top, 3),
                    "chance": float("%.2g" % _tail(len(cs), n_top, top))},
                    "explanation": "%s 的 %d 次评价中 %s 为非常满意，本厅其他窗口为 %s：明显偏高，"
                    "请核实是否有刷好评。" % (unit, len(cs), _pct(mine), _pct(top))})
            elif mine_bad == 0 and bad > 0 and p_zero < t.zero_bad_p / judged:
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


def _rater(c: Case) -> str:
    """Who gave a real-name rating: the number where it can be read (the store), else its keyed
    hash (the hall, daemon/hall/phones.py: the hall never reads a rater's number)."""
    return c["phone"] or ("#" + c["phone_mac"] if c["phone_mac"] else "")


def _rater_shown(rater: str) -> str:
    """The rater as a finding shows it: ****1234, or the first 8 of the hash at the hall."""
    return "#" + rater[1:9] if rater.startswith("#") else _masked(rater)


def real_name(cases: Sequence[Case], t: Thresholds) -> list[Finding]:
    """One phone number giving many real-name ratings, or at several windows: residents' or
    cadres' numbers filled in for citizens. The number is shown masked (or, at the hall, by
    the first characters of its keyed hash)."""
    out: list[Finding] = []
    for rater, cs in _by([c for c in cases if _rater(c) and c["level"]], _rater).items():
        units = {_window(c) for c in cs}
        if len(cs) > t.phone_max_ratings or len(units) > t.phone_max_units:
            shown = _rater_shown(rater)
            out.append({"detector": "real_name", "unit": "phone:" + shown,
                        "hall": cs[0]["hall"], "evidence": {"ratings": len(cs),
                                                            "windows": len(units)},
                        "explanation": "同一手机号（%s）实名评价了 %d 件办件、%d 个窗口："
                        "请核实是否冒用"
                        "群众信息。" % (shown, len(cs), len(units))})
    return out


def staff_rater(cases: Sequence[Case], staff: Sequence[StaffPhone],
                t: Thresholds) -> list[Finding]:
    """A staff member's own phone number given as a real-name citizen rater (Wuhan 2019:
    citizens' numbers replaced with cadres'): rating their own service at all, or colleagues'
    services more than once. Compared by keyed hash; the number is shown masked."""
    out: list[Finding] = []
    whose = {(s["hall"], s["mac"]): s for s in staff if s["mac"]}
    hits: dict[tuple[str, str], list[Case]] = defaultdict(list)
    for c in cases:
        s = whose.get((c["hall"], c["phone_mac"])) if c["phone_mac"] and c["level"] else None
        if s is not None:
            hits[(s["hall"], s["staff"])].append(c)
    for (hall, number), cs in sorted(hits.items()):
        own = sum(1 for c in cs if c["staff"] == number)
        if own < t.staff_phone_own and len(cs) - own < t.staff_phone_others:
            continue
        masked = "****" + next(s["tail"] for s in staff
                               if s["hall"] == hall and s["staff"] == number)
        windows = sorted({c["window"] for c in cs})
        out.append({"detector": "staff_rater", "unit": "staff:%s/%s" % (hall, number),
                    "hall": hall, "evidence": {"ratings": len(cs), "own_service": own,
                                               "windows": ",".join(windows), "phone": masked},
                    "explanation": "工作人员 %s 的手机号（%s）作为群众实名评价了 %d 件办件"
                    "（其中本人经办 %d 件，窗口 %s）：请核实是否以工作人员信息冒充群众评价。"
                    % (number, masked, len(cs), own, "、".join(windows))})
    return out


DETECTORS: tuple[Callable[[Sequence[Case], Thresholds], list[Finding]], ...] = (
    reaction, skipped_prompts, skipped_hours, offline_terminals, too_good, bursts, patterns,
    real_name)


def findings(cases: Sequence[Case], t: Thresholds | None = None,
             staff: Sequence[StaffPhone] = ()) -> list[Finding]:
    """Every detector over the cases of one period, findings sorted by unit. `staff`: the
    hall's staff phone hashes (the hall only; the store keeps no staff numbers)."""
    t = t or Thresholds()
    out = [f for d in DETECTORS for f in d(cases, t)] + staff_rater(cases, staff, t)
    return sorted(out, key=lambda f: (f["unit"], f["detector"]))
