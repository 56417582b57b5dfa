"""Active reading time from the viewer's events.

Reading time of an assignment is the time between ``case_opened`` and ``case_closed`` (a case
left open ends at its last event), minus

* ``focus_lost`` .. ``focus_gained`` (the reader was in another window), and
* idle time beyond :data:`IDLE_THRESHOLD`: an idle period began ``after_ms`` (the
  ``idle_started`` payload; 0 when absent) before its ``idle_started`` event; only the part of it
  later than the threshold is excluded. The viewer records ``idle_started`` once 60 s passed
  without input (``after_ms = 60000``), so everything from that event to ``idle_ended`` counts
  as idle; a viewer that records the moment input stopped gets the same result.

Focus and idle events count whether or not the viewer attached them to the assignment, as long
as they are the same reader's and fall within the assignment's events.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

#: Idle periods count as reading time up to this long (a pause to think), not beyond.
IDLE_THRESHOLD = timedelta(seconds=60)

#: Event kinds that shorten reading time, wherever the viewer attached them.
READER_LEVEL_KINDS = ("focus_lost", "focus_gained", "idle_started", "idle_ended")


@dataclass(frozen=True)
class TimedEvent:
    """The part of a logged event that reading time needs."""

    kind: str
    at: datetime
    payload_json: str = "{}"
    reader_id: str | None = None
    assignment_id: str | None = None


Interval = tuple[datetime, datetime]


def _pairs(events: list[TimedEvent], start: str, stop: str, end: datetime) -> list[Interval]:
    out: list[Interval] = []
    began: datetime | None = None
    for event in events:
        if event.kind == start and began is None:
            began = _idle_excluded_from(event) if start == "idle_started" else event.at
        elif event.kind == stop and began is not None:
            out.append((began, event.at))
            began = None
    if began is not None:
        out.append((began, end))
    return out


def _idle_excluded_from(event: TimedEvent) -> datetime:
    try:
        after_ms = float(json.loads(event.payload_json).get("after_ms", 0))
    except (ValueError, TypeError, AttributeError):
        after_ms = 0.0
    idle_since = event.at - timedelta(milliseconds=max(after_ms, 0.0))
    return max(event.at, idle_since + IDLE_THRESHOLD)


def _merge(intervals: list[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for a, b in sorted(intervals):
        if b <= a:
            continue
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def active_time_ms(own: list[TimedEvent], reader_events: list[TimedEvent]) -> int:
    """Active milliseconds of one assignment.

    Parameters
    ----------
    own
        The assignment's events, in log order.
    reader_events
        The same reader's focus / idle events without an assignment (any time; those outside
        the assignment's span do not matter).
    """
    if not own:
        return 0
    end = max(e.at for e in own)
    opened = _pairs(own, "case_opened", "case_closed", end)
    start = own[0].at
    nearby = [e for e in reader_events if start <= e.at <= end]
    everything = sorted(own + nearby, key=lambda e: e.at)
    excluded = _merge(
        _pairs(everything, "focus_lost", "focus_gained", end)
        + _pairs(everything, "idle_started", "idle_ended", end)
    )
    total = timedelta(0)
    for a, b in opened:
        total += b - a
        for x, y in excluded:
            lo, hi = max(a, x), min(b, y)
            if hi > lo:
                total -= hi - lo
    return max(0, int(total / timedelta(milliseconds=1)))


def active_times(events: Iterable[TimedEvent]) -> dict[str, int]:
    """Active milliseconds of every assignment that has events (events in log order)."""
    by_assignment: dict[str, list[TimedEvent]] = defaultdict(list)
    by_reader: dict[str | None, list[TimedEvent]] = defaultdict(list)
    for event in events:
        if event.assignment_id is not None:
            by_assignment[event.assignment_id].append(event)
        elif event.kind in READER_LEVEL_KINDS:
            by_reader[event.reader_id].append(event)
    return {
        aid: active_time_ms(own, by_reader.get(own[0].reader_id, []))
        for aid, own in by_assignment.items()
    }
