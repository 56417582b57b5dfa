"""The public API of the study store: the only way other packages read or write a study.

``reader_app`` and ``analysis`` call these; nothing outside ``studies`` writes SQL. Each write is
one transaction (``BEGIN IMMEDIATE`` on SQLite): when a ``record_*`` call returns, the answer is
on disk and survives a killed process.

Answer values by question type: ``likert`` -> int (1..points); ``choice`` -> str (option value);
``multi`` -> list[str]; ``boolean`` -> bool; ``number`` -> float; ``text`` -> str;
``preference`` -> "left" | "equal" | "right" as given by the reader (the store maps it to an arm);
``roi`` / ``distance`` -> a dict: the geometry the reader drew, ``{"series": label, "slice": index
(0-based), "shape": "ellipse" | "freehand" | "line", "points": [[x, y], ...]}`` in image pixel
coordinates (see ``studies.roi_stats``), to which the store adds what it measured on the blinded
image (``series_id``, ``mean``, ``sd``, ``area_mm2``, ``n_pixels``, ``length_mm``); None deletes it.
An answer is addressed by ``AnswerKey(question_id, finding_id, side)``: ``finding_id`` is set for
per-finding questions, ``side`` ("left"/"right") for per-side questions in the paired design.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

Side = Literal["left", "right"]
AnswerValue = int | float | bool | str | list[str] | dict[str, Any] | None

#: Event kinds the viewer records; active reading time is derived from them.
EVENT_KINDS = (
    "case_opened",
    "case_closed",
    "answer_set",
    "window_level_changed",
    "focus_lost",
    "focus_gained",
    "idle_started",
    "idle_ended",
)


@dataclass(frozen=True)
class AnswerKey:
    """Which answer: a question, and for per-finding / per-side questions the finding / side."""

    question_id: str
    finding_id: str | None = None
    side: Side | None = None


@dataclass(frozen=True)
class ReaderInfo:
    """A reader of the study."""

    reader_id: str
    name: str


@dataclass(frozen=True)
class SessionInfo:
    """One reader's reading session with its progress and washout lock."""

    reader_id: str
    index: int  # 1-based
    n_total: int
    n_done: int
    not_before: date | None  # washout: the session may not be opened before this date
    locked: bool  # before not_before, or an earlier session is unfinished
    finished: bool  # every assignment completed: the session is read-only


#: The label of a case's one series when CASES.csv has no ``series`` column.
DEFAULT_SERIES_LABEL = "series"


@dataclass(frozen=True)
class SeriesImages:
    """One displayed series: opaque id, its DICOM files in slice order and its neutral label
    (CASES.csv's ``series`` column, e.g. ``cor_pd``; the same on every arm of a case)."""

    series_id: str
    files: tuple[Path, ...]
    label: str = DEFAULT_SERIES_LABEL


@dataclass(frozen=True)
class SideImages:
    """What one side of an assignment shows: the case's series on that side's arm, in the
    protocol's hanging order (first: hung first). A single-series case has one."""

    series: tuple[SeriesImages, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        """The series labels in hanging order."""
        return tuple(s.label for s in self.series)

    def get(self, label: str) -> SeriesImages:
        """The series with this label (KeyError if the side has none)."""
        for series in self.series:
            if series.label == label:
                return series
        raise KeyError(label)

    @property
    def series_id(self) -> str:
        """The opaque id of the first hung series (the series of a single-series case)."""
        return self.series[0].series_id

    @property
    def files(self) -> tuple[Path, ...]:
        """The files of the first hung series (the series of a single-series case)."""
        return self.series[0].files


@dataclass(frozen=True)
class AssignmentView:
    """Everything the viewer needs to show one assignment, and nothing that unblinds it."""

    assignment_id: str
    reader_id: str
    session_index: int
    position: int  # 1-based within the session
    n_in_session: int
    display_label: str  # opaque, e.g. "Case 7 of 40"
    sides: tuple[SideImages, ...]  # one (sequential) or two, left first (paired)
    answers: dict[AnswerKey, AnswerValue] = field(default_factory=dict)
    completed: bool = False
    read_only: bool = False
    is_training: bool = False
    training_case: str | None = None  # the protocol's training case id (training reads only)


@dataclass(frozen=True)
class SignInPolicy:
    """Which readers must sign in with a passphrase (``Store.sign_in_policy``)."""

    with_passphrase: tuple[str, ...]  # reader ids
    without_passphrase: tuple[str, ...]

    @property
    def all_protected(self) -> bool:
        """Whether every reader has a passphrase."""
        return not self.without_passphrase

    def summary(self) -> str:
        """One sentence for ``study status`` and the report."""
        if not self.without_passphrase:
            return "every reader signs in with a passphrase"
        risk = (
            "anyone at a workstation can pick them, and answers are attributed to whoever was "
            "picked (set one with `blindreader study readers set-passphrase`)"
        )
        if not self.with_passphrase:
            return f"no reader has a passphrase: {risk}"
        return f"readers without a passphrase: {', '.join(self.without_passphrase)}: {risk}"


@dataclass(frozen=True)
class AnswerRecord:
    """What ``record_answer`` stored (the newest revision)."""

    key: AnswerKey
    value: AnswerValue
    revision: int  # 1 for the first answer, +1 for each change
    recorded_at: datetime
    reason: str | None = None  # why a completed case's answer was changed


__all__ = [
    "DEFAULT_SERIES_LABEL",
    "EVENT_KINDS",
    "AnswerKey",
    "AnswerRecord",
    "AnswerValue",
    "AssignmentView",
    "ReaderInfo",
    "SeriesImages",
    "SessionInfo",
    "Side",
    "SideImages",
    "SignInPolicy",
]
