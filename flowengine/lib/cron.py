"""Cron expressions: parsing and next-fire computation (standard library only).

Syntax
------
Five fields ``minute hour day-of-month month day-of-week``, or six with a leading ``second``
field for sub-minute schedules (with five fields the second is always 0). Each field is ``*``
or a comma list of items; an item is a value ``a``, a range ``a-b``, or either of those or ``*``
with a step: ``*/5``, ``1-10/2``, ``5/15`` (= ``5-<max>/15``). Months take ``JAN``-``DEC`` and
days of the week ``SUN``-``SAT`` (any case); day-of-week is 0-7 with both 0 and 7 meaning
Sunday. As in Vixie cron ``SUN`` is 0, so ``SUN-SUN`` and ``0-0`` are Sunday only and ``SUN-SAT``
is the whole week; ``SUN`` ending a range that starts later in the week is read as 7, so
``FRI-SUN`` is Friday to Sunday (Vixie would select nothing there). An open-ended ``a/n`` in
day-of-week runs to Saturday, so ``7/1`` would select no day and is refused. ``L``, ``W``,
``#`` and ``?`` are not supported. Macros: ``@yearly``/``@annually``, ``@monthly``,
``@weekly``, ``@daily``/``@midnight``, ``@hourly``.

Day-of-month and day-of-week combine as in Vixie cron: when both fields are restricted (neither
starts with ``*``) a day matches if EITHER matches, so ``0 0 13 * FRI`` fires on every 13th and
on every Friday; otherwise both must match, so ``0 0 */10 * MON`` fires only on the 1st, 11th,
21st and 31st that are Mondays.

Every problem raises :class:`CronError` whose message starts with the field at fault, e.g.
``hour: 25 is out of range 0-23``. An expression that can never fire is rejected at parse
time: an item selecting nothing, a day-of-month that no selected month has (``0 0 30 2 *``),
or (found by searching 400 years ahead) a schedule whose every time falls in a daylight-saving
gap of its zone. So :meth:`CronSchedule.next_after` finds a time for any parsed schedule,
except past the year 9999 where ``datetime`` ends, and then raises :class:`CronError` too.

Time zones and daylight saving time
-----------------------------------
A schedule is read in the local wall-clock time of its zone (``zoneinfo``). Around DST changes
we follow Vixie/ISC cron and cronie, which split schedules in two kinds:

* *clock-following* schedules have a ``*``-led second (six-field form), minute or hour field
  (``*/5 * * * *``, ``15 * * * *``, ``@hourly``). They fire whenever the wall clock shows a
  matching time: wall times skipped by a spring-forward gap never fire, and wall times that
  occur twice on a fall-back fire twice (once per occurrence).
* *fixed-time* schedules (everything else, e.g. ``30 2 * * *``, ``@daily``) fire once per
  matching local day-time: a wall time inside a spring-forward gap fires at the first instant
  after the gap (02:30 on a 02:00->03:00 day fires at 03:00 new time), and a wall time that
  occurs twice fires only at its first occurrence.

So an every-5-minutes job keeps a steady beat across both changes and a nightly 02:30 job runs
exactly once every night. Schedules in ``UTC`` have no such corner cases.
"""

from __future__ import annotations

import bisect
import calendar
import re
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

__all__ = ["CronError", "CronSchedule", "changed_meaning"]


class CronError(ValueError):
    """An invalid cron expression or time zone; the message names the field at fault."""


_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTH_NAMES = {name.upper(): i for i, name in enumerate(calendar.month_abbr) if name}
_DOW_NAMES = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}
# Longest month lengths, Feb counted as 29: used to reject days that never occur.
_MAX_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_NUMBER = re.compile(r"[0-9]+")
# No field goes past 59; a longer digit string is out of range, and int() of thousands of
# digits would raise ValueError of its own.
_MAX_DIGITS = 4
_ONE_SECOND = timedelta(seconds=1)
# The Gregorian calendar repeats, weekdays included, every 400 years, and zoneinfo's rules for
# the far future repeat every year: a schedule that does not fire within 400 years never does.
_SEARCH_YEARS = 400


class _Field:
    """How to read one field: its name in messages, value range and optional names."""

    def __init__(self, name: str, low: int, high: int, names: dict | None = None) -> None:
        self.name = name
        self.low = low
        self.high = high
        self.names = names or {}


_SECOND = _Field("second", 0, 59)
_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DOM = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, _MONTH_NAMES)
_DOW = _Field("day-of-week", 0, 7, _DOW_NAMES)


def _value(field: _Field, text: str) -> int:
    """One number or name of ``field``, range-checked."""
    if _NUMBER.fullmatch(text):
        if len(text.lstrip("0")) > _MAX_DIGITS:
            raise CronError(f"{field.name}: {text[:8]}... is out of range {field.low}-{field.high}")
        number = int(text)
    elif field.names:
        try:
            number = field.names[text.upper()]
        except KeyError:
            raise CronError(f"{field.name}: unknown name {text!r}") from None
    else:
        raise CronError(f"{field.name}: {text!r} is not a number")
    if not field.low <= number <= field.high:
        raise CronError(f"{field.name}: {number} is out of range {field.low}-{field.high}")
    return number


def _parse_item(field: _Field, item: str) -> range:
    """One list item (``*``, ``a``, ``a-b``, each optionally ``/step``) as a range."""
    if not item:
        raise CronError(f"{field.name}: empty list item")
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not _NUMBER.fullmatch(step_text):
            raise CronError(f"{field.name}: bad step {step_text[:16]!r} in {item[:32]!r}")
        # A step beyond the field's span still selects the start; cap it before int().
        step = int(step_text) if len(step_text.lstrip("0")) <= _MAX_DIGITS else 10**_MAX_DIGITS
        if step < 1:
            raise CronError(f"{field.name}: step in {item!r} must be at least 1")
    # An open-ended "a/n" runs to the field's end; for day-of-week that is Saturday (6), so
    # "1/2" means MON,WED,FRI rather than also picking Sunday up as 7.
    top = 6 if field is _DOW else field.high
    if base == "*":
        return range(field.low, top + 1, step)
    if "-" in base:
        start_text, _, end_text = base.partition("-")
        if not start_text or not end_text:
            raise CronError(f"{field.name}: bad range {base!r}")
        start = _value(field, start_text)
        end = _value(field, end_text)
        # Vixie reads the name SUN as 0, so SUN-SUN is Sunday only. Ending a range that starts
        # later in the week, SUN can only mean the 7 of 0-7: FRI-SUN is Friday to Sunday.
        if field is _DOW and end == 0 and start > 0 and not _NUMBER.fullmatch(end_text):
            end = 7
        if start > end:
            raise CronError(f"{field.name}: range {base!r} is backwards")
        return range(start, end + 1, step)
    start = _value(field, base)
    selected = range(start, (top if slash else start) + 1, step)
    if not selected:
        # Only "7/n" in day-of-week gets here: it starts past Saturday, where "a/n" stops.
        raise CronError(
            f"{field.name}: {item!r} selects no day: an open-ended 'a/n' runs to Saturday (6); "
            f"start Sunday as 0 (e.g. '0/{step}')")
    return selected


def _parse_field(field: _Field, text: str) -> tuple:
    """A whole field as a sorted tuple of the values it selects."""
    values: set[int] = set()
    for item in text.split(","):
        values.update(_parse_item(field, item))
    if field is _DOW and 7 in values:
        values.discard(7)
        values.add(0)
    return tuple(sorted(values))


def changed_meaning(expression: str) -> str | None:
    """Why ``expression`` fires differently than it did before SUN-led ranges were read as
    Vixie reads them, or None. ``SUN-SUN`` and ``0-SUN`` used to select the whole week (SUN
    ending a range was always 7); now they select Sunday only. For start-up upgrade notes.
    """
    if not isinstance(expression, str):
        return None
    fields = _MACROS.get(expression.strip().lower(), expression).split()
    if len(fields) not in (5, 6):
        return None
    for item in fields[-1].split(","):
        start, dash, end = item.partition("/")[0].partition("-")
        if dash and end.upper() == "SUN" and (start.upper() == "SUN" or (_NUMBER.fullmatch(start) and not start.strip("0"))):
            return (f"day-of-week: {item!r} now selects Sunday only, as in Vixie cron; "
                    "before, it selected every day of the week")
    return None


def _load_zone(name: str) -> tzinfo:
    """The zoneinfo zone called ``name``; CronError naming the timezone otherwise."""
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (KeyError, ValueError, OSError):
            # Without system tz data "UTC" should still work.
            if name == "UTC":
                return UTC
    raise CronError(f"timezone: unknown time zone {name!r}")


def _next_in(values: tuple, start: int) -> int | None:
    """The smallest of the sorted ``values`` that is >= start, or None."""
    i = bisect.bisect_left(values, start)
    return values[i] if i < len(values) else None


class CronSchedule:
    """A parsed cron expression bound to a time zone. Build it with :meth:`parse`."""

    expression: str
    timezone: str
    has_seconds: bool

    def __init__(self, expression: str, timezone_name: str, zone: tzinfo,
                 fields: list[str]) -> None:
        self.expression = expression
        self.timezone = timezone_name
        self.has_seconds = len(fields) == 6
        if not self.has_seconds:
            fields = ["0", *fields]
        self._zone = zone
        specs = (_SECOND, _MINUTE, _HOUR, _DOM, _MONTH, _DOW)
        (self._seconds, self._minutes, self._hours, self._doms, self._months,
         self._dows) = (_parse_field(spec, text) for spec, text in zip(specs, fields))
        # Vixie cron's DOM_STAR/DOW_STAR: a '*'-led day field does not widen the other.
        self._dom_star = fields[3].startswith("*")
        self._dow_star = fields[5].startswith("*")
        # Vixie's "wildcard job" test (MIN_STAR|HR_STAR), extended to the seconds field.
        self._follows_clock = any(f.startswith("*") for f in fields[:3])
        # When the day fields combine with OR, every selected weekday occurs in every month.
        # With AND, a day that occurs in a selected month falls on every weekday within one
        # 400-year cycle (Feb 29 included), so the month/day pair is all there is to check.
        if (self._dom_star or self._dow_star) and not any(
            day <= _MAX_DAYS[month - 1] for month in self._months for day in self._doms
        ):
            raise CronError(f"day-of-month: {fields[3]} never occurs in month {fields[4]}")
        self._check_fires(datetime.now(UTC))

    def _check_fires(self, now: datetime) -> None:
        """Refuse a schedule that can never fire from ``now`` on.

        The calendar checks above cover every cause but one: a clock-following schedule whose
        every wall time is skipped by a spring-forward change of its zone (say ``* 30 2
        25-31 3 */7`` in Europe/Berlin, the last Sunday of March at 02:30).
        """
        try:
            self._next_after(now)
        except CronError:
            raise CronError(
                f"expression: never fires in {self.timezone}: no time it selects occurs in the "
                f"{_SEARCH_YEARS} years searched from {now:%Y-%m-%d} (each one falls in a "
                "daylight-saving gap)") from None

    @classmethod
    def parse(cls, expression: str, timezone: str = "UTC") -> CronSchedule:
        """Parse ``expression`` for the zone ``timezone``; raises CronError naming the field."""
        if not isinstance(expression, str):
            raise CronError("expression: must be a string")
        text = expression.strip()
        if text.startswith("@"):
            try:
                text = _MACROS[text.lower()]
            except KeyError:
                raise CronError(f"expression: unknown macro {text!r}") from None
        fields = text.split()
        if len(fields) not in (5, 6):
            raise CronError(f"expression: expected 5 or 6 fields, got {len(fields)}")
        zone = _load_zone(timezone)
        return cls(expression, timezone, zone, fields)

    def __repr__(self) -> str:
        return f"CronSchedule({self.expression!r}, timezone={self.timezone!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CronSchedule):
            return NotImplemented
        return (self.expression, self.timezone) == (other.expression, other.timezone)

    def __hash__(self) -> int:
        return hash((self.expression, self.timezone))

    # -- next fire time --------------------------------------------------------------------

    def next_after(self, moment: datetime) -> datetime:
        """The first fire time strictly after the aware datetime ``moment``, in UTC."""
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("next_after needs an aware datetime")
        try:
            return self._next_after(moment)
        except CronError:
            raise
        except (OverflowError, ValueError):
            # datetime holds the years 1 to 9999 only: the search (or the conversion of
            # `moment` into the schedule's zone) ran off one end of it.
            raise CronError(
                f"expression: no fire time after {moment.isoformat()} within the years 1-9999 "
                "(the end of the calendar)") from None

    def _next_after(self, moment: datetime) -> datetime:
        # Fire times are whole seconds, so "after moment" equals "after moment's offset1".
        after = moment.astimezone(UTC).replace(microsecond=0, tzinfo=None)
        local = after.replace(tzinfo=UTC).astimezone(self._zone)
        wall = local.replace(tzinfo=None)
        last_year = wall.year + _SEARCH_YEARS
        offset0, offset1 = self._offsets(wall)
        early: datetime | None = None
        if self._follows_clock and offset0 != offset1 and local.fold == 0:
            # `after` falls in the first pass through a repeated hour. Wall
            # times of that hour up to `wall` come round again after the change, earlier
            # than anything the scan below finds past the hour.
            change = self._change_between(after, wall - offset1)
            candidate = self._next_wall(change + offset1, last_year)
            if candidate is not None and candidate <= wall:
                early = candidate - offset1
        found = self._scan(wall + _ONE_SECOND, after, last_year)
        if early is not None and early < found:
            found = early
        return found.replace(tzinfo=UTC)

    def _scan(self, start: datetime, after: datetime, last_year: int) -> datetime:
        """The first fire instant (naive UTC) after ``after``, from wall times >= start up to
        the end of ``last_year``.

        Matching wall times come in wall order; each maps to its fire instant(s) by the DST
        rules in the module docstring. Taken in that order the first instant past `after`
        is also the earliest one (only second occurrences break the order, and those are
        handled by the caller's look-back and the check order inside one wall time).
        """
        wall = self._next_wall(start, last_year)
        while wall is not None:
            offset0, offset1 = self._offsets(wall)
            if offset0 == offset1:
                instant = wall - offset0
                if instant > after:
                    return instant
            elif offset0 > offset1:  # repeated (fall-back) wall time
                if wall - offset0 > after:
                    return wall - offset0
                if self._follows_clock and wall - offset1 > after:
                    return wall - offset1
            else:  # skipped (spring-forward) wall time
                # offset0 is the offset before the gap: the change lies between the
                # two readings of this wall time.
                instant = self._change_between(wall - offset1, wall - offset0)
                if not self._follows_clock and instant > after:
                    return instant
                # Every later wall time in this gap maps to the same instant or to none, so
                # go on from the first wall time after the gap.
                wall = self._next_wall(max(instant + offset1, wall + _ONE_SECOND), last_year)
                continue
            wall = self._next_wall(wall + _ONE_SECOND, last_year)
        raise CronError(
            f"expression: no fire time in the {_SEARCH_YEARS} years searched "
            f"(wall times from {start:%Y-%m-%d %H:%M:%S} to the end of {last_year})")

    def _offsets(self, wall: datetime) -> tuple[timedelta, timedelta]:
        """UTC offsets of a naive wall time at fold 0 and fold 1 (PEP 495).

        Equal: an ordinary time. fold 0 larger: it occurs twice (fall back), first at fold 0.
        fold 0 smaller: it falls in a spring-forward gap and never occurs.
        """
        zone = self._zone
        return (_offset(wall.replace(tzinfo=zone)), _offset(wall.replace(tzinfo=zone, fold=1)))

    def _change_between(self, low: datetime, high: datetime) -> datetime:
        """The first whole second (naive UTC) in (low, high] whose offset differs from low's.

        Binary search: zoneinfo does not expose its transition table.
        """
        def offset(instant: datetime) -> timedelta:
            return _offset(instant.replace(tzinfo=UTC).astimezone(self._zone))

        before = offset(low)
        lo, hi = 0, int((high - low).total_seconds())
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if offset(low + timedelta(seconds=mid)) == before:
                lo = mid
            else:
                hi = mid
        return low + timedelta(seconds=hi)

    def _day_matches(self, weekday: int, day: int) -> bool:
        """Vixie's rule: OR when both day fields are restricted, AND otherwise."""
        dom_ok = day in self._doms
        dow_ok = weekday in self._dows
        if self._dom_star or self._dow_star:
            return dom_ok and dow_ok
        return dom_ok or dow_ok

    def _next_wall(self, start: datetime, last_year: int) -> datetime | None:
        """The first matching naive wall time >= start (whole seconds) up to the end of
        ``last_year``, jumping field by field; None if there is none.

        When a field has no match left, move to the start of the next larger unit and retry;
        naive datetime arithmetic is plain wall-clock arithmetic.
        """
        t = start
        while t.year <= last_year:
            month = _next_in(self._months, t.month)
            if month is None:
                t = datetime(t.year + 1, 1, 1)
                continue
            if month != t.month:
                t = datetime(t.year, month, 1)
            day = self._next_day(t.year, t.month, t.day)
            if day is None:
                t = (datetime(t.year, t.month, 1) + timedelta(days=31)).replace(day=1)
                continue
            if day != t.day:
                t = datetime(t.year, t.month, day)
            hour = _next_in(self._hours, t.hour)
            if hour is None:
                t = datetime(t.year, t.month, t.day) + timedelta(days=1)
                continue
            if hour != t.hour:
                t = t.replace(hour=hour, minute=0, second=0)
            minute = _next_in(self._minutes, t.minute)
            if minute is None:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
                continue
            if minute != t.minute:
                t = t.replace(minute=minute, second=0)
            second = _next_in(self._seconds, t.second)
            if second is None:
                t = t.replace(second=0) + timedelta(minutes=1)
                continue
            return t.replace(second=second)
        return None

    def _next_day(self, year: int, month: int, day: int) -> int | None:
        """The first day >= day of the month that matches the day fields, or None."""
        # Cron counts Sunday as 0; Python's weekday() counts Monday as 0.
        weekday = (calendar.weekday(year, month, day) + 1) % 7
        for candidate in range(day, calendar.monthrange(year, month)[1] + 1):
            if self._day_matches(weekday, candidate):
                return candidate
            weekday = (weekday + 1) % 7
        return None


def _offset(moment: datetime) -> timedelta:
    """The UTC offset of an aware datetime (always known: our zones are ZoneInfo or UTC)."""
    offset = moment.utcoffset()
    assert offset is not None
    return offset
