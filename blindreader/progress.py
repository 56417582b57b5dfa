"""A rich progress bar behind the domain packages' ``progress(done, total, message)`` callback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TimeElapsedColumn


@contextmanager
def progress_bar(transient: bool = True) -> Iterator[Callable[[int, int, str], None]]:
    """Yield a progress callback that draws one bar per distinct message on the terminal."""
    tasks: dict[str, TaskID] = {}
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=transient,
    ) as bar:

        def progress(done: int, total: int, message: str) -> None:
            if message not in tasks:
                tasks[message] = bar.add_task(message, total=total)
            bar.update(tasks[message], completed=done, total=total)

        yield progress
