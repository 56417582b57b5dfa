"""The reading view: the hanging (one or more series, each on one pane or two linked ones), the
question panel, Previous / Next and the save status.

Keys are routed here wherever the focus is in the view, so the hint is true everywhere: arrows
and Page Up / Down scroll the active series, digits answer the highlighted question (also while
the focus is on an image), Tab / Shift+Tab move between questions from the highlighted one,
Enter asks for the next case (refused, with the missing rows marked, while required answers are
missing), Shift+Enter goes back one case. A text or number box being typed in keeps its keys,
except Enter, Tab and the slice keys. ``?`` shows every key.
"""

from __future__ import annotations

from PySide6.QtCore import QElapsedTimer, QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent, QResizeEvent
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from reader_app import measure_tools
from reader_app.controller import ReadingController
from reader_app.questions import SIDE_LABELS
from reader_app.state import ReadingState
from reader_app.training import TrainingFeedback
from reader_app.widgets.feedback_panel import FeedbackPanel
from reader_app.widgets.hanging import HangingArea
from reader_app.widgets.image_pane import ImagePane
from reader_app.widgets.keys import KEYS_HINT, image_key
from reader_app.widgets.question_panel import AnswerRow, QuestionPanel, likert_legend
from reader_app.widgets.reason_prompt import ReasonPrompt
from reader_app.widgets.shortcut_overlay import ShortcutOverlay
from reader_app.widgets.theme import set_style_property
from studies.api import AnswerKey, AnswerValue, AssignmentView
from studies.protocol import MEASUREMENT_TYPES

PANEL_WIDTH = 420
#: Enter within this long after a case opened, before anything was answered, is taken for the
#: second press of a double Enter and ignored.
ENTER_GUARD_MS = 400

_DIGITS = {int(getattr(Qt.Key, f"Key_{d}")): d for d in range(10)}
_ARROWS = {
    int(Qt.Key.Key_Left): (-1, 0),
    int(Qt.Key.Key_Right): (1, 0),
    int(Qt.Key.Key_Up): (0, -1),
    int(Qt.Key.Key_Down): (0, 1),
}
#: The legend under the question list while a measurement question is current.
MEASURE_LEGEND = (
    "Drag on the image to draw \u00b7 drag it to move, its corners to resize \u00b7 "
    "E place \u00b7 Shift+arrows move \u00b7 , . size \u00b7 G its slice \u00b7 Del delete \u00b7 "
    "middle-drag pans"
)
_NEXT_KEYS = (Qt.Key.Key_Return, Qt.Key.Key_Enter)


class _KeyRouter(QObject):
    """Application-wide filter: key presses for a widget inside the reading view go to it."""

    def __init__(self, view: ReadingView) -> None:
        super().__init__(view)
        self._view = view

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.Type.KeyPress or not isinstance(event, QKeyEvent):
            return False
        view = self._view
        if not view.isVisible() or QApplication.activeModalWidget() is not None:
            return False
        focus = QApplication.focusWidget()
        target = focus if focus is not None else watched
        # Only the first delivery (to the focus widget); ignored events propagate to parents.
        if target is not watched or not isinstance(target, QWidget):
            return False
        inside = target is view or view.isAncestorOf(target)
        if not inside and (focus is not None or target is not view.window()):
            return False
        return view.route_key(event, focus)


class ReadingView(QWidget):
    """Hanging + question panel + Previous / Next for the current assignment."""

    def __init__(
        self, state: ReadingState, controller: ReadingController, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("readingView")
        self.state = state
        self.controller = controller
        protocol = controller.protocol
        n_sides = 2 if controller.design == "paired" else 1
        self._opened = QElapsedTimer()
        self._opened.start()
        self._answered_since_open = False

        self.panes = HangingArea(state, n_sides, protocol.hanging.grid, self)
        drawn = {q.id: q for q in protocol.questions if q.type in MEASUREMENT_TYPES}
        if drawn:
            self.panes.enable_measurements(drawn, self._drawn)

        self.case_label = QLabel("", self)
        self.case_label.setObjectName("caseLabel")
        self.session_label = QLabel("", self)
        self.session_label.setObjectName("sessionLabel")
        self.keys_button = QPushButton("Keys  ?", self)
        self.keys_button.setToolTip("Every key of the reading view (?)")
        self.keys_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.pause_button = QPushButton("Pause", self)
        self.pause_button.setToolTip("Back to the session list (answers are already saved)")
        self.pause_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.pause_button.clicked.connect(controller.back_to_worklist)
        header = QHBoxLayout()
        header.setContentsMargins(10, 6, 10, 4)
        header.addWidget(self.case_label)
        header.addSpacing(10)
        header.addWidget(self.session_label)
        header.addStretch(1)
        header.addWidget(self.keys_button)
        header.addWidget(self.pause_button)

        self.panel = QuestionPanel(state, self._answer, self)
        self.feedback = FeedbackPanel(self)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.panel)
        self.stack.addWidget(self.feedback)
        self.legend = QLabel("", self)
        self.legend.setObjectName("legendBar")
        self.legend.setWordWrap(True)
        self.message = QLabel("", self)
        self.message.setObjectName("message")
        self.message.setWordWrap(True)
        self.message.setProperty("kind", "info")
        self.save_status = QLabel("", self)
        self.save_status.setObjectName("saveStatus")
        metrics = self.save_status.fontMetrics()
        self.save_status.setMinimumWidth(metrics.horizontalAdvance("Saving 99 answers\u2026 ") + 8)
        self.save_status.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.remaining = QLabel("", self)
        self.remaining.setObjectName("remaining")
        self.remaining.setWordWrap(True)
        self.previous_button = QPushButton("\u25c0  Previous", self)
        self.previous_button.setObjectName("previousButton")
        self.previous_button.setToolTip("The case before this one (Shift+Enter)")
        self.previous_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.previous_button.clicked.connect(self.request_previous)
        self.next_button = QPushButton("Next  \u23ce", self)
        self.next_button.setObjectName("nextButton")
        self.next_button.setToolTip("Save and go to the next case (Enter)")
        self.next_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.next_button.clicked.connect(self.request_next)
        status = QHBoxLayout()
        status.setContentsMargins(10, 2, 10, 0)
        status.addWidget(self.remaining, 1)
        status.addWidget(self.save_status)
        footer = QHBoxLayout()
        footer.setContentsMargins(10, 4, 10, 6)
        footer.addWidget(self.previous_button)
        footer.addStretch(1)
        footer.addWidget(self.next_button)

        side = QWidget(self)
        side.setObjectName("sideColumn")
        side.setFixedWidth(PANEL_WIDTH)
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.setSpacing(0)
        side_layout.addLayout(header)
        side_layout.addWidget(self.stack, 1)
        side_layout.addWidget(self.legend)
        side_layout.addWidget(self.message)
        side_layout.addLayout(status)
        side_layout.addLayout(footer)
        self.keys_hint = QLabel(KEYS_HINT, self)
        self.keys_hint.setObjectName("hint")
        self.keys_hint.setWordWrap(True)
        self.keys_hint.setContentsMargins(10, 0, 10, 6)
        side_layout.addWidget(self.keys_hint)
        self.message.setContentsMargins(10, 4, 10, 0)
        self.legend.setContentsMargins(10, 4, 10, 2)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.panes, 1)
        layout.addWidget(side)

        self.overlay = ShortcutOverlay(self, measuring=bool(drawn))
        self.keys_button.clicked.connect(self.overlay.toggle)
        self.reason_prompt = ReasonPrompt(self)
        controller.reason_provider = lambda _view: self.reason_prompt.ask()

        self._router = _KeyRouter(self)
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self._router)

        state.assignment_changed.connect(self._assignment_changed)
        state.answer_changed.connect(self._answers_changed)
        state.answer_changed.connect(self._note_answered)
        state.saving_changed.connect(self._saving_changed)
        state.message_changed.connect(self._message_changed)
        self.panel.current_changed.connect(self._current_row_changed)
        controller.missing_answers.connect(self.panel.mark_missing)
        controller.training_feedback.connect(self._feedback_changed)
        controller.busy_changed.connect(lambda _busy: self._saving_changed())
        if state.assignment is not None:
            self._assignment_changed(state.assignment)

    # -- observing the state ------------------------------------------------------------------
    def _assignment_changed(self, view: AssignmentView | None) -> None:
        if view is None:
            return
        self._opened.restart()
        self._answered_since_open = False
        slots = self.controller.answer_slots()
        if [s.key for s in slots] != list(self.panel.rows):  # a case with other series
            self.panel.build(self.controller.protocol, slots)
        label = view.display_label
        if view.is_training:
            label += "  (training)"
        self.case_label.setText(label)
        state_text = "finished, view only" if view.read_only else ""
        if not view.read_only and view.completed:
            state_text = "completed: changes need a reason"
        self.session_label.setText(
            f"Session {view.session_index}" + (f"  \u00b7  {state_text}" if state_text else "")
        )
        self.previous_button.setEnabled(view.position > 1)
        self._answers_changed()
        self._saving_changed()
        self.panel.focus_first()

    def _answers_changed(self, *_: object) -> None:
        view = self.state.assignment
        if view is None:
            return
        last_open = not view.read_only and not view.completed and view.position == view.n_in_session
        self.next_button.setText("Finish session  \u23ce" if last_open else "Next  \u23ce")
        if self.state.read_only:
            self.remaining.setText("View only")
            ready = True
        else:
            missing = len(self.controller.missing_required())
            ready = missing == 0
            if ready:
                action = "finish the session" if last_open else "the next case"
                self.remaining.setText(f"Ready: Enter for {action}")
            else:
                noun = "answer" if missing == 1 else "answers"
                self.remaining.setText(f"{missing} required {noun} to go")
        set_style_property(self.next_button, "ready", ready)

    def _note_answered(self, *_: object) -> None:
        self._answered_since_open = True

    def _saving_changed(self) -> None:
        pending = len(self.state.pending)
        if self.controller.busy:
            text, kind = "Saving the case\u2026", "pending"
        elif pending:
            noun = "answer" if pending == 1 else "answers"
            text, kind = f"Saving {pending} {noun}\u2026", "pending"
        elif self.state.assignment is not None and self.state.read_only:
            text, kind = "", "saved"
        else:
            text, kind = "All answers saved \u2713", "saved"
        self.save_status.setText(text)
        set_style_property(self.save_status, "kind", kind)

    def _message_changed(self, text: str) -> None:
        self.message.setText(text)
        set_style_property(self.message, "kind", self.state.message_kind)

    def _current_row_changed(self, row: AnswerRow | None) -> None:
        """The legend of the highlighted question stays in view below the list; a measurement
        row makes the panes draw its shape."""
        for other in self.panel.rows.values():
            if other is not row and other.shape_buttons:
                other.show_shape("")  # only the row being drawn shows its tool
        if row is not None and row.question.type in MEASUREMENT_TYPES:
            shapes = row.question.roi_shapes
            shape = self.state.measure_shape if self.state.measure_shape in shapes else shapes[0]
            self.state.set_measuring(row.key, shape)
            row.show_shape(shape)
        else:
            self.state.set_measuring(None)
        if row is None:
            self.legend.setText("")
            return
        question = row.question
        if question.type in MEASUREMENT_TYPES:
            self.legend.setText(MEASURE_LEGEND)
        elif question.type == "likert" and question.labels:
            where = f"{row.slot.label}: " if row.slot.label else ""
            self.legend.setText(where + likert_legend(question))
        elif question.type == "preference":
            self.legend.setText("1 Left  \u00b7  2 Equal  \u00b7  3 Right")
        elif question.type == "number":
            unit = f" in {question.unit}" if question.unit else ""
            self.legend.setText(f"Type a number{unit}; Tab or Enter saves it")
        elif question.type == "text":
            self.legend.setText("Type your text; Tab saves it, Esc undoes the typing")
        elif question.scope == "side" and row.key.side is not None:
            self.legend.setText(SIDE_LABELS[row.key.side])
        else:
            self.legend.setText("1\u20139 choose \u00b7 Tab next question")

    def _feedback_changed(self, feedback: TrainingFeedback | None) -> None:
        if feedback is None:
            self.stack.setCurrentWidget(self.panel)
            self.legend.show()
            self.next_button.setText("Next  \u23ce")
            return
        self.feedback.show_feedback(feedback)
        self.stack.setCurrentWidget(self.feedback)
        self.legend.hide()
        self.next_button.setText("Continue  \u23ce")
        self.remaining.setText("Training case done")

    # -- actions ------------------------------------------------------------------------------
    def _answer(self, key: AnswerKey, value: AnswerValue) -> None:
        if self.controller.protocol.question(key.question_id).type in MEASUREMENT_TYPES:
            self.controller.set_measurement(key, value if isinstance(value, dict) else None)
        else:
            self.controller.set_answer(key, value)

    def _drawn(self, key: AnswerKey, geometry: object) -> None:
        """A pane's ROI / ruler was drawn or edited: record it (and its mirror)."""
        if isinstance(geometry, dict):
            self.controller.set_measurement(key, geometry)

    def _measure_pane(self) -> ImagePane | None:
        """The pane of the active cell that keyboard measuring acts on (the key's side)."""
        key = self.state.measure_key
        cell = self.panes.active_cell()
        if key is not None and key.finding_id is not None:  # per series: the cell showing it
            cell = next(
                (c for c in self.panes.cells if c.label == key.finding_id and not c.isHidden()),
                cell,
            )
        panes = cell.panes
        if key is None or not panes:
            return None
        pane = panes[1] if key.side == "right" and len(panes) > 1 else panes[0]
        return pane if pane.has_image and pane.roi is not None else None

    def _measure_key(self, key: int, mods: Qt.KeyboardModifier) -> bool:
        """E / F place a shape at the pane's centre, Shift+arrows move it, , and . size it,
        G goes to its slice, Delete removes it (while a measurement question is current)."""
        pane = self._measure_pane()
        if pane is None or pane.roi is None or self.state.read_only:
            return False
        answer_key = pane.roi.key()
        if answer_key is None:
            return False
        question = self.controller.protocol.question(answer_key.question_id)
        stored = pane.roi.stored(answer_key)
        rows, cols = pane.image_shape()
        shift = bool(mods & Qt.KeyboardModifier.ShiftModifier)
        geometry = None
        if key in (Qt.Key.Key_E, Qt.Key.Key_F) and not shift:
            shape = "line" if question.type == "distance" else "ellipse"
            if key == Qt.Key.Key_F:
                if "freehand" not in question.roi_shapes:
                    return False
                shape = "freehand"
            elif shape not in question.roi_shapes:
                shape = question.roi_shapes[0]
            points = measure_tools.default_shape(shape, cols, rows, pane.centre_point())
            geometry = (shape, points)
        elif key == Qt.Key.Key_G and not shift:
            value = self.state.answers.get(answer_key)
            if not isinstance(value, dict) or value.get("series") != pane.series_label:
                return False
            pane.view.set_slice(int(value["slice"]))  # go to the slice the shape is on
            return True
        elif key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            if self.state.answers.get(answer_key) is None:
                return False
            self.controller.set_measurement(answer_key, None)
            return True
        elif stored is not None and shift and int(key) in _ARROWS:
            dx, dy = _ARROWS[int(key)]
            step = measure_tools.KEY_STEP
            points = measure_tools.move(stored["points"], dx * step, dy * step, cols, rows)
            geometry = (stored["shape"], points)
        elif stored is not None and key in (Qt.Key.Key_Comma, Qt.Key.Key_Period):
            factor = measure_tools.SCALE_STEP
            factor = factor if key == Qt.Key.Key_Period else 1.0 / factor
            geometry = (stored["shape"], measure_tools.scale(stored["points"], factor, cols, rows))
        if geometry is None:
            return False
        shape, points = geometry
        if not measure_tools.big_enough(shape, points):
            return True
        value = measure_tools.geometry(pane.series_label, pane.view.slice_index, shape, points)
        self.controller.set_measurement(answer_key, value)
        return True

    def request_next(self) -> bool:
        """Next case (False while required answers are missing or a case is being saved)."""
        row = self.panel.current_row()
        if row is not None and not row.commit_text():  # a number / text being typed
            return False
        return self.controller.next_case()

    def request_previous(self) -> bool:
        """The case before this one (False at the first case)."""
        row = self.panel.current_row()
        if row is not None and not row.commit_text():
            return False
        return self.controller.previous_case()

    def _typing_in(self, focus: QWidget | None) -> AnswerRow | None:
        """The row whose text / number box has the focus, if any."""
        if isinstance(focus, QLineEdit | QPlainTextEdit):
            row = self.panel._row_of(focus)
            if row is not None and row.line_edit is focus:
                return row
        return None

    def route_key(self, event: QKeyEvent, focus: QWidget | None) -> bool:
        """Handle a key pressed anywhere in the view; False leaves it to the focus widget."""
        key = event.key()
        mods = event.modifiers()
        shift = bool(mods & Qt.KeyboardModifier.ShiftModifier)
        ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
        if self.overlay.isVisible():
            self.overlay.hide()
            return True
        typing = self._typing_in(focus)
        if key in _NEXT_KEYS:
            if event.isAutoRepeat():
                return True
            if shift:
                self.request_previous()
            elif self._enter_is_a_repeat():
                pass
            else:
                self.request_next()
            return True
        if key in (Qt.Key.Key_Tab, Qt.Key.Key_Backtab):
            if typing is not None and not typing.commit_text():
                return True
            self.panel.step_row(-1 if key == Qt.Key.Key_Backtab or shift else 1)
            return True
        view = self.state.view
        asks_keys = key == Qt.Key.Key_Question or (key == Qt.Key.Key_Slash and shift)
        if typing is not None and asks_keys and typing.question.type == "number":
            self.overlay.toggle()  # no number has a "?" in it
            return True
        if typing is not None:
            if key in (Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_PageUp, Qt.Key.Key_PageDown):
                return image_key(view, key, mods)
            if key == Qt.Key.Key_Escape:
                typing.revert_text()
                return True
            return False  # the box types it
        if asks_keys:
            self.overlay.toggle()
            return True
        if self.state.measure_key is not None and self._measure_key(key, mods):
            return True
        if image_key(view, key, mods):
            return True
        if key in (Qt.Key.Key_BracketLeft, Qt.Key.Key_BracketRight) and not ctrl:
            self.state.step_series(-1 if key == Qt.Key.Key_BracketLeft else 1)
            return True
        if key == Qt.Key.Key_F6:
            self.state.step_cell(-1 if shift else 1)
            return True
        if ctrl and int(key) in _DIGITS and _DIGITS[int(key)] > 0:
            self.state.hang_number(_DIGITS[int(key)])
            return True
        if key == Qt.Key.Key_W and not (ctrl or shift):
            self.state.toggle_readout()
            return True
        if ctrl or mods & Qt.KeyboardModifier.AltModifier:
            return False
        return self._answer_key(key, event.text())

    def _answer_key(self, key: int, text: str) -> bool:
        """Digits and Y / N answer the highlighted row (the first unanswered one if none)."""
        if int(key) not in _DIGITS and key not in (Qt.Key.Key_Y, Qt.Key.Key_N):
            return False
        row = self.panel.current_row() or self.panel.first_unanswered()
        if row is None or self.stack.currentWidget() is not self.panel:
            return False
        if self.panel.current_row() is None:
            self.panel._set_current(row)
        if row.line_edit is not None:  # a number / text row: start typing in its box
            if int(key) in _DIGITS and not row.line_edit.isReadOnly():
                self.panel.focus_row(row)
                box = row.line_edit
                if isinstance(box, QLineEdit):
                    box.insert(text)
                else:
                    box.insertPlainText(text)
                return True
            return False
        if int(key) in _DIGITS:
            digit = _DIGITS[int(key)]
            return row.answer_by_number(10 if digit == 0 else digit)
        if row.question.type == "boolean":
            row.choose(key == Qt.Key.Key_Y)
            return True
        return False

    def _enter_is_a_repeat(self) -> bool:
        """A second Enter right after a case opened (nothing answered yet) is ignored."""
        return not self._answered_since_open and self._opened.elapsed() < ENTER_GUARD_MS

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if not self.route_key(event, QApplication.focusWidget()):
            super().keyPressEvent(event)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self.overlay.isVisible():
            self.overlay.setGeometry(self.rect())

    def shutdown(self) -> None:
        """Stop routing keys (the window is closing)."""
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self._router)
