"""Decode the current and the next case in a worker thread, keeping only a small window of cases.

Every series of a case is decoded (so switching series is instant); the window holds whole cases.

Errors in the worker (a missing or corrupt file) never escape the thread: they are logged with
the file and the cause, and reported through :attr:`Prefetcher.failed` with a message that names
no file (the reader must not see file or folder names).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from reader_app.errors import ImageDecodeError
from reader_app.images import CaseImages, load_case
from reader_app.signals import emit
from studies.api import AssignmentView, SideImages
from studies.protocol import DEFAULT_WINDOW_PRESETS, WindowPreset

log = logging.getLogger(__name__)


class _Relay(QObject):
    """Carries results from the worker thread to the main thread (queued connections)."""

    done = Signal(object)  # CaseImages
    error = Signal(str, str)  # assignment_id, message for the reader


class _DecodeJob(QRunnable):
    def __init__(
        self,
        relay: _Relay,
        assignment_id: str,
        sides: Sequence[SideImages],
        presets: Sequence[WindowPreset],
    ) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._relay = relay
        self._assignment_id = assignment_id
        self._sides = tuple(sides)
        self._presets = tuple(presets)

    def run(self) -> None:
        try:
            images = load_case(self._assignment_id, self._sides, self._presets)
        except ImageDecodeError as exc:
            log.error("assignment %s: %s (%s)", self._assignment_id, exc, exc.detail)
            emit(self._relay.error, self._assignment_id, f"{exc}.")
        except Exception:  # a bug or a resource error: log it, tell the reader, keep running
            log.exception("assignment %s: decoding failed", self._assignment_id)
            emit(self._relay.error, self._assignment_id, "the images could not be decoded.")
        else:
            emit(self._relay.done, images)


class Prefetcher(QObject):
    """Decodes assignments' images in one worker thread and caches at most ``capacity`` cases.

    Signals
    -------
    loaded(CaseImages)
        A case's images are ready (emitted in the main thread).
    failed(str, str)
        ``(assignment_id, message)``: a case could not be decoded.
    """

    loaded = Signal(object)
    failed = Signal(str, str)

    def __init__(
        self,
        capacity: int = 2,
        parent: QObject | None = None,
        presets: Sequence[WindowPreset] = DEFAULT_WINDOW_PRESETS,
    ) -> None:
        super().__init__(parent)
        self.capacity = max(1, capacity)
        self.presets = tuple(presets)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)  # current case first, then the next one, in order
        self._relay = _Relay(self)
        self._relay.done.connect(self._on_done)
        self._relay.error.connect(self._on_error)
        self._cache: OrderedDict[str, CaseImages] = OrderedDict()
        self._in_flight: set[str] = set()
        self._wanted: list[str] = []
        self.errors: dict[str, str] = {}

    def get(self, assignment_id: str) -> CaseImages | None:
        """The decoded images of an assignment, if they are ready."""
        return self._cache.get(assignment_id)

    def is_pending(self, assignment_id: str) -> bool:
        """Whether the assignment is being decoded now."""
        return assignment_id in self._in_flight

    def want(self, views: Sequence[AssignmentView]) -> None:
        """Keep / decode exactly these assignments (current first, then the next ones).

        Cached cases not in ``views`` are dropped, so memory stays within the prefetch window.
        """
        views = list(views)[: self.capacity]
        self._wanted = [v.assignment_id for v in views]
        for assignment_id in list(self._cache):
            if assignment_id not in self._wanted:
                del self._cache[assignment_id]
        for view in views:
            aid = view.assignment_id
            if aid in self._cache or aid in self._in_flight:
                continue
            self.errors.pop(aid, None)
            self._in_flight.add(aid)
            self._pool.start(_DecodeJob(self._relay, aid, view.sides, self.presets))

    def _on_done(self, images: CaseImages) -> None:
        self._in_flight.discard(images.assignment_id)
        if images.assignment_id in self._wanted:
            self._cache[images.assignment_id] = images
            emit(self.loaded, images)

    def _on_error(self, assignment_id: str, message: str) -> None:
        self._in_flight.discard(assignment_id)
        self.errors[assignment_id] = message
        emit(self.failed, assignment_id, message)

    @property
    def cached_bytes(self) -> int:
        """Memory held by the cached volumes."""
        return sum(images.nbytes for images in self._cache.values())

    def wait(self, timeout_ms: int = 10_000) -> bool:
        """Block until the worker is idle (tests, shutdown); results are delivered afterwards."""
        return bool(self._pool.waitForDone(timeout_ms))

    def shutdown(self) -> None:
        """Drop queued work and wait for the running job."""
        self._pool.clear()
        self._pool.waitForDone(10_000)
        self._cache.clear()
