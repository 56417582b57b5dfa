"""Emitting Qt signals from Python safely.

PySide6 6.12.0 on Python 3.11 has a reference-count bug: ``SignalInstance.emit`` returns a bool it
does not own, so every emit from Python takes one reference from ``True``. On Python 3.11 bools
are not immortal and ``True`` starts with only a few hundred references, so a few hundred slice
scrolls would free ``True`` and crash the interpreter (found while benchmarking: "Fatal Python
error: bool_dealloc"). :func:`emit` gives the reference back when a probe at import shows the
leak, and does nothing on a fixed PySide6 or an interpreter with immortal bools. Every signal the
viewer emits from Python goes through it.

The same build has a wider bug of the same kind (found with the multi-series viewer, whose test
run ended in "Fatal Python error: none_dealloc"): every call of a C++ method that returns
nothing (``update()``, ``setText()``, ``processEvents()``, ...) and every call of a Python
override or slot from C++ (``paintEvent``, ``eventFilter``, a timer's slot) takes one reference
from ``None``. A process starts with some 50,000, so a reader scrolling and answering for a
while would crash the workstation. No call site can give them back, so when a probe at import
shows the leak, :func:`protect_singletons` does what Python 3.12 does for these objects: it
makes ``None``, ``True`` and ``False`` immortal (a reference count no leak can exhaust). They
are static singletons that are never freed anyway; only the leak could reach their dealloc.
Importing this module (every viewer module does, through the state) applies it.
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

#: Added to the reference count of None / True / False when void calls leak (2**40: a leak of
#: one reference per call would need more than a century of a million calls a second).
IMMORTAL_REFS = 1 << 40


def _void_calls_leak_none() -> bool:
    probe = _Probe()
    before = sys.getrefcount(None)
    for _ in range(16):
        probe.setObjectName("probe")
    leaked = before - sys.getrefcount(None)
    for _ in range(max(leaked, 0)):
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(None))
    return leaked >= 16


#: Whether calls into PySide6 that return nothing drop a reference to None (checked once).
VOID_CALLS_LEAK = sys.version_info < (3, 12) and _void_calls_leak_none()


def protect_singletons() -> bool:
    """Make None, True and False immortal when this PySide6 leaks their references.

    Returns whether it did (False on a fixed PySide6, and on Python >= 3.12 where they are
    immortal already). Safe to call more than once: the protection is applied once.
    """
    global _protected
    if not VOID_CALLS_LEAK or _protected:
        return _protected
    for singleton in (None, True, False):
        # ob_refcnt is the first field of every CPython object (Include/object.h).
        ctypes.c_ssize_t.from_address(id(singleton)).value += IMMORTAL_REFS
    _protected = True
    return True


_protected = False
protect_singletons()


def emit(signal: SignalInstance, *args: Any) -> None:
    """``signal.emit(*args)``, keeping the interpreter's reference counts right."""
    result: object = signal.emit(*args)  # type: ignore[func-returns-value]  # stubs say None
    if EMIT_LEAKS and isinstance(result, bool):
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(result))
