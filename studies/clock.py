"""The product's one clock, and the washout rule that reads it.

Every date and time the product records or compares (answers, events, active time, washout
locks, exports, packages, merges) comes from a :data:`Clock` injected at the top: the command
line and the workstation pass :func:`system_clock`, tests pass a fake one. There is deliberately
no option, environment variable or file that sets the clock: moving it would lift the washout.

The washout rule
----------------
Washout is counted in whole calendar days **in UTC**, whatever the time zone of the reader or
the workstation. A session whose last case was completed at any moment of the UTC day ``D``
makes the next session open at 00:00 UTC on ``D + washout_days`` (:func:`washout_not_before`),
and a session with ``not_before`` is open from that instant on (:func:`washout_is_over`). So the
wait is at least ``washout_days - 1`` whole days and less than ``washout_days`` more; the
workstation shows the opening instant in the reader's local time (:func:`washout_opens_at`).
UTC is the rule because the study file travels between machines in different zones: a rule
based on a workstation's local midnight would open the same session at different instants on
different workstations, and a reader could open it early by changing the zone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

from studies.errors import StudyError

#: Returns the current time as an aware datetime.
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The product's clock: the operating system's time, in UTC."""
    return datetime.now(UTC)


def utc_now(clock: Clock) -> datetime:
    """``clock()`` as an aware UTC datetime.

    Raises
    ------
    StudyError
        The clock returned a naive datetime (its time zone would be a guess).
    """
    value = clock()
    if value.tzinfo is None or value.utcoffset() is None:
        raise StudyError("the clock returned a naive datetime; give it a time zone")
    return value.astimezone(UTC)


def washout_not_before(finished_at: datetime, washout_days: int) -> date:
    """The UTC date on which the session after one finished at ``finished_at`` opens."""
    if finished_at.tzinfo is None:
        raise StudyError("a session's finish time must carry a time zone")
    return finished_at.astimezone(UTC).date() + timedelta(days=washout_days)


def washout_opens_at(not_before: date) -> datetime:
    """The instant a session with ``not_before`` opens: 00:00 UTC on that date."""
    return datetime.combine(not_before, time(0, 0), tzinfo=UTC)


def washout_is_over(not_before: date | None, now: datetime) -> bool:
    """Whether a session with ``not_before`` may be opened at ``now`` (an aware datetime)."""
    if not_before is None:
        return True
    if now.tzinfo is None:
        raise StudyError("the current time must carry a time zone")
    return now >= washout_opens_at(not_before)
