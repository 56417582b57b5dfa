"""Store writes off the GUI thread: one writer thread takes jobs from a queue, in order.

SQLite lets one writer in at a time; when another process holds the lock (a second workstation
on the same study, a backup), a write waits up to the busy timeout. On the GUI thread that
froze the window. Here each write (an answer, a completion, an event) is a job: the controller
submits it and the UI shows the answer as *being saved*; the writer commits it (one transaction,
synced: see :mod:`studies.store`) and only then reports back, in the GUI thread, and the UI says
*saved*. Jobs run strictly in submission order, so a completion never overtakes the answers given
before it. :meth:`StoreWriter.drain` waits for every job (closing the window); a job that fails
reports its error, it is never dropped silently.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, Signal

from reader_app.signals import emit

log = logging.getLogger(__name__)

Done = Callable[[Any], None]
Failed = Callable[[BaseException], None]


@dataclass
class _Job:
    number: int
    what: str
    work: Callable[[], Any]
    on_done: Done | None = None
    on_error: Failed | None = None
    result: Any = None
    error: BaseException | None = field(default=None, repr=False)


class _Relay(QObject):
    """Lives in the GUI thread; the writer emits through it (a queued connection)."""

    finished = Signal(object)  # _Job


class StoreWriter(QObject):
    """A single writer thread with a FIFO queue of store writes.

    Signals
    -------
    idle_changed(bool)
        True when every submitted job has reported back (the GUI thread's view).
    failed(str, str)
        ``(what, message)`` for every job that raised.
    """

    idle_changed = Signal(bool)
    failed = Signal(str, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._relay = _Relay(self)
        self._relay.finished.connect(self._report)
        self._submitted = 0
        self._reported = 0
        self._lock = threading.Lock()
        self._executed = 0  # jobs the thread has finished (read under the lock)
        self._closed = False
        self.errors: list[tuple[str, str]] = []
        self._thread = threading.Thread(target=self._run, name="blindreader-writer", daemon=True)
        self._thread.start()

    # -- submitting (GUI thread) ----------------------------------------------------------------
    def submit(
        self,
        what: str,
        work: Callable[[], Any],
        on_done: Done | None = None,
        on_error: Failed | None = None,
    ) -> None:
        """Queue ``work()``; ``on_done(result)`` or ``on_error(exc)`` run later in the GUI thread.

        ``what`` names the job in logs and error reports ("answer quality", "completion").
        """
        if self._closed:
            raise RuntimeError("the writer is shut down")
        was_idle = self.idle
        self._submitted += 1
        self._queue.put(_Job(self._submitted, what, work, on_done, on_error))
        if was_idle:
            emit(self.idle_changed, False)

    @property
    def pending(self) -> int:
        """Jobs submitted whose result has not been reported to the GUI thread yet."""
        return self._submitted - self._reported

    @property
    def idle(self) -> bool:
        """Whether every submitted job has reported back."""
        return self._submitted == self._reported

    # -- the thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                self._queue.task_done()
                return
            try:
                job.result = job.work()
            except BaseException as exc:  # reported to the GUI thread, which decides
                job.error = exc
            with self._lock:
                self._executed += 1
            self._queue.task_done()
            emit(self._relay.finished, job)

    # -- reporting (GUI thread) -----------------------------------------------------------------
    def _report(self, job: _Job) -> None:
        self._reported += 1
        if job.error is not None:
            message = str(job.error).splitlines()[0] if str(job.error) else ""
            text = f"{type(job.error).__name__}: {message}"[:300]
            log.error("store write failed (%s): %s", job.what, text)
            self.errors.append((job.what, text))
            if job.on_error is not None:
                job.on_error(job.error)
            emit(self.failed, job.what, text)
        elif job.on_done is not None:
            job.on_done(job.result)
        if self.idle:
            emit(self.idle_changed, True)

    def drain(self, timeout_s: float = 60.0) -> bool:
        """Wait (delivering results) until every submitted job has reported back.

        Returns False when jobs are still pending after ``timeout_s`` (the database stays
        locked); they keep running and report when they finish.
        """
        deadline = time.monotonic() + timeout_s
        app = QCoreApplication.instance()
        while not self.idle:
            if time.monotonic() > deadline:
                return False
            with self._lock:
                executed = self._executed
            if executed < self._submitted:
                time.sleep(0.005)  # the thread is still writing
            if app is not None:
                app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
                app.sendPostedEvents(self._relay)
        return True

    def shutdown(self, timeout_s: float = 60.0) -> bool:
        """Drain the queue and stop the thread; False if jobs were still pending at the end."""
        if self._closed:
            return True
        drained = self.drain(timeout_s)
        self._closed = True
        self._queue.put(None)
        if drained:
            self._thread.join(timeout=5.0)
        return drained
