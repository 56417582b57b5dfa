"""The first page: who is reading? Readers with a passphrase sign in with it."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from reader_app.controller import ReadingController
from reader_app.errors import ReaderAppError


class ReaderPicker(QWidget):
    """A list of the study's readers; Enter / double click / Continue selects one.

    A reader with a passphrase (``blindreader study readers set-passphrase``) gets a passphrase
    field under the list; Continue then signs them in through the controller, which checks the
    passphrase and logs the attempt. A wrong passphrase is said below the field and nothing else
    happens.
    """

    def __init__(self, controller: ReadingController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("readerPicker")
        self.controller = controller
        title = QLabel("Who is reading?", self)
        title.setObjectName("pageTitle")
        self.list = QListWidget(self)
        self.list.setObjectName("readerList")
        self._needs: dict[str, bool] = {}
        for reader in controller.readers():
            item = QListWidgetItem(reader.name, self.list)
            item.setData(Qt.ItemDataRole.UserRole, reader.reader_id)
            self._needs[reader.reader_id] = controller.requires_passphrase(reader.reader_id)
        self.list.itemActivated.connect(lambda _item: self.choose())
        self.passphrase_label = QLabel("Passphrase", self)
        self.passphrase = QLineEdit(self)
        self.passphrase.setObjectName("passphrase")
        self.passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase.setPlaceholderText("your passphrase")
        # (Enter in the field reaches keyPressEvent below: QLineEdit passes it on)
        self.error = QLabel("", self)
        self.error.setObjectName("signInError")
        self.error.setWordWrap(True)
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
        column.addWidget(self.passphrase_label)
        column.addWidget(self.passphrase)
        column.addWidget(self.error)
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
        self.list.currentItemChanged.connect(lambda *_: self._update_passphrase())
        if self.list.count():
            self.list.setCurrentRow(0)
        self._update_passphrase()

    def _current_reader(self) -> str | None:
        item = self.list.currentItem()
        return None if item is None else str(item.data(Qt.ItemDataRole.UserRole))

    def _update_passphrase(self) -> None:
        needs = self._needs.get(self._current_reader() or "", False)
        self.passphrase_label.setVisible(needs)
        self.passphrase.setVisible(needs)
        self.passphrase.clear()
        self.error.clear()

    def preselect(self, reader_id: str) -> None:
        """Highlight a reader (``blindreader read --reader``) and ask for their passphrase."""
        for row in range(self.list.count()):
            if self.list.item(row).data(Qt.ItemDataRole.UserRole) == reader_id:
                self.list.setCurrentRow(row)
                self.passphrase.setFocus()
                return

    def choose(self) -> None:
        """Sign in the highlighted reader (with the passphrase typed, if they have one)."""
        reader_id = self._current_reader()
        if reader_id is None or self.controller.state.reader is not None:
            return  # (one Enter can reach here twice: from the list and from this page)
        needs = self._needs.get(reader_id, False)
        if needs and not self.passphrase.text():
            self.error.setText("Type your passphrase, then press Enter.")
            self.passphrase.setFocus()
            return
        try:
            self.controller.sign_in(reader_id, self.passphrase.text() if needs else None)
        except ReaderAppError as exc:
            self.error.setText(str(exc))
            self.passphrase.selectAll()
            self.passphrase.setFocus()
            return
        self.passphrase.clear()
        self.error.clear()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if self._needs.get(self._current_reader() or "", False) and not self.passphrase.text():
                self.passphrase.setFocus()
            else:
                self.choose()
            event.accept()
        else:
            super().keyPressEvent(event)
