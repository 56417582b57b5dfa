"""Dates as the reader sees them: in the workstation's local time zone."""

from __future__ import annotations

from datetime import date

from studies.clock import washout_opens_at


def opening_text(not_before: date) -> str:
    """When a washout-locked session opens, in local time: ``29 Nov 2026 at 01:00``.

    The washout rule is in UTC (:mod:`studies.clock`); the reader is shown that instant in the
    workstation's time zone, so "opens at" is true wherever the reader sits.
    """
    local = washout_opens_at(not_before).astimezone()
    return f"{local:%d %b %Y} at {local:%H:%M}"
