"""Errors that ``reader_app`` raises for bad input (shown to the user without a traceback)."""


class ReaderAppError(Exception):
    """A user-facing viewer error, e.g. no display is available."""
