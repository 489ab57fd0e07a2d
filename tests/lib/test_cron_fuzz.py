"""Generated cron expressions: parse and next_after raise nothing but CronError, and every time
they return is a real fire time.

The generator mixes valid pieces (values, names, ranges, steps, lists, macros, six fields) with
broken ones (empty items, huge numbers, stray characters, 7/n, backwards ranges), in zones with
odd daylight-saving rules, from moments across the whole datetime range. Seeds are fixed, so a
failure names an expression that can be replayed.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from flowengine.lib.cron import CronError, CronSchedule

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",  # 30-minute change
    "Pacific/Chatham",  # +12:45 / +13:45
    "America/St_Johns",  # -03:30
    "Europe/Dublin",  # negative DST in tzdata's model
    "Africa/Casablanca",  # DST suspended each Ramadan: several changes a year
    "Antarctica/Troll",  # a two-hour change
    "America/Santiago",  # southern hemisphere, midnight changes
    "Asia/Kathmandu",  # +05:45, no DST
    "Pacific/Kiritimati",  # +14:00
    "Pacific/Pago_Pago",  # -11:00
]

FIELDS = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
MONTHS = ["JAN", "feb", "Mar", "APR", "may", "JUN", "jul", "AUG", "sep", "OCT", "nov", "DEC"]
DAYS = ["SUN", "mon", "Tue", "WED", "thu", "FRI", "sat"]


def _value(rng: random.Random, index: int) -> str:
    low, high = FIELDS[index]
    roll = rng.random()
    if roll < 0.03:
        return rng.choice(["", "-1", "99", "1" * 30, "x", "L", "?", "#", "٣", "1.5", "0x1"])
    if index == 4 and roll < 0.3:
        return rng.choice(MONTHS)
    if index == 5 and roll < 0.3:
        return rng.choice(DAYS)
    return str(rng.randint(low, high))


def _item(rng: random.Random, index: int) -> str:
    kind = rng.random()
    if kind < 0.25:
        base = "*"
    elif kind < 0.55:
        base = _value(rng, index)
    else:
        a, b = _value(rng, index), _value(rng, index)
        if a.isdigit() and b.isdigit() and int(a) > int(b) and rng.random() < 0.85:
            a, b = b, a  # mostly forwards: backwards ranges are only one kind of mistake
        base = f"{a}-{b}"
    if rng.random() < 0.35:
        step = rng.choice(["1", "2", "3", "5", "7", "15", "30", "0", "", "x", "9" * 20, "100"])
        return f"{base}/{step}"
    return base


def _field(rng: random.Random, index: int) -> str:
    if rng.random() < 0.45:
        return "*"
    items = [_item(rng, index) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
    if rng.random() < 0.02:
        items.append("")
    return ",".join(items)


def generate(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.03:
        return rng.choice(["@yearly", "@monthly", "@weekly", "@daily", "@hourly", "@reboot", "@", ""])
    if roll < 0.05:
        return " ".join(_field(rng, rng.randrange(6)) for _ in range(rng.choice([4, 7])))
    six = rng.random() < 0.3
    fields = [_field(rng, i) for i in range(0 if six else 1, 6)]
    return " ".join(fields)


def _moments(rng: random.Random) -> list[datetime]:
    extremes = [
        datetime.min.replace(tzinfo=timezone.utc),
        datetime.max.replace(tzinfo=timezone.utc),
        datetime(9999, 12, 31, 12, tzinfo=timezone.utc),
        datetime(1, 1, 1, 12, tzinfo=timezone(timedelta(hours=-12))),
    ]
    ordinary = [
        datetime(rng.randint(1970, 2100), rng.randint(1, 12), rng.randint(1, 28), rng.randrange(24),
                 rng.randrange(60), rng.randrange(60), rng.randrange(1_000_000), tzinfo=timezone.utc)
        for _ in range(3)
    ]
    return [rng.choice(extremes), *ordinary]


def _matches(schedule_fields: list[set[int]], wall: datetime, either: bool) -> bool:
    seconds, minutes, hours, doms, months, dows = schedule_fields
    dom_ok, dow_ok = wall.day in doms, (wall.weekday() + 1) % 7 in dows
    day_ok = (dom_ok or dow_ok) if either else (dom_ok and dow_ok)
    return (wall.second in seconds and wall.minute in minutes and wall.hour in hours
            and wall.month in months and day_ok)


@pytest.mark.parametrize("seed", range(8))
def test_generated_expressions_raise_only_cron_errors(seed: int) -> None:
    rng = random.Random(seed)
    accepted = refused = 0
    for _ in range(250):
        expression = generate(rng)
        zone_name = rng.choice(ZONES)
        try:
            schedule = CronSchedule.parse(expression, zone_name)
        except CronError as exc:
            assert str(exc).split(":")[0] in (
                "expression", "second", "minute", "hour", "day-of-month", "month", "day-of-week"), expression
            refused += 1
            continue
        accepted += 1
        for moment in _moments(rng):
            try:
                fire = schedule.next_after(moment)
            except CronError:
                # Only where datetime's calendar ends (or the moment cannot be shown in the zone).
                assert moment.year in (1, 9999), (expression, zone_name, moment)
                continue
            assert fire.tzinfo is timezone.utc and fire.microsecond == 0
            assert fire > moment, (expression, zone_name, moment)
            # Chained calls move strictly forward (or reach the end of the calendar).
            try:
                assert schedule.next_after(fire) > fire
            except CronError:
                assert fire.year == 9999, (expression, zone_name, fire)
    # The generator is useful only if it produces both kinds in quantity.
    assert accepted > 60 and refused > 40, (accepted, refused)


@pytest.mark.parametrize("seed", range(4))
def test_fire_times_of_valid_generated_expressions_match_their_fields(seed: int) -> None:
    """Valid-only generation with the selected sets computed here, independently of cron.py."""
    rng = random.Random(1000 + seed)
    checked = 0
    while checked < 150:
        sets: list[set[int]] = []
        texts: list[str] = []
        for index, (low, high) in enumerate(FIELDS):
            top = 6 if index == 5 else high
            kind = rng.choice(["star", "value", "range", "step", "list"])
            if kind == "star":
                texts.append("*")
                sets.append(set(range(low, top + 1)))
            elif kind == "value":
                v = rng.randint(low, high)
                texts.append(str(v))
                sets.append({v})
            elif kind == "range":
                a = rng.randint(low, high)
                b = rng.randint(a, high)
                texts.append(f"{a}-{b}")
                sets.append(set(range(a, b + 1)))
            elif kind == "step":
                step = rng.randint(1, 20)
                texts.append(f"*/{step}")
                sets.append(set(range(low, top + 1, step)))
            else:
                values = rng.sample(range(low, high + 1), rng.randint(2, 4))
                texts.append(",".join(map(str, values)))
                sets.append(set(values))
        if 7 in sets[5]:
            sets[5] = (sets[5] - {7}) | {0}
        expression = " ".join(texts)
        try:
            schedule = CronSchedule.parse(expression, "UTC")
        except CronError as exc:
            # Only a day that no selected month has is a reason to refuse these.
            assert "never occurs" in str(exc), expression
            continue
        either = not texts[3].startswith("*") and not texts[5].startswith("*")
        moment = datetime(rng.randint(1971, 2200), rng.randint(1, 12), rng.randint(1, 28),
                          rng.randrange(24), rng.randrange(60), rng.randrange(60), tzinfo=timezone.utc)
        fire = schedule.next_after(moment)
        assert _matches(sets, fire.replace(tzinfo=None), either), (expression, moment, fire)
        # Nothing matches between moment and fire: probe a few earlier whole seconds.
        span = int((fire - moment).total_seconds())
        for probe in {1, span // 3, span // 2, span - 1} - {0}:
            candidate = (moment.replace(microsecond=0) + timedelta(seconds=probe)).replace(tzinfo=None)
            if candidate > moment.replace(tzinfo=None) and candidate < fire.replace(tzinfo=None):
                assert not _matches(sets, candidate, either), (expression, moment, fire, candidate)
        checked += 1


@pytest.mark.parametrize("zone_name", ZONES)
def test_chains_through_dst_years_in_every_zone(zone_name: str) -> None:
    """A year of clock-following and fixed-time schedules in each zone: strictly increasing,
    no error, and a fixed-time daily job fires once per local day."""
    zone = ZoneInfo(zone_name)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    daily = CronSchedule.parse("30 2 * * *", zone_name)
    moment, days = start, set()
    while moment < start + timedelta(days=365):
        moment = daily.next_after(moment)
        local_day = moment.astimezone(zone).date()
        assert local_day not in days, (zone_name, moment)
        days.add(local_day)
    assert len(days) in (365, 366)
    for expression in ("*/20 * * * *", "0 */3 * * *", "15,45 0-3 * * *", "*/30 * * * * *"):
        schedule = CronSchedule.parse(expression, zone_name)
        moment, count = start, 0
        while moment < start + timedelta(days=40) and count < 1500:
            nxt = schedule.next_after(moment)
            assert nxt > moment
            moment, count = nxt, count + 1
