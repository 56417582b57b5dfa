"""The ``?`` overlay: every key of the reading view, from the one table in ``keys.py``."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QVBoxLayout, QWidget

from reader_app.widgets.keys import SHORTCUTS


def shortcut_table(parent: QWidget, columns: int = 4) -> QWidget:
    """The shortcut groups, ``columns`` groups side by side, each a list of (keys, what)."""
    table = QWidget(parent)
    outer = QGridLayout(table)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.setHorizontalSpacing(28)
    outer.setVerticalSpacing(14)
    for index, (title, entries) in enumerate(SHORTCUTS):
        group = QWidget(table)
        grid = QGridLayout(group)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(14)
        grid.setVerticalSpacing(5)
        head = QLabel(title, group)
        head.setObjectName("groupHeader")
        grid.addWidget(head, 0, 0, 1, 2)
        for i, (keys, what) in enumerate(entries, start=1):
            key_label = QLabel(keys, group)
            key_label.setObjectName("shortcutKeys")
            grid.addWidget(key_label, i, 0, Qt.AlignmentFlag.AlignTop)
            text = QLabel(what, group)
            text.setWordWrap(True)
            text.setMinimumWidth(150)
            grid.addWidget(text, i, 1, Qt.AlignmentFlag.AlignTop)
        grid.setColumnStretch(1, 1)
        grid.setRowStretch(len(entries) + 1, 1)
        outer.addWidget(group, index // columns, index % columns, Qt.AlignmentFlag.AlignTop)
    for column in range(columns):
        outer.setColumnStretch(column, 1)
    return table


class ShortcutOverlay(QFrame):
    """Covers its parent while shown; any key or click closes it."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("shortcutOverlay")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        card = QFrame(self)
        card.setObjectName("shortcutCard")
        title = QLabel("Keys of the reading view", card)
        title.setObjectName("pageTitle")
        close = QLabel("Any key or a click closes this list.", card)
        close.setObjectName("hint")
        inner = QVBoxLayout(card)
        inner.setContentsMargins(24, 18, 24, 18)
        inner.addWidget(title)
        inner.addWidget(shortcut_table(card))
        inner.addWidget(close)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(30, 30, 30, 30)
        outer.addStretch(1)
        outer.addWidget(card, 0, Qt.AlignmentFlag.AlignHCenter)
        outer.addStretch(2)
        self.hide()

    def toggle(self) -> None:
        """Show (covering the parent) or hide."""
        if self.isVisible():
            self.hide()
            return
        parent = self.parentWidget()
        if parent is not None:
            self.setGeometry(parent.rect())
        self.raise_()
        self.show()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.hide()
        event.accept()
