"""Errors that ``reader_app`` raises for bad input (shown to the user without a traceback)."""


class ReaderAppError(Exception):
    """A user-facing viewer error, e.g. no display is available."""


class ImageDecodeError(ReaderAppError):
    """A displayed image could not be decoded.

    ``str(error)`` is safe to show to a reader (it names no file); ``detail`` holds the file path
    and the underlying cause for the log.
    """

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail
