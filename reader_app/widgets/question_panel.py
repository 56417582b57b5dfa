"""The question panel, generated from the protocol: one row per answer slot.

Keyboard: number keys answer the current row (likert point, option number, 1 yes / 2 no,
1 left / 2 equal / 3 right), Tab / Shift+Tab move between rows, Enter asks for the next case
(the reading view routes these keys wherever the focus is). The current row stays highlighted
while the focus is on an image, so the reader always sees where a digit goes. Rows never write
anything themselves: they call the controller and then show what the reading state holds (an
answer still being saved shows in italics).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFocusEvent, QKeyEvent
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from reader_app.questions import AnswerSlot, is_shown
from reader_app.signals import emit
from reader_app.state import ReadingState
from reader_app.widgets.theme import set_style_property
from studies.api import AnswerKey, AnswerValue
from studies.protocol import MEASUREMENT_TYPES, measurement_summary

if TYPE_CHECKING:
    from studies.protocol import Protocol, Question

_DIGIT_KEYS = {int(getattr(Qt.Key, f"Key_{d}")): d for d in range(10)}
#: Text questions allowing more than this many characters get a box of several lines.
LONG_TEXT = 80
REQUIRED_MARK = "\u00a0*"  # a no-break space keeps the mark on the line of the last word


class CommentBox(QPlainTextEdit):
    """A few wrapped lines for a long text answer; Enter and Tab are the reading view's keys
    (a comment is one paragraph), leaving the box commits it."""

    committed = Signal()

    def __init__(self, max_length: int | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("answerText")
        self.max_length = max_length
        self.setTabChangesFocus(True)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.setFixedHeight(self.fontMetrics().lineSpacing() * 3 + 12)
        self.textChanged.connect(self._limit)

    def text(self) -> str:
        """The typed text."""
        return self.toPlainText()

    def setText(self, text: str) -> None:
        """Replace the text (QLineEdit's name, so rows treat both boxes alike)."""
        if text != self.toPlainText():
            self.setPlainText(text)

    def _limit(self) -> None:
        text = self.toPlainText()
        cleaned = text.replace("\n", " ")
        if self.max_length is not None:
            cleaned = cleaned[: self.max_length]
        if cleaned != text:
            cursor = self.textCursor()
            position = min(cursor.position(), len(cleaned))
            self.blockSignals(True)
            self.setPlainText(cleaned)
            self.blockSignals(False)
            cursor = self.textCursor()
            cursor.setPosition(position)
            self.setTextCursor(cursor)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            event.ignore()  # not a new line: the reading view's Next
            return
        super().keyPressEvent(event)

    def focusOutEvent(self, event: QFocusEvent) -> None:
        super().focusOutEvent(event)
        emit(self.committed)


_BOOLEAN = ((True, "Yes"), (False, "No"))
_PREFERENCE = (("left", "Left"), ("equal", "Equal"), ("right", "Right"))


def _choices(question: Question) -> list[tuple[AnswerValue, str]]:
    """(value, label) of each button of a button-type question, in key order 1, 2, ..."""
    if question.type == "likert":
        points = question.points or len(question.labels)
        return [(i, str(i)) for i in range(1, points + 1)]
    if question.type in ("choice", "multi"):
        return [(option.value, option.label) for option in question.options]
    if question.type == "boolean":
        return list(_BOOLEAN)
    if question.type == "preference":
        return list(_PREFERENCE)
    return []


def likert_legend(question: Question) -> str:
    """A likert question's anchor labels, e.g. ``1 Definitely absent   4 Definitely present``."""
    items = (
        f"{i}\u00a0{label}".replace(" ", "\u00a0") for i, label in enumerate(question.labels, 1)
    )
    return "  \u00b7  ".join(items)


class AnswerRow(QFrame):
    """One answer slot: its label and an editor (buttons, or a line edit for number / text)."""

    answer_given = Signal(object, object)  # AnswerKey, AnswerValue
    invalid = Signal(str)  # a typed value the question does not accept
    shape_chosen = Signal(str)  # a measurement row's shape button (ellipse / freehand)

    def __init__(self, slot: AnswerSlot, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.slot = slot
        self.key = slot.key
        self.question = slot.question
        self.setObjectName("answerRow")
        self.setProperty("current", False)
        self.setProperty("missing", False)
        self.setProperty("pending", False)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._value: AnswerValue = None
        self._read_only = False
        self.buttons: list[QPushButton] = []
        self._choices = _choices(self.question)
        self.line_edit: QLineEdit | CommentBox | None = None
        self.readout: QLabel | None = None  # a measurement row's values
        self.shape_buttons: dict[str, QPushButton] = {}
        self.delete_button: QPushButton | None = None

        # Per-finding / per-side rows sit under their question's title, which carries the mark.
        in_block = self.question.scope in ("finding", "side") or self.question.per == "series"
        required = REQUIRED_MARK if self.question.required and not in_block else ""
        self.title = QLabel(f"{title}{required}", self)
        self.title.setObjectName("rowTitle")
        self.title.setWordWrap(True)
        if self.question.required:
            self.title.setToolTip("Required")

        editor = QWidget(self)
        if self._choices:
            editor_layout: QHBoxLayout | QGridLayout | QVBoxLayout = self._build_buttons(editor)
        elif self.question.type in MEASUREMENT_TYPES:
            editor_layout = self._build_measurement(editor)
        else:
            editor_layout = self._build_line_edit(editor)
        editor_layout.setContentsMargins(0, 0, 0, 0)

        wide = (
            (
                self.question.type in ("choice", "multi")
                and (len(self._choices) > 3 or sum(len(label) for _, label in self._choices) > 24)
            )
            or isinstance(self.line_edit, CommentBox)
            or self.readout is not None
        )
        layout: QHBoxLayout | QVBoxLayout = QVBoxLayout(self) if wide else QHBoxLayout(self)
        layout.setContentsMargins(10, 5, 8, 5)
        layout.setSpacing(10 if not wide else 4)
        layout.addWidget(self.title, 1)
        layout.addWidget(editor, 0)

    def _build_buttons(self, editor: QWidget) -> QHBoxLayout | QGridLayout:
        many = len(self._choices) > 3 and self.question.type in ("choice", "multi")
        layout: QHBoxLayout | QGridLayout = QGridLayout(editor) if many else QHBoxLayout(editor)
        layout.setSpacing(4)
        labels = self.question.labels if self.question.type == "likert" else []
        for number, (value, label) in enumerate(self._choices, start=1):
            text = label if self.question.type == "likert" else f"{number}  {label}"
            button = QPushButton(text, editor)
            button.setObjectName("answerButton")
            button.setCheckable(True)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.setAutoDefault(False)
            if labels and number <= len(labels):
                button.setToolTip(labels[number - 1])
            if self.question.type == "likert":
                button.setFixedWidth(40)
            button.clicked.connect(self._make_click_handler(value))
            self.buttons.append(button)
            if isinstance(layout, QGridLayout):
                layout.addWidget(button, (number - 1) // 2, (number - 1) % 2)
            else:
                layout.addWidget(button)
        return layout

    def _build_measurement(self, editor: QWidget) -> QVBoxLayout:
        """Shape buttons, Delete, and the values the store measured (mean, SD, area, slice)."""
        layout = QVBoxLayout(editor)
        layout.setSpacing(2)
        tools = QHBoxLayout()
        tools.setSpacing(4)
        shapes = self.question.roi_shapes
        if len(shapes) > 1:
            for shape in shapes:
                button = QPushButton(shape.capitalize(), editor)
                button.setObjectName("answerButton")
                button.setCheckable(True)
                button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
                button.setToolTip(f"Draw a {shape} ROI (key {shape[0].upper()})")
                button.clicked.connect(lambda _=False, s=shape: emit(self.shape_chosen, s))
                self.shape_buttons[shape] = button
                tools.addWidget(button)
        tools.addStretch(1)
        delete = QPushButton("Delete", editor)
        delete.setObjectName("answerButton")
        delete.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        delete.setToolTip("Delete this measurement (Del)")
        delete.clicked.connect(lambda: emit(self.answer_given, self.key, None))
        self.delete_button = delete
        tools.addWidget(delete)
        layout.addLayout(tools)
        readout = QLabel("", editor)
        readout.setObjectName("measurementValues")
        readout.setWordWrap(True)
        layout.addWidget(readout)
        self.readout = readout
        return layout

    def show_shape(self, shape: str) -> None:
        """Check the button of the shape being drawn."""
        for name, button in self.shape_buttons.items():
            button.setChecked(name == shape)

    def measurement_text(self) -> str:
        """What the readout shows: the stored values, or how to draw."""
        value = self._value
        if isinstance(value, dict):
            if value.get("mean") is None and value.get("length_mm") is None:
                return "Measuring\u2026"
            return measurement_summary(value)
        if self.question.type == "distance":
            return "Not drawn: drag a line on the image, or press E"
        return "Not drawn: drag on the image, or press E (F: freehand)"

    def _build_line_edit(self, editor: QWidget) -> QHBoxLayout:
        layout = QHBoxLayout(editor)
        q = self.question
        if q.type == "text" and (q.max_length is None or q.max_length > LONG_TEXT):
            box = CommentBox(q.max_length, editor)
            box.committed.connect(self.commit_text)
            layout.addWidget(box)
            self.line_edit = box
            self.setFocusProxy(box)
            return layout
        line = QLineEdit(editor)
        line.setObjectName("answerText")
        if self.question.type == "number":
            # Checked on commit, not by a QValidator: a validator would swallow the Enter of an
            # out-of-range value silently, and the reader must be told why nothing was saved.
            line.setFixedWidth(110)
        else:
            line.setMinimumWidth(180)
            if self.question.max_length:
                line.setMaxLength(self.question.max_length)
        line.editingFinished.connect(self.commit_text)
        layout.addWidget(line)
        if self.question.type == "number" and self.question.unit:
            layout.addWidget(QLabel(self.question.unit, editor))
        self.line_edit = line
        self.setFocusProxy(line)
        return layout

    def _make_click_handler(self, value: AnswerValue) -> Callable[[], None]:
        def handler() -> None:
            self.choose(value)
            self._sync_buttons()  # show the stored value, whatever the click did to the button

        return handler

    # -- answering ----------------------------------------------------------------------------
    def choose(self, value: AnswerValue) -> None:
        """Answer with ``value`` (multi: toggle that option)."""
        if self._read_only:
            return
        if self.question.type == "multi":
            current = [str(v) for v in self._value] if isinstance(self._value, list) else []
            if str(value) in current:
                current.remove(str(value))
            else:
                current.append(str(value))
            order = [v for v, _ in self._choices]
            emit(self.answer_given, self.key, sorted(current, key=order.index))
        else:
            emit(self.answer_given, self.key, value)

    def answer_by_number(self, number: int) -> bool:
        """Answer with the ``number``-th choice (1-based); False if there is none."""
        if not self._choices or not 1 <= number <= len(self._choices):
            return False
        self.choose(self._choices[number - 1][0])
        return True

    def commit_text(self) -> bool:
        """Answer with the typed number / text; False (and a message) if it is not acceptable."""
        if self.line_edit is None or self._read_only:
            return True
        text = self.line_edit.text().strip()
        if self.question.type == "number":
            if not text:
                return True
            number = _parse_number(text)
            low, high = self.question.minimum, self.question.maximum
            if (
                number is None
                or (low is not None and number < low)
                or (high is not None and number > high)
            ):
                bounds = ""
                if low is not None and high is not None:
                    bounds = f" from {_format_number(low)} to {_format_number(high)}"
                elif low is not None:
                    bounds = f" of at least {_format_number(low)}"
                elif high is not None:
                    bounds = f" of at most {_format_number(high)}"
                emit(self.invalid, f"{self.question.text}: enter a number{bounds}.")
                return False
            value: AnswerValue = number
        else:
            value = text
        if value != self._value and not (value == "" and self._value is None):
            emit(self.answer_given, self.key, value)
        return True

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = int(event.key())
        if self._choices and key in _DIGIT_KEYS:
            digit = _DIGIT_KEYS[key]
            if self.answer_by_number(10 if digit == 0 else digit):
                event.accept()
                return
        if self.question.type == "boolean" and key in (int(Qt.Key.Key_Y), int(Qt.Key.Key_N)):
            self.choose(key == int(Qt.Key.Key_Y))
            event.accept()
            return
        event.ignore()  # Enter, arrows, ... go to the parent (the reading view)

    # -- display ------------------------------------------------------------------------------
    @property
    def value(self) -> AnswerValue:
        """The value shown (the stored answer)."""
        return self._value

    def set_value(self, value: AnswerValue, *, replace_text: bool = False) -> None:
        """Show ``value`` (no signal); a box being typed in keeps its text unless
        ``replace_text`` (a new case: what was typed belongs to the last one)."""
        self._value = value
        self._sync_buttons()
        if self.readout is not None:
            self.readout.setText(self.measurement_text())
            if self.delete_button is not None:
                self.delete_button.setEnabled(value is not None and not self._read_only)
        if self.line_edit is not None and (replace_text or not self.line_edit.hasFocus()):
            self.line_edit.setText("" if value is None else _format_number(value))

    def revert_text(self) -> None:
        """Throw away what is typed and show the stored value again (Esc)."""
        if self.line_edit is not None:
            self.line_edit.setText("" if self._value is None else _format_number(self._value))

    def _sync_buttons(self) -> None:
        selected = self._value if isinstance(self._value, list) else [self._value]
        for button, (value, _) in zip(self.buttons, self._choices, strict=True):
            button.setChecked(any(_same(v, value) for v in selected if v is not None))

    def set_read_only(self, read_only: bool) -> None:
        """Disable editing (a finished session)."""
        self._read_only = read_only
        for button in self.buttons:
            button.setEnabled(not read_only)
        for button in self.shape_buttons.values():
            button.setEnabled(not read_only)
        if self.delete_button is not None:
            self.delete_button.setEnabled(not read_only and self._value is not None)
        if self.line_edit is not None:
            self.line_edit.setReadOnly(read_only)

    def set_pending(self, pending: bool) -> None:
        """Show that the answer is being saved (not yet committed)."""
        if self.property("pending") != pending:
            set_style_property(self, "pending", pending)
            self.title.style().polish(self.title)

    def set_current(self, current: bool) -> None:
        """Highlight the row that number keys answer."""
        if self.property("current") != current:
            set_style_property(self, "current", current)
            self.title.style().polish(self.title)

    def set_missing(self, missing: bool) -> None:
        """Mark a required row that still needs an answer."""
        set_style_property(self, "missing", missing)


def _same(a: AnswerValue, b: AnswerValue) -> bool:
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _parse_number(text: str) -> float | None:
    try:
        number = float(text.replace(",", "."))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _format_number(value: AnswerValue) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class QuestionPanel(QScrollArea):
    """All answer rows of a case, grouped as the protocol says, with show-if applied.

    Signals
    -------
    current_changed(object)
        The current row (the one digits answer) changed; an :class:`AnswerRow` or None.
    """

    current_changed = Signal(object)

    def __init__(
        self,
        state: ReadingState,
        on_answer: Callable[[AnswerKey, AnswerValue], object],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("questionPanel")
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Tab moves between rows, not to the frame
        self.state = state
        self._on_answer = on_answer
        self._protocol: Protocol | None = None
        self.rows: dict[AnswerKey, AnswerRow] = {}
        self._headers: list[tuple[QWidget, list[AnswerRow]]] = []
        self._current: AnswerRow | None = None
        state.answer_changed.connect(self._answer_changed)
        state.assignment_changed.connect(self._assignment_changed)
        state.saving_changed.connect(self._saving_changed)
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.focusChanged.connect(self._focus_changed)

    # -- construction -------------------------------------------------------------------------
    def build(self, protocol: Protocol, slots: list[AnswerSlot]) -> None:
        """Create one row per slot (replacing any earlier rows)."""
        self._protocol = protocol
        self.rows.clear()
        self._headers.clear()
        self._current = None
        body = QWidget()
        body.setObjectName("questionBody")
        layout = QVBoxLayout(body)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(2)
        group = None
        block_question: str | None = None
        block_rows: list[AnswerRow] = []
        for slot in slots:
            question = slot.question
            if question.group and question.group != group:
                group = question.group
                header = QLabel(group.capitalize() if group.islower() else group, body)
                header.setObjectName("groupHeader")
                layout.addWidget(header)
                block_question = None
            if question.scope in ("finding", "side") or question.per == "series":
                if block_question != question.id:
                    block_question = question.id
                    block = QWidget(body)
                    block_layout = QVBoxLayout(block)
                    block_layout.setContentsMargins(10, 8, 8, 2)
                    block_layout.setSpacing(1)
                    mark = REQUIRED_MARK if question.required else ""
                    title = QLabel(f"{question.text}{mark}", block)
                    title.setObjectName("blockTitle")
                    title.setWordWrap(True)
                    block_layout.addWidget(title)
                    if question.type == "likert" and question.labels:
                        legend = QLabel(likert_legend(question), block)
                        legend.setObjectName("legend")
                        legend.setWordWrap(True)
                        block_layout.addWidget(legend)
                    layout.addWidget(block)
                    block_rows = []
                    self._headers.append((block, block_rows))
                row = AnswerRow(slot, slot.label, body)
                block_rows.append(row)
            else:
                block_question = None
                row = AnswerRow(slot, question.text, body)
                layout.addWidget(row)
                if question.type == "likert" and question.labels:
                    legend = QLabel(likert_legend(question), body)
                    legend.setObjectName("legend")
                    legend.setWordWrap(True)
                    legend.setContentsMargins(10, 0, 8, 4)
                    layout.addWidget(legend)
                    self._headers.append((legend, [row]))
                self._add_row(row)
                continue
            layout.addWidget(row)
            self._add_row(row)
        layout.addStretch(1)
        self.setWidget(body)
        self._sync_all()

    def _add_row(self, row: AnswerRow) -> None:
        self.rows[row.key] = row
        row.answer_given.connect(self._give_answer)
        row.invalid.connect(self.state.set_message)
        if row.readout is not None:
            row.shape_chosen.connect(lambda shape, r=row: self._choose_shape(r, shape))

    def _choose_shape(self, row: AnswerRow, shape: str) -> None:
        self._set_current(row)
        self.state.set_measuring(row.key, shape)
        row.show_shape(shape)

    # -- state -> view ------------------------------------------------------------------------
    def _give_answer(self, key: AnswerKey, value: AnswerValue) -> None:
        self._on_answer(key, value)
        row = self.rows.get(key)
        if row is not None:  # the controller may have refused: show what the state holds
            row.set_value(self.state.answers.get(key))

    def _answer_changed(self, key: AnswerKey, value: AnswerValue) -> None:
        row = self.rows.get(key)
        if row is not None:
            row.set_value(value)
            row.set_missing(False)
            row.set_pending(key in self.state.pending)
        self.refresh_visibility()

    def _saving_changed(self) -> None:
        for key, row in self.rows.items():
            row.set_pending(key in self.state.pending)

    def _assignment_changed(self, *_: object) -> None:
        self._sync_all()

    def _sync_all(self) -> None:
        read_only = self.state.read_only
        for key, row in self.rows.items():
            row.set_value(self.state.answers.get(key), replace_text=True)
            row.set_read_only(read_only)
            row.set_missing(False)
            row.set_pending(key in self.state.pending)
        self.refresh_visibility()
        self.verticalScrollBar().setValue(0)

    def refresh_visibility(self) -> None:
        """Show exactly the rows whose show-if rule holds."""
        if self._protocol is None:
            return
        for row in self.rows.values():
            row.setVisible(is_shown(row.slot, self.state.answers, self._protocol))
        for header, rows in self._headers:
            header.setVisible(any(not r.isHidden() for r in rows))
        if self._current is not None and self._current.isHidden():
            self._set_current(None)

    def mark_missing(self, keys: list[AnswerKey]) -> None:
        """Highlight the rows still needing an answer and move the focus to the first."""
        missing = set(keys)
        for key, row in self.rows.items():
            row.set_missing(key in missing)
        first = next((self.rows[k] for k in keys if k in self.rows), None)
        if first is not None:
            self.focus_row(first)

    def visible_rows(self) -> list[AnswerRow]:
        """Rows shown now, top to bottom."""
        return [row for row in self.rows.values() if not row.isHidden()]

    def first_unanswered(self) -> AnswerRow | None:
        """The first shown row without an answer (or the first row)."""
        rows = self.visible_rows()
        return next((r for r in rows if r.value is None), rows[0] if rows else None)

    def focus_first(self) -> None:
        """Focus the first unanswered shown row (or the first row)."""
        target = self.first_unanswered()
        if target is not None:
            self.focus_row(target)
            if target is self.visible_rows()[0]:
                self.verticalScrollBar().setValue(0)  # show the group header above it too

    def focus_row(self, row: AnswerRow) -> None:
        """Make ``row`` current and give it the keyboard focus."""
        self._set_current(row)
        row.setFocus(Qt.FocusReason.OtherFocusReason)
        self.ensureWidgetVisible(row, 0, 40)

    def step_row(self, step: int) -> AnswerRow | None:
        """Focus the row ``step`` rows after the current one (Tab: +1, Shift+Tab: -1).

        Without a current row, Tab goes to the first unanswered row. The current row stays the
        same when the focus was on an image, so Tab never jumps back to the top.
        """
        rows = self.visible_rows()
        if not rows:
            return None
        current = self.current_row()
        if current is None or current not in rows:
            target = self.first_unanswered() if step > 0 else rows[-1]
        else:
            index = rows.index(current) + step
            target = rows[max(0, min(index, len(rows) - 1))]
        if target is not None:
            self.focus_row(target)
        return target

    def current_row(self) -> AnswerRow | None:
        """The highlighted row: the one holding the keyboard focus, or the last one that did."""
        focused = self._row_of(QApplication.focusWidget())
        return focused if focused is not None else self._current

    def _row_of(self, widget: QWidget | None) -> AnswerRow | None:
        while widget is not None:
            if isinstance(widget, AnswerRow) and widget.key in self.rows:
                return widget
            widget = widget.parentWidget()
        return None

    def _set_current(self, row: AnswerRow | None) -> None:
        if row is not self._current:
            self._current = row
            for other in self.rows.values():
                other.set_current(other is row)
            emit(self.current_changed, row)

    def _focus_changed(self, _old: QWidget | None, new: QWidget | None) -> None:
        row = self._row_of(new)
        if row is not None:
            self._set_current(row)
            self.ensureWidgetVisible(row, 0, 40)
