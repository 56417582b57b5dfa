"""The defects issue 12 found, each with the test that would have caught it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication

from reader_app.app import display_problem, probe_display
from reader_app.questions import AnswerSlot
from reader_app.widgets.main_window import MainWindow
from reader_app.widgets.question_panel import REQUIRED_MARK, AnswerRow, CommentBox
from studies.api import AnswerKey
from studies.protocol import load_protocol
from tests.reader_app.test_reading import (
    ACL,
    ARTIFACT,
    MENISCUS,
    QUALITY,
    answer_required,
    next_case,
    press,
    start_session,
)
from tests.studies.conftest import KNEE_PROTOCOL

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_a_reader_chosen_before_the_window_gets_a_working_worklist(make_study, qtbot, clock):
    """``read --reader R1`` chose the reader before the worklist listened: no title, no
    sessions, Open and Enter did nothing."""
    from reader_app.controller import ReadingController
    from studies.store import Store

    with Store.open(make_study("sequential"), clock=clock) as store:
        controller = ReadingController(store, black_frame_ms=5)
        controller.select_reader("R1")
        controller.show_worklist()
        window = MainWindow(controller)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        worklist = window.worklist
        assert window.stack.currentWidget() is worklist
        assert worklist.title.text() == "Sessions of Dr Ada Reader"
        assert worklist.list.count() == 2 and worklist.open_button.isEnabled()
        worklist.list.setFocus()
        qtbot.keyClick(worklist.list, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: controller.state.images is not None, timeout=5000)
        assert window.stack.currentWidget() is window.reading
        window.close()


def test_tab_after_clicking_the_image_moves_on_from_the_current_question(make_study, workstation):
    """Tab after a click on the image jumped to the first row, so the next digit silently
    overwrote the first answer."""
    ws = workstation(make_study("sequential"))
    start_session(ws)
    press(ws, "3", Qt.Key.Key_Tab, "2")  # ACL 3, meniscus 2; the meniscus row is current
    pane = ws.reading.panes.panes[0]
    ws.qtbot.mouseClick(pane, Qt.MouseButton.LeftButton, pos=QPoint(20, 20))
    assert QApplication.focusWidget() is pane
    meniscus = ws.panel.rows[MENISCUS]
    assert ws.panel.current_row() is meniscus and meniscus.property("current") is True
    press(ws, Qt.Key.Key_Tab, "4")  # the row after the meniscus: image quality
    ws.settle()
    answers = ws.store.assignment(ws.state.assignment.assignment_id).answers
    assert answers == {ACL: 3, MENISCUS: 2, QUALITY: 4}
    ws.qtbot.mouseClick(pane, Qt.MouseButton.LeftButton, pos=QPoint(20, 20))
    press(ws, "1")  # a digit with the focus on the image answers the highlighted row
    ws.settle()
    assert ws.store.assignment(ws.state.assignment.assignment_id).answers[QUALITY] == 1
    assert "Changed Overall image quality: Excellent \u2192 Non-diagnostic" in (
        ws.reading.message.text()
    )  # and a change is said, never silent


def test_arrow_keys_scroll_slices_wherever_the_focus_is(make_study, workstation):
    """The hint said up/down scroll the slices, but in the question panel they scrolled the
    list; digits with the focus on the image were ignored."""
    ws = workstation(make_study("sequential"))
    start_session(ws)
    assert ws.panel.current_row() is ws.panel.rows[ACL]  # the focus is in the panel
    view = ws.state.view
    start = view.slice_index
    press(ws, Qt.Key.Key_Down, Qt.Key.Key_Down, Qt.Key.Key_Up)
    assert view.slice_index == start + 1
    press(ws, Qt.Key.Key_PageDown, Qt.Key.Key_End)
    assert view.slice_index == view.n_slices - 1
    ws.panel.rows[AnswerKey("effusion_mm")].line_edit.setFocus()  # typing a number
    press(ws, "1", Qt.Key.Key_Up, "2")
    assert view.slice_index == view.n_slices - 2
    assert ws.panel.rows[AnswerKey("effusion_mm")].line_edit.text() == "12"


def test_a_double_enter_on_the_last_case_shows_session_finished(make_study, workstation):
    """A double Enter on the last case reopened the finished session view-only at case 1."""
    ws = workstation(make_study("sequential", n_cases=2))
    start_session(ws)
    answer_required(ws)
    next_case(ws)
    answer_required(ws)
    ws.reading.panel.focus_first()
    press(ws, Qt.Key.Key_Return, Qt.Key.Key_Return)
    ws.settle()
    press(ws, Qt.Key.Key_Return)
    assert ws.window.stack.currentWidget() is ws.window.finished
    assert ws.window.finished.title.text() == "Session 1 finished"
    assert ws.state.assignment is None


def test_a_double_enter_mid_session_opens_the_next_case_unmarked(make_study, workstation):
    """A double Enter mid-session opened the next case with every row amber."""
    ws = workstation(make_study("sequential"))
    start_session(ws)
    answer_required(ws)
    ws.reading.panel.focus_first()
    press(ws, Qt.Key.Key_Return, Qt.Key.Key_Return)
    ws.wait_images()
    press(ws, Qt.Key.Key_Return)  # the second press of a slow double Enter
    assert ws.state.assignment.position == 2
    assert not any(row.property("missing") for row in ws.panel.rows.values())
    assert ws.reading.message.text() == ""
    ws.qtbot.wait(450)  # a deliberate Enter later still asks for the missing answers
    press(ws, Qt.Key.Key_Return)
    assert ws.panel.rows[ACL].property("missing") is True


def test_the_reading_view_fits_a_1366x768_laptop(make_study, workstation):
    """At the fixed 1400x860 size, Next, the slice counter, Pause and the "4" column were off
    a 1366x768 screen. (The real-window test checks the same under Xvfb.)"""
    ws = workstation(make_study("sequential"))
    start_session(ws)
    ws.window.resize(1366, 768)
    QApplication.processEvents()
    inside = ws.window.rect()
    reading = ws.reading
    controls = [reading.next_button, reading.previous_button, reading.pause_button,
                reading.panes.panes[0], ws.panel.rows[ACL].buttons[3], reading.save_status,
                reading.keys_hint, reading.legend]  # fmt: skip
    for widget in controls:
        rect = widget.rect().translated(widget.mapTo(ws.window, QPoint(0, 0)))
        assert inside.contains(rect), (widget.objectName() or widget.text(), rect, inside)


def test_the_focus_cue_the_legend_the_required_mark_and_the_comment_box(
    make_study, workstation, qtbot
):
    """A 3-px focus bar; the Likert legend scrolled out of view; "*" wrapped alone; a one-line
    box for a 500-character comment; "Session finished" in the warning colour."""
    ws = workstation(make_study("sequential"))
    start_session(ws)
    row = ws.panel.rows[QUALITY]
    ws.panel.focus_row(row)
    assert row.property("current") is True
    assert 'QFrame#answerRow[current="true"]' in QApplication.instance().styleSheet()
    assert "border-left: 5px" in QApplication.instance().styleSheet()
    assert ws.reading.legend.text().startswith("1\u00a0Non-diagnostic")  # always in view
    ws.panel.focus_row(ws.panel.rows[MENISCUS])
    assert ws.reading.legend.text().startswith("Medial meniscal tear: 1\u00a0Definitely")
    assert ws.panel.rows[ARTIFACT].title.text().endswith(REQUIRED_MARK)  # no-break space
    knee = load_protocol(KNEE_PROTOCOL)
    comment = AnswerRow(AnswerSlot(AnswerKey("comment"), knee.question("comment"), ""), "Comment")
    qtbot.addWidget(comment)
    box = comment.line_edit
    assert isinstance(box, CommentBox) and box.height() > 2 * box.fontMetrics().lineSpacing()
    given = []
    comment.answer_given.connect(lambda key, value: given.append(value))
    comment.show()
    box.setFocus()
    qtbot.keyClicks(box, "meniscus")
    qtbot.keyClick(box, Qt.Key.Key_Return)  # not a new line
    assert box.text() == "meniscus"
    box.insertPlainText("x" * 600)
    assert len(box.text()) == 500  # the question's max_length
    assert comment.commit_text() and given == ["meniscus" + "x" * 492]


# The command runs in a child process (as a reader starts it), on the system clock.
@pytest.mark.system_clock
def test_no_display_is_one_clear_line(make_study, monkeypatch):
    """On a workstation without a usable display Qt aborted with a bare "Aborted"."""
    db = make_study("sequential")
    monkeypatch.setenv("DISPLAY", ":97")  # no X server there
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    problem = probe_display()
    assert problem is not None and "cannot open the display ':97'" in problem
    monkeypatch.delenv("QT_QPA_PLATFORM")
    done = subprocess.run(
        [sys.executable, "-m", "blindreader.cli", "read", "--db", str(db)],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "blindreader: error: no display: cannot open the display ':97' (no X server there, "
        "or no permission: check DISPLAY and xauth)"
    ]


def test_the_missing_xcb_libraries_are_named():
    qt_says = (
        "qt.qpa.plugin: From 6.5.0, xcb-cursor0 or libxcb-cursor0 is needed to load the Qt "
        'xcb platform plugin.\nqt.qpa.plugin: Could not load the Qt platform plugin "xcb" in '
        '"" even though it was found.\nThis application failed to start because no Qt '
        "platform plugin could be initialized.\n"
    )
    line = display_problem(qt_says, missing=["libxcb-cursor.so.0"])
    assert "cannot load libxcb-cursor.so.0" in line and "\n" not in line
    assert "sudo apt-get install -y libxcb-cursor0" in line
    assert "libxcb-cursor0 and its siblings" in display_problem(qt_says, missing=[])
    bare = display_problem("something else entirely\n")
    assert bare.startswith("the display cannot be opened") and "\n" not in bare
    assert os.environ.get("QT_QPA_PLATFORM") == "offscreen"  # the suite's own platform is kept
