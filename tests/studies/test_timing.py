"""Active reading time from event sequences (property tests)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from studies.timing import TimedEvent, active_time_ms, active_times

T0 = datetime(2026, 11, 1, tzinfo=UTC)
KINDS = ("focus_lost", "focus_gained", "idle_started", "idle_ended", "window_level_changed")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


gaps = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(min_value=0, max_value=200)), max_size=12
)


@given(gaps, st.integers(min_value=0, max_value=500))
def test_active_time_is_between_zero_and_the_open_time(middle, tail) -> None:
    t = 0.0
    events = [TimedEvent("case_opened", at(0))]
    for kind, gap in middle:
        t += gap
        events.append(TimedEvent(kind, at(t)))
    t += tail
    events.append(TimedEvent("case_closed", at(t)))
    ms = active_time_ms(events, [])
    assert 0 <= ms <= int(t * 1000)


@given(st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=10))
def test_without_focus_or_idle_events_all_open_time_counts(gaps) -> None:
    t = 0.0
    events = [TimedEvent("case_opened", at(0))]
    for gap in gaps:
        t += gap
        events.append(TimedEvent("window_level_changed", at(t)))
    events.append(TimedEvent("case_closed", at(t + 1)))
    assert active_time_ms(events, []) == int((t + 1) * 1000)


@given(st.integers(min_value=0, max_value=600), st.integers(min_value=0, max_value=120_000))
def test_idle_counts_up_to_sixty_seconds(idle_s, after_ms) -> None:
    """An idle period that began ``after_ms`` before idle_started counts up to 60 s in all."""
    started = 10.0
    events = [
        TimedEvent("case_opened", at(0)),
        TimedEvent("idle_started", at(started), json.dumps({"after_ms": after_ms})),
        TimedEvent("idle_ended", at(started + idle_s)),
        TimedEvent("case_closed", at(started + idle_s + 5)),
    ]
    total_idle = after_ms / 1000 + idle_s
    excluded = max(0.0, min(idle_s, total_idle - 60))
    expected = (started + idle_s + 5 - excluded) * 1000
    assert abs(active_time_ms(events, []) - expected) <= 1


def test_overlapping_focus_loss_and_idle_are_not_subtracted_twice() -> None:
    events = [
        TimedEvent("case_opened", at(0)),
        TimedEvent("focus_lost", at(10)),
        TimedEvent("idle_started", at(20), '{"after_ms": 60000}'),
        TimedEvent("focus_gained", at(50)),
        TimedEvent("idle_ended", at(70)),
        TimedEvent("case_closed", at(100)),
    ]
    assert active_time_ms(events, []) == (100 - 60) * 1000


def test_active_times_groups_by_assignment_and_reader() -> None:
    events = [
        TimedEvent("case_opened", at(0), reader_id="R1", assignment_id="a"),
        TimedEvent("case_opened", at(1), reader_id="R2", assignment_id="b"),
        TimedEvent("focus_lost", at(5), reader_id="R1"),
        TimedEvent("focus_gained", at(8), reader_id="R1"),
        TimedEvent("case_closed", at(10), reader_id="R1", assignment_id="a"),
        TimedEvent("case_closed", at(11), reader_id="R2", assignment_id="b"),
    ]
    assert active_times(events) == {"a": 7000, "b": 10000}
