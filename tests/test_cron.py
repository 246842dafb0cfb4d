"""CronTrigger: cronsim underneath, quiv's aliases, seconds field and DST policy on top."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from quiv import ConfigurationError, InvalidTimezoneError
from quiv._triggers.cron import ALIASES, CronTrigger, cron_trigger
from quiv._triggers.wall import check_fire, resolve_wall_time

UTC = timezone.utc
BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
LORD_HOWE = "Australia/Lord_Howe"  # DST shifts by half an hour


def fires(trigger: CronTrigger, start: datetime, n: int, spec: str = "minutes") -> list[str]:
    """The next *n* fires after *start* (a naive wall time in the trigger's zone), as local ISO."""
    tz = trigger.timezone or UTC
    after = start.replace(tzinfo=tz)
    out = []
    for _ in range(n):
        fire = trigger.next_fire(after)
        assert fire is not None
        assert fire.tzinfo is UTC
        out.append(fire.astimezone(tz).isoformat(timespec=spec))  # type: ignore[arg-type]
        after = fire
    return out


# (zone, expression, start (local wall time), expected fires (local ISO))
DST_CASES = [
    # Berlin: 2025-03-30 02:00 -> 03:00, 2025-10-26 03:00 -> 02:00
    pytest.param(
        BERLIN,
        "30 2 * * *",
        datetime(2025, 3, 29),
        ["2025-03-29T02:30+01:00", "2025-03-30T03:00+02:00", "2025-03-31T02:30+02:00"],
        id="berlin-daily-spring",
    ),
    pytest.param(
        BERLIN,
        "30 2 * * *",
        datetime(2025, 10, 25),
        ["2025-10-25T02:30+02:00", "2025-10-26T02:30+02:00", "2025-10-27T02:30+01:00"],
        id="berlin-daily-autumn",
    ),
    pytest.param(
        BERLIN,
        "30 2 * * 0",
        datetime(2025, 3, 20),
        ["2025-03-23T02:30+01:00", "2025-03-30T03:00+02:00", "2025-04-06T02:30+02:00"],
        id="berlin-weekly-spring",
    ),
    pytest.param(
        BERLIN,
        "30 2 * * 0",
        datetime(2025, 10, 20),
        ["2025-10-26T02:30+02:00", "2025-11-02T02:30+01:00"],
        id="berlin-weekly-autumn",
    ),
    pytest.param(
        BERLIN,
        "*/30 * * * *",
        datetime(2025, 3, 30, 1, 0),
        ["2025-03-30T01:30+01:00", "2025-03-30T03:00+02:00", "2025-03-30T03:30+02:00"],
        id="berlin-30min-spring",
    ),
    pytest.param(
        BERLIN,
        "*/30 * * * *",
        datetime(2025, 10, 26, 1, 45),
        [
            "2025-10-26T02:00+02:00",
            "2025-10-26T02:30+02:00",
            "2025-10-26T02:00+01:00",
            "2025-10-26T02:30+01:00",
            "2025-10-26T03:00+01:00",
        ],
        id="berlin-30min-autumn",
    ),
    # New York: 2025-03-09 02:00 -> 03:00, 2025-11-02 02:00 -> 01:00
    pytest.param(
        NEW_YORK,
        "30 2 * * *",
        datetime(2025, 3, 8),
        ["2025-03-08T02:30-05:00", "2025-03-09T03:00-04:00", "2025-03-10T02:30-04:00"],
        id="new-york-daily-spring",
    ),
    pytest.param(
        NEW_YORK,
        "30 1 * * *",
        datetime(2025, 11, 1),
        ["2025-11-01T01:30-04:00", "2025-11-02T01:30-04:00", "2025-11-03T01:30-05:00"],
        id="new-york-daily-autumn",
    ),
    pytest.param(
        NEW_YORK,
        "15 2 * * 0",
        datetime(2025, 3, 1),
        ["2025-03-02T02:15-05:00", "2025-03-09T03:00-04:00", "2025-03-16T02:15-04:00"],
        id="new-york-weekly-spring",
    ),
    pytest.param(
        NEW_YORK,
        "30 1 * * 0",
        datetime(2025, 10, 27),
        ["2025-11-02T01:30-04:00", "2025-11-09T01:30-05:00"],
        id="new-york-weekly-autumn",
    ),
    pytest.param(
        NEW_YORK,
        "*/30 * * * *",
        datetime(2025, 3, 9, 1, 0),
        ["2025-03-09T01:30-05:00", "2025-03-09T03:00-04:00", "2025-03-09T03:30-04:00"],
        id="new-york-30min-spring",
    ),
    pytest.param(
        NEW_YORK,
        "*/30 * * * *",
        datetime(2025, 11, 2, 0, 45),
        [
            "2025-11-02T01:00-04:00",
            "2025-11-02T01:30-04:00",
            "2025-11-02T01:00-05:00",
            "2025-11-02T01:30-05:00",
            "2025-11-02T02:00-05:00",
        ],
        id="new-york-30min-autumn",
    ),
    # Lord Howe: 2025-04-06 02:00 -> 01:30 (+11 -> +10:30), 2025-10-05 02:00 -> 02:30
    pytest.param(
        LORD_HOWE,
        "30 2 * * *",
        datetime(2025, 10, 4),
        ["2025-10-04T02:30+10:30", "2025-10-05T02:30+11:00", "2025-10-06T02:30+11:00"],
        id="lord-howe-daily-0230-spring-unaffected",
    ),
    pytest.param(
        LORD_HOWE,
        "15 2 * * *",
        datetime(2025, 10, 4),
        ["2025-10-04T02:15+10:30", "2025-10-05T02:30+11:00", "2025-10-06T02:15+11:00"],
        id="lord-howe-daily-spring",
    ),
    pytest.param(
        LORD_HOWE,
        "45 1 * * *",
        datetime(2025, 4, 5),
        ["2025-04-05T01:45+11:00", "2025-04-06T01:45+11:00", "2025-04-07T01:45+10:30"],
        id="lord-howe-daily-autumn",
    ),
    pytest.param(
        LORD_HOWE,
        "15 2 * * 0",
        datetime(2025, 9, 29),
        ["2025-10-05T02:30+11:00", "2025-10-12T02:15+11:00"],
        id="lord-howe-weekly-spring",
    ),
    pytest.param(
        LORD_HOWE,
        "45 1 * * 0",
        datetime(2025, 3, 31),
        ["2025-04-06T01:45+11:00", "2025-04-13T01:45+10:30"],
        id="lord-howe-weekly-autumn",
    ),
    pytest.param(
        LORD_HOWE,
        "*/30 * * * *",
        datetime(2025, 10, 5, 1, 0),
        ["2025-10-05T01:30+10:30", "2025-10-05T02:30+11:00", "2025-10-05T03:00+11:00"],
        id="lord-howe-30min-spring",
    ),
    pytest.param(
        LORD_HOWE,
        "*/30 * * * *",
        datetime(2025, 4, 6, 1, 0),
        ["2025-04-06T01:30+11:00", "2025-04-06T01:30+10:30", "2025-04-06T02:00+10:30"],
        id="lord-howe-30min-autumn",
    ),
    # Chatham: 2024-04-07 03:45 -> 02:45, an overlap off the hour. Hour 3
    # comes twice and runs in both passes; cronsim's own iteration of aware
    # times loops forever here (it steps back to 03:00 of the first pass).
    pytest.param(
        "Pacific/Chatham",
        "*/15 3 * * *",
        datetime(2024, 4, 7, 2, 50),
        [
            "2024-04-07T03:00+13:45",
            "2024-04-07T03:15+13:45",
            "2024-04-07T03:30+13:45",
            "2024-04-07T03:00+12:45",
            "2024-04-07T03:15+12:45",
            "2024-04-07T03:30+12:45",
            "2024-04-07T03:45+12:45",
            "2024-04-08T03:00+12:45",
        ],
        id="chatham-15min-hour-3-autumn",
    ),
]


@pytest.mark.parametrize(("zone", "expression", "start", "expected"), DST_CASES)
def test_dst_fires_five_fields(
    zone: str, expression: str, start: datetime, expected: list[str]
) -> None:
    assert fires(CronTrigger(expression, zone), start, len(expected)) == expected


@pytest.mark.parametrize(("zone", "expression", "start", "expected"), DST_CASES)
def test_dst_fires_six_fields(
    zone: str, expression: str, start: datetime, expected: list[str]
) -> None:
    """With a seconds field of 0 the policy is the same (cronsim leaves 6 fields alone)."""
    assert fires(CronTrigger("0 " + expression, zone), start, len(expected)) == expected


def test_seconds_field_in_the_gap_runs_at_the_end_of_the_gap() -> None:
    trigger = CronTrigger("15 30 2 * * *", BERLIN)
    assert fires(trigger, datetime(2025, 3, 29), 3, "seconds") == [
        "2025-03-29T02:30:15+01:00",
        "2025-03-30T03:00:00+02:00",  # the first valid instant after the gap
        "2025-03-31T02:30:15+02:00",
    ]
    assert fires(trigger, datetime(2025, 10, 26, 2, 0), 2, "seconds") == [
        "2025-10-26T02:30:15+02:00",  # once, at the first occurrence
        "2025-10-27T02:30:15+01:00",
    ]


def test_several_wall_times_in_one_gap_run_once() -> None:
    trigger = CronTrigger("0,20,40 2 * * *", BERLIN)
    assert fires(trigger, datetime(2025, 3, 30), 2) == [
        "2025-03-30T03:00+02:00",
        "2025-03-31T02:00+02:00",
    ]


def test_after_in_the_repeated_hour_skips_the_first_occurrence() -> None:
    # 02:10 CET is the second pass through 02:10; 02:30 CEST is already past
    after = datetime(2025, 10, 26, 2, 10, tzinfo=ZoneInfo(BERLIN), fold=1)
    fire = CronTrigger("30 2 * * *", BERLIN).next_fire(after)
    assert fire == datetime(2025, 10, 27, 1, 30, tzinfo=UTC)  # 02:30 CET the next day
    assert CronTrigger("0 3 * * *", BERLIN).next_fire(after) == datetime(
        2025, 10, 26, 2, 0, tzinfo=UTC
    )


def test_midnight_gap_sub_hourly_never_emits_a_missing_time() -> None:
    # Havana skips 00:00-01:00 on 2025-03-09
    trigger = CronTrigger("*/30 * * * *", "America/Havana")
    assert fires(trigger, datetime(2025, 3, 8, 23, 0), 3) == [
        "2025-03-08T23:30-05:00",
        "2025-03-09T01:00-04:00",
        "2025-03-09T01:30-04:00",
    ]
    daily = CronTrigger("0 0 * * *", "America/Havana")
    assert fires(daily, datetime(2025, 3, 8, 12, 0), 2) == [
        "2025-03-09T01:00-04:00",
        "2025-03-10T00:00-04:00",
    ]


@cache
def _transitions(zone: str) -> tuple[datetime, ...]:
    """The UTC instants in 2024-2026 at which *zone*'s offset changes (to the hour before)."""
    tz = ZoneInfo(zone)
    out = []
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    offset = moment.astimezone(tz).utcoffset()
    while moment.year < 2027:
        moment += timedelta(minutes=30)
        new = moment.astimezone(tz).utcoffset()
        if new != offset:
            out.append(moment)
            offset = new
    return tuple(out)


CONFORMANCE_ZONES = [BERLIN, NEW_YORK, LORD_HOWE, "Australia/Sydney", "Pacific/Chatham"]
CONFORMANCE_EXPRESSIONS = [
    "30 2 * * *",
    "15 2 * * 0",
    "45 1 * * *",
    "0 3 * * 1-5",
    "*/30 * * * *",
    "0 * * * *",
    "15,45 * * * *",
]


@pytest.mark.parametrize("zone", CONFORMANCE_ZONES)
@pytest.mark.parametrize("expression", CONFORMANCE_EXPRESSIONS)
def test_five_fields_agree_with_cronsim(zone: str, expression: str) -> None:
    """For 5-field expressions quiv's policy is cronsim's (Debian cron's), around every change."""
    tz = ZoneInfo(zone)
    trigger = CronTrigger(expression, zone)
    n = 10 if trigger._fixed else 120
    for transition in [t for t in _transitions(zone) if t.year == 2025]:
        start = (transition - timedelta(days=3)).astimezone(tz)
        reference = CronSim(expression, start)
        after = start
        for _ in range(n):
            fire = trigger.next_fire(after)
            assert fire is not None
            assert fire == next(reference).astimezone(UTC)
            after = fire


# -- Hypothesis properties ---------------------------------------------------

ZONES = [
    BERLIN,
    NEW_YORK,
    LORD_HOWE,
    "Australia/Sydney",
    "Pacific/Chatham",
    "America/Havana",
    "America/Santiago",
    "Asia/Tehran",
    "UTC",
]

seconds_fields = st.sampled_from([None, "0", "15", "*/20", "0,30"])
minute_fields = st.sampled_from(["0", "30", "15", "59", "0,30", "*/30", "*/15", "*", "5-10"])
hour_fields = st.sampled_from(["*", "0", "1", "2", "3", "23", "*/2", "1-3", "0,2"])
dow_fields = st.sampled_from(["*", "0", "1-5", "SAT,SUN"])


@st.composite
def expressions(draw: st.DrawFn) -> str:
    fields = f"{draw(minute_fields)} {draw(hour_fields)} * * {draw(dow_fields)}"
    seconds = draw(seconds_fields)
    return fields if seconds is None else f"{seconds} {fields}"


@st.composite
def starts(draw: st.DrawFn, zone: str) -> datetime:
    """A moment near one of the zone's offset changes (or anywhere, for UTC)."""
    transitions = _transitions(zone) or (datetime(2025, 6, 1, tzinfo=UTC),)
    base = draw(st.sampled_from(transitions))
    return base + timedelta(seconds=draw(st.integers(-2 * 86400, 86400)))


def _matches(expression: str, wall: datetime) -> bool:
    """Whether the naive wall time *wall* matches *expression* (per cronsim, on naive time)."""
    return bool(next(CronSim(expression, wall - timedelta(seconds=1))) == wall)


def _at_transition(fire: datetime, tz: ZoneInfo) -> bool:
    return (fire - timedelta(seconds=1)).astimezone(tz).utcoffset() != fire.astimezone(
        tz
    ).utcoffset()


@settings(max_examples=150, deadline=None)
@given(data=st.data(), zone=st.sampled_from(ZONES), expression=expressions())
def test_fire_properties(data: st.DataObject, zone: str, expression: str) -> None:
    tz = ZoneInfo(zone)
    trigger = CronTrigger(expression, zone)
    after = data.draw(starts(zone))
    fixed = trigger._fixed
    previous = after
    for _ in range(25):
        fire = trigger.next_fire(previous)
        assert fire is not None
        # aware UTC, strictly increasing
        assert fire.tzinfo is UTC
        assert fire > previous
        local = fire.astimezone(tz)
        wall = local.replace(tzinfo=None)
        # a real local time: the wall time maps back to the same instant
        assert wall.replace(tzinfo=tz, fold=local.fold).astimezone(UTC) == fire
        if fixed:
            # fixed-time runs take the first occurrence of an ambiguous time
            assert wall.replace(tzinfo=tz).astimezone(UTC) == fire
        # the wall time matches the expression, or it is the end of a gap
        # that swallowed a matching wall time
        assert _matches(trigger._fields, wall) or (fixed and _at_transition(fire, tz))
        previous = fire


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    zone=st.sampled_from(ZONES),
    minute=minute_fields,
    hour=hour_fields,
    dow=dow_fields,
)
def test_elapsed_time_fires_at_every_matching_minute(
    data: st.DataObject, zone: str, minute: str, hour: str, dow: str
) -> None:
    """A sub-hourly expression fires at each instant whose wall time matches: no more, no fewer.

    Checked minute by minute over 36 hours around an offset change: the
    instants are enumerated in UTC, their wall times matched with cronsim.
    """
    expression = f"{minute} {hour} * * {dow}"
    trigger = CronTrigger(expression, zone)
    assume(not trigger._fixed)
    tz = ZoneInfo(zone)
    after = data.draw(starts(zone)).replace(second=0)
    end = after + timedelta(hours=36)
    walls = [(after + timedelta(minutes=k)).astimezone(tz) for k in range(1, 36 * 60 + 1)]
    naive = [w.replace(tzinfo=None) for w in walls]
    matching: set[datetime] = set()
    last = max(naive)
    for wall in CronSim(expression, min(naive) - timedelta(minutes=1)):
        if wall > last:
            break
        matching.add(wall)
    expected = [w.astimezone(UTC) for w, n in zip(walls, naive, strict=True) if n in matching]
    fires = []
    fire = trigger.next_fire(after)
    while fire is not None and fire <= end:
        fires.append(fire)
        fire = trigger.next_fire(fire)
    assert fires == expected


@settings(max_examples=100, deadline=None)
@given(
    data=st.data(),
    zone=st.sampled_from(ZONES),
    minute=st.integers(0, 59),
    hour=st.integers(0, 23),
    seconds=st.sampled_from([None, 0, 30]),
)
def test_fixed_time_daily_runs_once_every_local_day(
    data: st.DataObject, zone: str, minute: int, hour: int, seconds: int | None
) -> None:
    tz = ZoneInfo(zone)
    expression = f"{minute} {hour} * * *" if seconds is None else f"{seconds} {minute} {hour} * * *"
    trigger = CronTrigger(expression, zone)
    previous = data.draw(starts(zone))
    dates = []
    for _ in range(5):
        fire = trigger.next_fire(previous)
        assert fire is not None
        dates.append(fire.astimezone(tz).date())
        previous = fire
    # no two runs on one local date, and no local date without a run
    assert all(b - a == timedelta(days=1) for a, b in zip(dates, dates[1:], strict=False))


@given(st.text(alphabet="0123456789*/,-LW#?@ abdhilmnorstuyJANMOSU\t", max_size=24))
def test_any_text_is_a_trigger_or_a_configuration_error(text: str) -> None:
    try:
        CronTrigger(text)
    except ConfigurationError as exc:
        assert repr(text) in str(exc)


# -- aliases, seconds, time zones ---------------------------------------------


@pytest.mark.parametrize(
    ("alias", "expansion"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
    ],
)
def test_alias(alias: str, expansion: str) -> None:
    assert ALIASES[alias] == expansion
    start = datetime(2025, 3, 29, 13, 17)
    expected = fires(CronTrigger(expansion, BERLIN), start, 4)
    assert fires(CronTrigger(alias, BERLIN), start, 4) == expected
    assert fires(CronTrigger(f"  {alias.upper()} ", BERLIN), start, 4) == expected
    assert CronTrigger(alias).expression == alias


def test_seconds_field() -> None:
    trigger = CronTrigger("*/15 * * * * *")
    assert fires(trigger, datetime(2025, 1, 1, 12, 0, 7), 3, "seconds") == [
        "2025-01-01T12:00:15+00:00",
        "2025-01-01T12:00:30+00:00",
        "2025-01-01T12:00:45+00:00",
    ]
    assert fires(CronTrigger("30 0 12 * * *"), datetime(2025, 1, 1), 2, "seconds") == [
        "2025-01-01T12:00:30+00:00",
        "2025-01-02T12:00:30+00:00",
    ]


def test_next_fire_is_strictly_after_and_handles_microseconds() -> None:
    trigger = CronTrigger("30 2 * * *")
    at = datetime(2025, 1, 1, 2, 30, tzinfo=UTC)
    assert trigger.next_fire(at - timedelta(microseconds=1)) == at
    assert trigger.next_fire(at) == at + timedelta(days=1)
    assert trigger.next_fire(at + timedelta(microseconds=1)) == at + timedelta(days=1)


def test_naive_after_is_utc_and_no_zone_means_utc() -> None:
    trigger = CronTrigger("30 2 * * *")
    assert trigger.timezone is None
    assert trigger.next_fire(datetime(2025, 1, 1)) == datetime(2025, 1, 1, 2, 30, tzinfo=UTC)
    # any zone in, UTC out
    after = datetime(2025, 1, 1, 4, 0, tzinfo=ZoneInfo("Asia/Tokyo"))  # 2024-12-31 19:00Z
    assert trigger.next_fire(after) == datetime(2025, 1, 1, 2, 30, tzinfo=UTC)


def test_timezone_arguments() -> None:
    berlin = ZoneInfo(BERLIN)
    assert CronTrigger("0 0 * * *", BERLIN).timezone is berlin
    assert CronTrigger("0 0 * * *", berlin).timezone is berlin
    assert CronTrigger("0 0 * * *", "utc").timezone is UTC
    fixed = timezone(timedelta(hours=5, minutes=30))
    trigger = CronTrigger("0 0 * * *", fixed)
    assert trigger.next_fire(datetime(2025, 1, 1, tzinfo=UTC)) == datetime(
        2025, 1, 1, 18, 30, tzinfo=UTC
    )


def test_with_timezone() -> None:
    bare = CronTrigger("30 2 * * *")
    filled = bare.with_timezone(ZoneInfo(BERLIN))
    assert filled.timezone == ZoneInfo(BERLIN)
    assert filled == CronTrigger("30 2 * * *", BERLIN)
    assert bare.timezone is None  # unchanged
    assert bare.with_timezone("UTC").timezone is UTC
    assert filled.with_timezone(UTC) is filled
    assert filled.next_fire(datetime(2025, 1, 1, tzinfo=UTC)) == datetime(
        2025, 1, 1, 1, 30, tzinfo=UTC
    )
    with pytest.raises(InvalidTimezoneError):
        bare.with_timezone("Nowhere/Special")


def test_no_fire_past_the_end_of_the_calendar() -> None:
    trigger = CronTrigger("0 0 1 1 *", BERLIN)
    assert trigger.next_fire(datetime(9999, 12, 31, 12, tzinfo=UTC)) is None
    assert CronTrigger("0 0 1 1 *").next_fire(datetime(9999, 6, 1, tzinfo=UTC)) is None


# -- value semantics -----------------------------------------------------------


def test_immutable_hashable_and_equal_by_value() -> None:
    a = CronTrigger("30 2 * * 1-5", BERLIN)
    b = CronTrigger("30 2 * * 1-5", ZoneInfo(BERLIN))
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b, CronTrigger("30 2 * * 1-5")}) == 2
    assert a != CronTrigger("30 3 * * 1-5", BERLIN)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.expression = "* * * * *"  # type: ignore[misc]
    assert not hasattr(a, "__dict__")


def test_repr() -> None:
    assert repr(CronTrigger("30 2 * * 1-5", BERLIN)) == (
        "CronTrigger('30 2 * * 1-5', timezone='Europe/Berlin')"
    )
    assert repr(CronTrigger("@daily")) == "CronTrigger('@daily', timezone=None)"


def test_describe() -> None:
    assert CronTrigger("30 2 * * 1-5", BERLIN).describe() == (
        "At 02:30 on Monday through Friday (Europe/Berlin)"
    )
    assert CronTrigger("@daily", "UTC").describe() == "At 00:00 every day (UTC)"
    assert CronTrigger("30 0 12 * * *", NEW_YORK).describe() == (
        "At 12:00:30 every day (America/New_York)"
    )
    assert CronTrigger("*/5 * * * *").describe() == (
        "Every fifth minute of every hour (the scheduler's time zone)"
    )


def test_describe_falls_back_when_explain_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: CronSim) -> str:
        raise ValueError("cannot explain")

    monkeypatch.setattr(CronSim, "explain", broken)
    assert CronTrigger("30 2 * * *", BERLIN).describe() == "Cron '30 2 * * *' (Europe/Berlin)"


# -- what is remembered ------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    data=st.data(),
    zone=st.sampled_from(ZONES),
    expression=expressions(),
    offsets=st.lists(st.integers(-3 * 86400, 3 * 86400), min_size=1, max_size=30),
)
def test_remembered_answers_are_the_answers(
    data: st.DataObject, zone: str, expression: str, offsets: list[int]
) -> None:
    """``next_fire`` gives what a fresh trigger gives, whatever order it is asked in."""
    trigger = CronTrigger(expression, zone)
    base = data.draw(starts(zone))
    for seconds in offsets:
        after = base + timedelta(seconds=seconds, microseconds=data.draw(st.integers(0, 999_999)))
        fresh = CronTrigger(expression, zone)
        assert trigger.next_fire(after) == fresh.next_fire(after)
        # the answer itself asked again, and a moment before it
        fire = fresh.next_fire(after)
        assert fire is not None
        assert trigger.next_fire(fire) == fresh.next_fire(fire)
        assert trigger.next_fire(fire - timedelta(microseconds=1)) == fire


def test_cron_parameter_triggers_are_shared() -> None:
    """``cron=`` makes one trigger per expression and zone: its answers serve every task."""
    berlin = ZoneInfo(BERLIN)
    first = cron_trigger("30 2 * * *", berlin)
    assert cron_trigger("30 2 * * *", berlin) is first
    assert cron_trigger("30 2 * * *", ZoneInfo("America/New_York")) is not first
    assert cron_trigger("0 3 * * *", berlin) is not first
    assert cron_trigger("30 2 * * *", berlin) == CronTrigger("30 2 * * *", BERLIN)


# -- bad input -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("61 * * * *", "Bad minute"),
        ("* 24 * * *", "Bad hour"),
        ("* * 0 * *", "Bad day-of-month"),
        ("* * * 13 *", "Bad month"),
        ("* * * * 8", "Bad day-of-week"),
        ("60 * * * * *", "Bad second"),
        ("* * * *", "Wrong number of fields"),
        ("* * * * * * *", "Wrong number of fields"),
        ("", "Wrong number of fields"),
        ("5-1 * * * *", "Bad minute"),
        ("*/0 * * * *", "Bad minute"),
        ("@reboot", "unknown alias"),
        ("@every 5m", "unknown alias"),
    ],
)
def test_invalid_expression(expression: str, reason: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        CronTrigger(expression)
    message = str(info.value)
    assert message.startswith("expression must be a valid cron expression")
    assert reason in message
    assert repr(expression) in message
    with pytest.raises(ConfigurationError) as info:
        cron_trigger(expression, BERLIN)
    assert str(info.value).startswith("cron must be a valid cron expression")
    assert repr(expression) in str(info.value)


@pytest.mark.parametrize("value", [None, 5, b"* * * * *", ["*"] * 5])
def test_expression_must_be_a_string(value: object) -> None:
    with pytest.raises(ConfigurationError, match=r"^expression must be a cron expression string"):
        CronTrigger(value)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"^cron must be a cron expression string"):
        cron_trigger(value)


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", 5])
def test_unknown_timezone(zone: object) -> None:
    with pytest.raises(InvalidTimezoneError, match="timezone") as info:
        CronTrigger("30 2 * * *", zone)  # type: ignore[arg-type]
    assert repr(zone) in str(info.value)


def test_without_cronsim(monkeypatch: pytest.MonkeyPatch) -> None:
    trigger = CronTrigger("30 2 * * *")
    monkeypatch.setitem(sys.modules, "cronsim", None)  # import cronsim now fails
    for attempt in (
        lambda: CronTrigger("30 2 * * *"),
        lambda: cron_trigger("30 2 * * *"),
        lambda: trigger.next_fire(datetime(2025, 1, 1, tzinfo=UTC)),
    ):
        with pytest.raises(ConfigurationError, match=r"pip install 'quiv\[cron\]'"):
            attempt()


def test_import_quiv_does_not_import_cronsim() -> None:
    code = (
        "import sys, quiv, quiv._triggers.cron, quiv._triggers.calendar, quiv._triggers.wall\n"
        "assert 'cronsim' not in sys.modules, 'cronsim imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- check_fire ------------------------------------------------------------------


def test_check_fire() -> None:
    trigger = CronTrigger("30 2 * * *")
    after = datetime(2025, 1, 1, tzinfo=UTC)
    assert check_fire(trigger, after, None) is None
    later = datetime(2025, 1, 1, 3, 0, tzinfo=ZoneInfo(BERLIN))
    checked = check_fire(trigger, after, later)
    assert checked == later
    assert checked is not None and checked.tzinfo is UTC
    # a naive after is UTC
    assert check_fire(trigger, datetime(2025, 1, 1), later) == later


@pytest.mark.parametrize(
    ("fire", "words"),
    [
        (datetime(2025, 1, 2), "naive"),
        ("2025-01-02T00:00Z", "datetime or None"),
        (1735776000.0, "datetime or None"),
        (datetime(2025, 1, 1, tzinfo=UTC), "strictly after"),
        (datetime(2024, 12, 31, tzinfo=UTC), "strictly after"),
        (datetime(2025, 1, 1, 1, 0, tzinfo=ZoneInfo(BERLIN)), "strictly after"),  # = 00:00Z
    ],
)
def test_check_fire_rejects(fire: object, words: str) -> None:
    trigger = CronTrigger("30 2 * * *")
    with pytest.raises(ConfigurationError) as info:
        check_fire(trigger, datetime(2025, 1, 1, tzinfo=UTC), fire)
    message = str(info.value)
    assert words in message
    assert repr(trigger) in message
    assert (repr(fire) if not isinstance(fire, datetime) or fire.tzinfo is None else "20") in (
        message
    )


def test_resolve_wall_time() -> None:
    berlin = ZoneInfo(BERLIN)
    # exists: as is
    assert resolve_wall_time(datetime(2025, 6, 1, 12, 0), berlin) == datetime(
        2025, 6, 1, 10, 0, tzinfo=UTC
    )
    # gap: the transition instant (03:00 CEST = 01:00Z)
    for minute in (0, 1, 30, 59):
        assert resolve_wall_time(datetime(2025, 3, 30, 2, minute, 17), berlin) == datetime(
            2025, 3, 30, 1, 0, tzinfo=UTC
        )
    # overlap: the first occurrence (CEST)
    assert resolve_wall_time(datetime(2025, 10, 26, 2, 30), berlin) == datetime(
        2025, 10, 26, 0, 30, tzinfo=UTC
    )


def test_copy_and_pickle() -> None:
    import copy
    import pickle

    trigger = CronTrigger("15 30 2 * * *", BERLIN)
    for clone in (copy.copy(trigger), copy.deepcopy(trigger), pickle.loads(pickle.dumps(trigger))):
        assert clone == trigger
        assert clone.next_fire(datetime(2025, 3, 29, tzinfo=UTC)) == trigger.next_fire(
            datetime(2025, 3, 29, tzinfo=UTC)
        )
