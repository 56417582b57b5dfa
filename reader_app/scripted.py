"""Scripted reading for the headless demo: simulated readers drive the real workstation.

The real main window is built (offscreen when there is no display) and the real controller is
driven as a reader would: open each session from the worklist, wait for the images, answer every
shown question, press Next. What the demo's simulated reader answers comes from ``choose``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from reader_app.errors import ReaderAppError
from studies.clock import Clock, system_clock

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

    from reader_app.controller import ReadingController
    from studies.api import AnswerValue, AssignmentView
    from studies.protocol import Question

Chooser = Callable[["AssignmentView", "Question", "str | None", "str | None"], "AnswerValue"]
IMAGE_TIMEOUT_S = 30.0


#: Warnings of Qt's offscreen platform that say nothing about the reading (window hints a
#: screenless platform cannot honour); everything else still reaches stderr.
_OFFSCREEN_NOISE = ("does not support propagateSizeHints",)


def _quiet_offscreen_noise() -> None:
    from PySide6.QtCore import QMessageLogContext, QtMsgType, qInstallMessageHandler

    def handler(kind: QtMsgType, context: QMessageLogContext, message: str) -> None:
        if not any(noise in message for noise in _OFFSCREEN_NOISE):
            print(message, file=sys.stderr)

    qInstallMessageHandler(handler)


def _application() -> QApplication:
    if not any(os.environ.get(k) for k in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtWidgets import QApplication

    if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        _quiet_offscreen_noise()

    app = QApplication.instance() or QApplication(["blindreader-scripted"])
    assert isinstance(app, QApplication)
    return app


def _wait_for_images(app: QApplication, controller: ReadingController, assignment_id: str) -> None:
    from PySide6.QtCore import QEventLoop

    deadline = time.monotonic() + IMAGE_TIMEOUT_S
    state = controller.state
    while time.monotonic() < deadline:
        if state.images is not None and state.images.assignment_id == assignment_id:
            return
        if assignment_id in controller.prefetcher.errors:
            return  # the message is on screen; the reader can still answer
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
    raise ReaderAppError(f"images of assignment {assignment_id} not decoded in {IMAGE_TIMEOUT_S} s")


def _wait_settled(app: QApplication, controller: ReadingController) -> None:
    """Wait until every write has committed and the next case (if any) is open."""
    from PySide6.QtCore import QEventLoop

    deadline = time.monotonic() + IMAGE_TIMEOUT_S
    while not controller.settled:
        if time.monotonic() > deadline:
            raise ReaderAppError(f"the study database did not answer in {IMAGE_TIMEOUT_S} s")
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)


def read_study_scripted(
    db_path: Path | str,
    reader_id: str,
    choose: Chooser,
    *,
    screenshot_dir: Path | None = None,
    max_screenshots: int = 4,
    clock: Clock = system_clock,
) -> int:
    """Read every assignment of one reader, session after session, through the real viewer.

    Parameters
    ----------
    db_path : Path or str
        The study database.
    reader_id : str
        The reader to play.
    choose : callable
        ``choose(view, question, finding_id, side) -> value or None`` for every shown question
        (None leaves an optional question unanswered).
    screenshot_dir : Path, optional
        Where to save screenshots of the reading view (the first ``max_screenshots`` cases).
    max_screenshots : int
        How many screenshots to save.

    Returns
    -------
    int
        The number of assignments read.

    Raises
    ------
    ReaderAppError
        Unknown reader, a session locked by the washout, ``choose`` gave a value the question
        does not accept (the store's message) or left a required answer missing.
    """
    app = _application()
    from PySide6.QtCore import QEvent

    from reader_app.controller import ReadingController
    from reader_app.questions import is_shown
    from reader_app.widgets.main_window import MainWindow
    from reader_app.widgets.theme import apply_theme
    from studies.store import Store

    apply_theme(app)
    if screenshot_dir is not None:
        screenshot_dir.mkdir(parents=True, exist_ok=True)
    n_read = 0
    with Store.open(db_path, clock=clock) as store:
        controller = ReadingController(store, black_frame_ms=0)
        window = MainWindow(controller)
        window.resize(1400, 860)
        window.show()
        try:
            controller.select_reader(reader_id)
            protocol = controller.protocol
            while True:
                sessions = controller.refresh_sessions()
                pending = next((s for s in sessions if not s.finished), None)
                if pending is None:
                    break
                if pending.locked:
                    raise ReaderAppError(
                        f"reader {reader_id}: session {pending.index} is locked "
                        f"(opens {pending.not_before}); the scripted reader cannot go on"
                    )
                controller.show_worklist()
                if not window.worklist.open_session(pending.index):
                    raise ReaderAppError(controller.state.message)
                while controller.state.assignment is not None:
                    view = controller.state.assignment
                    _wait_for_images(app, controller, view.assignment_id)
                    for slot in controller.answer_slots():
                        if not is_shown(slot, controller.state.answers, protocol):
                            continue
                        value = choose(view, slot.question, slot.key.finding_id, slot.key.side)
                        if value is not None and not controller.set_answer(slot.key, value):
                            raise ReaderAppError(
                                f"reader {reader_id}, {view.display_label}: "
                                f"{controller.state.message}"
                            )
                    app.processEvents()
                    if screenshot_dir is not None and n_read < max_screenshots:
                        path = screenshot_dir / f"reading-{reader_id}-{n_read + 1:02d}.png"
                        window.grab().save(str(path))
                    _wait_settled(app, controller)
                    if not window.reading.request_next():
                        raise ReaderAppError(
                            f"reader {reader_id}, {view.display_label}: {controller.state.message}"
                        )
                    _wait_settled(app, controller)
                    if controller.feedback is not None:  # a training case's reference answers
                        controller.continue_after_feedback()
                    current = controller.state.assignment
                    if current is not None and current.assignment_id == view.assignment_id:
                        raise ReaderAppError(  # the completion was refused by the store
                            f"reader {reader_id}, {view.display_label}: {controller.state.message}"
                        )
                    n_read += 1
        finally:
            window.close()
            controller.shutdown()
            # The demo reads reader after reader in one process: free this reader's widgets.
            window.deleteLater()
            controller.deleteLater()
            app.sendPostedEvents(None, QEvent.Type.DeferredDelete)
            app.processEvents()
    return n_read
