"""Errors that ``analysis`` raises for bad input (shown to the user without a traceback)."""


class AnalysisError(Exception):
    """A user-facing analysis error: names the input, the column and what was expected."""
