"""Errors that ``studies`` raises for bad input (shown to the user without a traceback)."""


class StudyError(Exception):
    """A user-facing study error: names the file, the field and what was expected."""
