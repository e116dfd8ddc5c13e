"""Working days per the official Chinese calendar, with make-up working days (调休).

RULES.md 第七条, 第十条, 第十二条 count deadlines in working days. Where a date's answer comes
from, in this order:

1. ``override``: the calendar override file that hall IT installs (``hcp calendar import``) for
   years the ``chinese-calendar`` package does not know yet. A year in the file replaces the
   package's data for that whole year; dates it lists explicitly win over everything.
2. ``official``: the ``chinese-calendar`` package (holidays and 调休 make-up days, 2004–2026
   in version 1.11).
3. ``fallback``: no data at all: Monday–Friday. Every answer that used it says so
   (``fallback=True``, a warning text, and one log warning per year), because a deadline computed
   this way may be wrong by days around a public holiday.

Deadlines (RULES.md **Decision**) end at 23:59:59 Asia/Shanghai of the n-th working day after
the given day. China has kept UTC+08:00 without daylight saving since 1991, so the zone is a
fixed offset: no tzdata needed on a hall server.

The override file is TOML, one table per year (see ``docs/rules.md`` and ``EXAMPLE_OVERRIDE``)::

    [2027]
    notice = "国务院办公厅关于2027年部分节假日安排的通知"

    [[2027.holiday]]
    name = "春节"
    from = 2027-02-05
    to = 2027-02-11
    makeup = [2027-02-01, 2027-02-20]   # 调休: weekend days that are working days
"""
from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import pathlib
import re
import tempfile
import tomllib
from collections.abc import Iterable
from typing import Any, NotRequired, TypedDict

import chinese_calendar

from haochaping.daemon.errors import HcpError

log = logging.getLogger(__name__)

SHANGHAI = datetime.timezone(datetime.timedelta(hours=8), "Asia/Shanghai")
END_OF_DAY = datetime.time(23, 59, 59, tzinfo=SHANGHAI)

OFFICIAL = "official"
OVERRIDE = "override"
FALLBACK = "fallback"

ENV_VAR = "HCP_CALENDAR_FILE"
MAX_WORKING_DAYS = 1000          # a deadline further out is a typo, not a rule
_MAX_HOLIDAY_SPAN = 31           # days; longer is a typo (e.g. month 12 for 02)
_MIN_YEAR, _MAX_YEAR = 2004, 2100

StrPath = str | os.PathLike[str]   # a file name, as text or a pathlib.Path

PACKAGE = "chinesecalendar %s" % getattr(chinese_calendar, "__version__", "?")

FALLBACK_WARNING = ("no official calendar data for %s: counted Monday-Friday only, which is wrong "
                    "around public holidays and 调休 make-up days; install the State Council's "
                    "schedule with `hcp calendar import FILE`")

EXAMPLE_OVERRIDE = """\
# hcp calendar override: working days for years the chinese-calendar package does not know yet.
# Copy the dates from the State Council notice (国务院办公厅关于YYYY年部分节假日安排的通知).
# One [YEAR] table per year; a year here replaces the package's data for that whole year.
# Every day not listed follows Monday-Friday. Install with: hcp calendar import FILE
# THE DATES BELOW ARE AN EXAMPLE OF THE FORMAT, NOT THE REAL SCHEDULE: the import refuses a
# notice that still starts with EXAMPLE.

[2027]
notice = "EXAMPLE: 国务院办公厅关于2027年部分节假日安排的通知 (put the document number here)"

[[2027.holiday]]
name = "元旦"
from = 2027-01-01
to = 2027-01-03

[[2027.holiday]]
name = "春节"
from = 2027-02-06            # first day off
to = 2027-02-14              # last day off (inclusive)
makeup = [2027-01-31, 2027-02-20]   # 调休: weekend days that are working days
"""


def default_path() -> pathlib.Path:
    """Where the override file lives: $HCP_CALENDAR_FILE, else the user's config folder."""
    env = os.environ.get(ENV_VAR)
    if env:
        return pathlib.Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return pathlib.Path(base) / "haochaping" / "calendar.toml"


# --- the override file -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Override:
    """A parsed, validated override file."""
    path: str
    notices: dict[int, str]                             # year -> notice text
    days: dict[datetime.date, tuple[bool, str]]         # date -> (is_working_day, name)

    @property
    def years(self) -> list[int]:
        return sorted(self.notices)

    def holidays(self, year: int) -> list[datetime.date]:
        return sorted(d for d, (work, _) in self.days.items() if d.year == year and not work)

    def makeup_days(self, year: int) -> list[datetime.date]:
        return sorted(d for d, (work, _) in self.days.items() if d.year == year and work)


class _Problems:
    """Collects every problem in a file, each naming its line where it can be found."""

    def __init__(self, path: StrPath, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.items: list[str] = []

    def line_of(self, needle: str, start: int = 0) -> int | None:
        for i in range(start, len(self.lines)):
            if needle in self.lines[i].split("#", 1)[0]:
                return i + 1
        return None

    def add(self, message: str, line: int | None = None) -> None:
        self.items.append("line %d: %s" % (line, message) if line else message)

    def raise_if_any(self) -> None:
        if self.items:
            raise HcpError("calendar file %s refused: %s" % (self.path, "; ".join(self.items)))


def _as_date(value: object) -> datetime.date | None:
    if isinstance(value, datetime.datetime):
        return None
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            return None
    return None


def parse_override(text: str, path: StrPath = "<text>") -> Override:
    """Validate override file text and return an Override, or raise HcpError listing every
    problem with its line number and date."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise HcpError("calendar file %s refused: not valid TOML: %s" % (path, e)) from None
    p = _Problems(path, text)
    notices: dict[int, str] = {}
    days: dict[datetime.date, tuple[bool, str]] = {}
    if not data:
        p.add("no [YEAR] table: nothing to install")
    for key, table in data.items():
        header = p.line_of("[%s]" % key) or p.line_of(key)
        if not re.fullmatch(r"\d{4}", key) or not _MIN_YEAR <= int(key) <= _MAX_YEAR:
            p.add("%r is not a year table like [2027]" % key, header)
            continue
        year = int(key)
        start = (header or 1) - 1
        if not isinstance(table, dict):
            p.add("%s must be a table [%s]" % (key, key), header)
            continue
        for extra in sorted(set(table) - {"notice", "holiday"}):
            p.add("[%s] has unknown key %r (allowed: notice, holiday)" % (key, extra),
                  p.line_of(extra, start))
        notice = table.get("notice")
        if not isinstance(notice, str) or not notice.strip():
            p.add("[%s] needs notice = \"...\" naming the State Council notice the dates come "
                  "from" % key, header)
        elif notice.strip().upper().startswith("EXAMPLE"):
            p.add("[%s] is still the example (notice starts with EXAMPLE): put in the real "
                  "dates and notice" % key, p.line_of("notice", start))
        holidays = table.get("holiday")
        if not isinstance(holidays, list) or not holidays:
            p.add("[%s] lists no holiday: add [[%s.holiday]] entries" % (key, key), header)
            holidays = []
        hstart = start
        for h in holidays:
            if not isinstance(h, dict):
                p.add("[%s] holiday entries must be [[%s.holiday]] tables" % (key, key), header)
                continue
            hline = p.line_of("[[%s.holiday]]" % key, hstart) or header
            hstart = hline or hstart  # the next entry is found after this one
            _check_holiday(p, year, h, hline, days)
        notices[year] = (notice or "").strip()
    p.raise_if_any()
    return Override(str(path), notices, days)


def _check_holiday(p: _Problems, year: int, h: dict[str, Any], hline: int | None,
                   days: dict[datetime.date, tuple[bool, str]]) -> None:
    """Check one [[YEAR.holiday]] table (TOML: its values may be anything) into `days`."""
    start = (hline or 1) - 1
    for extra in sorted(set(h) - {"name", "from", "to", "makeup"}):
        p.add("unknown key %r in a holiday (allowed: name, from, to, makeup)" % extra,
              p.line_of(extra, start))
    name = h.get("name")
    if not isinstance(name, str) or not name.strip():
        p.add("holiday needs name = \"...\" (e.g. \"春节\")", hline)
        name = "?"
    first = _as_date(h.get("from"))
    last = _as_date(h.get("to", h.get("from")))

    def where(value: object) -> int | None:
        return p.line_of(str(value), start) if value is not None else hline

    if first is None:
        p.add("%s: from = %r is not a date like 2027-02-05" % (name, h.get("from")),
              where(h.get("from")))
        return
    if last is None:
        p.add("%s: to = %r is not a date like 2027-02-11" % (name, h.get("to")),
              where(h.get("to")))
        return
    if last < first:
        p.add("%s: to %s is before from %s" % (name, last, first), where(last))
        return
    if (last - first).days >= _MAX_HOLIDAY_SPAN:
        p.add("%s: %s to %s is longer than %d days" % (name, first, last, _MAX_HOLIDAY_SPAN),
              where(last))
        return
    for d in (first, last):
        if not _in_notice_year(d, year):
            p.add("%s: %s is outside %d (only %d, or December %d for a 元旦 starting in the "
                  "old year)" % (name, d, year, year, year - 1), where(d))
            return
    d = first
    while d <= last:
        if d in days:
            p.add("%s: %s is listed twice" % (name, d), where(d))
        days[d] = (False, name)
        d += datetime.timedelta(days=1)
    makeup = h.get("makeup", [])
    if not isinstance(makeup, list):
        p.add("%s: makeup must be a list of dates like [2027-02-01]" % name, where(None))
        return
    for raw in makeup:
        m = _as_date(raw)
        if m is None:
            p.add("%s: makeup %r is not a date like 2027-02-01" % (name, raw), where(raw))
            continue
        if m in days:
            p.add("%s: makeup day %s is also a holiday or listed twice" % (name, m), where(m))
            continue
        if m.weekday() < 5:
            p.add("%s: makeup day %s is a %s, already a working day: a 调休 make-up day is a "
                  "Saturday or Sunday" % (name, m, m.strftime("%A")), where(m))
            continue
        if not _in_notice_year(m, year):
            p.add("%s: makeup day %s is outside %d" % (name, m, year), where(m))
            continue
        days[m] = (True, name)


def _in_notice_year(d: datetime.date, year: int) -> bool:
    return d.year == year or (d.year == year - 1 and d.month == 12)


def load_override(path: StrPath) -> Override:
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HcpError("calendar file %s not found" % path) from None
    except (OSError, UnicodeDecodeError) as e:
        raise HcpError("calendar file %s cannot be read: %s" % (path, e)) from None
    return parse_override(text, path)


def install_override(source: StrPath,
                     target: StrPath | None = None) -> tuple[Override, list[int]]:
    """Validate `source` and install it at `target` (default: default_path()), atomically.
    Returns (new Override, years that the previously installed file had and this one drops)."""
    new = load_override(source)
    target = pathlib.Path(target) if target else default_path()
    dropped: list[int] = []
    if target.exists():
        try:
            dropped = sorted(set(load_override(target).years) - set(new.years))
        except HcpError:
            dropped = []  # the old file was broken: replacing it is the fix
    text = pathlib.Path(source).read_text(encoding="utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".calendar-", suffix=".toml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return Override(str(target), new.notices, new.days), dropped


# --- the calendar ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Deadline:
    """The end of the n-th working day after `start`, and where the working-day data came from."""
    start: datetime.date
    working_days: int
    day: datetime.date
    sources: tuple[str, ...]  # the sources used, e.g. ("official",) or ("official", "fallback")
    fallback_years: tuple[int, ...]   # years counted Monday-Friday for lack of data
    override_file: str | None = None

    @property
    def at(self) -> datetime.datetime:
        """23:59:59 Asia/Shanghai of the last day (RULES.md 第七条 Decision)."""
        return datetime.datetime.combine(self.day, END_OF_DAY)

    @property
    def fallback(self) -> bool:
        return bool(self.fallback_years)

    @property
    def warning(self) -> str | None:
        if not self.fallback:
            return None
        return FALLBACK_WARNING % ", ".join(str(y) for y in self.fallback_years)

    def passed(self, when: datetime.date) -> bool:
        """True once `when` (an aware datetime) is on or after the next day's 00:00 local time:
        anything during the last day, its last second included, is in time."""
        return local_day(when) > self.day

    def calendar_info(self) -> dict[str, object]:
        return {"sources": list(self.sources), "fallback": self.fallback,
                "fallback_years": list(self.fallback_years), "package": PACKAGE,
                "override_file": self.override_file, "warning": self.warning}

    def to_dict(self) -> dict[str, object]:
        return {"start": self.start.isoformat(), "working_days": self.working_days,
                "deadline": self.at.isoformat(), "deadline_day": self.day.isoformat(),
                "calendar": self.calendar_info()}


def local_day(when: datetime.date) -> datetime.date:
    """The Asia/Shanghai calendar day of a date or an aware datetime. A naive datetime is
    refused: whether it is UTC or local time changes the day for 8 hours of every day."""
    if isinstance(when, datetime.datetime):
        if when.tzinfo is None or when.utcoffset() is None:
            raise HcpError("time %s has no time zone: give it with +08:00 or Z" % when.isoformat())
        return when.astimezone(SHANGHAI).date()
    if isinstance(when, datetime.date):
        return when
    raise HcpError("%r is not a date" % (when,))


class Calendar:
    """Working days from the override file (if any), the official package, or Monday-Friday."""

    def __init__(self, override: Override | None = None) -> None:
        self.override = override
        self._warned: set[int] = set()

    @classmethod
    def load(cls, path: StrPath | None = None) -> Calendar:
        """The calendar with the override file at `path`; with no path, $HCP_CALENDAR_FILE
        (which must exist) or the default location (used if present). A broken installed file
        is an error, never silently ignored."""
        if path is None and not os.environ.get(ENV_VAR):
            path = default_path()
            if not path.exists():
                return cls(None)
        return cls(load_override(path if path is not None else default_path()))

    def official_year(self, year: int) -> bool:
        """True if the chinese-calendar package has data for `year`."""
        try:
            chinese_calendar.is_workday(datetime.date(year, 6, 1))
        except NotImplementedError:
            return False
        return True

    def year_source(self, year: int) -> str:
        if self.override and year in self.override.notices:
            return OVERRIDE
        return OFFICIAL if self.official_year(year) else FALLBACK

    def is_working_day(self, day: datetime.date) -> tuple[bool, str]:
        """(is a working day, source) with source one of official, override, fallback."""
        day = local_day(day)
        if self.override:
            if day in self.override.days:
                return self.override.days[day][0], OVERRIDE
            if day.year in self.override.notices:
                return day.weekday() < 5, OVERRIDE
        try:
            return chinese_calendar.is_workday(day), OFFICIAL
        except NotImplementedError:
            if day.year not in self._warned:
                self._warned.add(day.year)
                log.warning(FALLBACK_WARNING, day.year)
            return day.weekday() < 5, FALLBACK

    def add_working_days(self, day: datetime.date, n: int) -> Deadline:
        """The Deadline at the end of the n-th working day after `day` (a date, or an aware
        datetime taken as its Asia/Shanghai day). n = 0 is the end of that day itself."""
        start = local_day(day)
        if type(n) is not int or n < 0 or n > MAX_WORKING_DAYS:
            raise HcpError("working days must be a whole number from 0 to %d, not %r"
                           % (MAX_WORKING_DAYS, n))
        sources: list[str] = []
        fallback_years: list[int] = []
        d, left = start, n
        while left:
            d += datetime.timedelta(days=1)
            working, source = self.is_working_day(d)
            if source not in sources:
                sources.append(source)
            if source == FALLBACK and d.year not in fallback_years:
                fallback_years.append(d.year)
            if working:
                left -= 1
        if not sources:
            sources = [self.is_working_day(start)[1]]
            if sources[0] == FALLBACK:
                fallback_years.append(start.year)
        return Deadline(start, n, d, tuple(sources), tuple(fallback_years),
                        self.override.path if self.override else None)

    def check(self, years: Iterable[int]) -> list[YearCheck]:
        """For `check`: one dict per year saying where its data comes from."""
        out = []
        for y in years:
            src = self.year_source(y)
            row: YearCheck = {"year": y, "source": src, "official": self.official_year(y)}
            o = self.override
            if src == OVERRIDE and o is not None:  # (year_source: OVERRIDE means an override)
                row["notice"] = o.notices[y]
                row["holidays"] = len(o.holidays(y))
                row["makeup_days"] = [d.isoformat() for d in o.makeup_days(y)]
                if row["official"]:
                    row["differs_from_official"] = [d.isoformat()
                                                    for d in self.differences(y)]
            elif src == OFFICIAL:
                row["makeup_days"] = [d.isoformat() for d in _official_makeup(y)]
            else:
                row["warning"] = FALLBACK_WARNING % y
            out.append(row)
        return out

    def differences(self, year: int) -> list[datetime.date]:
        """Dates of `year` where the override and the official package disagree."""
        out = []
        d = datetime.date(year, 1, 1)
        while d.year == year:
            if self.is_working_day(d)[0] != chinese_calendar.is_workday(d):
                out.append(d)
            d += datetime.timedelta(days=1)
        return out


class YearCheck(TypedDict):
    """Calendar.check(): where one year's working days come from."""
    year: int
    source: str                                 # OFFICIAL, OVERRIDE or FALLBACK
    official: bool                              # the package has data for the year
    notice: NotRequired[str]                    # override: the State Council notice
    holidays: NotRequired[int]                  # override: days off
    makeup_days: NotRequired[list[str]]         # override or official: ISO dates
    differs_from_official: NotRequired[list[str]]
    warning: NotRequired[str]                   # fallback


def _official_makeup(year: int) -> list[datetime.date]:
    return sorted(d for d in chinese_calendar.workdays if d.year == year and d.weekday() >= 5)


# (path, mtime of the override file or None, Calendar)
_default: tuple[pathlib.Path, int | None, Calendar] | None = None


def default_calendar() -> Calendar:
    """The calendar with the default override file; re-read when that file changes, so a
    long-running service picks up `hcp calendar import` without a restart."""
    global _default
    path = default_path()
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        mtime = None
    if _default is None or _default[:2] != (path, mtime):
        _default = (path, mtime, Calendar.load())
    return _default[2]


def is_working_day(day: datetime.date, calendar: Calendar | None = None) -> tuple[bool, str]:
    """(bool, source): is `day` a working day, and where that answer came from."""
    return (calendar or default_calendar()).is_working_day(day)


def add_working_days(day: datetime.date, n: int, calendar: Calendar | None = None) -> Deadline:
    """The Deadline at 23:59:59 Asia/Shanghai of the n-th working day after `day`."""
    return (calendar or default_calendar()).add_working_days(day, n)
