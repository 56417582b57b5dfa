"""The quick prompt for why an answer of a completed case changes (after Previous).

Keyboard first: the first reason is chosen, Enter accepts it, Up/Down pick another, typing
gives one's own, Esc keeps the stored answer. Asked once per visit of a completed case.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QVBoxLayout,
    QWidget,
)

#: The offered reasons, the default first.
REASONS = (
    "corrected a slip",
    "looked at the images again",
    "misread the question",
)


class ReasonPrompt(QDialog):
    """Asks for the reason; :meth:`ask` returns it, or None when the reader cancels."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("reasonPrompt")
        self.setWindowTitle("Change a completed case")
        self.setModal(True)
        text = QLabel(
            "This case is already completed. Why do you change its answer?\n"
            "(Enter: the chosen reason \u00b7 Esc: keep the answer as it was)",
            self,
        )
        text.setWordWrap(True)
        self.choice = QComboBox(self)
        self.choice.setObjectName("reasonChoice")
        self.choice.setEditable(True)
        self.choice.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.choice.addItems(REASONS)
        self.choice.setCurrentIndex(0)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Change the answer")
        buttons.button(QDialogButtonBox.StandardButton.Cancel).setText("Keep it")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        line = self.choice.lineEdit()
        if line is not None:  # an editable combo box keeps Enter to itself otherwise
            line.returnPressed.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(self.choice)
        layout.addWidget(buttons)
        self.setMinimumWidth(420)

    def reason(self) -> str:
        """The chosen or typed reason."""
        return self.choice.currentText().strip()

    def ask(self) -> str | None:
        """Show the prompt; the reason, or None (cancelled or empty)."""
        self.choice.setCurrentIndex(0)
        self.choice.setFocus(Qt.FocusReason.OtherFocusReason)
        line = self.choice.lineEdit()
        if line is not None:
            line.selectAll()
        if self.exec() != QDialog.DialogCode.Accepted:
            return None
        return self.reason() or None
