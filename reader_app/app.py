"""Building the workstation: the Qt application, the store, the controller and the main window."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from reader_app.errors import ReaderAppError
from studies.clock import Clock, system_clock


def has_display() -> bool:
    """Whether Qt can open a window: a display server, or an explicit ``QT_QPA_PLATFORM``."""
    return any(os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def run_workstation(db: Path, reader_id: str | None = None, *, clock: Clock = system_clock) -> int:
    """Open the reading workstation on ``db`` and run until the window closes.

    Raises
    ------
    ReaderAppError
        No display, or ``reader_id`` is not a reader of the study.
    studies.errors.StudyError
        ``db`` is not a study database.
    """
    if not has_display() and sys.platform.startswith("linux"):
        raise ReaderAppError(
            "no display: DISPLAY / WAYLAND_DISPLAY are not set (run it on a workstation "
            "with a screen, or set QT_QPA_PLATFORM=offscreen for a headless check)"
        )
    from PySide6.QtWidgets import QApplication

    from reader_app.controller import ReadingController
    from reader_app.widgets.main_window import MainWindow
    from reader_app.widgets.theme import apply_theme
    from studies.store import Store

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("blindreader")
    apply_theme(app)
    with Store.open(db, clock=clock) as store:
        controller = ReadingController(store)
        if reader_id is not None and not controller.requires_passphrase(reader_id):
            controller.select_reader(reader_id)
        window = MainWindow(controller)
        if reader_id is not None and controller.state.reader is None:
            window.picker.preselect(reader_id)  # the passphrase is asked there
        window.show()
        code = int(app.exec())
        controller.shutdown()
    return code
