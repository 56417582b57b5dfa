"""Emitting Qt signals from Python safely.

PySide6 6.12.0 on Python 3.11 has a reference-count bug: ``SignalInstance.emit`` returns a bool it
does not own, so every emit from Python takes one reference from ``True``. On Python 3.11 bools
are not immortal and ``True`` starts with only a few hundred references, so a few hundred slice
scrolls would free ``True`` and crash the interpreter (found while benchmarking: "Fatal Python
error: bool_dealloc"). :func:`emit` gives the reference back when a probe at import shows the
leak, and does nothing on a fixed PySide6 or an interpreter with immortal bools. Every signal the
viewer emits from Python goes through it.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

from PySide6.QtCore import QObject, Signal, SignalInstance


class _Probe(QObject):
    fired = Signal()


def _emit_leaks_a_reference() -> bool:
    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(16):
        probe.fired.emit()
    leaked = before - sys.getrefcount(True)
    for _ in range(max(leaked, 0)):  # give back what the probe itself took
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(True))
    return leaked >= 16


#: Whether ``SignalInstance.emit`` drops a reference to its bool result (checked once).
EMIT_LEAKS = _emit_leaks_a_reference()


def emit(signal: SignalInstance, *args: Any) -> None:
    """``signal.emit(*args)``, keeping the interpreter's reference counts right."""
    result: object = signal.emit(*args)  # type: ignore[func-returns-value]  # stubs say None
    if EMIT_LEAKS and isinstance(result, bool):
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(result))
