"""The first page: who is reading?"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from reader_app.controller import ReadingController
from reader_app.errors import ReaderAppError


class ReaderPicker(QWidget):
    """A list of the study's readers; Enter / double click / Continue selects one."""

    def __init__(self, controller: ReadingController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("readerPicker")
        self.controller = controller
        title = QLabel("Who is reading?", self)
        title.setObjectName("pageTitle")
        self.list = QListWidget(self)
        self.list.setObjectName("readerList")
        for reader in controller.readers():
            item = QListWidgetItem(reader.name, self.list)
            item.setData(Qt.ItemDataRole.UserRole, reader.reader_id)
        if self.list.count():
            self.list.setCurrentRow(0)
        self.list.itemActivated.connect(lambda _item: self.choose())
        self.continue_button = QPushButton("Continue", self)
        self.continue_button.setObjectName("continueButton")
        self.continue_button.clicked.connect(self.choose)
        hint = QLabel("Up / Down to choose, Enter to continue", self)
        hint.setObjectName("hint")

        column = QVBoxLayout()
        column.addWidget(title)
        self.list.setSizeAdjustPolicy(QListWidget.SizeAdjustPolicy.AdjustToContents)
        self.list.setMaximumHeight(480)
        column.addWidget(self.list)
        buttons = QHBoxLayout()
        buttons.addWidget(hint)
        buttons.addStretch(1)
        buttons.addWidget(self.continue_button)
        column.addLayout(buttons)
        column.addStretch(1)
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        outer.addLayout(column, 2)
        outer.addStretch(1)
        outer.setContentsMargins(40, 60, 40, 60)
        self.setFocusProxy(self.list)

    def choose(self) -> None:
        """Select the highlighted reader."""
        item = self.list.currentItem()
        if item is None:
            return
        try:
            self.controller.select_reader(str(item.data(Qt.ItemDataRole.UserRole)))
        except ReaderAppError as exc:
            self.controller.state.set_message(str(exc))

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.choose()
            event.accept()
        else:
            super().keyPressEvent(event)
