"""A kill of the workstation mid-case loses nothing that was shown as saved: the writer thread
commits each answer before the UI says so. A child process opens the real window, answers through
the question panel, waits until the window says "All answers saved", says so, and is SIGKILLed;
the study is then reopened."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from studies.api import AnswerKey
from studies.store import Store

REPO_ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import sys, time
    from PySide6.QtWidgets import QApplication
    from reader_app.controller import ReadingController
    from reader_app.widgets.main_window import MainWindow
    from studies.api import AnswerKey
    from studies.store import Store

    app = QApplication([])
    store = Store.open(sys.argv[1])
    controller = ReadingController(store, black_frame_ms=0)
    window = MainWindow(controller)
    window.show()
    controller.select_reader("R1")
    window.worklist.open_session(1)
    panel = window.reading.panel
    panel.rows[AnswerKey("likelihood", "acl")].answer_by_number(4)
    panel.rows[AnswerKey("quality")].answer_by_number(2)
    panel.rows[AnswerKey("quality")].answer_by_number(3)  # a revision
    while not controller.settled or controller.state.pending:  # until the UI says "saved"
        app.processEvents()
        time.sleep(0.001)
    assert window.reading.save_status.text().startswith("All answers saved")
    print("ANSWERED", controller.state.assignment.assignment_id, flush=True)
    while True:  # mid-case: never leaves the case, never closes the store
        app.processEvents()
        time.sleep(0.01)
    """
)


# The child is the workstation as shipped, on the system clock; the test reads the study on the
# same clock.
@pytest.mark.system_clock
def test_kill_mid_case_loses_no_answer(make_study):
    db = make_study("sequential")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    try:
        line = child.stdout.readline()
        assert line.startswith("ANSWERED"), (
            child.stderr.read() if child.poll() is not None else line
        )
        assignment_id = line.split()[1]
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stderr.close()
    with Store.open(db) as store:
        view = store.assignment(assignment_id)
        assert view.answers == {AnswerKey("likelihood", "acl"): 4, AnswerKey("quality"): 3}
        assert not view.completed
        assert store.next_assignment("R1", 1).assignment_id == assignment_id  # resume lands here
        assert store.verify_events() == []
