"""The main window: reader picker -> start page (first day) -> worklist -> reading view ->
"session finished", in one stacked widget.

The window fits the screen it opens on (its last size, remembered, or most of the screen, never
more than the screen's free area) and F11 toggles full screen. Closing it writes every answer
still queued before the window goes; a write that failed is shown, never dropped silently.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QRect, QSettings, QSize, Qt
from PySide6.QtGui import QCloseEvent, QGuiApplication, QKeySequence, QScreen, QShortcut
from PySide6.QtWidgets import QMainWindow, QMessageBox, QStackedWidget, QWidget

from reader_app.blinding import safe_study_title
from reader_app.controller import ReadingController
from reader_app.widgets.finished_page import FinishedPage
from reader_app.widgets.reader_picker import ReaderPicker
from reader_app.widgets.reading_view import ReadingView
from reader_app.widgets.start_page import StartPage
from reader_app.widgets.worklist import Worklist
from studies.api import AssignmentView

#: The window's share of a large screen's free area when no size is remembered.
DEFAULT_SHARE = 0.92
#: Larger than this is no help for reading (a 4K screen gets a comfortable window).
DEFAULT_MAX = QSize(1800, 1100)
#: On a screen smaller than this the window takes the whole free area.
SMALL_SCREEN = QSize(1600, 900)


def fitted_size(wanted: QSize, available: QRect) -> QSize:
    """``wanted`` shrunk to fit ``available`` (never larger than the screen's free area)."""
    return QSize(min(wanted.width(), available.width()), min(wanted.height(), available.height()))


class MainWindow(QMainWindow):
    """The reading workstation's window. Its title names the study (if neutral), the reader and
    the case's opaque label, never an arm, a patient or a file.

    Parameters
    ----------
    controller
        The reading controller.
    settings
        Where the window's size is remembered (``blindreader read`` passes the user's settings;
        None remembers nothing).
    """

    def __init__(
        self,
        controller: ReadingController,
        parent: QWidget | None = None,
        *,
        settings: QSettings | None = None,
    ) -> None:
        super().__init__(parent)
        self.controller = controller
        self.state = controller.state
        self.settings = settings
        self.study_title = safe_study_title(controller.store.study_title, controller.protocol)
        self.stack = QStackedWidget(self)
        self.picker = ReaderPicker(controller, self.stack)
        self.start = StartPage(self.state, controller, self.stack)
        self.worklist = Worklist(self.state, controller, self.stack)
        self.reading = ReadingView(self.state, controller, self.stack)
        self.finished = FinishedPage(self.state, controller, self.stack)
        for page in (self.picker, self.start, self.worklist, self.reading, self.finished):
            self.stack.addWidget(page)
        self.setCentralWidget(self.stack)
        self.fit_to_screen()
        full_screen = QShortcut(QKeySequence(Qt.Key.Key_F11), self)
        full_screen.setContext(Qt.ShortcutContext.WindowShortcut)
        full_screen.activated.connect(self.toggle_full_screen)
        for signal in (
            self.state.reader_changed,
            self.state.assignment_changed,
            self.state.start_changed,
            self.state.finished_changed,
        ):
            signal.connect(lambda *_: self._update_page())
        self._update_page()
        self._closed = False
        self._normal_geometry: QRect | None = None

    # -- size -----------------------------------------------------------------------------------
    def fit_to_screen(self, screen: QScreen | None = None) -> None:
        """Size the window for ``screen`` (default: the one it is on): the remembered size or
        most of the free area, shrunk to fit, centred."""
        screen = screen or self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return
        available = screen.availableGeometry()
        small = (
            available.width() < SMALL_SCREEN.width() or available.height() < SMALL_SCREEN.height()
        )
        share = 1.0 if small else DEFAULT_SHARE  # a laptop gives the images all it has
        wanted = QSize(
            min(int(available.width() * share), DEFAULT_MAX.width()),
            min(int(available.height() * share), DEFAULT_MAX.height()),
        )
        if self.settings is not None:
            saved = self.settings.value("window/size")
            if isinstance(saved, QSize) and saved.isValid():
                wanted = saved
        size = fitted_size(wanted, available)
        self.resize(size)
        frame = self.frameGeometry()
        frame.moveCenter(available.center())
        self.move(max(frame.left(), available.left()), max(frame.top(), available.top()))

    def toggle_full_screen(self) -> None:
        """F11: full screen, and back.

        The window covers its screen itself too: without a window manager (a bare X server, a
        kiosk) nothing else would resize it.
        """
        if self.isFullScreen():
            self.showNormal()
            if self._normal_geometry is not None:
                self.setGeometry(self._normal_geometry)
            return
        self._normal_geometry = self.geometry()
        screen = self.screen()
        if screen is not None:
            self.setGeometry(screen.geometry())
        self.showFullScreen()

    def _remember_size(self) -> None:
        if self.settings is not None and not (self.isFullScreen() or self.isMaximized()):
            self.settings.setValue("window/size", self.size())
            self.settings.sync()

    # -- pages ----------------------------------------------------------------------------------
    def _update_page(self) -> None:
        view: AssignmentView | None = self.state.assignment
        if self.state.reader is None:
            page: QWidget = self.picker
        elif view is not None:
            page = self.reading
        elif self.state.finished_session is not None:
            page = self.finished
        elif self.state.show_start:
            page = self.start
        else:
            page = self.worklist
        if self.stack.currentWidget() is not page:
            self.stack.setCurrentWidget(page)
            if page is self.reading:
                self.reading.panel.focus_first()
            else:
                page.setFocus()
        parts = ["blindreader", self.study_title]
        if self.state.reader is not None:
            parts.append(self.state.reader.name)
        if view is not None:
            parts.append(f"Session {view.session_index}, {view.display_label}")
        self.setWindowTitle("  \u2014  ".join(parts))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.ActivationChange:
            self.controller.set_focused(self.isActiveWindow())
        super().changeEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._closed:
            self._closed = True
            self._remember_size()
            problems = self.controller.shutdown()
            self.reading.shutdown()
            if problems:
                self._report_unsaved(problems)
        super().closeEvent(event)

    def _report_unsaved(self, problems: list[str]) -> None:
        lines = problems[:8] + ([f"... and {len(problems) - 8} more"] if len(problems) > 8 else [])
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Not everything was saved",
            "Some answers could not be saved to the study database:\n\n"
            + "\n".join(lines)
            + "\n\nPlease tell the study coordinator.",
            QMessageBox.StandardButton.Ok,
            self,
        )
        box.setObjectName("unsavedReport")
        box.exec()
