"""Calendar expressions for scheduled jobs: the part of systemd's ``OnCalendar=`` that cron can express too.

A schedule must mean the same under a systemd timer and a cron line, and ``schedule status`` computes
the next run itself (from cron, or with systemd absent), so safehold accepts this subset and nothing it
could not translate exactly:

* a keyword: ``hourly``, ``daily``, ``weekly`` (Monday 00:00), ``monthly`` (the 1st, 00:00),
  ``quarterly``, ``semiannually``, ``yearly``/``annually`` (all at 00:00, as systemd defines them);
* or ``[WEEKDAYS] [DATE] [TIME]`` with at least one part: WEEKDAYS a comma list of names or ranges
  (``Mon..Fri``, ``Sat,Sun``), DATE ``*-MONTH-DAY`` or ``MONTH-DAY`` (the year is always ``*``), TIME
  ``HOUR:MINUTE`` with seconds absent or ``00``. Each number field is ``*`` or a comma list of values,
  ranges ``A..B`` and repetitions ``A/STEP`` or ``A..B/STEP``. An absent DATE is every day, an absent
  TIME is 00:00.

Not accepted: a year, seconds, ``~`` (days from the end of the month), time zones, ``minutely``.
Under cron, an expression that restricts both the weekday and the day of the month is refused (cron
runs when *either* matches; systemd when both do), for example ``Sun *-*-01..07 04:00``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

OFF = "off"

KEYWORDS = {
    "hourly": "*-*-* *:00",
    "daily": "*-*-* 00:00",
    "weekly": "Mon *-*-* 00:00",
    "monthly": "*-*-01 00:00",
    "quarterly": "*-01,04,07,10-01 00:00",
    "semiannually": "*-01,07-01 00:00",
    "yearly": "*-01-01 00:00",
    "annually": "*-01-01 00:00",
}
_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_DAY_NAMES = {name: i + 1 for i, name in enumerate(_DAYS)} | {
    full: i + 1
    for i, full in enumerate(["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"])
}
_ITEM = re.compile(r"^(?:(\*)|(\d{1,2})(?:\.\.(\d{1,2}))?)(?:/(\d{1,2}))?$")
#: How far ahead :meth:`Calendar.next_after` looks (29 February needs up to 8 years).
_HORIZON_DAYS = 366 * 8 + 2


@dataclass(frozen=True)
class Calendar:
    """A parsed expression: the sets of weekdays (1 = Monday), months, days, hours and minutes it matches."""

    text: str
    weekdays: frozenset[int]
    months: frozenset[int]
    days: frozenset[int]
    hours: frozenset[int]
    minutes: frozenset[int]

    def next_after(self, when: dt.datetime) -> dt.datetime | None:
        """The first time after ``when`` (aware) that matches, in ``when``'s zone; None when none comes
        within eight years (``*-02-30``)."""
        tz = when.tzinfo
        day = when.date()
        for _ in range(_HORIZON_DAYS):
            if day.month in self.months and day.day in self.days and day.isoweekday() in self.weekdays:
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        at = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
                        if at > when:
                            return at
            day += dt.timedelta(days=1)
        return None

    def systemd(self) -> str:
        """The expression for ``OnCalendar=``, normalized from the sets (so systemd runs exactly the
        times :meth:`next_after` computes)."""
        out = []
        if self.weekdays != _ALL_WEEKDAYS:
            out.append(",".join(_DAYS[d - 1].capitalize() for d in sorted(self.weekdays)))
        out.append(f"*-{_list(self.months, 1, 12, 2, '..')}-{_list(self.days, 1, 31, 2, '..')}")
        out.append(f"{_list(self.hours, 0, 23, 2, '..')}:{_list(self.minutes, 0, 59, 2, '..')}:00")
        return " ".join(out)

    def cron(self) -> str:
        """The five cron time fields; raises ValueError when cron cannot express the expression."""
        if self.weekdays != _ALL_WEEKDAYS and self.days != _ALL_DAYS:
            raise ValueError(
                f"{self.text!r} restricts both the weekday and the day of the month, which cron cannot "
                "express (it runs when either matches)"
            )
        dow = "*" if self.weekdays == _ALL_WEEKDAYS else ",".join(str(d % 7) for d in sorted(self.weekdays))
        return " ".join(
            [
                _list(self.minutes, 0, 59, 0, "-"),
                _list(self.hours, 0, 23, 0, "-"),
                _list(self.days, 1, 31, 0, "-"),
                _list(self.months, 1, 12, 0, "-"),
                dow,
            ]
        )


_ALL_WEEKDAYS = frozenset(range(1, 8))
_ALL_DAYS = frozenset(range(1, 32))


def _list(values: frozenset[int], lo: int, hi: int, width: int, dots: str) -> str:
    """``values`` as ``*`` or a comma list with ranges (``1..5``, or ``1-5`` for cron)."""
    if values == frozenset(range(lo, hi + 1)):
        return "*"
    ordered = sorted(values)
    parts: list[str] = []
    start = prev = ordered[0]
    for v in [*ordered[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        a, b = f"{start:0{width}d}", f"{prev:0{width}d}"
        parts.append(a if start == prev else (f"{a},{b}" if prev == start + 1 else f"{a}{dots}{b}"))
        if v is not None:
            start = prev = v
    return ",".join(parts)


def _field(text: str, lo: int, hi: int, what: str) -> frozenset[int]:
    out: set[int] = set()
    for item in text.split(","):
        m = _ITEM.match(item)
        if m is None:
            raise ValueError(f"{what} {item!r}: write *, a number, A..B, A/STEP or a comma list of them")
        star, first, last, step = m.groups()
        a = lo if star else int(first)
        b = hi if star or (step and not last) else int(last or first)
        n = int(step) if step else 1
        if star and step:
            raise ValueError(f"{what} {item!r}: write the start of a repetition ({lo}/{step})")
        if not (lo <= a <= hi and lo <= b <= hi) or a > b or n < 1:
            raise ValueError(f"{what} {item!r} is outside {lo}..{hi}")
        out.update(range(a, b + 1, n))
    return frozenset(out)


def _weekdays(text: str) -> frozenset[int]:
    out: set[int] = set()
    for item in text.lower().split(","):
        first, dots, last = item.partition("..")
        if first not in _DAY_NAMES or (dots and last not in _DAY_NAMES):
            raise ValueError(f"weekday {item!r}: write Mon..Sun names, ranges (Mon..Fri) or lists")
        a, b = _DAY_NAMES[first], _DAY_NAMES[last or first]
        if a > b:
            raise ValueError(f"weekday range {item!r} runs backwards")
        out.update(range(a, b + 1))
    return frozenset(out)


def parse_calendar(text: str) -> Calendar:
    """Parse an expression of the subset above; raises ValueError naming what is wrong."""
    if not isinstance(text, str) or not text.strip() or re.search(r"[^\x21-\x7e ]", text):
        raise ValueError("a calendar expression is printable ASCII on one line (daily, 'Mon..Fri 03:00')")
    words = KEYWORDS.get(text.strip().lower(), text).split()
    weekdays, date, time = _ALL_WEEKDAYS, "*-*", "00:00"
    if words and re.match(r"^[A-Za-z]", words[0]):
        weekdays = _weekdays(words.pop(0))
    if words and "-" in words[0]:
        date = words.pop(0)
    if words and ":" in words[0]:
        time = words.pop(0)
    if words:
        raise ValueError(
            f"{text!r}: cannot read {words[0]!r}; write a keyword (daily, weekly, monthly...) or "
            "[WEEKDAYS] [*-MONTH-DAY] [HOUR:MINUTE], e.g. 'Mon..Fri 03:00' or '*-*-01 04:30'"
        )
    parts = date.split("-")
    if len(parts) == 3 and parts[0] == "*":
        parts = parts[1:]
    if len(parts) != 2:
        raise ValueError(f"{text!r}: the date is *-MONTH-DAY (no year: every year)")
    clock = time.split(":")
    if len(clock) == 3 and clock[2] in ("0", "00"):
        clock = clock[:2]
    if len(clock) != 2:
        raise ValueError(f"{text!r}: the time is HOUR:MINUTE (seconds, if given, must be 00)")
    return Calendar(
        text=text,
        weekdays=weekdays,
        months=_field(parts[0], 1, 12, "month"),
        days=_field(parts[1], 1, 31, "day"),
        hours=_field(clock[0], 0, 23, "hour"),
        minutes=_field(clock[1], 0, 59, "minute"),
    )


def check_calendar(text: str) -> str:
    """``text`` when it is ``off`` or a valid expression (the pydantic validator)."""
    if text != OFF:
        parse_calendar(text)
    return text
