"""The main window: reader picker -> worklist -> reading view, in one stacked widget."""

from __future__ import annotations

from PySide6.QtCore import QEvent
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QMainWindow, QStackedWidget, QWidget

from reader_app.blinding import safe_study_title
from reader_app.controller import ReadingController
from reader_app.widgets.reader_picker import ReaderPicker
from reader_app.widgets.reading_view import ReadingView
from reader_app.widgets.worklist import Worklist
from studies.api import AssignmentView


class MainWindow(QMainWindow):
    """The reading workstation's window. Its title names the study (if neutral), the reader and
    the case's opaque label, never an arm, a patient or a file."""

    def __init__(self, controller: ReadingController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.state = controller.state
        self.study_title = safe_study_title(controller.store.study_title, controller.protocol)
        self.stack = QStackedWidget(self)
        self.picker = ReaderPicker(controller, self.stack)
        self.worklist = Worklist(self.state, controller, self.stack)
        self.reading = ReadingView(self.state, controller, self.stack)
        for page in (self.picker, self.worklist, self.reading):
            self.stack.addWidget(page)
        self.setCentralWidget(self.stack)
        self.resize(1400, 860)
        self.state.reader_changed.connect(lambda *_: self._update_page())
        self.state.assignment_changed.connect(lambda *_: self._update_page())
        self._update_page()

    def _update_page(self) -> None:
        view: AssignmentView | None = self.state.assignment
        if self.state.reader is None:
            page: QWidget = self.picker
        elif view is None:
            page = self.worklist
        else:
            page = self.reading
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
        self.controller.shutdown()
        super().closeEvent(event)
