"""A reader's first page: the protocol's instructions (markdown) and the keys, then Start.

Shown after a reader who has not read anything yet is picked, and from the worklist's
Instructions button at any time.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from reader_app.controller import ReadingController
from reader_app.state import ReadingState
from reader_app.widgets.shortcut_overlay import shortcut_table
from studies.protocol import MEASUREMENT_TYPES

#: Shown when the protocol gives no instructions.
DEFAULT_INSTRUCTIONS = (
    "Read each case as you would in clinical practice and answer every question. Your answers "
    "are saved the moment you give them. You can go back with **Previous** to correct a slip "
    "until you finish the session; a case you already completed asks for a reason."
)


class StartPage(QWidget):
    """Instructions, the keys and a Start button (Enter)."""

    def __init__(
        self, state: ReadingState, controller: ReadingController, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("startPage")
        self.state = state
        self.controller = controller
        self.title = QLabel("", self)
        self.title.setObjectName("pageTitle")
        self.instructions = QLabel(self)
        self.instructions.setObjectName("instructions")
        self.instructions.setTextFormat(Qt.TextFormat.MarkdownText)
        self.instructions.setWordWrap(True)
        self.instructions.setText(controller.protocol.instructions.strip() or DEFAULT_INSTRUCTIONS)
        self.instructions.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        n_training = len(controller.protocol.training_cases)
        training = QLabel(
            (
                f"Session 1 starts with {n_training} training case"
                f"{'s' if n_training != 1 else ''}: after each you see the reference answers."
            )
            if n_training
            else "",
            self,
        )
        training.setWordWrap(True)
        training.setVisible(bool(n_training))
        keys_title = QLabel("Keys", self)
        keys_title.setObjectName("groupHeader")
        body = QWidget(self)
        body.setObjectName("startBody")
        body_layout = QVBoxLayout(body)
        body_layout.setContentsMargins(0, 0, 12, 0)
        body_layout.addWidget(self.instructions)
        body_layout.addWidget(training)
        body_layout.addSpacing(8)
        body_layout.addWidget(keys_title)
        measuring = any(q.type in MEASUREMENT_TYPES for q in controller.protocol.questions)
        body_layout.addWidget(shortcut_table(body, columns=2, measuring=measuring))
        body_layout.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setWidget(body)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.start_button = QPushButton("Start  \u23ce", self)
        self.start_button.setObjectName("nextButton")
        self.start_button.setProperty("ready", True)
        self.start_button.clicked.connect(self.start)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.start_button)
        column = QVBoxLayout()
        column.addWidget(self.title)
        column.addWidget(scroll, 1)
        column.addLayout(buttons)
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        outer.addLayout(column, 4)
        outer.addStretch(1)
        outer.setContentsMargins(30, 30, 30, 24)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        state.reader_changed.connect(self._reader_changed)
        self._reader_changed()

    def _reader_changed(self, *_: object) -> None:
        reader = self.state.reader
        self.title.setText(f"Welcome, {reader.name}" if reader is not None else "Welcome")

    def start(self) -> None:
        """Leave the start page for the session list."""
        self.controller.show_worklist()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not event.isAutoRepeat():
            self.start()
            event.accept()
        else:
            super().keyPressEvent(event)
