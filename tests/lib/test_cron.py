"""Cron parsing and next-fire computation (flowengine/lib/cron.py).

A table of expressions with hand-worked fire times (fields, macros, seconds, Vixie day rules,
leap days, DST in Europe/Paris and America/New_York), a table of invalid expressions with the
message each must give, and a brute-force cross-check that walks minute by minute through
DST weeks and compares every fire time with next_after.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from flowengine.lib.cron import CronError, CronSchedule


def fires(expression: str, tz: str, start: str, count: int) -> list[datetime]:
    """`count` consecutive fire times after `start`, each fed back into next_after."""
    schedule = CronSchedule.parse(expression, tz)
    moment = datetime.fromisoformat(start)
    out = []
    for _ in range(count):
        moment = schedule.next_after(moment)
        assert moment.tzinfo is timezone.utc
        out.append(moment)
    return out


# Day-of-week names as Vixie cron reads them: SUN is 0, so a range SUN-SUN is Sunday only.
# Jan 1 2024 is a Monday; each row lists the weekdays (0 = Sunday) fired in that first week.
DOW_RANGES = [
    ("SUN-SUN", {0}),
    ("0-0", {0}),
    ("7-7", {0}),
    ("0-SUN", {0}),
    ("7-SUN", {0}),
    ("sun-sun/2", {0}),
    ("SUN-SAT", {0, 1, 2, 3, 4, 5, 6}),
    ("0-7", {0, 1, 2, 3, 4, 5, 6}),
    ("SUN-7", {0, 1, 2, 3, 4, 5, 6}),
    ("SAT-SUN", {6, 0}),
    ("MON-SUN", {0, 1, 2, 3, 4, 5, 6}),
    ("FRI-SUN", {5, 6, 0}),
    ("5-7", {5, 6, 0}),
    ("SUN-TUE", {0, 1, 2}),
    ("*/7", {0}),
    ("0/3", {0, 3, 6}),
    ("1/2", {1, 3, 5}),
    ("MON-MON", {1}),
]


@pytest.mark.parametrize("field,weekdays", DOW_RANGES, ids=[row[0] for row in DOW_RANGES])
def test_day_of_week_ranges_read_as_vixie_does(field: str, weekdays: set[int]) -> None:
    week = fires(f"0 0 * * {field}", "UTC", "2023-12-31T00:00:00+00:00", 8)
    first_week = [t for t in week if t < datetime(2024, 1, 7, 1, tzinfo=timezone.utc)]
    assert {(t.weekday() + 1) % 7 for t in first_week} == weekdays


def test_huge_numbers_are_range_errors_and_huge_steps_select_the_start() -> None:
    # int() of 5,000 digits raises ValueError, not CronError: the digit count is checked first.
    with pytest.raises(CronError, match="^hour: 99999999... is out of range 0-23$"):
        CronSchedule.parse("0 " + "9" * 5000 + " * * *")
    assert fires("*/" + "9" * 5000 + " * * * *", "UTC", "2024-01-01T00:00:00+00:00", 2) == [
        datetime(2024, 1, 1, 1, tzinfo=timezone.utc), datetime(2024, 1, 1, 2, tzinfo=timezone.utc)]


def test_degenerate_ranges_select_one_value() -> None:
    assert fires("0 9-9 * * *", "UTC", "2024-01-01T00:00:00+00:00", 2) == [
        datetime(2024, 1, 1, 9, tzinfo=timezone.utc), datetime(2024, 1, 2, 9, tzinfo=timezone.utc)]
    assert fires("0 0 9-9/2 * *", "UTC", "2024-01-01T00:00:00+00:00", 2) == [
        datetime(2024, 1, 9, tzinfo=timezone.utc), datetime(2024, 2, 9, tzinfo=timezone.utc)]


# A clock-following schedule that only selects wall times skipped by Berlin's spring-forward
# change: the last Sunday of March (25-31 AND Sunday, since */7 is '*'-led) at 02:30.
GAP_ONLY = [
    ("* 30 2 25-31 3 */7", "Europe/Berlin"),
    ("*/1 2 25-31 3 */7", "Europe/Berlin"),
    ("*/30 2 8-14 3 */7", "America/New_York"),  # the second Sunday of March, 02:00 and 02:30
]


@pytest.mark.parametrize("expression,tz", GAP_ONLY)
def test_schedule_that_only_selects_skipped_times_is_refused_at_parse(expression: str, tz: str) -> None:
    with pytest.raises(CronError) as info:
        CronSchedule.parse(expression, tz)
    message = str(info.value)
    assert message.startswith(f"expression: never fires in {tz}: no time it selects occurs in the 400 years searched from ")
    assert message.endswith("(each one falls in a daylight-saving gap)")
    # The same expression is fine where there is no such gap.
    CronSchedule.parse(expression, "UTC")


def test_fixed_time_in_a_gap_still_fires_after_it() -> None:
    # Five fields: second 0, so the schedule is fixed-time and runs at the end of the gap.
    assert fires("30 2 25-31 3 */7", "Europe/Berlin", "2024-01-01T00:00:00+00:00", 1) == [
        datetime(2024, 3, 31, 1, tzinfo=timezone.utc)]


def test_search_window_message_states_the_true_bound(monkeypatch) -> None:
    # Parsing refuses such a schedule; skip that check to see what next_after itself says.
    monkeypatch.setattr(CronSchedule, "_check_fires", lambda self, now: None)
    schedule = CronSchedule.parse("* 30 2 25-31 3 */7", "Europe/Berlin")
    with pytest.raises(CronError) as info:
        schedule.next_after(datetime(2024, 5, 1, tzinfo=timezone.utc))
    assert str(info.value) == (
        "expression: no fire time in the 400 years searched "
        "(wall times from 2024-05-01 02:00:01 to the end of 2424)")


# (expression, timezone, start, expected fire times); times carry their local offset so the
# table reads as wall-clock time, but they are compared as instants.
TABLE = [
    # every five minutes, strictly after, sub-second starts
    ("*/5 * * * *", "UTC", "2024-01-01T10:02:30+00:00",
     ["2024-01-01T10:05:00+00:00", "2024-01-01T10:10:00+00:00", "2024-01-01T10:15:00+00:00"]),
    ("*/5 * * * *", "UTC", "2024-01-01T10:05:00+00:00", ["2024-01-01T10:10:00+00:00"]),
    ("* * * * *", "UTC", "2024-01-01T10:04:59.999999+00:00", ["2024-01-01T10:05:00+00:00"]),
    ("* * * * *", "UTC", "2024-01-01T10:05:00.000001+00:00", ["2024-01-01T10:06:00+00:00"]),
    # ranges, steps, lists
    ("0 9-17 * * *", "UTC", "2024-01-01T17:30:00+00:00",
     ["2024-01-02T09:00:00+00:00", "2024-01-02T10:00:00+00:00"]),
    ("10-50/20 * * * *", "UTC", "2024-01-01T10:00:00+00:00",
     ["2024-01-01T10:10:00+00:00", "2024-01-01T10:30:00+00:00", "2024-01-01T10:50:00+00:00",
      "2024-01-01T11:10:00+00:00"]),
    ("5/15 * * * *", "UTC", "2024-01-01T10:00:00+00:00",
     ["2024-01-01T10:05:00+00:00", "2024-01-01T10:20:00+00:00", "2024-01-01T10:35:00+00:00",
      "2024-01-01T10:50:00+00:00", "2024-01-01T11:05:00+00:00"]),
    ("0 8,12,18 * * *", "UTC", "2024-01-01T12:00:00+00:00",
     ["2024-01-01T18:00:00+00:00", "2024-01-02T08:00:00+00:00", "2024-01-02T12:00:00+00:00"]),
    ("0 0 1 */3 *", "UTC", "2024-02-15T00:00:00+00:00",
     ["2024-04-01T00:00:00+00:00", "2024-07-01T00:00:00+00:00", "2024-10-01T00:00:00+00:00",
      "2025-01-01T00:00:00+00:00"]),
    # names, any case; Jan 31 2024 is a Wednesday, July 1 2024 a Monday
    ("30 6 * jan,JUL mon-Fri", "UTC", "2024-01-31T07:00:00+00:00",
     ["2024-07-01T06:30:00+00:00", "2024-07-02T06:30:00+00:00"]),
    # day-of-week 7 and 0 are Sunday; FRI-SUN wraps to Sunday (Jan 1 2024 is a Monday)
    ("0 0 * * 7", "UTC", "2024-01-01T00:00:00+00:00", ["2024-01-07T00:00:00+00:00"]),
    ("0 0 * * 0", "UTC", "2024-01-01T00:00:00+00:00", ["2024-01-07T00:00:00+00:00"]),
    ("0 12 * * FRI-SUN", "UTC", "2024-01-01T00:00:00+00:00",
     ["2024-01-05T12:00:00+00:00", "2024-01-06T12:00:00+00:00", "2024-01-07T12:00:00+00:00",
      "2024-01-12T12:00:00+00:00"]),
    ("0 12 * * 5-7", "UTC", "2024-01-06T13:00:00+00:00",
     ["2024-01-07T12:00:00+00:00", "2024-01-12T12:00:00+00:00"]),
    # open-ended "a/n" in day-of-week stops at Saturday: MON,WED,FRI (Jan 5 2024 is a Friday)
    ("0 0 * * 1/2", "UTC", "2024-01-05T12:00:00+00:00",
     ["2024-01-08T00:00:00+00:00", "2024-01-10T00:00:00+00:00"]),
    # macros
    ("@yearly", "UTC", "2024-06-01T00:00:00+00:00", ["2025-01-01T00:00:00+00:00"]),
    ("@annually", "UTC", "2024-06-01T00:00:00+00:00", ["2025-01-01T00:00:00+00:00"]),
    ("@monthly", "UTC", "2024-01-31T12:00:00+00:00",
     ["2024-02-01T00:00:00+00:00", "2024-03-01T00:00:00+00:00"]),
    ("@weekly", "UTC", "2024-01-01T00:00:00+00:00",
     ["2024-01-07T00:00:00+00:00", "2024-01-14T00:00:00+00:00"]),
    ("@daily", "UTC", "2024-02-28T23:59:59+00:00", ["2024-02-29T00:00:00+00:00"]),
    ("@midnight", "UTC", "2024-02-28T23:59:59+00:00", ["2024-02-29T00:00:00+00:00"]),
    ("@hourly", "UTC", "2024-01-01T10:59:59+00:00",
     ["2024-01-01T11:00:00+00:00", "2024-01-01T12:00:00+00:00"]),
    ("@HOURLY", "UTC", "2024-01-01T10:00:00+00:00", ["2024-01-01T11:00:00+00:00"]),
    # six fields: seconds
    ("*/10 * * * * *", "UTC", "2024-01-01T10:00:05+00:00",
     ["2024-01-01T10:00:10+00:00", "2024-01-01T10:00:20+00:00", "2024-01-01T10:00:30+00:00"]),
    ("15,45 * * * * *", "UTC", "2024-01-01T10:00:50+00:00",
     ["2024-01-01T10:01:15+00:00", "2024-01-01T10:01:45+00:00", "2024-01-01T10:02:15+00:00"]),
    ("30 0 12 * * *", "UTC", "2024-01-01T12:00:30+00:00", ["2024-01-02T12:00:30+00:00"]),
    ("* * * * * *", "UTC", "2024-12-31T23:59:59+00:00", ["2025-01-01T00:00:00+00:00"]),
    # Vixie day rule, both restricted: the 13th OR a Friday (Oct 13 2024 is a Sunday)
    ("0 0 13 * FRI", "UTC", "2024-10-01T00:00:00+00:00",
     ["2024-10-04T00:00:00+00:00", "2024-10-11T00:00:00+00:00", "2024-10-13T00:00:00+00:00",
      "2024-10-18T00:00:00+00:00", "2024-10-25T00:00:00+00:00"]),
    ("0 0 1-7 * MON", "UTC", "2024-10-06T00:00:00+00:00",
     ["2024-10-07T00:00:00+00:00", "2024-10-14T00:00:00+00:00"]),
    # '*'-led day-of-month: the 1st/11th/21st/31st AND a Monday
    ("0 0 */10 * MON", "UTC", "2024-09-01T00:00:00+00:00",
     ["2024-10-21T00:00:00+00:00", "2024-11-11T00:00:00+00:00"]),
    # '*'-led day-of-week: Feb 29 AND a Sunday
    ("0 0 29 2 */7", "UTC", "2024-03-01T00:00:00+00:00", ["2032-02-29T00:00:00+00:00"]),
    # year rollover, leap days (2100 is not a leap year)
    ("59 23 31 12 *", "UTC", "2024-12-31T23:59:00+00:00", ["2025-12-31T23:59:00+00:00"]),
    ("0 0 1 1 *", "UTC", "2024-12-31T23:59:59+00:00", ["2025-01-01T00:00:00+00:00"]),
    ("0 12 29 2 *", "UTC", "2024-03-01T00:00:00+00:00", ["2028-02-29T12:00:00+00:00"]),
    ("0 12 29 2 *", "UTC", "2096-03-01T00:00:00+00:00", ["2104-02-29T12:00:00+00:00"]),
    ("0 0 30 2 MON", "UTC", "2024-02-01T00:00:00+00:00", ["2024-02-05T00:00:00+00:00"]),
    # local wall time; the start may be in any zone (08:30 Tokyo = 00:30 Paris)
    ("0 9 * * *", "Europe/Paris", "2024-01-15T08:30:00+09:00", ["2024-01-15T09:00:00+01:00"]),
    ("0 9 * * *", "Europe/Paris", "2024-07-15T10:00:00+02:00", ["2024-07-16T09:00:00+02:00"]),
    # Paris spring forward, 2024-03-31 02:00 CET -> 03:00 CEST
    ("30 2 * * *", "Europe/Paris", "2024-03-30T03:00:00+01:00",
     ["2024-03-31T03:00:00+02:00", "2024-04-01T02:30:00+02:00"]),
    ("0,30 2 * * *", "Europe/Paris", "2024-03-30T03:00:00+01:00",
     ["2024-03-31T03:00:00+02:00", "2024-04-01T02:00:00+02:00"]),
    ("*/30 * * * *", "Europe/Paris", "2024-03-31T01:10:00+01:00",
     ["2024-03-31T01:30:00+01:00", "2024-03-31T03:00:00+02:00", "2024-03-31T03:30:00+02:00"]),
    ("15 * * * *", "Europe/Paris", "2024-03-31T01:00:00+01:00",
     ["2024-03-31T01:15:00+01:00", "2024-03-31T03:15:00+02:00"]),
    ("0 */20 2 * * *", "Europe/Paris", "2024-03-31T01:00:00+01:00",
     ["2024-04-01T02:00:00+02:00"]),
    ("0 9 * * *", "Europe/Paris", "2024-03-30T10:00:00+01:00", ["2024-03-31T09:00:00+02:00"]),
    # Paris fall back, 2024-10-27 03:00 CEST -> 02:00 CET
    ("30 2 * * *", "Europe/Paris", "2024-10-26T03:00:00+02:00",
     ["2024-10-27T02:30:00+02:00", "2024-10-28T02:30:00+01:00"]),
    ("30 2 * * *", "Europe/Paris", "2024-10-27T02:10:00+01:00", ["2024-10-28T02:30:00+01:00"]),
    ("*/30 * * * *", "Europe/Paris", "2024-10-27T01:45:00+02:00",
     ["2024-10-27T02:00:00+02:00", "2024-10-27T02:30:00+02:00", "2024-10-27T02:00:00+01:00",
      "2024-10-27T02:30:00+01:00", "2024-10-27T03:00:00+01:00"]),
    ("*/30 * * * *", "Europe/Paris", "2024-10-27T02:45:00+02:00", ["2024-10-27T02:00:00+01:00"]),
    ("*/30 * * * *", "Europe/Paris", "2024-10-27T02:10:00+01:00", ["2024-10-27T02:30:00+01:00"]),
    ("*/20 * * * * *", "Europe/Paris", "2024-10-27T02:59:50+02:00",
     ["2024-10-27T02:00:00+01:00", "2024-10-27T02:00:20+01:00"]),
    # New York spring forward 2024-03-10 02:00 EST -> 03:00 EDT
    ("30 2 * * *", "America/New_York", "2024-03-09T12:00:00-05:00",
     ["2024-03-10T03:00:00-04:00", "2024-03-11T02:30:00-04:00"]),
    ("0 * * * *", "America/New_York", "2024-03-10T00:30:00-05:00",
     ["2024-03-10T01:00:00-05:00", "2024-03-10T03:00:00-04:00"]),
    # New York fall back 2024-11-03 02:00 EDT -> 01:00 EST
    ("30 1 * * *", "America/New_York", "2024-11-02T12:00:00-04:00",
     ["2024-11-03T01:30:00-04:00", "2024-11-04T01:30:00-05:00"]),
    ("0 * * * *", "America/New_York", "2024-11-03T00:30:00-04:00",
     ["2024-11-03T01:00:00-04:00", "2024-11-03T01:00:00-05:00", "2024-11-03T02:00:00-05:00"]),
]


@pytest.mark.parametrize("expression,tz,start,expected", TABLE,
                         ids=[f"{row[0]}|{row[1]}|{row[2]}" for row in TABLE])
def test_next_fire_times(expression: str, tz: str, start: str, expected: list[str]) -> None:
    got = fires(expression, tz, start, len(expected))
    zone = ZoneInfo(tz)
    # Compare as local ISO strings so a failure shows readable wall-clock times.
    assert [t.astimezone(zone).isoformat() for t in got] == [
        datetime.fromisoformat(e).astimezone(zone).isoformat() for e in expected]


INVALID = [
    ("", "expression: expected 5 or 6 fields, got 0"),
    ("* * * *", "expression: expected 5 or 6 fields, got 4"),
    ("* * * * * * *", "expression: expected 5 or 6 fields, got 7"),
    ("@often", "expression: unknown macro '@often'"),
    ("@reboot", "expression: unknown macro '@reboot'"),
    ("60 * * * * *", "second: 60 is out of range 0-59"),
    ("60 * * * *", "minute: 60 is out of range 0-59"),
    ("* 24 * * *", "hour: 24 is out of range 0-23"),
    ("0 25 * * *", "hour: 25 is out of range 0-23"),
    ("* * 0 * *", "day-of-month: 0 is out of range 1-31"),
    ("* * 32 * *", "day-of-month: 32 is out of range 1-31"),
    ("* * * 13 *", "month: 13 is out of range 1-12"),
    ("* * * * 8", "day-of-week: 8 is out of range 0-7"),
    ("* 1-30 * * *", "hour: 30 is out of range 0-23"),
    ("*/0 * * * *", "minute: step in '*/0' must be at least 1"),
    ("*/x * * * *", "minute: bad step 'x' in '*/x'"),
    ("* */ * * *", "hour: bad step '' in '*/'"),
    ("* * * * FUNDAY", "day-of-week: unknown name 'FUNDAY'"),
    ("* * * FOO *", "month: unknown name 'FOO'"),
    ("MON * * * *", "minute: 'MON' is not a number"),
    ("1,,2 * * * *", "minute: empty list item"),
    ("* 1, * * *", "hour: empty list item"),
    ("10-5 * * * *", "minute: range '10-5' is backwards"),
    ("-5 * * * *", "minute: bad range '-5'"),
    ("* * L * *", "day-of-month: 'L' is not a number"),
    ("* * ? * *", "day-of-month: '?' is not a number"),
    ("0 0 30 2 *", "day-of-month: 30 never occurs in month 2"),
    ("0 0 31 APR,JUN *", "day-of-month: 31 never occurs in month APR,JUN"),
    # 7/n starts past Saturday, where an open-ended a/n stops: it selects no day at all.
    ("0 0 * * 7/1", "day-of-week: '7/1' selects no day: an open-ended 'a/n' runs to Saturday (6); "
                    "start Sunday as 0 (e.g. '0/1')"),
    ("0 0 * * 1,7/3", "day-of-week: '7/3' selects no day: an open-ended 'a/n' runs to Saturday (6); "
                      "start Sunday as 0 (e.g. '0/3')"),
    ("0 0 * * 7-0", "day-of-week: range '7-0' is backwards"),
    ("0 0 * * FRI-0", "day-of-week: range 'FRI-0' is backwards"),
    ("1" * 5000 + " * * * *", "minute: 11111111... is out of range 0-59"),
]


@pytest.mark.parametrize("expression,message", INVALID)
def test_invalid_expression_names_the_field(expression: str, message: str) -> None:
    with pytest.raises(CronError) as info:
        CronSchedule.parse(expression)
    assert str(info.value) == message


@pytest.mark.parametrize("name", ["Mars/Olympus", "Europe", "", "../etc/passwd", "utc"])
def test_unknown_timezone(name: str) -> None:
    with pytest.raises(CronError) as info:
        CronSchedule.parse("* * * * *", name)
    assert str(info.value) == f"timezone: unknown time zone {name!r}"


def test_parse_errors_are_value_errors_and_non_strings_are_rejected() -> None:
    assert issubclass(CronError, ValueError)
    with pytest.raises(CronError, match="^expression: must be a string$"):
        CronSchedule.parse(None)  # type: ignore[arg-type]


def test_possible_days_are_accepted() -> None:
    # March has a 31st; with a restricted day-of-week the days combine with OR.
    CronSchedule.parse("0 0 31 2,3 *")
    CronSchedule.parse("0 0 30 2 MON")


def test_attributes() -> None:
    five = CronSchedule.parse("*/5 * * * *")
    assert (five.expression, five.timezone, five.has_seconds) == ("*/5 * * * *", "UTC", False)
    six = CronSchedule.parse("*/5 * * * * *", "Europe/Paris")
    assert (six.expression, six.timezone, six.has_seconds) == (
        "*/5 * * * * *", "Europe/Paris", True)
    macro = CronSchedule.parse("@daily", "America/New_York")
    assert (macro.expression, macro.has_seconds) == ("@daily", False)
    assert CronSchedule.parse("@daily", "UTC") == CronSchedule.parse("@daily")


def test_end_of_calendar_is_a_cron_error() -> None:
    schedule = CronSchedule.parse("0 0 1 1 *")
    with pytest.raises(CronError) as info:
        schedule.next_after(datetime(9999, 6, 1, tzinfo=timezone.utc))
    assert str(info.value) == (
        "expression: no fire time after 9999-06-01T00:00:00+00:00 within the years 1-9999 "
        "(the end of the calendar)")
    # The other end: the moment itself cannot be shown in a zone west of UTC.
    with pytest.raises(CronError, match="within the years 1-9999"):
        CronSchedule.parse("0 0 * * *", "America/New_York").next_after(datetime.min.replace(tzinfo=timezone.utc))


def test_naive_moment_is_rejected() -> None:
    with pytest.raises(ValueError, match="aware"):
        CronSchedule.parse("* * * * *").next_after(datetime(2024, 1, 1))


# -- brute-force cross-check ---------------------------------------------------------------

def _random_field(rng: random.Random, low: int, high: int) -> tuple[str, set[int]]:
    """A random field text and the set it must select (built independently of cron.py)."""
    kind = rng.choice(["star", "star", "step", "range", "list", "one"])
    if kind == "star":
        return "*", set(range(low, high + 1))
    if kind == "step":
        step = rng.randint(2, 7)
        return f"*/{step}", set(range(low, high + 1, step))
    if kind == "range":
        a = rng.randint(low, high)
        b = rng.randint(a, min(high, a + 6))
        return f"{a}-{b}", set(range(a, b + 1))
    values = rng.sample(range(low, high + 1), 1 if kind == "one" else rng.randint(2, 4))
    return ",".join(map(str, values)), set(values)


# Windows of a few days around DST changes (and a year end), walked minute by minute.
WINDOWS = [
    ("UTC", datetime(2024, 12, 30, tzinfo=timezone.utc)),
    ("Europe/Paris", datetime(2024, 3, 30, tzinfo=timezone.utc)),
    ("Europe/Paris", datetime(2024, 10, 26, tzinfo=timezone.utc)),
    ("America/New_York", datetime(2024, 11, 2, 12, tzinfo=timezone.utc)),
    ("America/New_York", datetime(2024, 3, 9, 12, tzinfo=timezone.utc)),
    ("Australia/Lord_Howe", datetime(2024, 4, 5, 12, tzinfo=timezone.utc)),  # 30-minute shift
]


@pytest.mark.parametrize("tz,begin", WINDOWS, ids=[f"{w[0]}@{w[1]:%Y-%m-%d}" for w in WINDOWS])
def test_next_after_agrees_with_minute_by_minute_walk(tz: str, begin: datetime) -> None:
    """Reference: walk UTC minutes and apply the documented DST rules instant by instant."""
    zone = ZoneInfo(tz)
    minutes = []  # (instant, wall time, fold, wall times skipped just before this instant)
    previous_wall = None
    for i in range(3 * 24 * 60):
        instant = begin + timedelta(minutes=i)
        local = instant.astimezone(zone)
        wall = local.replace(tzinfo=None)
        skipped = []
        if previous_wall is not None and wall - previous_wall > timedelta(minutes=1):
            skipped = [previous_wall + timedelta(minutes=k)
                       for k in range(1, (wall - previous_wall) // timedelta(minutes=1))]
        minutes.append((instant, wall, local.fold, skipped))
        previous_wall = wall
    end = minutes[-1][0]

    rng = random.Random(f"{tz}{begin}")
    for _ in range(40):
        texts, sets = zip(*[_random_field(rng, 0, 59),
                            (rng.choice(["*", "0-3", "1,2", "2", "*/2"]), None),
                            _random_field(rng, 1, 31), ("*", None), _random_field(rng, 0, 6)])
        minute_set, _, dom_set, _, dow_set = sets
        hour_set = {"*": set(range(24)), "0-3": {0, 1, 2, 3}, "1,2": {1, 2}, "2": {2},
                    "*/2": set(range(0, 24, 2))}[texts[1]]
        expression = " ".join(texts)
        follows_clock = texts[0].startswith("*") or texts[1].startswith("*")
        either = not texts[2].startswith("*") and not texts[4].startswith("*")

        def matches(wall: datetime) -> bool:
            dom_ok = wall.day in dom_set
            dow_ok = (wall.weekday() + 1) % 7 in dow_set
            day_ok = (dom_ok or dow_ok) if either else (dom_ok and dow_ok)
            return wall.minute in minute_set and wall.hour in hour_set and day_ok

        expected = []
        for instant, wall, fold, skipped in minutes:
            if matches(wall) and (fold == 0 or follows_clock):
                expected.append(instant)
            elif not follows_clock and any(matches(w) for w in skipped):
                expected.append(instant)

        schedule = CronSchedule.parse(expression, tz)
        got = []
        moment = begin - timedelta(seconds=1)
        while True:
            moment = schedule.next_after(moment)
            if moment > end:
                break
            got.append(moment)
        assert got == expected, expression


def test_every_date_falls_on_every_weekday_within_400_years() -> None:
    # The premise of the parse-time check (only the month/day pair can make AND-combined day
    # fields impossible) and of the 400-year search bound, Feb 29 included.
    import calendar

    for month, day in ((2, 29), (1, 31), (12, 31), (2, 28)):
        years = [y for y in range(2000, 2400) if day <= calendar.monthrange(y, month)[1]]
        assert {calendar.weekday(y, month, day) for y in years} == set(range(7))


@pytest.mark.parametrize("expression,changed", [
    ("0 0 * * SUN-SUN", True),
    ("0 0 * * sun-Sun/2", True),
    ("0 0 * * 1,0-SUN", True),
    ("0 0 * * 00-SUN", True),
    ("0 0 * * 0000000000001-SUN", False),
    ("0 0 * * 7-SUN", False),  # 7-7 before and after
    ("0 0 * * FRI-SUN", False),
    ("0 0 * * SUN-SAT", False),
    ("0 0 * * 0-7", False),
    ("0 0 * * 0", False),
    ("@weekly", False),
    ("not cron", False),
])
def test_changed_meaning_names_sun_led_ranges(expression: str, changed: bool) -> None:
    from flowengine.lib.cron import changed_meaning

    note = changed_meaning(expression)
    assert (note is not None) == changed
    if changed:
        assert note.startswith("day-of-week: ") and "Sunday only" in note
