"""The reading view: image panes (one, or two linked), the question panel and Next.

Enter asks for the next case (refused, with the missing rows marked, while required answers are
missing); Page Up / Page Down scroll slices wherever the focus is.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from reader_app.controller import ReadingController
from reader_app.images import CaseImages
from reader_app.state import ReadingState
from reader_app.widgets.image_pane import PRESET_KEYS
from reader_app.widgets.linked_panes import LinkedPanes
from reader_app.widgets.question_panel import QuestionPanel
from studies.api import AnswerKey, AnswerValue, AssignmentView

PANEL_WIDTH = 440
KEYS_HINT = (
    "Images: wheel or \u2191\u2193 slices \u00b7 Ctrl+wheel zoom \u00b7 drag pan \u00b7 "
    "right-drag window \u00b7 F1\u2013F3 presets \u00b7 double-click reset.  "
    "Questions: 1\u20139 answer \u00b7 Tab next question \u00b7 Enter next case."
)


class ReadingView(QWidget):
    """Panes + question panel + Next for the current assignment."""

    def __init__(
        self, state: ReadingState, controller: ReadingController, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("readingView")
        self.state = state
        self.controller = controller
        n_sides = 2 if controller.design == "paired" else 1

        self.panes = LinkedPanes(state.view, n_sides, self)

        self.case_label = QLabel("", self)
        self.case_label.setObjectName("caseLabel")
        self.session_label = QLabel("", self)
        self.session_label.setObjectName("sessionLabel")
        self.pause_button = QPushButton("Pause", self)
        self.pause_button.setToolTip("Back to the session list (answers are already saved)")
        self.pause_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.pause_button.clicked.connect(controller.back_to_worklist)
        header = QHBoxLayout()
        header.setContentsMargins(10, 6, 10, 4)
        header.addWidget(self.case_label)
        header.addSpacing(12)
        header.addWidget(self.session_label)
        header.addStretch(1)
        header.addWidget(self.pause_button)

        self.panel = QuestionPanel(state, self._answer, self)
        self.remaining = QLabel("", self)
        self.remaining.setObjectName("remaining")
        self.message = QLabel("", self)
        self.message.setObjectName("message")
        self.message.setWordWrap(True)
        self.next_button = QPushButton("Next  \u23ce", self)
        self.next_button.setObjectName("nextButton")
        self.next_button.setToolTip("Save and go to the next case (Enter)")
        self.next_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.next_button.clicked.connect(self.request_next)
        footer = QHBoxLayout()
        footer.setContentsMargins(10, 6, 10, 8)
        footer.addWidget(self.remaining, 1)
        footer.addWidget(self.next_button)

        side = QWidget(self)
        side.setObjectName("sideColumn")
        side.setFixedWidth(PANEL_WIDTH)
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.setSpacing(0)
        side_layout.addLayout(header)
        side_layout.addWidget(self.panel, 1)
        side_layout.addWidget(self.message)
        side_layout.addLayout(footer)
        self.keys_hint = QLabel(KEYS_HINT, self)
        self.keys_hint.setObjectName("hint")
        self.keys_hint.setWordWrap(True)
        self.keys_hint.setContentsMargins(10, 0, 10, 8)
        side_layout.addWidget(self.keys_hint)
        self.message.setContentsMargins(10, 4, 10, 0)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.panes, 1)
        layout.addWidget(side)

        for key, step in ((Qt.Key.Key_PageUp, -1), (Qt.Key.Key_PageDown, 1)):
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.activated.connect(lambda s=step: state.view.step_slice(s))
        for preset_key, name in PRESET_KEYS.items():
            shortcut = QShortcut(QKeySequence(preset_key), self)
            shortcut.activated.connect(lambda n=name: state.view.apply_preset(n))

        state.assignment_changed.connect(self._assignment_changed)
        state.images_changed.connect(self._images_changed)
        state.answer_changed.connect(self._answers_changed)
        state.message_changed.connect(self.message.setText)
        controller.missing_answers.connect(self.panel.mark_missing)
        if state.assignment is not None:
            self._assignment_changed(state.assignment)

    # -- observing the state ------------------------------------------------------------------
    def _assignment_changed(self, view: AssignmentView | None) -> None:
        if view is None:
            return
        if not self.panel.rows:
            self.panel.build(self.controller.protocol, self.controller.answer_slots())
        label = view.display_label
        if view.is_training:
            label += "  (training)"
        self.case_label.setText(label)
        state_text = "finished, view only" if view.read_only else ""
        self.session_label.setText(
            f"Session {view.session_index}" + (f"  ·  {state_text}" if state_text else "")
        )
        self.next_button.setText("Next  \u23ce")
        self._answers_changed()
        self.panel.focus_first()

    def _images_changed(self, images: CaseImages | None) -> None:
        self.panes.set_images(images)

    def _answers_changed(self, *_: object) -> None:
        if self.state.assignment is None:
            return
        if self.state.read_only:
            self.remaining.setText("View only")
            ready = True
        else:
            missing = len(self.controller.missing_required())
            ready = missing == 0
            if ready:
                self.remaining.setText("Ready: Enter for the next case")
            else:
                noun = "answer" if missing == 1 else "answers"
                self.remaining.setText(f"{missing} required {noun} to go")
        if self.next_button.property("ready") != ready:
            self.next_button.setProperty("ready", ready)
            self.next_button.style().unpolish(self.next_button)
            self.next_button.style().polish(self.next_button)

    # -- actions ------------------------------------------------------------------------------
    def _answer(self, key: AnswerKey, value: AnswerValue) -> None:
        self.controller.set_answer(key, value)

    def request_next(self) -> bool:
        """Next case (False while required answers are missing)."""
        row = self.panel.current_row()
        if row is not None and not row.commit_text():  # a number / text being typed
            return False
        return self.controller.next_case()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.request_next()
            event.accept()
            return
        super().keyPressEvent(event)
