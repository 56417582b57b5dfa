"""The progress callback that long-running reconstruction work reports through."""

from collections.abc import Callable

#: ``progress(done, total, message)``; the CLI shows it as a bar, the viewer as a dialog.
ProgressCallback = Callable[[int, int, str], None]


def no_progress(done: int, total: int, message: str) -> None:
    """Ignore progress reports (the default callback)."""
