"""PySide6 6.12's SignalInstance.emit loses a reference to True per call on Python 3.11; the
viewer's emits give it back (without that, a few hundred slice scrolls crash the interpreter)."""

from __future__ import annotations

import sys

from reader_app.images import WindowLevel
from reader_app.state import ReadingState


def test_thousands_of_emits_keep_the_reference_count_of_true(qtbot):
    state = ReadingState()
    state.view.load(10, WindowLevel(0.5, 1.0))
    before = sys.getrefcount(True)
    for i in range(3000):
        state.view.set_slice(i % 10)  # one emit per call (the index changes every time)
        state.set_message(str(i))
    assert sys.getrefcount(True) >= before - 10  # without the fix: before - 6000
