"""The page after a session's last case: says it is finished and when the next one opens.

Its button waits a moment before Enter works, so a double Enter on the last case shows this page
instead of reopening the finished session.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeyEvent, QShowEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from reader_app.controller import ReadingController
from reader_app.dates import opening_text
from reader_app.state import ReadingState

#: Enter does nothing for this long after the page appears.
ENTER_DELAY_MS = 600


class FinishedPage(QWidget):
    """ "Session N finished", what comes next, and a button back to the session list."""

    def __init__(
        self, state: ReadingState, controller: ReadingController, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("finishedPage")
        self.state = state
        self.controller = controller
        self.title = QLabel("", self)
        self.title.setObjectName("pageTitle")
        self.detail = QLabel("", self)
        self.detail.setObjectName("finishedDetail")
        self.detail.setWordWrap(True)
        self.back_button = QPushButton("Back to the sessions  \u23ce", self)
        self.back_button.setObjectName("nextButton")
        self.back_button.setProperty("ready", True)
        self.back_button.clicked.connect(self.back)
        self._armed = QTimer(self)
        self._armed.setSingleShot(True)
        self._armed.setInterval(ENTER_DELAY_MS)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.back_button)
        column = QVBoxLayout()
        column.addStretch(1)
        column.addWidget(self.title)
        column.addWidget(self.detail)
        column.addSpacing(16)
        column.addLayout(buttons)
        column.addStretch(2)
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        outer.addLayout(column, 2)
        outer.addStretch(1)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        state.finished_changed.connect(self._finished_changed)

    def _finished_changed(self, index: int | None) -> None:
        if index is None:
            return
        self.title.setText(f"Session {index} finished")
        done = next((s for s in self.state.sessions if s.index == index), None)
        following = next((s for s in self.state.sessions if s.index == index + 1), None)
        lines = []
        if done is not None:
            lines.append(f"All {done.n_total} cases are read and saved. Thank you.")
        if following is None:
            lines.append("That was your last session.")
        elif following.locked and following.not_before is not None:
            lines.append(
                f"Session {following.index} opens on {opening_text(following.not_before)} "
                "(the washout keeps the sessions apart)."
            )
        else:
            lines.append(f"Session {following.index} can be started from the session list.")
        self.detail.setText("\n".join(lines))

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._armed.start()

    def back(self) -> None:
        """To the session list."""
        self.controller.show_worklist()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if not event.isAutoRepeat() and not self._armed.isActive():
                self.back()
            event.accept()
        else:
            super().keyPressEvent(event)
