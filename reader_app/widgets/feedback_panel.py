"""After a training case: the reader's answers beside the protocol's reference answers."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QLabel,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from reader_app.training import TrainingFeedback


class FeedbackPanel(QScrollArea):
    """Shows one :class:`TrainingFeedback` (the question panel's place while it is shown)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("feedbackPanel")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.summary = QLabel("", self)
        self.explanation = QLabel("", self)
        self.item_labels: list[tuple[QLabel, QLabel, QLabel, QLabel]] = []

    def show_feedback(self, feedback: TrainingFeedback) -> None:
        """Fill the panel with ``feedback``."""
        body = QWidget()
        body.setObjectName("questionBody")
        layout = QVBoxLayout(body)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.setSpacing(8)
        title = QLabel("Training case: the reference answers", body)
        title.setObjectName("blockTitle")
        layout.addWidget(title)
        n = len(feedback.items)
        self.summary = QLabel(
            f"{feedback.n_agree} of {n} of your answers agree with the reference."
            if n
            else "This training case has no reference answers to compare.",
            body,
        )
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        grid = QGridLayout()
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(4)
        for column, text in enumerate(("", "Yours", "Reference", "")):
            head = QLabel(text, body)
            head.setObjectName("legend")
            grid.addWidget(head, 0, column)
        self.item_labels = []
        row = 1
        group = ""
        for item in feedback.items:
            if item.group and item.group != group:
                group = item.group
                head = QLabel(group, body)
                head.setObjectName("feedbackGroup")
                head.setWordWrap(True)
                grid.addWidget(head, row, 0, 1, 4)
                row += 1
            cells = (
                QLabel(item.label, body),
                QLabel(item.given or "\u2014", body),
                QLabel(item.reference, body),
                QLabel("\u2713" if item.agrees else "\u2717", body),
            )
            cells[0].setWordWrap(True)
            if item.group:
                cells[0].setContentsMargins(10, 0, 0, 0)
            cells[3].setObjectName("agrees" if item.agrees else "differs")
            for column, cell in enumerate(cells):
                grid.addWidget(cell, row, column, Qt.AlignmentFlag.AlignTop)
            self.item_labels.append(cells)
            row += 1
        grid.setColumnStretch(0, 1)
        layout.addLayout(grid)
        self.explanation = QLabel(body)
        self.explanation.setTextFormat(Qt.TextFormat.MarkdownText)
        self.explanation.setText(feedback.explanation)
        self.explanation.setWordWrap(True)
        self.explanation.setVisible(bool(feedback.explanation.strip()))
        layout.addWidget(self.explanation)
        hint = QLabel("Enter: next case", body)
        hint.setObjectName("hint")
        layout.addWidget(hint)
        layout.addStretch(1)
        self.setWidget(body)
