"""PySide6 6.12's SignalInstance.emit loses a reference to True per call on Python 3.11; the
viewer's emits give it back (without that, a few hundred slice scrolls crash the interpreter).
Its void calls lose a reference to None each; the viewer makes None immortal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from reader_app.images import WindowLevel
from reader_app.state import ReadingState

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_thousands_of_emits_keep_the_reference_count_of_true(qtbot):
    state = ReadingState()
    state.view.load(10, WindowLevel(0.5, 1.0))
    before = sys.getrefcount(True)
    for i in range(3000):
        state.view.set_slice(i % 10)  # one emit per call (the index changes every time)
        state.set_message(str(i))
    assert sys.getrefcount(True) >= before - 10  # without the fix: before - 6000


CHILD = """
import sys
{protect}
from PySide6.QtWidgets import QApplication, QLabel
app = QApplication(["probe"])
label = QLabel()
for i in range(200_000):  # a long reading session's worth of void calls
    label.setText("x")
    label.update()
print("survived", flush=True)
"""


def _run_child(protect: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-c", CHILD.format(protect=protect)],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120, check=False,
    )  # fmt: skip


def test_void_calls_cannot_exhaust_none_once_the_viewer_is_imported():
    """PySide6 6.12 on Python 3.11 takes a reference from None on every call returning nothing;
    importing the viewer's signals module makes None immortal, so a long session survives."""
    from reader_app import signals

    done = _run_child("import reader_app.signals")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "survived" in done.stdout
    if signals.VOID_CALLS_LEAK:  # the bug is there: without the protection the process dies
        assert signals.protect_singletons()
        bare = _run_child("")
        assert bare.returncode != 0 and "none_dealloc" in bare.stderr
