"""Qt facts for ``blindreader info`` (here: ``reader_app`` is the only package importing Qt)."""


def qt_version() -> str:
    """The version of the Qt runtime that PySide6 loads."""
    from PySide6 import QtCore

    return QtCore.qVersion()
