"""Cron schedules through the scheduler across DST changes, on a fake clock.

Each case starts a scheduler on a :class:`~quiv.testing.FakeClock` put at a
date before a DST change and runs the task's fires one by one for 30 days
(two days for ``*/30``; the 30-day ``*/30`` runs are ``slow``): nothing runs
a moment before a fire, one job runs at it, and the handler sees the fire's
wall time. The fires around the change are written out by hand, in UTC and
in local time; the rest follow from the DST policy (quiv/_triggers/cron.py):

* fixed-time expressions run once a local day (once a week) at their wall
  time; in the spring gap at the end of the gap, in the autumn overlap once,
  at the first occurrence;
* ``*/30 * * * *`` follows real elapsed time: every 30 minutes of UTC, so the
  repeated hour runs again and the skipped hour does not run.

Pure trigger tests (no scheduler) are in test_cron.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from schedule_helpers import Fires, drive, set_wall, utc
from scheduler_helpers import WAIT, Recorder

from quiv import AsyncQuiv, Event
from quiv.testing import FakeClock

# The changes of 2025:
#   Berlin     03-30 02:00 -> 03:00 (01:00Z)        10-26 03:00 -> 02:00 (01:00Z)
#   New York   03-09 02:00 -> 03:00 (07:00Z)        11-02 02:00 -> 01:00 (06:00Z)
#   Lord Howe  10-05 02:00 -> 02:30 (10-04 15:30Z)  04-06 02:00 -> 01:30 (04-05 15:00Z)
BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
LORD_HOWE = "Australia/Lord_Howe"  # a half-hour shift


@dataclass(frozen=True)
class Case:
    zone: str
    expression: str
    #: the scheduler starts here; the run covers *days* days from it
    start: datetime
    days: int
    #: how many runs in all
    count: int
    #: consecutive fires around the change (UTC), and the same as local "HH:MM+offset"
    around: list[datetime]
    local: list[str]
    #: the local date of the change, and how many runs fall on it
    dst_day: date
    on_dst_day: int


def daily(
    zone: str,
    expression: str,
    start: datetime,
    dst_day: date,
    around: list[datetime],
    local: list[str],
) -> Case:
    """30 days: 30 runs, one on the DST day."""
    return Case(zone, expression, start, 30, 30, around, local, dst_day, 1)


def weekly(
    zone: str,
    expression: str,
    start: datetime,
    dst_day: date,
    around: list[datetime],
    local: list[str],
) -> Case:
    """30 days: 5 Sundays, one of them the DST day."""
    return Case(zone, expression, start, 30, 5, around, local, dst_day, 1)


def half_hourly(
    zone: str,
    change: datetime,
    days: int,
    dst_day: date,
    on_dst_day: int,
    around: list[datetime],
    local: list[str],
) -> Case:
    """*days* days centred on the change: 48 runs a day in UTC, fewer or more on the DST day."""
    start = change - timedelta(days=days / 2)
    return Case(zone, "*/30 * * * *", start, days, days * 48, around, local, dst_day, on_dst_day)


def half_hourly_cases(days: int) -> list[Case]:
    return [
        half_hourly(
            BERLIN, utc(2025, 3, 30, 1), days, date(2025, 3, 30), 46,
            around=[utc(2025, 3, 30, 0, 0), utc(2025, 3, 30, 0, 30), utc(2025, 3, 30, 1, 0), utc(2025, 3, 30, 1, 30)],
            local=["01:00+01:00", "01:30+01:00", "03:00+02:00", "03:30+02:00"],
        ),
        half_hourly(
            BERLIN, utc(2025, 10, 26, 1), days, date(2025, 10, 26), 50,
            around=[utc(2025, 10, 26, 0, 0), utc(2025, 10, 26, 0, 30), utc(2025, 10, 26, 1, 0), utc(2025, 10, 26, 1, 30), utc(2025, 10, 26, 2, 0)],
            local=["02:00+02:00", "02:30+02:00", "02:00+01:00", "02:30+01:00", "03:00+01:00"],
        ),
        half_hourly(
            NEW_YORK, utc(2025, 3, 9, 7), days, date(2025, 3, 9), 46,
            around=[utc(2025, 3, 9, 6, 0), utc(2025, 3, 9, 6, 30), utc(2025, 3, 9, 7, 0), utc(2025, 3, 9, 7, 30)],
            local=["01:00-05:00", "01:30-05:00", "03:00-04:00", "03:30-04:00"],
        ),
        half_hourly(
            NEW_YORK, utc(2025, 11, 2, 6), days, date(2025, 11, 2), 50,
            around=[utc(2025, 11, 2, 5, 0), utc(2025, 11, 2, 5, 30), utc(2025, 11, 2, 6, 0), utc(2025, 11, 2, 6, 30), utc(2025, 11, 2, 7, 0)],
            local=["01:00-04:00", "01:30-04:00", "01:00-05:00", "01:30-05:00", "02:00-05:00"],
        ),
        half_hourly(
            LORD_HOWE, utc(2025, 10, 4, 15, 30), days, date(2025, 10, 5), 47,
            around=[utc(2025, 10, 4, 14, 30), utc(2025, 10, 4, 15, 0), utc(2025, 10, 4, 15, 30), utc(2025, 10, 4, 16, 0)],
            local=["01:00+10:30", "01:30+10:30", "02:30+11:00", "03:00+11:00"],
        ),
        half_hourly(
            LORD_HOWE, utc(2025, 4, 5, 15), days, date(2025, 4, 6), 49,
            around=[utc(2025, 4, 5, 14, 0), utc(2025, 4, 5, 14, 30), utc(2025, 4, 5, 15, 0), utc(2025, 4, 5, 15, 30)],
            local=["01:00+11:00", "01:30+11:00", "01:30+10:30", "02:00+10:30"],
        ),
    ]  # fmt: skip


# The fixed-time cases start at 12:00Z, 15 days before the change: no fire is near 12:00Z.
CASES: list[Case] = [
    # -- daily ------------------------------------------------------------------------------
    daily(
        BERLIN, "30 2 * * *", utc(2025, 3, 15, 12), date(2025, 3, 30),
        around=[utc(2025, 3, 29, 1, 30), utc(2025, 3, 30, 1, 0), utc(2025, 3, 31, 0, 30)],
        local=["02:30+01:00", "03:00+02:00", "02:30+02:00"],
    ),
    daily(
        BERLIN, "30 2 * * *", utc(2025, 10, 11, 12), date(2025, 10, 26),
        around=[utc(2025, 10, 25, 0, 30), utc(2025, 10, 26, 0, 30), utc(2025, 10, 27, 1, 30)],
        local=["02:30+02:00", "02:30+02:00", "02:30+01:00"],
    ),
    daily(
        NEW_YORK, "30 2 * * *", utc(2025, 2, 22, 12), date(2025, 3, 9),
        around=[utc(2025, 3, 8, 7, 30), utc(2025, 3, 9, 7, 0), utc(2025, 3, 10, 6, 30)],
        local=["02:30-05:00", "03:00-04:00", "02:30-04:00"],
    ),
    daily(  # New York repeats 01:00-02:00
        NEW_YORK, "30 1 * * *", utc(2025, 10, 18, 12), date(2025, 11, 2),
        around=[utc(2025, 11, 1, 5, 30), utc(2025, 11, 2, 5, 30), utc(2025, 11, 3, 6, 30)],
        local=["01:30-04:00", "01:30-04:00", "01:30-05:00"],
    ),
    daily(  # Lord Howe skips 02:00-02:30
        LORD_HOWE, "15 2 * * *", utc(2025, 9, 19, 12), date(2025, 10, 5),
        around=[utc(2025, 10, 3, 15, 45), utc(2025, 10, 4, 15, 30), utc(2025, 10, 5, 15, 15)],
        local=["02:15+10:30", "02:30+11:00", "02:15+11:00"],
    ),
    daily(  # Lord Howe repeats 01:30-02:00
        LORD_HOWE, "45 1 * * *", utc(2025, 3, 21, 12), date(2025, 4, 6),
        around=[utc(2025, 4, 4, 14, 45), utc(2025, 4, 5, 14, 45), utc(2025, 4, 6, 15, 15)],
        local=["01:45+11:00", "01:45+11:00", "01:45+10:30"],
    ),
    # -- weekly, on Sundays (the DST days are Sundays) ---------------------------------------
    weekly(
        BERLIN, "30 2 * * 0", utc(2025, 3, 15, 12), date(2025, 3, 30),
        around=[utc(2025, 3, 23, 1, 30), utc(2025, 3, 30, 1, 0), utc(2025, 4, 6, 0, 30)],
        local=["02:30+01:00", "03:00+02:00", "02:30+02:00"],
    ),
    weekly(
        BERLIN, "30 2 * * 0", utc(2025, 10, 11, 12), date(2025, 10, 26),
        around=[utc(2025, 10, 19, 0, 30), utc(2025, 10, 26, 0, 30), utc(2025, 11, 2, 1, 30)],
        local=["02:30+02:00", "02:30+02:00", "02:30+01:00"],
    ),
    weekly(
        NEW_YORK, "30 2 * * 0", utc(2025, 2, 22, 12), date(2025, 3, 9),
        around=[utc(2025, 3, 2, 7, 30), utc(2025, 3, 9, 7, 0), utc(2025, 3, 16, 6, 30)],
        local=["02:30-05:00", "03:00-04:00", "02:30-04:00"],
    ),
    weekly(
        NEW_YORK, "30 1 * * 0", utc(2025, 10, 18, 12), date(2025, 11, 2),
        around=[utc(2025, 10, 26, 5, 30), utc(2025, 11, 2, 5, 30), utc(2025, 11, 9, 6, 30)],
        local=["01:30-04:00", "01:30-04:00", "01:30-05:00"],
    ),
    weekly(
        LORD_HOWE, "15 2 * * 0", utc(2025, 9, 19, 12), date(2025, 10, 5),
        around=[utc(2025, 9, 27, 15, 45), utc(2025, 10, 4, 15, 30), utc(2025, 10, 11, 15, 15)],
        local=["02:15+10:30", "02:30+11:00", "02:15+11:00"],
    ),
    weekly(
        LORD_HOWE, "45 1 * * 0", utc(2025, 3, 21, 12), date(2025, 4, 6),
        around=[utc(2025, 3, 29, 14, 45), utc(2025, 4, 5, 14, 45), utc(2025, 4, 12, 15, 15)],
        local=["01:45+11:00", "01:45+11:00", "01:45+10:30"],
    ),
    # -- every 30 minutes -------------------------------------------------------------------
    *half_hourly_cases(days=2),
]  # fmt: skip


def case_id(case: Case) -> str:
    zone = case.zone.split("/")[-1].lower()
    kind = "weekly" if case.expression.endswith(" 0") else "daily"
    if case.expression.startswith("*/30"):
        kind = "30min"
    if case.zone == LORD_HOWE:  # the southern hemisphere
        season = "spring" if case.dst_day.month == 10 else "autumn"
    else:
        season = "spring" if case.dst_day.month == 3 else "autumn"
    return f"{zone}-{kind}-{season}-{case.days}d"


def local_hhmm(fire: datetime, zone: ZoneInfo) -> str:
    text = fire.astimezone(zone).isoformat(timespec="minutes")
    return text[len("2025-01-01T") :]


async def run_case(case: Case) -> None:
    zone = ZoneInfo(case.zone)
    clock = FakeClock()
    set_wall(clock, case.start)
    until = case.start + timedelta(days=case.days)
    handler = Fires(clock)
    async with AsyncQuiv(clock=clock, timezone=case.zone, shutdown_timeout=WAIT) as s:
        recorder = Recorder(s, [Event.JOB_STARTED, Event.JOB_COMPLETED])
        task_id = await s.add_task("dst", handler, cron=case.expression)
        task = await s.get_task(task_id)
        assert task.timezone == case.zone
        began = time.perf_counter()
        fires = await drive(s, clock, recorder, task_id, until)
        took = time.perf_counter() - began
        assert recorder.count(Event.JOB_COMPLETED) == len(fires)
    if case.count <= 31:  # the target; measured at ~0.1 s (1,440 runs of */30: ~2.5 s)
        assert took < 1.0, f"{case.count} runs took {took:.2f} s of real time"
    # the handler ran at each fire's wall time, and the fires are the planned ones
    assert handler.at == fires
    assert len(fires) == case.count
    assert fires == sorted(set(fires))
    # the change, written out
    first = fires.index(case.around[0])
    assert fires[first : first + len(case.around)] == case.around
    assert [local_hhmm(f, zone) for f in case.around] == case.local
    locals_ = [f.astimezone(zone) for f in fires]
    assert sum(1 for t in locals_ if t.date() == case.dst_day) == case.on_dst_day
    if case.expression == "*/30 * * * *":
        # real elapsed time: every 30 minutes of UTC, whatever the wall clock does
        step = timedelta(minutes=30)
        assert fires == [case.start + step * k for k in range(1, case.count + 1)]
        return
    minute, hour = (int(field) for field in case.expression.split()[:2])
    days = [t.date() for t in locals_]
    assert len(set(days)) == len(days), "a fixed-time expression ran twice on a local day"
    step_days = 7 if case.expression.endswith(" 0") else 1
    assert days == [days[0] + timedelta(days=step_days * k) for k in range(len(days))]
    for fire, local in zip(fires, locals_, strict=True):
        if local.date() == case.dst_day and (local.hour, local.minute) != (hour, minute):
            # the spring gap: the first instant after it, where the offset changes
            before = (fire - timedelta(seconds=1)).astimezone(zone)
            assert before.utcoffset() != local.utcoffset(), f"{local} is not the end of a gap"
        else:
            assert (local.hour, local.minute) == (hour, minute), local


@pytest.mark.parametrize("case", CASES, ids=case_id)
async def test_a_month_across_a_dst_change(case: Case) -> None:
    await run_case(case)


@pytest.mark.slow
@pytest.mark.parametrize("case", half_hourly_cases(days=30), ids=case_id)
async def test_a_month_of_half_hours_across_a_dst_change(case: Case) -> None:
    """1,440 runs each: a few seconds of real time, so opt-in (``-m slow``)."""
    await run_case(case)
