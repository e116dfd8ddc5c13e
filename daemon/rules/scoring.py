"""The 好差评 scores as pure functions (第十四条) and report periods (第十一条). No I/O: the
municipal store feeds them records and counts; docs/rules.md maps each article to its code and
tests. The deadlines in working days (第七条, 第十条, 第十二条) are in deadlines.py.

Scoring inputs, one record per transaction of the unit and period (``Rating``):
  level       1..5 (protocol/levels.py), the counted rating of that transaction
  is_default  True if the store gave 基本满意 because nobody rated in time (第七条)
  excluded    True if an appeal against it was upheld (第十条): its points leave the average
Transactions not yet rated and not yet past their default-rating deadline are passed as
``pending``: they count as transactions, so the score is marked provisional.
"""
from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from fractions import Fraction
from typing import TypedDict

from haochaping.daemon.errors import HcpError
from haochaping.protocol import levels

FIRST_REPORT_PERIOD = (2020, 3)     # 第十一条: quarterly reports from 2020 Q3 on

NO_DATA = "no data"
NO_COUNTED_RATINGS = "no counted ratings"

# 第十四条 bands, highest first: (lower bound, points, label). RULES.md Decision: a boundary
# value goes to the higher band (以上 includes the number itself).
RATE_BANDS = (
    (Fraction(95, 100), 3, "≥ 95%"),
    (Fraction(80, 100), 1, "80% to < 95%"),
    (Fraction(0), 0, "< 80%"),
)
AVERAGE_BANDS = (
    (Fraction(19, 2), 7, "≥ 9.5"),
    (Fraction(8), 5, "8 to < 9.5"),
    (Fraction(6), 3, "6 to < 8"),
    (Fraction(0), 0, "< 6"),
)
POSSIBLE_FINALS = frozenset(r[1] + a[1] for r in RATE_BANDS for a in AVERAGE_BANDS)

# a number as a caller gives it: exact (int, Fraction, Decimal), a float as typed, or its text
Number = int | float | Fraction | Decimal | str


def band(value: Fraction, bands: Iterable[tuple[Fraction, int, str]]) -> tuple[int, str]:
    """(points, label) of the band holding `value` (an exact Fraction)."""
    for lower, pts, label in bands:
        if value >= lower:
            return pts, label
    raise HcpError("%s is below every band" % value)


@dataclasses.dataclass(frozen=True)
class Rating:
    """One transaction's counted rating, as the scoring sees it."""
    level: int
    is_default: bool = False
    excluded: bool = False

    def __post_init__(self) -> None:
        if not levels.is_level(self.level):
            raise HcpError("rating level must be 1 to 5, not %r" % (self.level,))
        if self.is_default and self.level != levels.DEFAULT_LEVEL:
            raise HcpError("a default rating is always level %d (%s), not %r"
                           % (levels.DEFAULT_LEVEL, levels.name(levels.DEFAULT_LEVEL), self.level))


@dataclasses.dataclass(frozen=True)
class Score:
    """A 第十四条 score. `final` is None when there is nothing to score (`reason` says why)."""
    final: int | None
    rate_points: int | None         # None with no transactions
    average_points: int | None      # None with no counted rating
    acceptance_rate: Fraction | None
    average: Fraction | None
    rated: int
    total: int
    rate_band: str | None = None
    average_band: str | None = None
    reason: str | None = None
    provisional: bool = False

    def to_dict(self) -> ScoreDict:
        return {
            "final": self.final, "rate_points": self.rate_points,
            "average_points": self.average_points,
            "acceptance_rate": _num(self.acceptance_rate), "average": _num(self.average),
            "rated": self.rated, "total": self.total, "rate_band": self.rate_band,
            "average_band": self.average_band, "reason": self.reason,
            "provisional": self.provisional,
        }

    def text(self) -> str:
        if self.final is None:
            return "no score: %s (%d transactions)" % (self.reason, self.total)
        assert self.rate_points is not None and self.average_points is not None  # set with final
        return "\n".join([
            "acceptance rate %d/%d = %s → %s → %d points"
            % (self.rated, self.total, percent(self.acceptance_rate), self.rate_band,
               self.rate_points),
            "average %s → %s → %d points" % (decimal(self.average), self.average_band,
                                               self.average_points),
            "final score %d / 10%s" % (self.final, " (provisional)" if self.provisional else ""),
        ])


class ScoreDict(TypedDict):
    """Score.to_dict(): a score as JSON."""
    final: int | None
    rate_points: int | None
    average_points: int | None
    acceptance_rate: float | None
    average: float | None
    rated: int
    total: int
    rate_band: str | None
    average_band: str | None
    reason: str | None
    provisional: bool


def _num(x: Fraction | None) -> float | None:
    return None if x is None else float(x)


def percent(x: Fraction | None) -> str:
    """A rate as a percentage that never rounds across a band edge (94.999% stays below 95)."""
    if x is None:
        return "-"
    hundredths = (x * 10000).__floor__()
    return "%d.%02d%%" % divmod(hundredths, 100)


def decimal(x: Fraction | None) -> str:
    """An average with 3 decimals, truncated so that 9.4999 never prints as 9.500."""
    if x is None:
        return "-"
    thousandths = (x * 1000).__floor__()
    return "%d.%03d" % divmod(thousandths, 1000)


def _exact(value: Number | None, what: str) -> Fraction:
    if isinstance(value, bool) or value is None:
        raise HcpError("%s must be a number, not %r" % (what, value))
    if isinstance(value, float):
        return Fraction(repr(value))  # 9.5 typed is 9.5, not its binary approximation
    try:
        return Fraction(value)
    except (TypeError, ValueError):
        raise HcpError("%s must be a number, not %r" % (what, value)) from None


def score_from(rated: int, total: int, average: Number | None,
               provisional: bool = False) -> Score:
    """第十四条 from counts: `rated` transactions rated by the citizen (defaults excluded),
    `total` transactions, `average` the mean points of counted ratings. total 0 → no data."""
    for name, v in (("rated", rated), ("total", total)):
        if type(v) is not int or v < 0:
            raise HcpError("%s must be a whole number ≥ 0, not %r" % (name, v))
    if rated > total:
        raise HcpError("rated (%d) cannot exceed total transactions (%d)" % (rated, total))
    if total == 0:
        return Score(None, None, None, None, None, 0, 0, reason=NO_DATA, provisional=provisional)
    rate = Fraction(rated, total)
    rate_points, rate_label = band(rate, RATE_BANDS)
    if average is None:
        return Score(None, rate_points, None, rate, None, rated, total, rate_band=rate_label,
                     reason=NO_COUNTED_RATINGS, provisional=provisional)
    avg = _exact(average, "average")
    if not 0 <= avg <= 10:
        raise HcpError("average must be from 0 to 10 points, not %s" % average)
    avg_points, avg_label = band(avg, AVERAGE_BANDS)
    return Score(rate_points + avg_points, rate_points, avg_points, rate, avg, rated, total,
                 rate_label, avg_label, provisional=provisional)


class LevelCount(TypedDict):
    """One level's row of a tally."""
    level: int
    name: str
    points: int
    citizen: int
    default: int
    excluded: int


class Tally(TypedDict):
    """tally(): the counts a score is computed from."""
    per_level: list[LevelCount]
    transactions: int
    accepted: int
    defaults: int
    excluded: int
    pending: int
    counted: int
    points_sum: int


# a unit's ratings: each Rating record, or {Rating: how many} (a large unit's, counted by the
# store: 134,000 records looked at one by one cost 0.4 s at 20 million ratings)
Ratings = Iterable[Rating] | Mapping[Rating, int]


def tally(ratings: Ratings, pending: int = 0) -> Tally:
    """Counts per level and kind, from Rating records: the data `score` and `explain` use."""
    if type(pending) is not int or pending < 0:
        raise HcpError("pending must be a whole number ≥ 0, not %r" % (pending,))
    per_level: dict[int, LevelCount] = {
        code: {"level": code, "name": levels.name(code), "points": levels.points(code),
               "citizen": 0, "default": 0, "excluded": 0}
        for code, _n, _p, _b in levels.LEVELS}
    points_sum = counted = accepted = defaults = excluded = 0
    n = 0
    each = ratings.items() if isinstance(ratings, Mapping) else ((r, 1) for r in ratings)
    for r, k in each:
        if not isinstance(r, Rating) or type(k) is not int or k < 0:
            raise HcpError("score() takes Rating records, not %r" % (r,))
        n += k
        row = per_level[r.level]
        if r.is_default:
            defaults += k
        else:
            accepted += k  # the citizen rated: an accepted evaluation (接受评价), even if excluded
        if r.excluded:
            excluded += k
            row["excluded"] += k
            continue
        row["default" if r.is_default else "citizen"] += k
        points_sum += levels.points(r.level) * k
        counted += k
    return {"per_level": [per_level[c] for c in sorted(per_level)], "transactions": n + pending,
            "accepted": accepted, "defaults": defaults, "excluded": excluded, "pending": pending,
            "counted": counted, "points_sum": points_sum}


def score(ratings: Ratings, pending: int = 0) -> Score:
    """第十四条 score of one unit and period from its transactions' Rating records.
    average: mean points of counted ratings (defaults at 6, excluded appeals left out);
    acceptance rate: citizen-rated transactions / all transactions (defaults not accepted)."""
    t = tally(ratings, pending)
    average = Fraction(t["points_sum"], t["counted"]) if t["counted"] else None
    return score_from(t["accepted"], t["transactions"], average, provisional=pending > 0)


@dataclasses.dataclass(frozen=True)
class Explanation:
    """How a score was reached: `data` for machines, `text` for people."""
    score: Score
    data: ExplanationData
    text: str

    def to_dict(self) -> dict[str, object]:
        return dict(self.data, text=self.text)


class ExplanationData(TypedDict):
    """Explanation.data: the derivation as JSON."""
    unit: str | None
    period: str | None
    tally: Tally
    steps: list[dict[str, object]]      # one JSON object per step: {"step": name, ...}
    score: ScoreDict


def explain(ratings: Ratings, pending: int = 0, unit: str | None = None,
            period: str | None = None) -> Explanation:
    """The step-by-step derivation of `score(ratings, pending)`."""
    if not isinstance(ratings, Mapping):
        ratings = list(ratings)
    t = tally(ratings, pending)
    s = score(ratings, pending)
    steps: list[dict[str, object]] = []
    head = ("第十四条 score" + (" of %s" % unit if unit else "")
            + (" for %s" % period if period else ""))
    lines = [head]
    lines.append("1. ratings per level (citizen / default 第七条 / excluded by upheld appeal"
                 " 第十条):")
    for row in t["per_level"]:
        lines.append("   %s %s (%d points): %d citizen, %d default, %d excluded"
                     % (row["level"], row["name"], row["points"], row["citizen"], row["default"],
                        row["excluded"]))
    steps.append({"step": "count", "per_level": t["per_level"]})
    lines.append("2. transactions: %d = %d rated by the citizen + %d default ratings + %d still "
                 "open (within their 第七条 deadline)"
                 % (t["transactions"], t["accepted"], t["defaults"], t["pending"]))
    if t["transactions"] == 0:
        lines.append("   no transactions in the period: no score (%s), not 0" % NO_DATA)
        steps.append({"step": "no data"})
    else:
        assert s.rate_points is not None  # there are transactions: the rate has its points
        lines.append("3. acceptance rate = rated by the citizen / transactions = %d/%d = %s "
                     "(default ratings are not accepted evaluations; an excluded rating was "
                     "still given by the citizen) → band %s → %d points"
                     % (t["accepted"], t["transactions"], percent(s.acceptance_rate), s.rate_band,
                        s.rate_points))
        steps.append({"step": "rate", "numerator": t["accepted"],
                      "denominator": t["transactions"], "value": _num(s.acceptance_rate),
                      "band": s.rate_band, "points": s.rate_points})
        if t["counted"]:
            assert s.average_points is not None and s.final is not None  # an average: a score
            lines.append("4. average = points of counted ratings / counted ratings = %d/%d = %s "
                         "(defaults at 6, %d excluded ratings left out) → band %s → %d points"
                         % (t["points_sum"], t["counted"], decimal(s.average), t["excluded"],
                            s.average_band, s.average_points))
            steps.append({"step": "average", "points_sum": t["points_sum"],
                          "counted": t["counted"], "value": _num(s.average),
                          "band": s.average_band, "points": s.average_points})
            lines.append("5. final = %d + %d = %d / 10%s"
                         % (s.rate_points, s.average_points, s.final,
                            " (provisional: %d transactions still open)" % t["pending"]
                            if s.provisional else ""))
            steps.append({"step": "final", "value": s.final})
        else:
            lines.append("4. no counted rating to average (all excluded or still open): no "
                         "score (%s)" % NO_COUNTED_RATINGS)
            steps.append({"step": NO_COUNTED_RATINGS})
    data: ExplanationData = {"unit": unit, "period": period, "tally": t, "steps": steps,
                             "score": s.to_dict()}
    return Explanation(s, data, "\n".join(lines))


# --- report periods (第十一条, 第十四条) ---------------------------------------------------------

def parse_period(text: str) -> tuple[datetime.date, datetime.date]:
    """'2026Q3' (quarter), '2026-07' (month) or '2026' (year, 第十四条 annual assessment) →
    (first day, last day), dates in Asia/Shanghai. Reports start with 2020Q3 (第十一条)."""
    m = re.fullmatch(r"(\d{4})(?:Q([1-4])|-(0[1-9]|1[0-2]))?", str(text).strip().upper())
    if not m:
        raise HcpError("period %r is not like 2026Q3, 2026-07 or 2026" % (text,))
    year = int(m.group(1))
    if m.group(2):
        q = int(m.group(2))
        first, months = datetime.date(year, 3 * q - 2, 1), 3
    elif m.group(3):
        first, months = datetime.date(year, int(m.group(3)), 1), 1
    else:
        first, months = datetime.date(year, 1, 1), 12
    end_month = first.month + months
    after = datetime.date(year + (end_month > 12), (end_month - 1) % 12 + 1, 1)
    last = after - datetime.timedelta(days=1)
    if (last.year, (last.month - 1) // 3 + 1) < FIRST_REPORT_PERIOD:
        raise HcpError("period %s is before 2020Q3, when 好差评 reports began (第十一条)" % text)
    return first, last
