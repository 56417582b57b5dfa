"""The one clock and the washout rule: UTC days, both sides of midnight, any time zone."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from studies.api import AnswerKey
from studies.clock import (
    system_clock,
    utc_now,
    washout_is_over,
    washout_not_before,
    washout_opens_at,
)
from studies.errors import StudyError
from studies.store import Store
from tests.studies.study_factory import FakeClock, answer_all, build_study

PLUS_10 = timezone(timedelta(hours=10))
MINUS_5 = timezone(timedelta(hours=-5))


@pytest.mark.system_clock
def test_the_system_clock_is_aware_utc_and_now() -> None:
    before = time.time()
    now = system_clock()
    after = time.time()
    assert now.tzinfo is UTC
    assert before - 1 <= now.timestamp() <= after + 1


def test_utc_now_converts_and_refuses_naive_times() -> None:
    local = datetime(2026, 3, 1, 9, 30, tzinfo=PLUS_10)
    assert utc_now(lambda: local) == datetime(2026, 2, 28, 23, 30, tzinfo=UTC)
    assert utc_now(lambda: local).tzinfo is UTC
    with pytest.raises(StudyError, match="naive"):
        utc_now(lambda: datetime(2026, 3, 1, 9, 30))


def test_the_next_session_opens_on_the_utc_day_both_sides_of_midnight() -> None:
    day = date(2027, 2, 27)
    last_moment = datetime.combine(day, datetime.max.time(), tzinfo=UTC)
    assert washout_not_before(last_moment, 28) == day + timedelta(days=28)
    assert washout_not_before(last_moment + timedelta(microseconds=1), 28) == day + timedelta(
        days=29
    )
    # The same instant seen from a workstation ten hours ahead is still UTC day ``day``.
    assert washout_not_before(last_moment.astimezone(PLUS_10), 28) == day + timedelta(days=28)
    with pytest.raises(StudyError, match="time zone"):
        washout_not_before(datetime(2027, 2, 27, 12), 28)


def test_a_locked_session_opens_at_utc_midnight_not_the_readers_midnight() -> None:
    not_before = date(2027, 3, 27)
    opens = washout_opens_at(not_before)
    assert opens == datetime(2027, 3, 27, tzinfo=UTC)
    assert washout_is_over(None, opens)
    assert not washout_is_over(not_before, opens - timedelta(microseconds=1))
    assert washout_is_over(not_before, opens)
    # 09:59 on the opening date in UTC+10 is 23:59 UTC the day before: still locked.
    ahead = datetime(2027, 3, 27, 9, 59, tzinfo=PLUS_10)
    assert ahead.date() == not_before and not washout_is_over(not_before, ahead)
    # 19:00 the evening before in UTC-5 is 00:00 UTC on the opening date: open.
    behind = datetime(2027, 3, 26, 19, 0, tzinfo=MINUS_5)
    assert behind.date() < not_before and washout_is_over(not_before, behind)
    with pytest.raises(StudyError, match="time zone"):
        washout_is_over(not_before, datetime(2027, 3, 28))


@given(
    finished=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    days=st.integers(min_value=1, max_value=365),
)
def test_the_wait_is_between_days_minus_one_and_days(finished: datetime, days: int) -> None:
    wait = washout_opens_at(washout_not_before(finished, days)) - finished
    assert timedelta(days=days - 1) < wait <= timedelta(days=days)
    assert not washout_is_over(washout_not_before(finished, days), finished)


def finish_first_session_at(db_clock: FakeClock, store: Store, finished: datetime) -> None:
    """Answer R1's first session; its last completion lands exactly at ``finished``."""
    views = store.assignments("R1", 1)
    for view in views:
        answer_all(store, view.assignment_id)
        if view is views[-1]:
            db_clock.now = finished
        store.complete_assignment(view.assignment_id)


@pytest.mark.parametrize("seconds_after_midnight", [-1, 0])
def test_the_store_locks_and_opens_on_each_side_of_midnight(
    tmp_path: os.PathLike[str], seconds_after_midnight: int
) -> None:
    db = build_study(tmp_path)  # type: ignore[arg-type]
    clock = FakeClock()
    midnight = datetime.combine(clock.now.date() + timedelta(days=1), datetime.min.time(), UTC)
    finished = midnight + timedelta(seconds=seconds_after_midnight)
    with Store.open(db, clock=clock) as store:
        finish_first_session_at(clock, store, finished)
        s2 = store.sessions("R1")[1]
        assert s2.not_before == finished.date() + timedelta(days=28)
        first = store.assignments("R1", 2)[0].assignment_id
        opens = washout_opens_at(s2.not_before)
        clock.now = (opens - timedelta(seconds=1)).astimezone(PLUS_10)
        assert store.sessions("R1")[1].locked
        with pytest.raises(StudyError, match=f"locked until {s2.not_before.isoformat()} 00:00 UTC"):
            store.record_answer(first, AnswerKey("quality"), 3)
        clock.now = opens.astimezone(MINUS_5)
        assert not store.sessions("R1")[1].locked
        store.record_answer(first, AnswerKey("quality"), 3)


@pytest.fixture
def time_zone() -> Iterator[object]:
    """``set(name)`` switches this process's local time zone for the test."""
    saved = os.environ.get("TZ")

    def switch(name: str) -> None:
        os.environ["TZ"] = name
        time.tzset()

    yield switch
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()


def test_the_reader_sees_the_opening_instant_in_local_time(time_zone) -> None:  # type: ignore[no-untyped-def]
    from reader_app.dates import opening_text

    time_zone("America/New_York")
    assert opening_text(date(2027, 1, 15)) == "14 Jan 2027 at 19:00"
    time_zone("Pacific/Kiritimati")
    assert opening_text(date(2027, 1, 15)) == "15 Jan 2027 at 14:00"
    time_zone("UTC")
    assert opening_text(date(2027, 1, 15)) == "15 Jan 2027 at 00:00"


def test_the_workstations_time_zone_does_not_move_the_washout(tmp_path, time_zone) -> None:  # type: ignore[no-untyped-def]
    db = build_study(tmp_path)
    clock = FakeClock()
    with Store.open(db, clock=clock) as store:
        finish_first_session_at(clock, store, clock.now)
        not_before = store.sessions("R1")[1].not_before
        assert not_before is not None
        clock.now = washout_opens_at(not_before) - timedelta(minutes=1)
        for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago", "UTC"):
            time_zone(zone)
            assert store.sessions("R1")[1].locked, zone
