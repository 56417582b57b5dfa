"""Correcting a slip: Previous / Next within the open session, every answer editable until the
session is finished, and a change to a completed case asks for a reason (stored with the
revision); after the session is finished nothing changes."""

from __future__ import annotations

import sqlite3

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

from studies.api import AnswerKey
from tests.reader_app.test_reading import (
    ACL,
    answer_required,
    next_case,
    press,
    start_session,
)


def reasons(db) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(db) as con:
        return con.execute(
            "select a.question_id, r.value_json, r.reason from answer_revision r "
            "join answer a on a.id = r.answer_pk order by r.recorded_at, r.revision"
        ).fetchall()


def test_previous_reopens_a_completed_case_and_a_change_asks_a_reason(make_study, workstation):
    db = make_study("sequential")
    ws = workstation(db)
    asked = []
    ws.controller.reason_provider = lambda view: asked.append(view.position) or "misread"
    start_session(ws)
    first = ws.state.assignment
    answer_required(ws)
    next_case(ws)
    second = ws.state.assignment
    assert second.position == 2 and ws.reading.previous_button.isEnabled()
    ws.controller.set_answer(ACL, 2)  # the open case: no reason needed
    press(ws, Qt.Key.Key_Return)  # required answers missing: it stays
    ws.settle()
    assert ws.state.assignment.assignment_id == second.assignment_id
    press(ws, (Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier))  # Shift+Enter: back
    ws.settle()
    assert ws.state.assignment.assignment_id == first.assignment_id
    assert ws.state.assignment.completed
    assert "completed: changes need a reason" in ws.reading.session_label.text()
    assert ws.panel.rows[ACL].value == 3  # its answers are shown, and editable
    ws.panel.rows[ACL].setFocus()
    press(ws, "4")
    press(ws, Qt.Key.Key_Tab, "2")  # a second change in the same visit: asked once
    ws.settle()
    assert asked == [1]
    stored = ws.store.assignment(first.assignment_id).answers
    assert stored[ACL] == 4 and stored[AnswerKey("likelihood", "meniscus")] == 2
    assert sorted(r for r in reasons(db) if r[2]) == [
        ("likelihood", "2", "misread"), ("likelihood", "4", "misread")
    ]  # fmt: skip
    text = ws.reading.message.text()  # the reader is told what changed
    assert "Changed" in text and "Medial meniscal tear" in text
    assert "Definitely absent \u2192 Probably absent" in text
    press(ws, Qt.Key.Key_Return)  # Next from a completed case: on to case 2, the open one
    ws.settle()
    assert ws.state.assignment.assignment_id == second.assignment_id
    assert ws.state.answers[ACL] == 2  # what was given there is still there
    assert ws.store.verify_events() == []


def test_cancelling_the_reason_keeps_the_stored_answer(make_study, workstation):
    db = make_study("sequential")
    ws = workstation(db)
    ws.controller.reason_provider = lambda view: None
    start_session(ws)
    answer_required(ws)
    next_case(ws)
    assert ws.reading.request_previous()
    ws.settle()
    assert not ws.controller.set_answer(ACL, 1)
    assert ws.panel.rows[ACL].value == 3
    assert "Not changed" in ws.reading.message.text()
    ws.settle()
    assert ws.store.assignment(ws.state.assignment.assignment_id).answers[ACL] == 3


def test_the_reason_prompt_is_a_keyboard_dialog_with_a_default(make_study, workstation):
    db = make_study("sequential")
    ws = workstation(db)  # the reading view's own prompt
    start_session(ws)
    answer_required(ws)
    next_case(ws)
    assert ws.reading.request_previous()
    ws.settle()
    prompt = ws.reading.reason_prompt
    seen = []

    def accept():
        seen.append((prompt.isVisible(), prompt.reason()))
        ws.qtbot.keyClick(QApplication.focusWidget() or prompt, Qt.Key.Key_Return)
        if prompt.isVisible():  # Enter did not close it: fail, but do not hang the suite
            seen.append("still open")
            prompt.reject()

    QTimer.singleShot(50, accept)
    assert ws.controller.set_answer(ACL, 1)  # the prompt opens; Enter takes the default
    ws.settle()
    assert seen == [(True, "corrected a slip")]
    assert reasons(db)[-1] == ("likelihood", "1", "corrected a slip")


def test_previous_at_the_first_case_and_in_a_finished_session(make_study, workstation):
    ws = workstation(make_study("sequential", washout=0))
    start_session(ws)
    assert not ws.reading.previous_button.isEnabled()
    assert not ws.reading.request_previous()
    assert "first case" in ws.reading.message.text()
    for session in (1, 2):  # a finished session reopens (view only) after the last one
        if session == 2:
            ws.controller.show_worklist()
            assert ws.window.worklist.open_session(2)
            ws.settle()
        while ws.state.assignment is not None:
            answer_required(ws)
            next_case(ws)
        assert ws.window.stack.currentWidget() is ws.window.finished
    ws.controller.show_worklist()
    assert ws.window.worklist.open_session(1)  # finished: view only
    ws.settle()
    next_case(ws)
    assert ws.state.assignment.position == 2
    assert ws.reading.request_previous()
    assert ws.state.assignment.position == 1 and ws.state.read_only
    assert not ws.controller.set_answer(ACL, 1)
    assert "finished" in ws.reading.message.text()


def test_the_last_open_case_says_it_finishes_the_session(make_study, workstation):
    ws = workstation(make_study("sequential", n_cases=2))
    start_session(ws)
    answer_required(ws)
    assert ws.reading.next_button.text().startswith("Next")
    next_case(ws)
    answer_required(ws)
    assert ws.reading.next_button.text().startswith("Finish session")
    assert "finish the session" in ws.reading.remaining.text()
