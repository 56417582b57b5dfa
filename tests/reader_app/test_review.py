"""Washout in the viewer: while a later session is pending or open, an earlier finished session
cannot be opened (it would show the other arm next to the reader's own grades); afterwards the
protocol's ``review`` rule decides."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from reader_app.errors import ReaderAppError
from tests.reader_app.conftest import write_source
from tests.reader_app.test_reading import ACL, finish_session, start_session
from tests.studies.study_factory import START, FakeClock


def enabled(ws, row: int) -> bool:
    return bool(ws.window.worklist.list.item(row).flags() & Qt.ItemFlag.ItemIsEnabled)


def refused(ws, index: int, words: str) -> None:
    """Session ``index`` cannot be opened by any route, and the reader is told why."""
    assert not ws.window.worklist.open_session(index)
    assert words in ws.window.worklist.message.text()
    with pytest.raises(ReaderAppError, match=words):
        ws.controller.open_session(index)
    assert ws.state.assignment is None


def test_session_1_stays_closed_while_session_2_is_pending_or_open(
    make_study, workstation, artifacts_dir
):
    clock = FakeClock()
    ws = workstation(make_study("sequential", washout=28), clock=clock)
    start_session(ws)
    finish_session(ws)

    # Session 2 pending (washout): session 1 is finished but closed, and the worklist says why.
    item = ws.window.worklist.list.item(0)
    assert "finished" in item.text() and "can be viewed after session 2" in item.text()
    assert not enabled(ws, 0) and not enabled(ws, 1)
    ws.window.worklist.list.setCurrentRow(0)
    assert not ws.window.worklist.open_button.isEnabled()
    ws.window.grab().save(str(artifacts_dir / "worklist-review-closed.png"))
    refused(ws, 1, "once session 2 is finished")

    # Session 2 open (washout over), not yet started, then half read.
    clock.advance(days=28)
    ws.controller.refresh_sessions()
    assert enabled(ws, 1) and not enabled(ws, 0)
    refused(ws, 1, "once session 2 is finished")
    assert ws.window.worklist.open_session(2)
    ws.wait_images()
    assert ws.controller.set_answer(ACL, 3)
    ws.controller.back_to_worklist()
    refused(ws, 1, "once session 2 is finished")

    # After the last session: view only.
    assert ws.window.worklist.open_session(2)
    finish_session(ws)
    assert enabled(ws, 0)
    assert "view only" in ws.window.worklist.list.item(0).text()
    assert ws.window.worklist.open_session(1)
    assert ws.state.assignment.read_only and ws.state.assignment.session_index == 1


def test_review_never_keeps_finished_sessions_closed(tmp_path: Path, workstation):
    protocol, cases = write_source(tmp_path, "sequential", 2, 2, 32, 0)
    text = protocol.read_text(encoding="utf-8")
    protocol.write_text(text.replace("washout_days = 0", 'washout_days = 0\nreview = "never"'))
    from studies.create import create_study

    db = tmp_path / "study.sqlite"
    create_study(protocol, cases, db, clock=FakeClock(START - timedelta(days=1)))
    ws = workstation(db)
    start_session(ws)
    finish_session(ws)
    assert ws.window.worklist.open_session(2)
    finish_session(ws)
    for index, row in ((1, 0), (2, 1)):
        assert not enabled(ws, row)
        assert "not shown again" in ws.window.worklist.list.item(row).text()
        refused(ws, index, "does not show finished sessions again")
