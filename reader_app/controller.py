"""The reading controller: the only part of the viewer that talks to the study store.

Widgets call its methods; it records answers through :class:`studies.store.Store` the moment they
are given (one transaction each, written by the :class:`~reader_app.writer.StoreWriter` thread so
the window never waits for the database: an answer shows as *being saved* until its transaction
has committed, then as *saved*), completes assignments, moves back and forth within the open
session (a change to an already completed case asks the reader for a reason), shows the feedback
of training cases, records the event log (case opened / closed, window/level changed
(throttled), focus lost / gained, idle after 60 s), asks the prefetcher for images and updates
the :class:`ReadingState` the widgets observe. Reads stay on the GUI thread (WAL: a reader never
waits for a writer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication

from reader_app.dates import opening_text
from reader_app.errors import ReaderAppError
from reader_app.images import CaseImages, WindowLevel
from reader_app.prefetch import Prefetcher
from reader_app.questions import AnswerSlot, answer_slots, missing_required
from reader_app.signals import emit
from reader_app.state import ReadingState
from reader_app.training import TrainingFeedback, training_feedback
from reader_app.writer import StoreWriter
from studies.api import (
    AnswerKey,
    AnswerRecord,
    AnswerValue,
    AssignmentView,
    ReaderInfo,
    SessionInfo,
)
from studies.errors import StudyError
from studies.protocol import MEASUREMENT_TYPES
from studies.review import review_refusal
from studies.store import format_key, validate_value

if TYPE_CHECKING:
    from studies.protocol import Protocol
    from studies.store import Store

#: Asks the reader why an answer of a completed case changes; None: the reader cancelled.
ReasonProvider = Callable[[AssignmentView], "str | None"]
#: The reason used when no one can be asked (scripted reading).
DEFAULT_REASON = "corrected a slip"

log = logging.getLogger(__name__)

IDLE_MS = 60_000
BLACK_FRAME_MS = 60
WINDOW_EVENT_MS = 1_000
_ACTIVITY_EVENTS = {
    QEvent.Type.KeyPress,
    QEvent.Type.MouseButtonPress,
    QEvent.Type.MouseMove,
    QEvent.Type.Wheel,
}


def _not_saved(what: str, exc: BaseException) -> str:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return (
        f"{what} could not be saved ({type(exc).__name__}: {reason[:160]}). Nothing else is lost; "
        "try again, and tell the study coordinator if it persists."
    )


class _ActivityFilter(QObject):
    """Application-wide event filter: any key, click, wheel or move is reader activity."""

    def __init__(self, controller: ReadingController) -> None:
        super().__init__(controller)
        self._controller = controller

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in _ACTIVITY_EVENTS:
            self._controller.note_activity()
        return False


class ReadingController(QObject):
    """Opens a study's sessions for a reader and records everything the reader does.

    Parameters
    ----------
    store : studies.store.Store
        The open study store (the controller does not close it).
    state : ReadingState, optional
        The state the widgets observe (created when not given).
    idle_ms, black_frame_ms, window_event_ms : int
        Idle threshold, black frame between cases, throttle of window/level events.
    prefetch_capacity : int
        Cases kept decoded (the current one and the next ones).
    """

    session_finished = Signal(int)  # session index
    case_shown = Signal(str)  # assignment id whose images are now on screen
    missing_answers = Signal(object)  # list[AnswerKey] that block Next
    images_failed = Signal(str)  # message shown to the reader
    training_feedback = Signal(object)  # TrainingFeedback | None (None: feedback closed)
    busy_changed = Signal(bool)  # a completion is being written (Next / Previous wait)

    def __init__(
        self,
        store: Store,
        state: ReadingState | None = None,
        *,
        idle_ms: int = IDLE_MS,
        black_frame_ms: int = BLACK_FRAME_MS,
        window_event_ms: int = WINDOW_EVENT_MS,
        prefetch_capacity: int = 2,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.state = state if state is not None else ReadingState(self)
        self.state.set_n_cells(store.protocol.hanging.n_cells)
        self.prefetcher = Prefetcher(prefetch_capacity, self, store.protocol.window_presets)
        self.prefetcher.loaded.connect(self._images_loaded)
        self.prefetcher.failed.connect(self._images_failed)
        self.writer = StoreWriter(self)
        #: Asks why a completed case's answer changes (the reading view installs a prompt).
        self.reason_provider: ReasonProvider | None = None
        self.feedback: TrainingFeedback | None = None
        self._session_views: list[AssignmentView] = []
        self._case_open = False
        self._idle = False
        self._focused = True
        self._slots: list[AnswerSlot] = []
        self._slots_sides: tuple[int, tuple[str, ...]] = (-1, ())
        self._pending_images: str | None = None
        self._loading_images = False
        self._signed_in: set[str] = set()  # readers who gave their passphrase this session
        self._busy = False
        self._saved: dict[AnswerKey, AnswerValue] = {}  # committed answers of the open case
        self._latest: dict[AnswerKey, int] = {}  # newest write submitted per answer
        self._writes = 0
        self._visit_reason: str | None = None
        self._shut_down = False

        self._idle_timer = QTimer(self)
        self._idle_timer.setSingleShot(True)
        self._idle_timer.setInterval(idle_ms)
        self._idle_timer.timeout.connect(self.mark_idle)
        self._black_timer = QTimer(self)
        self._black_timer.setSingleShot(True)
        self._black_timer.setInterval(black_frame_ms)
        self._black_timer.timeout.connect(self._show_pending_images)
        self._window_timer = QTimer(self)
        self._window_timer.setSingleShot(True)
        self._window_timer.setInterval(window_event_ms)
        self._window_timer.timeout.connect(self._record_window)
        self.state.window_changed.connect(self._window_changed)

        self._activity = _ActivityFilter(self)
        app = QGuiApplication.instance()
        if isinstance(app, QGuiApplication):
            app.installEventFilter(self._activity)
            app.applicationStateChanged.connect(self._application_state_changed)

    # -- study --------------------------------------------------------------------------------
    @property
    def protocol(self) -> Protocol:
        """The study's protocol."""
        return self.store.protocol

    @property
    def design(self) -> str:
        """``sequential`` or ``paired``."""
        return str(self.protocol.design)

    @property
    def busy(self) -> bool:
        """Whether a completion is being written (the next case opens when it is done)."""
        return self._busy

    @property
    def settled(self) -> bool:
        """Nothing is being written and no case is waiting to open (tests, scripted reading)."""
        return not self._busy and self.writer.idle

    def readers(self) -> list[ReaderInfo]:
        """The study's readers."""
        return self.store.readers()

    def select_reader(self, reader_id: str) -> ReaderInfo:
        """Make ``reader_id`` the reader at the workstation and load their sessions.

        A reader who has not read anything yet is shown the start screen first.

        Raises
        ------
        ReaderAppError
            ``reader_id`` is not a reader of this study.
        """
        reader = next((r for r in self.readers() if r.reader_id == reader_id), None)
        if reader is None:
            known = ", ".join(r.reader_id for r in self.readers())
            raise ReaderAppError(f"--reader {reader_id!r} is not a reader of this study ({known})")
        if reader_id not in self._signed_in and self.requires_passphrase(reader_id):
            raise ReaderAppError(f"{reader.name} signs in with a passphrase")
        self.close_case()
        self.state.set_assignment(None)
        self.state.set_finished(None)
        sessions = self.store.sessions(reader.reader_id)
        self.state.set_start(not any(s.n_done for s in sessions))
        self.state.set_reader(reader)
        self.refresh_sessions()
        return reader

    def requires_passphrase(self, reader_id: str) -> bool:
        """Whether the reader signs in with a passphrase (False for an unknown reader)."""
        if all(r.reader_id != reader_id for r in self.readers()):
            return False
        return self.store.requires_passphrase(reader_id)

    def sign_in(self, reader_id: str, passphrase: str | None = None) -> ReaderInfo:
        """Check the reader's passphrase (if they have one; the attempt is logged), then select
        them.

        Raises
        ------
        ReaderAppError
            A wrong or missing passphrase, or an unknown reader.
        """
        try:
            self.store.sign_in(reader_id, passphrase)
        except StudyError as exc:
            reader = next((r for r in self.readers() if r.reader_id == reader_id), None)
            if reader is None or not passphrase:
                raise ReaderAppError(str(exc)) from None
            raise ReaderAppError(f"Wrong passphrase for {reader.name}: try again.") from None
        self._signed_in.add(reader_id)
        return self.select_reader(reader_id)

    def change_reader(self) -> None:
        """Leave the current reader (back to the reader picker)."""
        self._signed_in.clear()
        self.close_case()
        self.state.set_assignment(None)
        self.state.set_finished(None)
        self.state.set_start(False)
        self.state.set_reader(None)
        self.state.set_sessions([])

    def show_start(self) -> None:
        """Show the start screen with the protocol's instructions."""
        self.state.set_finished(None)
        self.state.set_start(True)

    def show_worklist(self) -> None:
        """Leave the start screen or the "session finished" page for the session list."""
        self.state.set_finished(None)
        self.state.set_start(False)

    def refresh_sessions(self) -> list[SessionInfo]:
        """Reload the reader's sessions and their progress into the state."""
        reader = self._reader()
        sessions = self.store.sessions(reader.reader_id)
        self.state.set_sessions(sessions)
        return sessions

    def _reader(self) -> ReaderInfo:
        if self.state.reader is None:
            raise ReaderAppError("no reader selected")
        return self.state.reader

    # -- sessions and cases -------------------------------------------------------------------
    def open_session(self, index: int) -> AssignmentView | None:
        """Open session ``index``: its first unanswered case, or (finished) its first case.

        Raises
        ------
        ReaderAppError
            The session is locked (washout or an earlier session unfinished), is finished and
            may not be viewed again yet (the protocol's ``review`` rule: not while a later
            session is still to be read), or does not exist.
        """
        reader = self._reader()
        sessions = self.refresh_sessions()
        info = next((s for s in sessions if s.index == index), None)
        if info is None:
            raise ReaderAppError(f"session {index} does not exist for this reader")
        if info.locked:
            if info.not_before is not None:
                raise ReaderAppError(
                    f"Session {index} opens on {opening_text(info.not_before)} (washout period)"
                )
            raise ReaderAppError(f"Session {index} opens when the earlier session is finished")
        refusal = review_refusal(sessions, index, self.protocol.review)
        if refusal is not None:
            raise ReaderAppError(refusal)
        self.state.set_start(False)
        self.state.set_finished(None)
        self.state.session_index = index
        self._session_views = self.store.assignments(reader.reader_id, index)
        if info.finished:
            view = self._session_views[0] if self._session_views else None
        else:
            view = self.store.next_assignment(reader.reader_id, index)
        if view is None:
            self.state.set_assignment(None)
            return None
        self.open_assignment(view)
        return view

    def open_assignment(self, view: AssignmentView) -> None:
        """Show ``view``: black frame, then its images; prefetch the next case."""
        self.close_case()
        self._set_feedback(None)
        self.state.set_message("")
        self._saved = dict(view.answers)
        self._latest = {}
        self._visit_reason = None
        self.state.set_assignment(view)
        if not view.read_only:
            self._record(
                "case_opened",
                view.assignment_id,
                {"session": view.session_index, "position": view.position},
            )
            self._case_open = True
            self._idle = False
            self._idle_timer.start()
        self._pending_images = view.assignment_id
        if not self._black_timer.isActive():  # Next started it already
            self._black_timer.start()
        upcoming = [view, *self.following(view)]  # current first: the worker decodes in order
        self.prefetcher.want(upcoming)
        if view.assignment_id in self.prefetcher.errors:
            self._images_failed(view.assignment_id, self.prefetcher.errors[view.assignment_id])

    def following(self, view: AssignmentView) -> list[AssignmentView]:
        """The session's cases after ``view``, in reading order (those to prefetch)."""
        return [v for v in self._session_views if v.position > view.position]

    def _session_now(self, view: AssignmentView) -> list[AssignmentView]:
        """The open session's assignments as stored now (completion flags up to date)."""
        self._session_views = self.store.assignments(view.reader_id, view.session_index)
        return self._session_views

    def close_case(self) -> None:
        """Record that the open case is left (not completed); safe to call twice."""
        self._flush_window_event()
        if self._case_open and self.state.assignment is not None:
            self._record("case_closed", self.state.assignment.assignment_id, {"completed": False})
        self._case_open = False
        self._idle_timer.stop()

    def back_to_worklist(self) -> None:
        """Leave the reading view; every given answer is stored (or being stored)."""
        if self._busy:
            return
        self.close_case()
        self._set_feedback(None)
        self.state.set_message("")
        self.state.set_assignment(None)
        self.state.session_index = None
        self.refresh_sessions()

    # -- answers ------------------------------------------------------------------------------
    def answer_slots(self) -> list[AnswerSlot]:
        """The answer slots of the current case's layout (one or two sides, its series)."""
        view = self.state.assignment
        n_sides = len(view.sides) if view else 1
        labels = view.sides[0].labels if view else ()
        if (n_sides, labels) != self._slots_sides:
            self._slots = answer_slots(self.protocol, n_sides, labels)
            self._slots_sides = (n_sides, labels)
        return self._slots

    def set_answer(self, key: AnswerKey, value: AnswerValue) -> bool:
        """Give an answer: shown at once as being saved, committed by the writer thread.

        Returns False (with a message) when it is refused before writing: a finished session,
        a value the question does not accept, a training case's feedback on screen, or a
        completed case whose change the reader gave no reason for. A write that fails later
        puts the stored value back and says why.
        """
        view = self.state.assignment
        if view is None or self._busy or self._shut_down:
            return False
        if view.read_only:
            self.state.set_message("This session is finished: answers can no longer be changed.")
            return False
        if self.feedback is not None:
            self.state.set_message("This training case is done: press Enter to go on.")
            return False
        question = self.protocol.question(key.question_id)
        try:
            normalised = validate_value(question, value)
        except StudyError as exc:
            self.state.set_message(str(exc))
            return False
        before = self.state.answers.get(key)
        drawn = question.type in MEASUREMENT_TYPES
        geometry = ("series", "slice", "shape", "points")
        if (
            drawn
            and isinstance(before, dict)
            and isinstance(normalised, dict)
            and all(before.get(k) == normalised[k] for k in geometry)
        ):
            return True  # the same shape (the stored one carries its values too)
        if before == normalised and isinstance(before, bool) == isinstance(normalised, bool):
            return True
        reason = None
        if view.completed:
            reason = self._reason(view)
            if reason is None:
                self.state.set_message("Not changed: a completed case needs a reason to change.")
                return False
        self._writes += 1
        token = self._writes
        self._latest[key] = token
        aid = view.assignment_id
        self.state.set_answer(key, normalised, pending=True)
        if drawn:
            what = "deleted" if normalised is None else "drawn"
            self.state.set_message(f"{self._slot_label(key)} {what}", "info")
        elif before is not None:
            self.state.set_message(
                f"Changed {self._slot_label(key)}: {self._shown(key, before)} \u2192 "
                f"{self._shown(key, normalised)}",
                "info",
            )
        else:
            self.state.set_message("")

        def saved(record: object) -> None:
            # A drawn answer comes back with what the store measured on the image.
            stored = record.value if isinstance(record, AnswerRecord) else normalised
            if self._is_open(aid):
                self._saved[key] = stored
                if self._latest.get(key) == token:
                    if stored != normalised:
                        self.state.set_answer(key, stored)
                    self.state.mark_saved(key)

        def failed(exc: BaseException) -> None:
            if not isinstance(exc, StudyError):
                log.error("answer not stored: %r", exc)
            if self._is_open(aid) and self._latest.get(key) == token:
                self.state.set_answer(key, self._saved.get(key))
                text = str(exc) if isinstance(exc, StudyError) else _not_saved("The answer", exc)
                self.state.set_message(text)

        self.writer.submit(
            f"answer {format_key(key)}",
            lambda: self.store.record_answer(aid, key, normalised, reason),
            saved,
            failed,
        )
        return True

    def set_measurement(self, key: AnswerKey, geometry: dict[str, object] | None) -> bool:
        """Record a drawn ROI / ruler (None deletes it), like any answer; the store adds what it
        measures. In the paired design a question with ``mirror = true`` gets the same geometry
        on the other side too (the same image coordinates, measured on that side's image)."""
        if not self.set_answer(key, geometry):
            return False
        question = self.protocol.question(key.question_id)
        if question.mirror and key.side is not None:
            other = AnswerKey(
                key.question_id, key.finding_id, "right" if key.side == "left" else "left"
            )
            if not self.set_answer(other, geometry):
                return False
            what = "deleted" if geometry is None else "drawn"
            self.state.set_message(f"{question.text} {what} on both images", "info")
        return True

    def _reason(self, view: AssignmentView) -> str | None:
        """Why the reader changes a completed case (asked once per visit)."""
        if self._visit_reason is None:
            provider = self.reason_provider
            answer = provider(view) if provider is not None else DEFAULT_REASON
            self._visit_reason = answer.strip() if answer and answer.strip() else None
        return self._visit_reason

    def _slot_label(self, key: AnswerKey) -> str:
        slot = next((s for s in self.answer_slots() if s.key == key), None)
        if slot is None:
            return key.question_id
        return f"{slot.question.text} ({slot.label})" if slot.label else slot.question.text

    def _shown(self, key: AnswerKey, value: AnswerValue) -> str:
        question = self.protocol.question(key.question_id)
        if question.type == "boolean":
            return "Yes" if value else "No"
        return question.label_for(value) or "none"

    def _is_open(self, assignment_id: str) -> bool:
        view = self.state.assignment
        return view is not None and view.assignment_id == assignment_id

    def missing_required(self) -> list[AnswerKey]:
        """Required answers of the current case still missing (show-if respected)."""
        if self.state.assignment is None:
            return []
        return missing_required(self.answer_slots(), self.state.answers, self.protocol)

    def _block_on_missing(self) -> bool:
        missing = self.missing_required()
        if not missing:
            return False
        count = len(missing)
        noun = "answer is" if count == 1 else "answers are"
        self.state.set_message(f"{count} required {noun} missing (marked).")
        emit(self.missing_answers, missing)
        return True

    def next_case(self) -> bool:
        """Complete the current case and open the next one (or finish the session).

        A case already completed (the reader went back to it) or of a finished session just
        moves on. Returns False, with the missing answers marked, while required answers are
        missing. The completion is written by the writer thread after every answer given
        before it; the next case opens when it has committed (:attr:`busy` meanwhile).
        """
        view = self.state.assignment
        if view is None or self._busy or self._shut_down:
            return False
        if self.feedback is not None:
            self.continue_after_feedback()
            return True
        if view.read_only or view.completed:
            if not view.read_only and self._block_on_missing():
                return False
            later = [v for v in self._session_now(view) if v.position > view.position]
            if later:
                self.open_assignment(later[0])
            else:
                self.back_to_worklist()
            return True
        if self._block_on_missing():
            return False
        reference = (
            self.protocol.training_answers(view.training_case)
            if view.is_training and view.training_case
            else None
        )
        # The black frame starts now, so the store's work happens while the screen is dark
        # (a training case with reference answers stays on screen for its feedback).
        shown = self.state.images
        if reference is None:
            self.state.set_images(None)
            self._black_timer.start()
        self._set_busy(True)
        aid = view.assignment_id

        def done(_result: object) -> None:
            self._set_busy(False)
            self._completed(view)

        def failed(exc: BaseException) -> None:
            self._set_busy(False)
            self._black_timer.stop()
            if shown is not None and self.state.images is None and self._is_open(aid):
                self.state.set_images(shown)
            if isinstance(exc, StudyError):
                self.state.set_message(str(exc))
            else:
                log.error("assignment not completed: %r", exc)
                self.state.set_message(_not_saved("The case", exc))

        self.writer.submit("completion", lambda: self.store.complete_assignment(aid), done, failed)
        return True

    def _completed(self, view: AssignmentView) -> None:
        self._flush_window_event()
        self._record("case_closed", view.assignment_id, {"completed": True})
        self._case_open = False
        self._idle_timer.stop()
        feedback = (
            training_feedback(
                self.protocol, view.assignment_id, view.training_case, self.state.answers
            )
            if view.is_training
            else None
        )
        if feedback is not None:
            self._set_feedback(feedback)
            return
        self._open_following(view)

    def continue_after_feedback(self) -> None:
        """Leave a training case's feedback for the next case."""
        view = self.state.assignment
        if self.feedback is None or view is None:
            return
        self._set_feedback(None)
        self.state.set_images(None)
        self._black_timer.start()
        self._open_following(view)

    def _set_feedback(self, feedback: TrainingFeedback | None) -> None:
        if feedback is not self.feedback:
            self.feedback = feedback
            emit(self.training_feedback, feedback)

    def _open_following(self, view: AssignmentView) -> None:
        reader = self._reader()
        following = self.store.next_assignment(reader.reader_id, view.session_index)
        if following is None:
            self.state.set_assignment(None)
            self.state.session_index = None
            self.refresh_sessions()
            self.state.set_finished(view.session_index)
            self.state.set_message(
                f"Session {view.session_index} finished: all {view.n_in_session} cases read.",
                "info",
            )
            emit(self.session_finished, view.session_index)
            return
        self.open_assignment(following)

    def previous_case(self) -> bool:
        """Go back to the case before this one in the open session (False at the first)."""
        view = self.state.assignment
        if view is None or self._busy:
            return False
        if self.feedback is not None:
            return False
        earlier = [v for v in self._session_now(view) if v.position < view.position]
        if not earlier:
            self.state.set_message("This is the first case of the session.", "info")
            return False
        self.open_assignment(earlier[-1])
        return True

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            emit(self.busy_changed, busy)

    # -- images -------------------------------------------------------------------------------
    def _images_loaded(self, images: CaseImages) -> None:
        if images.assignment_id == self._pending_images and not self._black_timer.isActive():
            self._show_pending_images()

    def _show_pending_images(self) -> None:
        aid = self._pending_images
        if aid is None:
            return
        images = self.prefetcher.get(aid)
        if images is None:
            return  # still decoding: _images_loaded shows it
        self._pending_images = None
        self._loading_images = True
        try:
            self.state.set_images(images)
        finally:
            self._loading_images = False
        emit(self.case_shown, aid)

    def _images_failed(self, assignment_id: str, message: str) -> None:
        view = self.state.assignment
        if view is None or view.assignment_id != assignment_id:
            return
        self._pending_images = None
        text = (
            f"The images of this case could not be shown: {message} "
            "Your answers are kept; please tell the study coordinator."
        )
        self.state.set_message(text)
        emit(self.images_failed, text)

    # -- events -------------------------------------------------------------------------------
    def _record(self, kind: str, assignment_id: str | None, payload: dict[str, object]) -> None:
        """Queue one event for the log (a failure is logged; it never stops the reading)."""
        reader = self.state.reader
        if reader is None or self._shut_down:
            return
        reader_id = reader.reader_id
        self.writer.submit(
            f"event {kind}",
            lambda: self.store.record_event(
                reader_id, kind, assignment_id=assignment_id, payload=payload
            ),
            on_error=lambda exc: log.error("event %s not recorded: %s", kind, exc),
        )

    def _current_open_id(self) -> str | None:
        view = self.state.assignment
        return view.assignment_id if (view is not None and self._case_open) else None

    def note_activity(self) -> None:
        """The reader did something: end an idle period and restart the idle clock."""
        aid = self._current_open_id()
        if aid is None:
            return
        if self._idle:
            self._idle = False
            self._record("idle_ended", aid, {})
        self._idle_timer.start()

    def mark_idle(self) -> None:
        """The reader has been inactive for the idle threshold (the idle timer calls this)."""
        aid = self._current_open_id()
        if aid is not None and not self._idle:
            self._idle = True
            self._record("idle_started", aid, {"after_ms": self._idle_timer.interval()})

    def set_focused(self, focused: bool) -> None:
        """The workstation window gained or lost the focus (focus loss is not reading time)."""
        if focused == self._focused:
            return
        self._focused = focused
        aid = self._current_open_id()
        if aid is not None:
            self._record("focus_gained" if focused else "focus_lost", aid, {})

    def _application_state_changed(self, app_state: Qt.ApplicationState) -> None:
        self.set_focused(app_state == Qt.ApplicationState.ApplicationActive)

    def _window_changed(self, _window: WindowLevel) -> None:
        if self._loading_images:
            return
        if self._current_open_id() is not None and not self._window_timer.isActive():
            self._window_timer.start()

    def _record_window(self) -> None:
        aid = self._current_open_id()
        if aid is None:
            return
        view = self.state.view
        window = view.window
        self._record(
            "window_level_changed",
            aid,
            {"center": round(window.center, 3), "width": round(window.width, 3)},
        )

    def _flush_window_event(self) -> None:
        if self._window_timer.isActive():
            self._window_timer.stop()
            self._record_window()

    # -- lifetime -----------------------------------------------------------------------------
    def shutdown(self, timeout_s: float = 60.0) -> list[str]:
        """Record that the open case is left, write everything queued and stop the workers
        (the window is closing); safe to call twice.

        Returns
        -------
        list of str
            What could not be saved while closing (writes that failed during the drain, or
            were still waiting for the database after ``timeout_s``); [] when all is saved.
        """
        if self._shut_down:
            return []
        self.close_case()
        self._shut_down = True
        self._black_timer.stop()
        self.prefetcher.shutdown()
        seen = len(self.writer.errors)
        drained = self.writer.shutdown(timeout_s)
        problems = [f"{what}: {text}" for what, text in self.writer.errors[seen:]]
        if not drained:
            problems.append(f"{self.writer.pending} write(s) still waiting for the database")
        app = QGuiApplication.instance()
        if app is not None:
            app.removeEventFilter(self._activity)
        return problems
