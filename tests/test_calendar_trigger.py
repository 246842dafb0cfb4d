"""CalendarIntervalTrigger: every N days/weeks/months/years at a wall time, across DST."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quiv import ConfigurationError, InvalidTimezoneError
from quiv._triggers.wall import resolve_wall_time
from quiv.triggers import CalendarIntervalTrigger

UTC = timezone.utc
BERLIN = "Europe/Berlin"


def fires(trigger: CalendarIntervalTrigger, after: datetime, n: int) -> list[str]:
    tz = trigger.timezone or UTC
    if after.tzinfo is None:
        after = after.replace(tzinfo=tz)
    out = []
    for _ in range(n):
        fire = trigger.next_fire(after)
        assert fire is not None
        assert fire.tzinfo is UTC
        assert fire > after
        out.append(fire.astimezone(tz).isoformat(timespec="minutes"))
        after = fire
    return out


def test_month_end_is_clamped_per_occurrence() -> None:
    trigger = CalendarIntervalTrigger(months=1, at=time(2, 30), start=date(2025, 1, 31))
    assert fires(trigger, datetime(2025, 1, 1), 6) == [
        "2025-01-31T02:30+00:00",
        "2025-02-28T02:30+00:00",
        "2025-03-31T02:30+00:00",  # back to the 31st: not cumulative
        "2025-04-30T02:30+00:00",
        "2025-05-31T02:30+00:00",
        "2025-06-30T02:30+00:00",
    ]
    leap = CalendarIntervalTrigger(months=1, start=date(2024, 1, 31))
    assert fires(leap, datetime(2024, 2, 1), 2) == [
        "2024-02-29T00:00+00:00",
        "2024-03-31T00:00+00:00",
    ]


def test_feb_29_yearly() -> None:
    trigger = CalendarIntervalTrigger(years=1, at=time(12), start=date(2024, 2, 29))
    assert fires(trigger, datetime(2024, 1, 1), 5) == [
        "2024-02-29T12:00+00:00",
        "2025-02-28T12:00+00:00",
        "2026-02-28T12:00+00:00",
        "2027-02-28T12:00+00:00",
        "2028-02-29T12:00+00:00",
    ]


def test_months_then_days() -> None:
    trigger = CalendarIntervalTrigger(months=1, days=1, start=date(2025, 1, 31))
    # occurrence k: (Jan 31 + k months, clamped) + k days
    assert fires(trigger, datetime(2025, 1, 1), 3) == [
        "2025-01-31T00:00+00:00",
        "2025-03-01T00:00+00:00",  # Feb 28 + 1 day
        "2025-04-02T00:00+00:00",  # Mar 31 + 2 days
    ]


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        pytest.param(
            datetime(2025, 3, 29),
            ["2025-03-29T02:30+01:00", "2025-03-30T03:00+02:00", "2025-03-31T02:30+02:00"],
            id="spring-gap",
        ),
        pytest.param(
            datetime(2025, 10, 25),
            ["2025-10-25T02:30+02:00", "2025-10-26T02:30+02:00", "2025-10-27T02:30+01:00"],
            id="autumn-overlap",
        ),
    ],
)
def test_daily_across_dst_in_berlin(after: datetime, expected: list[str]) -> None:
    trigger = CalendarIntervalTrigger(days=1, at=time(2, 30), timezone=BERLIN)
    assert fires(trigger, after, 3) == expected


def test_monthly_and_weekly_land_on_the_dst_days() -> None:
    monthly = CalendarIntervalTrigger(
        months=1, at=time(2, 30), start=date(2025, 1, 30), timezone=BERLIN
    )
    assert fires(monthly, datetime(2025, 2, 1), 2) == [
        "2025-02-28T02:30+01:00",
        "2025-03-30T03:00+02:00",  # the gap day: the first valid instant after the gap
    ]
    weekly = CalendarIntervalTrigger(
        weeks=1, at=time(2, 30), start=date(2025, 10, 5), timezone=BERLIN
    )
    after_overlap_start = datetime(2025, 10, 26, 2, 10, tzinfo=ZoneInfo(BERLIN), fold=1)
    # 02:30 CEST already happened before the second 02:10: no second run that day
    assert weekly.next_fire(after_overlap_start) == datetime(2025, 11, 2, 1, 30, tzinfo=UTC)
    assert fires(weekly, datetime(2025, 10, 20), 2) == [
        "2025-10-26T02:30+02:00",
        "2025-11-02T02:30+01:00",
    ]


def test_half_hour_shift_and_new_york() -> None:
    lord_howe = CalendarIntervalTrigger(days=1, at=time(2, 15), timezone="Australia/Lord_Howe")
    assert fires(lord_howe, datetime(2025, 10, 4), 3) == [
        "2025-10-04T02:15+10:30",
        "2025-10-05T02:30+11:00",
        "2025-10-06T02:15+11:00",
    ]
    new_york = CalendarIntervalTrigger(days=1, at=time(1, 30), timezone="America/New_York")
    assert fires(new_york, datetime(2025, 11, 1), 3) == [
        "2025-11-01T01:30-04:00",
        "2025-11-02T01:30-04:00",
        "2025-11-03T01:30-05:00",
    ]


def test_weeks() -> None:
    trigger = CalendarIntervalTrigger(weeks=2, at=time(9), start=date(2025, 1, 6), timezone=BERLIN)
    assert fires(trigger, datetime(2025, 6, 1), 3) == [
        "2025-06-09T09:00+02:00",
        "2025-06-23T09:00+02:00",
        "2025-07-07T09:00+02:00",
    ]


def test_start_in_the_past_keeps_the_grid() -> None:
    trigger = CalendarIntervalTrigger(days=3, at=time(6), start=date(2000, 1, 1))
    after = datetime(2025, 6, 1, 12, tzinfo=UTC)
    fire = trigger.next_fire(after)
    assert fire is not None
    assert (fire.date() - date(2000, 1, 1)).days % 3 == 0
    assert timedelta(0) < fire - after <= timedelta(days=3)
    assert fire.time() == time(6)
    monthly = CalendarIntervalTrigger(months=6, start=date(1990, 8, 31))
    assert fires(monthly, datetime(2025, 6, 1), 2) == [
        "2025-08-31T00:00+00:00",  # 1990-08 + 70 * 6 months
        "2026-02-28T00:00+00:00",
    ]


def test_start_in_the_future() -> None:
    trigger = CalendarIntervalTrigger(days=1, at=time(9), start=date(2030, 1, 1), timezone=BERLIN)
    assert fires(trigger, datetime(2025, 1, 1), 2) == [
        "2030-01-01T09:00+01:00",
        "2030-01-02T09:00+01:00",
    ]


def test_start_datetime_is_a_floor() -> None:
    naive = CalendarIntervalTrigger(
        days=1, at=time(9), start=datetime(2025, 1, 6, 10), timezone=BERLIN
    )
    assert fires(naive, datetime(2024, 1, 1), 2) == [
        "2025-01-07T09:00+01:00",
        "2025-01-08T09:00+01:00",
    ]
    aware = CalendarIntervalTrigger(
        days=2, at=time(9), start=datetime(2025, 1, 6, 7, 59, tzinfo=UTC), timezone=BERLIN
    )  # 08:59 Berlin: the first run is that day at 09:00
    assert fires(aware, datetime(2024, 1, 1), 2) == [
        "2025-01-06T09:00+01:00",
        "2025-01-08T09:00+01:00",
    ]


def test_no_start_anchors_at_the_time_asked_and_with_start() -> None:
    trigger = CalendarIntervalTrigger(days=3, at=time(2, 30))
    added = datetime(2025, 1, 1, 10, tzinfo=UTC)
    assert trigger.next_fire(added) == datetime(2025, 1, 4, 2, 30, tzinfo=UTC)
    early = datetime(2025, 1, 1, 1, tzinfo=UTC)
    assert trigger.next_fire(early) == datetime(2025, 1, 1, 2, 30, tzinfo=UTC)
    anchored = trigger.with_start(added)
    assert anchored.start == added
    assert anchored.with_start(early) is anchored
    # the grid stays put whenever it is asked
    assert anchored.next_fire(datetime(2025, 1, 5, tzinfo=UTC)) == datetime(
        2025, 1, 7, 2, 30, tzinfo=UTC
    )
    assert anchored.next_fire(datetime(2025, 1, 8, tzinfo=UTC)) == datetime(
        2025, 1, 10, 2, 30, tzinfo=UTC
    )


def test_naive_after_is_utc() -> None:
    trigger = CalendarIntervalTrigger(days=1, at=time(9), start=date(2025, 1, 1))
    assert trigger.next_fire(datetime(2025, 1, 1, 8)) == datetime(2025, 1, 1, 9, tzinfo=UTC)


def test_past_the_end_of_the_calendar() -> None:
    trigger = CalendarIntervalTrigger(years=8000, start=date(2025, 1, 1), timezone=BERLIN)
    assert trigger.next_fire(datetime(2025, 6, 1, tzinfo=UTC)) is None
    daily = CalendarIntervalTrigger(days=1, start=date(2025, 1, 1))
    assert daily.next_fire(datetime(9999, 12, 31, 12, tzinfo=UTC)) is None


def test_with_timezone_value_semantics_and_repr() -> None:
    bare = CalendarIntervalTrigger(months=1, at=time(2, 30), start=date(2025, 1, 31))
    berlin = bare.with_timezone(BERLIN)
    assert berlin.timezone == ZoneInfo(BERLIN)
    assert berlin.with_timezone(UTC) is berlin
    assert berlin == CalendarIntervalTrigger(
        months=1, at=time(2, 30), start=date(2025, 1, 31), timezone=ZoneInfo(BERLIN)
    )
    assert hash(berlin) == hash(bare.with_timezone(ZoneInfo(BERLIN)))
    assert bare != berlin
    with pytest.raises(dataclasses.FrozenInstanceError):
        bare.months = 2  # type: ignore[misc]
    assert repr(berlin) == (
        "CalendarIntervalTrigger(months=1, at=datetime.time(2, 30), "
        "start=datetime.date(2025, 1, 31), timezone='Europe/Berlin')"
    )


def test_describe() -> None:
    assert CalendarIntervalTrigger(weeks=2, at=time(2, 30), timezone=BERLIN).describe() == (
        "Every 2 weeks at 02:30 (Europe/Berlin)"
    )
    assert CalendarIntervalTrigger(days=1).describe() == (
        "Every day at 00:00 (the scheduler's time zone)"
    )
    monthly = CalendarIntervalTrigger(months=1, start=date(2025, 1, 31), timezone="UTC")
    assert monthly.describe() == (
        "Every month at 00:00, from 2025-01-31 (or the last day of a shorter month) (UTC)"
    )
    mixed = CalendarIntervalTrigger(years=1, months=6, days=1, at=time(8, 15, 30))
    assert mixed.describe().startswith("Every 1 year, 6 months and 1 day at 08:15:30")


@pytest.mark.parametrize("name", ["days", "weeks", "months", "years"])
@pytest.mark.parametrize("value", [-1, 1.5, True, "2", None])
def test_bad_counts(name: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=rf"^{name} must be an int >= 0, got {value!r}"):
        CalendarIntervalTrigger(**{name: value})  # type: ignore[arg-type]


def test_all_counts_zero() -> None:
    with pytest.raises(ConfigurationError, match="at least one of days, weeks, months and years"):
        CalendarIntervalTrigger()
    with pytest.raises(ConfigurationError, match="days=0"):
        CalendarIntervalTrigger(days=0, at=time(1))


@pytest.mark.parametrize(
    "at", ["02:30", 2.5, datetime(2025, 1, 1, 2, 30), time(2, 30, tzinfo=UTC), None]
)
def test_bad_at(at: object) -> None:
    with pytest.raises(
        ConfigurationError, match=r"^at must be a datetime.time without tzinfo"
    ) as info:
        CalendarIntervalTrigger(days=1, at=at)  # type: ignore[arg-type]
    assert repr(at) in str(info.value)


@pytest.mark.parametrize("start", ["2025-01-01", 1735689600, time(1)])
def test_bad_start(start: object) -> None:
    with pytest.raises(ConfigurationError, match=r"^start must be a date, a datetime or None"):
        CalendarIntervalTrigger(days=1, start=start)  # type: ignore[arg-type]


def test_bad_timezone() -> None:
    with pytest.raises(InvalidTimezoneError, match="'Atlantis/Capital'"):
        CalendarIntervalTrigger(days=1, timezone="Atlantis/Capital")


ZONES = [
    BERLIN,
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Havana",
    "America/Santiago",
    "Pacific/Chatham",
    "UTC",
]


@settings(max_examples=150, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    counts=st.tuples(
        st.integers(0, 2), st.integers(0, 13), st.integers(0, 3), st.integers(0, 40)
    ).filter(any),
    at=st.times(),
    start=st.dates(min_value=date(2000, 1, 1), max_value=date(2030, 12, 31)),
    after=st.datetimes(min_value=datetime(1999, 1, 1), max_value=datetime(2035, 1, 1)),
)
def test_properties(
    zone: str,
    counts: tuple[int, int, int, int],
    at: time,
    start: date,
    after: datetime,
) -> None:
    tz = ZoneInfo(zone)
    years, months, weeks, days = counts
    trigger = CalendarIntervalTrigger(
        years=years, months=months, weeks=weeks, days=days, at=at, start=start, timezone=zone
    )
    previous = after.replace(tzinfo=UTC)
    local_dates = []
    for _ in range(8):
        fire = trigger.next_fire(previous)
        assert fire is not None
        assert fire.tzinfo is UTC
        assert fire > previous
        local = fire.astimezone(tz)
        wall = local.replace(tzinfo=None)
        # a real local time, and the first occurrence of an ambiguous one
        assert wall.replace(tzinfo=tz).astimezone(UTC) == fire
        # at the wall time asked for, or at the end of the gap that swallowed it
        if local.time() != at.replace(fold=0):
            before = (fire - timedelta(seconds=1)).astimezone(tz)
            assert before.utcoffset() != local.utcoffset()
        local_dates.append(local.date())
        previous = fire
    # one run per occurrence date, and each a date of the grid
    assert len(set(local_dates)) == len(local_dates)
    step_months = 12 * years + months
    for d in local_dates:
        if not step_months:
            assert (d - start).days % (7 * weeks + days) == 0


def _reference_date(start: date, years: int, months: int, weeks: int, days: int, k: int) -> date:
    """Occurrence k, computed the slow obvious way."""
    year, month = start.year, start.month
    for _ in range(k * (12 * years + months)):
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    day = start.day
    while True:
        try:
            shifted = date(year, month, day)
            break
        except ValueError:
            day -= 1
    return shifted + timedelta(days=k * (7 * weeks + days))


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    counts=st.tuples(
        st.integers(0, 1), st.integers(0, 5), st.integers(0, 2), st.integers(0, 10)
    ).filter(any),
    at=st.times(),
    start=st.dates(min_value=date(2020, 1, 1), max_value=date(2026, 12, 31)),
    offset=st.integers(-400 * 86400, 3 * 365 * 86400),
)
def test_next_fire_is_the_first_occurrence_after(
    zone: str, counts: tuple[int, int, int, int], at: time, start: date, offset: int
) -> None:
    tz = ZoneInfo(zone)
    trigger = CalendarIntervalTrigger(
        years=counts[0],
        months=counts[1],
        weeks=counts[2],
        days=counts[3],
        at=at,
        start=start,
        timezone=zone,
    )
    after = datetime.combine(start, time(12), tzinfo=UTC) + timedelta(seconds=offset)
    k = 0
    while True:  # the first occurrence after *after*, by counting
        wall = datetime.combine(_reference_date(start, *counts, k), at)
        expected = resolve_wall_time(wall, tz)  # (unit-tested in test_cron)
        if expected > after:
            break
        k += 1
    fire = trigger.next_fire(after)
    assert fire is not None
    assert fire == expected


def test_copy_and_pickle() -> None:
    import copy
    import pickle

    trigger = CalendarIntervalTrigger(
        months=1, at=time(2, 30), start=date(2025, 1, 31), timezone=BERLIN
    )
    for clone in (copy.copy(trigger), copy.deepcopy(trigger), pickle.loads(pickle.dumps(trigger))):
        assert clone == trigger
