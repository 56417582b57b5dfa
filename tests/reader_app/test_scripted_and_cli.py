"""The headless demo path (scripted readers through the real window) and the ``read`` command."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from blindreader.cli import app
from reader_app.app import run_workstation
from reader_app.errors import ReaderAppError
from reader_app.scripted import read_study_scripted
from studies.api import AnswerKey
from studies.store import Store


def test_scripted_reader_reads_every_session(make_study, tmp_path, clock):
    db = make_study("sequential", washout=0)
    asked = []

    def choose(view, question, finding_id, side):
        asked.append((view.assignment_id, question.id, finding_id))
        return {"likert": 3, "boolean": question.id != "artifact", "multi": ["motion"]}.get(
            question.type
        )

    shots = tmp_path / "shots"
    n = read_study_scripted(db, "R2", choose, screenshot_dir=shots, max_screenshots=2, clock=clock)
    assert n == 8  # 4 cases x 2 arms, two sessions
    assert len(list(shots.glob("*.png"))) == 2
    assert not any(q == "artifact_kind" for _, q, _ in asked)  # hidden by show-if
    with Store.open(db, clock=clock) as store:
        assert all(s.finished for s in store.sessions("R2"))
        assert not any(s.n_done for s in store.sessions("R1"))
        view = store.assignments("R2", 2)[0]
        assert view.answers[AnswerKey("likelihood", "acl")] == 3


def test_scripted_reader_that_leaves_a_required_answer_is_an_error(make_study, clock):
    db = make_study("paired")
    with pytest.raises(ReaderAppError, match="required"):
        read_study_scripted(db, "R1", lambda *args: None, clock=clock)
    with Store.open(db, clock=clock) as store:
        assert store.sessions("R1")[0].n_done == 0


def test_read_without_a_display_is_a_clear_error(make_study, monkeypatch, clock):
    db = make_study("sequential")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ReaderAppError, match="no display"):
        run_workstation(db, clock=clock)
    result = CliRunner().invoke(app, ["read", "--db", str(db)])
    assert isinstance(result.exception, ReaderAppError)


def test_read_with_an_unknown_reader_is_a_clear_error(make_study, clock):
    db = make_study("sequential")
    with pytest.raises(ReaderAppError, match="'R9' is not a reader of this study"):
        run_workstation(db, "R9", clock=clock)


def test_scripted_reader_giving_a_bad_value_gets_the_stores_message(make_study, clock):
    db = make_study("paired")
    with pytest.raises(ReaderAppError, match="quality"):
        read_study_scripted(db, "R1", lambda view, question, finding, side: 9, clock=clock)


def test_read_opens_the_workstation_and_returns_when_it_is_closed(make_study, qapp, clock):
    from PySide6.QtCore import QTimer

    from reader_app.widgets.main_window import MainWindow

    db = make_study("sequential")
    seen = []

    def close_windows():
        for widget in qapp.topLevelWidgets():
            if isinstance(widget, MainWindow) and widget.isVisible():
                seen.append((widget.windowTitle(), widget.stack.currentWidget().objectName()))
                widget.close()

    QTimer.singleShot(300, close_windows)
    assert run_workstation(db, "R2", clock=clock) == 0
    # R2 has read nothing yet: the start page with the instructions comes first
    assert seen == [("blindreader  \u2014  Knee reading study  \u2014  Dr Bo Reader", "startPage")]
