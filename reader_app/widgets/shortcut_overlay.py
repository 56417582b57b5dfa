"""The ``?`` overlay: every key of the reading view, from the one table in ``keys.py``."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QVBoxLayout, QWidget

from reader_app.widgets.keys import SHORTCUTS

#: The group of keys that only studies with roi / distance questions need.
MEASURING_GROUP = "Measuring"


def shortcut_table(parent: QWidget, columns: int = 4, *, measuring: bool = False) -> QWidget:
    """The shortcut groups in ``columns`` columns, each a list of (keys, what).

    Groups go, in order, to the column holding the fewest entries so far (so a short group
    stacks under another short one); the measuring keys only when ``measuring``.
    """
    table = QWidget(parent)
    outer = QGridLayout(table)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.setHorizontalSpacing(28)
    stacks = [QVBoxLayout() for _ in range(columns)]
    sizes = [0] * columns
    for title, entries in SHORTCUTS:
        if title == MEASURING_GROUP and not measuring:
            continue
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
        column = sizes.index(min(sizes))
        sizes[column] += len(entries) + 1
        stacks[column].addWidget(group)  # no alignment: wrapped labels keep their height
        stacks[column].addSpacing(14)
    for column, stack in enumerate(stacks):
        stack.setContentsMargins(0, 0, 0, 0)
        stack.setSpacing(0)
        stack.addStretch(1)
        outer.addLayout(stack, 0, column)
        outer.setColumnStretch(column, 1)
    return table


class ShortcutOverlay(QFrame):
    """Covers its parent while shown; any key or click closes it."""

    def __init__(self, parent: QWidget, *, measuring: bool = False) -> None:
        super().__init__(parent)
        self.setObjectName("shortcutOverlay")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        card = QFrame(self)
        card.setObjectName("shortcutCard")
        self._card = card
        title = QLabel("Keys of the reading view", card)
        title.setObjectName("pageTitle")
        close = QLabel("Any key or a click closes this list.", card)
        close.setObjectName("hint")
        inner = QVBoxLayout(card)
        inner.setContentsMargins(24, 18, 24, 18)
        inner.addWidget(title)
        inner.addWidget(shortcut_table(card, 3 if measuring else 4, measuring=measuring))
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
        # The card is centred (aligned), so its layout is not asked the height of its wrapped
        # labels at the width it gets: ask, and keep every row whole.
        layout = self._card.layout()
        if layout is not None:
            needed = layout.totalHeightForWidth(self._card.width())
            if needed > self._card.height():
                self._card.setMinimumHeight(needed)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.hide()
        event.accept()
