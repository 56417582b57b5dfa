"""Writes off the GUI thread, on a real study file: while another process holds the SQLite write
lock the window stays responsive and shows the answer as being saved; it says saved only after
the commit; Next waits for the answers before it; closing writes what is queued, and a write
that fails while closing is reported, never dropped."""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from reader_app.writer import StoreWriter
from tests.reader_app.test_reading import ACL, MENISCUS, answer_required, start_session


class WriteLock:
    """Another process's write transaction on the study file (``BEGIN IMMEDIATE``)."""

    def __init__(self, db) -> None:
        self.con = sqlite3.connect(db, timeout=5, check_same_thread=False, isolation_level=None)
        self.con.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.con.execute("ROLLBACK")
        self.con.close()

    def release_after(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, self.release)
        timer.start()
        return timer


def stored(ws):
    with sqlite3.connect(ws.store.source) as con:
        return {
            (q, f): v
            for q, f, v in con.execute("select question_id, finding_id, value_json from answer")
        }


def test_a_locked_database_keeps_the_window_responsive_and_says_saved_only_after_commit(
    make_study, workstation
):
    db = make_study("sequential")
    ws = workstation(db)
    start_session(ws)
    lock = WriteLock(db)
    try:
        started = time.monotonic()
        assert ws.controller.set_answer(ACL, 4)  # returns at once
        assert time.monotonic() - started < 0.2
        row = ws.panel.rows[ACL]
        assert row.value == 4 and row.property("pending") is True
        assert ws.reading.save_status.text() == "Saving 1 answer\u2026"
        ticks = []
        timer = QTimer()
        timer.timeout.connect(lambda: ticks.append(time.monotonic()))
        timer.start(20)
        view = ws.state.view
        before = view.slice_index
        ws.qtbot.wait(600)  # the GUI thread runs on while the writer waits for the lock
        view.step_slice(1)
        assert view.slice_index == before + 1
        assert ws.reading.panes.panes[0].slice_counter_text().startswith(f"{before + 2} /")
        timer.stop()
        assert len(ticks) >= 15 and max(b - a for a, b in itertools.pairwise(ticks)) < 0.25
        assert ("likelihood", "acl") not in stored(ws)  # not committed: not "saved"
        assert row.property("pending") is True
    finally:
        lock.release()
    ws.settle()
    assert stored(ws)[("likelihood", "acl")] == "4"
    assert row.property("pending") is False
    assert ws.reading.save_status.text() == "All answers saved \u2713"


def test_next_waits_for_the_answers_and_completes_after_them(make_study, workstation):
    db = make_study("sequential")
    ws = workstation(db)
    start_session(ws)
    first = ws.state.assignment
    lock = WriteLock(db)
    releaser = lock.release_after(0.8)
    answer_required(ws)
    assert ws.reading.request_next()
    assert ws.controller.busy and ws.reading.save_status.text() == "Saving the case\u2026"
    assert not ws.reading.request_next()  # a second Next while saving does nothing
    assert ws.state.images is None  # the black frame
    ws.settle()
    releaser.join()
    assert ws.store.assignment(first.assignment_id).completed
    assert ws.state.assignment.position == 2
    assert ws.store.verify_events() == []


def test_closing_writes_what_is_queued(make_study, workstation):
    db = make_study("sequential")
    ws = workstation(db)
    start_session(ws)
    lock = WriteLock(db)
    releaser = lock.release_after(0.8)
    assert ws.controller.set_answer(ACL, 2)
    assert ws.controller.set_answer(MENISCUS, 3)
    ws.close()  # the drain waits for the lock
    releaser.join()
    with sqlite3.connect(db) as con:
        rows = dict(con.execute("select finding_id, value_json from answer"))
    assert rows == {"acl": "2", "meniscus": "3"}


def test_a_write_that_fails_while_closing_is_reported(make_study, workstation):
    db = make_study("sequential")
    ws = workstation(db)
    start_session(ws)
    ws.settle()
    lock = WriteLock(db)
    assert ws.controller.set_answer(ACL, 2)
    reports = []

    def break_and_release():
        lock.con.execute("ALTER TABLE answer RENAME TO answer_gone")  # inside the lock
        lock.con.execute("COMMIT")
        lock.con.close()

    def read_report():
        box = next((w for w in QApplication.topLevelWidgets()
                    if isinstance(w, QMessageBox) and w.isVisible()), None)  # fmt: skip
        if box is None:
            QTimer.singleShot(50, read_report)
            return
        reports.append(box.text())
        box.accept()

    threading.Timer(0.5, break_and_release).start()
    QTimer.singleShot(50, read_report)
    ws.close()
    assert len(reports) == 1
    assert "answer likelihood[finding=acl]: StudyError" in reports[0]
    assert "refused the write (no such table: answer)" in reports[0]
    assert "tell the study coordinator" in reports[0]


def test_the_writer_runs_jobs_in_order_off_the_gui_thread(qtbot):
    writer = StoreWriter()
    threads, done, failed = [], [], []
    for i in range(5):
        writer.submit(
            f"job {i}",
            lambda i=i: threads.append(threading.current_thread().name) or i,
            lambda result: done.append((result, threading.current_thread().name)),
        )

    def boom():
        raise ValueError("disk on fire")

    writer.submit("boom", boom, on_error=lambda exc: failed.append(str(exc)))
    assert not writer.idle
    assert writer.drain(5.0)
    assert threads == ["blindreader-writer"] * 5
    assert done == [(i, threading.main_thread().name) for i in range(5)]
    assert failed == ["disk on fire"] and writer.errors == [("boom", "ValueError: disk on fire")]
    gate = threading.Event()
    writer.submit("slow", gate.wait)
    assert not writer.drain(0.2)  # still waiting: reported as not drained
    gate.set()
    assert writer.shutdown(5.0)
    with pytest.raises(RuntimeError, match="shut down"):
        writer.submit("late", lambda: None)
