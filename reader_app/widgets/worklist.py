"""The reader's sessions with progress; locked sessions say when they open, finished ones when
they can be viewed again (the protocol's ``review`` rule)."""

from __future__ import annotations

from PySide6.QtCore import Qt
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
from reader_app.dates import opening_text
from reader_app.errors import ReaderAppError
from reader_app.state import ReadingState
from reader_app.widgets.theme import set_style_property
from studies.api import SessionInfo
from studies.review import review_note, review_refusal


def session_text(session: SessionInfo, closed: str | None = None) -> str:
    """One worklist line, e.g. ``Session 1 - 12 of 40 read``; ``closed`` says when a finished
    session can be viewed again (:func:`studies.review.review_note`)."""
    head = f"Session {session.index}"
    if session.finished:
        done = f"{head}  ·  {session.n_done} of {session.n_total} read  ·  finished"
        return f"{done}  ·  {closed}" if closed is not None else f"{done} (view only)"
    if session.locked:
        if session.not_before is not None:
            return f"{head}  ·  locked: opens on {opening_text(session.not_before)}"
        return f"{head}  ·  locked: opens when session {session.index - 1} is finished"
    return f"{head}  ·  {session.n_done} of {session.n_total} read"


class Worklist(QWidget):
    """The session list; Enter / double click / Open opens the highlighted session."""

    def __init__(
        self, state: ReadingState, controller: ReadingController, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("worklist")
        self.state = state
        self.controller = controller
        self.title = QLabel("", self)
        self.title.setObjectName("pageTitle")
        self.list = QListWidget(self)
        self.list.setObjectName("sessionList")
        self.list.itemActivated.connect(lambda _item: self.open_selected())
        self.list.currentItemChanged.connect(lambda *_: self._update_buttons())
        self.open_button = QPushButton("Open", self)
        self.open_button.setObjectName("openButton")
        self.open_button.clicked.connect(self.open_selected)
        self.change_button = QPushButton("Change reader", self)
        self.change_button.clicked.connect(controller.change_reader)
        self.instructions_button = QPushButton("Instructions", self)
        self.instructions_button.setObjectName("instructionsButton")
        self.instructions_button.clicked.connect(controller.show_start)
        self.message = QLabel("", self)
        self.message.setObjectName("message")
        self.message.setWordWrap(True)
        self.message.setProperty("kind", "info")

        column = QVBoxLayout()
        column.setSpacing(10)
        column.addWidget(self.title)
        self.list.setSizeAdjustPolicy(QListWidget.SizeAdjustPolicy.AdjustToContents)
        self.list.setMaximumHeight(480)
        column.addWidget(self.list)
        column.addWidget(self.message)
        buttons = QHBoxLayout()
        buttons.addWidget(self.change_button)
        buttons.addWidget(self.instructions_button)
        buttons.addStretch(1)
        buttons.addWidget(self.open_button)
        column.addLayout(buttons)
        column.addStretch(1)
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        outer.addLayout(column, 2)
        outer.addStretch(1)
        outer.setContentsMargins(40, 60, 40, 60)
        self.setFocusProxy(self.list)
        state.sessions_changed.connect(self._show_sessions)
        state.reader_changed.connect(lambda *_: self._show_sessions(state.sessions))
        state.message_changed.connect(self._message_changed)
        # The reader may have been chosen before this page existed (``read --reader R1``).
        self._show_sessions(state.sessions)
        self._message_changed(state.message)

    def _message_changed(self, text: str) -> None:
        self.message.setText(text)
        set_style_property(self.message, "kind", self.state.message_kind)

    def _show_sessions(self, sessions: list[SessionInfo]) -> None:
        reader = self.state.reader
        self.title.setText(f"Sessions of {reader.name}" if reader is not None else "Sessions")
        self.list.clear()
        current = None
        rule = self.controller.protocol.review
        notes = [review_note(sessions, s.index, rule) for s in sessions]
        closed = [s.locked or n is not None for s, n in zip(sessions, notes, strict=True)]
        for session, note, is_closed in zip(sessions, notes, closed, strict=True):
            item = QListWidgetItem(session_text(session, note), self.list)
            item.setData(Qt.ItemDataRole.UserRole, session.index)
            if is_closed:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
            elif current is None and not session.finished:
                current = item
        if current is None and sessions:
            current = next((self.list.item(i) for i, c in enumerate(closed) if not c), None)
        if current is not None:
            self.list.setCurrentItem(current)
        self._update_buttons()

    def session_of(self, item: QListWidgetItem | None) -> SessionInfo | None:
        """The session an item stands for."""
        if item is None:
            return None
        index = item.data(Qt.ItemDataRole.UserRole)
        return next((s for s in self.state.sessions if s.index == index), None)

    def _update_buttons(self) -> None:
        session = self.session_of(self.list.currentItem())
        refusal = (
            review_refusal(self.state.sessions, session.index, self.controller.protocol.review)
            if session is not None
            else None
        )
        self.open_button.setEnabled(session is not None and not session.locked and not refusal)
        if session is not None and session.finished:
            self.open_button.setText("View")
        else:
            self.open_button.setText("Open")

    def open_selected(self) -> None:
        """Open the highlighted session (a locked one only shows why it cannot be opened)."""
        session = self.session_of(self.list.currentItem())
        if session is None:
            return
        self.open_session(session.index)

    def open_session(self, index: int) -> bool:
        """Ask the controller to open session ``index``; False (with the reason shown) if locked."""
        try:
            self.controller.open_session(index)
        except ReaderAppError as exc:
            self.state.set_message(str(exc))
            return False
        return True
