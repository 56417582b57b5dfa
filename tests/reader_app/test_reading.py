"""The workstation on real study databases: keyboard reading, resume, required answers, show-if,
washout locks, read-only sessions, unreadable images and the event log."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from sqlalchemy import select

from reader_app.errors import ReaderAppError
from studies.api import AnswerKey
from studies.db.models import Event
from tests.reader_app.conftest import FakeClock

ACL = AnswerKey("likelihood", "acl")
MENISCUS = AnswerKey("likelihood", "meniscus")
QUALITY = AnswerKey("quality")
ARTIFACT = AnswerKey("artifact")
ARTIFACT_KIND = AnswerKey("artifact_kind")


def press(ws, *keys) -> None:
    """Type keys into whatever has the keyboard focus, as a reader would (a key, text, or a
    ``(key, modifiers)`` pair)."""
    for key in keys:
        target = QApplication.focusWidget() or ws.window
        if isinstance(key, str):
            ws.qtbot.keyClicks(target, key)
        elif isinstance(key, tuple):
            ws.qtbot.keyClick(target, *key)
        else:
            ws.qtbot.keyClick(target, key)


def start_session(ws, index: int = 1) -> None:
    ws.window.activateWindow()
    ws.window.picker.choose()
    assert ws.window.worklist.open_session(index)
    ws.wait_images()
    # keys typed by the test go to this window (not to one an earlier test closed)
    ws.qtbot.waitUntil(lambda: ws.window.isAncestorOf(QApplication.focusWidget()))


def answer_required(ws) -> None:
    c = ws.controller
    for key, value in ((ACL, 3), (MENISCUS, 1), (QUALITY, 4), (ARTIFACT, False)):
        assert c.set_answer(key, value)


def next_case(ws) -> None:
    """Next, and wait until the completion is written and the next case (or page) is shown."""
    assert ws.controller.next_case()
    ws.settle()


def finish_session(ws) -> None:
    while ws.state.assignment is not None:
        answer_required(ws)
        next_case(ws)


def events(store) -> list[tuple[str, str | None]]:
    with store.reading() as s:
        rows = s.execute(select(Event.kind, Event.assignment_id).order_by(Event.seq)).all()
    return [(k, a) for k, a in rows]


def test_a_whole_session_read_by_keyboard_alone(make_study, workstation):
    ws = workstation(make_study("sequential"))
    ws.window.activateWindow()
    ws.qtbot.waitUntil(lambda: QApplication.focusWidget() is not None)
    press(ws, Qt.Key.Key_Down, Qt.Key.Key_Return)  # picker: second reader
    assert ws.state.reader.reader_id == "R2"
    assert ws.window.stack.currentWidget() is ws.window.start  # the first day: instructions
    press(ws, Qt.Key.Key_Return)  # start page: to the worklist
    press(ws, Qt.Key.Key_Return)  # worklist: session 1
    seen = []
    for _ in range(4):
        ws.wait_images()
        view = ws.state.assignment
        seen.append(view.position)
        press(ws, "3", Qt.Key.Key_Tab, "2", Qt.Key.Key_Tab, "4", Qt.Key.Key_Tab, "2")
        press(ws, Qt.Key.Key_Tab, "2", Qt.Key.Key_Tab, "12", Qt.Key.Key_Tab, "ok")
        press(ws, Qt.Key.Key_Return)
        ws.settle()
        stored = ws.store.assignment(view.assignment_id)
        assert stored.completed
        assert stored.answers == {
            ACL: 3, MENISCUS: 2, QUALITY: 4, ARTIFACT: False,
            AnswerKey("confidence"): "high", AnswerKey("effusion_mm"): 12.0,
            AnswerKey("comment"): "ok",
        }  # fmt: skip
    assert seen == [1, 2, 3, 4]
    assert ws.window.stack.currentWidget() is ws.window.finished
    assert ws.window.finished.title.text() == "Session 1 finished"
    press(ws, Qt.Key.Key_Return)  # too soon after the last Enter: stays
    assert ws.window.stack.currentWidget() is ws.window.finished
    ws.qtbot.wait(700)
    press(ws, Qt.Key.Key_Return)
    assert ws.window.stack.currentWidget() is ws.window.worklist
    sessions = ws.store.sessions("R2")
    assert sessions[0].finished and sessions[0].n_done == 4
    assert "finished" in ws.window.worklist.list.item(0).text()


def test_required_answers_block_next(make_study, workstation):
    ws = workstation(make_study("sequential"))
    start_session(ws)
    first = ws.state.assignment
    ws.controller.set_answer(ACL, 4)
    press(ws, Qt.Key.Key_Return)
    ws.settle()
    assert ws.state.assignment.assignment_id == first.assignment_id
    assert not ws.store.assignment(first.assignment_id).completed
    assert "3 required answers are missing" in ws.reading.message.text()
    assert ws.panel.rows[MENISCUS].property("missing") is True
    assert ws.panel.rows[ACL].property("missing") is False
    assert ws.panel.current_row() is ws.panel.rows[MENISCUS]
    answer_required(ws)
    assert ws.reading.request_next()
    ws.settle()
    assert ws.state.assignment.position == 2


def test_show_if_hides_and_requires(make_study, workstation):
    ws = workstation(make_study("sequential"))
    start_session(ws)
    kind = ws.panel.rows[ARTIFACT_KIND]
    assert kind.isHidden()
    answer_required(ws)
    assert ws.controller.missing_required() == []
    ws.controller.set_answer(ARTIFACT, True)
    assert not kind.isHidden()
    assert ws.controller.missing_required() == [ARTIFACT_KIND]
    assert not ws.controller.next_case()
    kind.answer_by_number(2)  # aliasing
    ws.settle()
    assert ws.store.assignment(ws.state.assignment.assignment_id).answers[ARTIFACT_KIND] == [
        "aliasing"
    ]
    ws.controller.set_answer(ARTIFACT, False)
    assert kind.isHidden()
    next_case(ws)


def test_resume_after_closing_mid_case(make_study, workstation):
    db = make_study("sequential")
    ws = workstation(db)
    start_session(ws)
    answer_required(ws)
    next_case(ws)
    second = ws.state.assignment
    ws.controller.set_answer(ACL, 2)
    ws.close()  # closing writes what is queued

    again = workstation(db)
    start_session(again)
    assert again.state.assignment.assignment_id == second.assignment_id
    assert again.panel.rows[ACL].value == 2
    assert again.panel.rows[ACL].buttons[1].isChecked()
    assert again.panel.rows[MENISCUS].value is None
    kinds = [k for k, a in events(again.store) if a == second.assignment_id]
    assert kinds[:3] == ["case_opened", "answer_set", "case_closed"]
    assert kinds[-1] == "case_opened"


def test_locked_session_cannot_be_opened_until_the_washout_ends(
    make_study, workstation, artifacts_dir
):
    clock = FakeClock()
    ws = workstation(make_study("sequential", washout=28), clock=clock)
    ws.window.picker.choose()
    item = ws.window.worklist.list.item(1)
    assert not item.flags() & Qt.ItemFlag.ItemIsEnabled  # locked: earlier session unfinished
    assert not ws.window.worklist.open_session(2)
    start_session(ws)
    finish_session(ws)
    item = ws.window.worklist.list.item(1)
    assert "opens on 29 Nov 2026" in item.text()
    assert ws.window.stack.currentWidget() is ws.window.finished
    assert "Session 2 opens on 29 Nov 2026" in ws.window.finished.detail.text()
    ws.window.grab().save(str(artifacts_dir / "session-finished.png"))
    ws.controller.show_worklist()
    assert "Session 1 finished" in ws.window.worklist.message.text()
    assert ws.window.worklist.message.property("kind") == "info"  # calm, not the warning colour
    ws.window.grab().save(str(artifacts_dir / "worklist-washout.png"))
    assert not item.flags() & Qt.ItemFlag.ItemIsEnabled
    try:
        ws.controller.open_session(2)
    except ReaderAppError as exc:
        assert "opens on 29 Nov 2026" in str(exc)
    else:
        raise AssertionError("a locked session opened")
    assert not ws.window.worklist.open_session(2)
    assert "opens on" in ws.window.worklist.message.text()
    assert ws.state.assignment is None
    clock.advance(days=28)
    ws.controller.refresh_sessions()
    assert ws.window.worklist.list.item(1).flags() & Qt.ItemFlag.ItemIsEnabled
    assert ws.window.worklist.open_session(2)
    assert ws.state.assignment.session_index == 2


def test_a_finished_session_is_read_only(make_study, workstation):
    ws = workstation(make_study("sequential", washout=0))
    start_session(ws)
    finish_session(ws)
    assert ws.window.worklist.open_session(2)  # session 1 reopens after the last one only
    finish_session(ws)
    assert ws.window.worklist.open_button.text() == "View"
    assert ws.window.worklist.open_session(1)
    ws.wait_images()
    view = ws.state.assignment
    assert view.read_only and view.position == 1
    row = ws.panel.rows[ACL]
    assert row.value == 3
    assert not row.buttons[0].isEnabled()
    row.setFocus()
    press(ws, "1")
    assert not ws.controller.set_answer(ACL, 1)
    assert ws.store.assignment(view.assignment_id).answers[ACL] == 3
    assert ws.reading.remaining.text() == "View only"
    for position in (2, 3, 4):
        next_case(ws)
        assert ws.state.assignment.position == position
    next_case(ws)
    assert ws.window.stack.currentWidget() is ws.window.worklist


def test_unreadable_dicom_shows_a_message_and_keeps_answers(make_study, workstation, caplog):
    db = make_study("sequential")
    ws = workstation(db)
    ws.window.picker.choose()
    first = ws.store.next_assignment("R1", 1)
    broken = first.sides[0].files[2]
    broken.write_bytes(b"this is not DICOM")
    assert ws.window.worklist.open_session(1)
    ws.qtbot.waitUntil(lambda: "could not be shown" in ws.reading.message.text(), timeout=5000)
    text = ws.reading.message.text()
    assert "not DICOM" in text
    assert broken.name not in text and broken.parent.name not in text
    assert any(str(broken) in r.getMessage() for r in caplog.records)
    assert not any(p.has_image for p in ws.reading.panes.panes)
    answer_required(ws)  # the reader can still answer; nothing is lost
    ws.settle()
    assert ws.store.assignment(first.assignment_id).answers[QUALITY] == 4
    next_case(ws)
    ws.wait_images()  # the next case decodes normally


def test_focus_idle_and_window_events_are_recorded(make_study, workstation):
    ws = workstation(make_study("sequential"), idle_ms=80, window_event_ms=40)
    start_session(ws)
    aid = ws.state.assignment.assignment_id
    ws.controller.set_focused(False)
    ws.controller.set_focused(True)
    ws.qtbot.wait(150)  # idle
    ws.qtbot.keyClick(ws.reading.panes.panes[0], Qt.Key.Key_Down)  # activity ends it
    view = ws.state.view
    for step in range(5):  # a drag: many changes, few events
        view.set_window(type(view.window)(view.window.center + step, view.window.width))
    ws.qtbot.wait(120)
    ws.settle()
    kinds = [k for k, a in events(ws.store) if a == aid]
    assert kinds[0] == "case_opened"
    for kind in ("focus_lost", "focus_gained", "idle_started", "idle_ended"):
        assert kind in kinds
    assert kinds.index("focus_lost") < kinds.index("focus_gained")
    assert kinds.index("idle_started") < kinds.index("idle_ended")
    assert 1 <= kinds.count("window_level_changed") <= 2
    assert ws.store.verify_events() == []


def test_a_number_out_of_range_is_refused_with_a_message(make_study, workstation):
    ws = workstation(make_study("sequential"))
    start_session(ws)
    answer_required(ws)
    row = ws.panel.rows[AnswerKey("effusion_mm")]
    row.line_edit.setFocus()
    press(ws, "75", Qt.Key.Key_Return)
    ws.settle()
    assert "Effusion depth: enter a number from 0 to 50" in ws.reading.message.text()
    assert ws.state.assignment.position == 1  # Enter did not leave the case
    assert (
        AnswerKey("effusion_mm")
        not in ws.store.assignment(ws.state.assignment.assignment_id).answers
    )
    row.line_edit.clear()
    press(ws, "7.5", Qt.Key.Key_Tab)
    ws.settle()
    aid = ws.state.assignment.assignment_id
    assert ws.store.assignment(aid).answers[AnswerKey("effusion_mm")] == 7.5


def test_active_time_excludes_focus_loss_and_idle(make_study, workstation):
    clock = FakeClock()
    ws = workstation(make_study("sequential"), clock=clock, idle_ms=600_000)
    start_session(ws)
    aid = ws.state.assignment.assignment_id
    answer_required(ws)
    # Events carry the time the writer commits them (milliseconds after the fact): the test
    # lets each be written before it moves its clock on.
    ws.settle()
    clock.advance(seconds=10)
    ws.controller.set_focused(False)
    ws.settle()
    clock.advance(seconds=100)
    ws.controller.set_focused(True)
    ws.settle()
    clock.advance(seconds=5)
    ws.controller.mark_idle()  # what the idle timer does after the threshold
    ws.settle()
    clock.advance(seconds=300)
    ws.qtbot.keyClick(ws.reading.panes.panes[0], Qt.Key.Key_Down)  # idle_ended
    ws.settle()
    clock.advance(seconds=2)
    next_case(ws)
    assert ws.store.active_ms(aid) == 17_000  # 10 + 5 + 2 s; focus loss and idle excluded


def test_paired_case_read_by_keyboard_with_linked_panes(make_study, workstation):
    ws = workstation(make_study("paired"))
    start_session(ws)
    view = ws.state.assignment
    left, right = ws.reading.panes.panes
    ws.qtbot.keyClick(left, Qt.Key.Key_Down)
    assert left.slice_counter_text() == right.slice_counter_text() == "4 / 6"
    ws.panel.focus_first()
    press(ws, "2", Qt.Key.Key_Tab, "4", Qt.Key.Key_Tab, "3")  # left 2, right 4, prefer right
    reason = ws.panel.rows[AnswerKey("reason")]
    assert not reason.isHidden()
    press(ws, Qt.Key.Key_Return)  # blocked: the reason is now required
    assert ws.state.assignment.assignment_id == view.assignment_id
    assert ws.panel.current_row() is reason  # the focus went to what is missing
    press(ws, "1", Qt.Key.Key_Return)
    ws.settle()
    stored = ws.store.assignment(view.assignment_id)
    assert stored.completed
    assert stored.answers == {
        AnswerKey("quality", side="left"): 2, AnswerKey("quality", side="right"): 4,
        AnswerKey("preference"): "right", AnswerKey("reason"): "sharp",
    }  # fmt: skip
    assert ws.state.assignment.position == 2


def test_a_database_failure_is_shown_and_the_app_keeps_running(make_study, workstation):
    import sqlite3

    db = make_study("sequential")
    ws = workstation(db)
    start_session(ws)
    assert ws.controller.set_answer(ACL, 3)
    ws.settle()
    with sqlite3.connect(db) as con:  # the store loses its answer table under the viewer
        con.execute("ALTER TABLE answer RENAME TO answer_gone")
    assert ws.controller.set_answer(MENISCUS, 2)  # shown at once, as being saved
    assert ws.panel.rows[MENISCUS].property("pending") is True
    ws.settle()
    # (the store turns database errors into a StudyError that says nothing was stored)
    assert "refused the write (no such table: answer)" in ws.reading.message.text()
    assert ws.panel.rows[MENISCUS].value is None  # the panel shows what is stored
    assert ws.panel.rows[MENISCUS].property("pending") is False
    with sqlite3.connect(db) as con:
        con.execute("ALTER TABLE answer_gone RENAME TO answer")
    assert ws.controller.set_answer(MENISCUS, 2)
    ws.settle()
    assert ws.reading.message.text() == ""
    assert ws.store.assignment(ws.state.assignment.assignment_id).answers[MENISCUS] == 2
