"""The reading state: what the reader sees now. Widgets observe it; only the controller and the
panes' own navigation change it; nothing here touches the store."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from reader_app.images import CaseImages, WindowLevel
from reader_app.signals import emit
from studies.api import AnswerKey, AnswerValue, AssignmentView, ReaderInfo, SessionInfo

MIN_ZOOM = 0.25
MAX_ZOOM = 16.0


class ViewState(QObject):
    """Slice, zoom, pan and window of the image panes (shared by linked panes).

    Pan is in image pixels (so panes of the same matrix move together); zoom 1 fits the image.
    """

    slice_changed = Signal(int)
    geometry_changed = Signal()
    window_changed = Signal(object)  # WindowLevel

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.slice_index = 0
        self.n_slices = 0
        self.zoom = 1.0
        self.pan_x = 0.0
        self.pan_y = 0.0
        self.window = WindowLevel(0.5, 1.0)
        self.default_window = WindowLevel(0.5, 1.0)
        self.presets: dict[str, WindowLevel] = {}

    def set_slice(self, index: int) -> None:
        """Show slice ``index`` (clamped to the volume)."""
        index = max(0, min(int(index), max(self.n_slices - 1, 0)))
        if index != self.slice_index:
            self.slice_index = index
            emit(self.slice_changed, index)

    def step_slice(self, step: int) -> None:
        """Move ``step`` slices (negative: towards slice 1)."""
        self.set_slice(self.slice_index + step)

    def set_zoom(self, zoom: float) -> None:
        """Set the zoom factor (clamped to 0.25..16)."""
        zoom = max(MIN_ZOOM, min(float(zoom), MAX_ZOOM))
        if zoom != self.zoom:
            self.zoom = zoom
            emit(self.geometry_changed)

    def zoom_by(self, factor: float) -> None:
        """Multiply the zoom by ``factor``."""
        self.set_zoom(self.zoom * factor)

    def pan_by(self, dx: float, dy: float) -> None:
        """Move the image by ``dx, dy`` image pixels."""
        if dx or dy:
            self.pan_x += float(dx)
            self.pan_y += float(dy)
            emit(self.geometry_changed)

    def set_window(self, window: WindowLevel) -> None:
        """Set the display window (width kept positive)."""
        window = WindowLevel(window.center, max(window.width, 1e-6))
        if window != self.window:
            self.window = window
            emit(self.window_changed, window)

    def reset_view(self) -> None:
        """Fit the image, centre it and restore the automatic window (the double-click)."""
        self.zoom = 1.0
        self.pan_x = self.pan_y = 0.0
        emit(self.geometry_changed)
        self.set_window(self.default_window)

    def apply_preset(self, name: str) -> None:
        """Apply the named window preset of the current case (unknown names are ignored)."""
        window = self.presets.get(name)
        if window is not None:
            self.set_window(window)

    def load(
        self, n_slices: int, window: WindowLevel, presets: dict[str, WindowLevel] | None = None
    ) -> None:
        """Start a new case: middle slice, fitted, automatic window."""
        self.n_slices = n_slices
        self.presets = dict(presets or {})
        self.default_window = window
        self.slice_index = max(n_slices - 1, 0) // 2
        self.zoom = 1.0
        self.pan_x = self.pan_y = 0.0
        self.window = window
        emit(self.slice_changed, self.slice_index)
        emit(self.geometry_changed)
        emit(self.window_changed, window)


class ReadingState(QObject):
    """Reader, session, current assignment, its answers and images, and a message line."""

    reader_changed = Signal(object)  # ReaderInfo | None
    sessions_changed = Signal(object)  # list[SessionInfo]
    assignment_changed = Signal(object)  # AssignmentView | None
    images_changed = Signal(object)  # CaseImages | None (None: the black frame)
    answer_changed = Signal(object, object)  # AnswerKey, AnswerValue
    message_changed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.view = ViewState(self)
        self.reader: ReaderInfo | None = None
        self.sessions: list[SessionInfo] = []
        self.session_index: int | None = None
        self.assignment: AssignmentView | None = None
        self.answers: dict[AnswerKey, AnswerValue] = {}
        self.images: CaseImages | None = None
        self.message = ""

    @property
    def read_only(self) -> bool:
        """True when the current assignment may only be looked at (finished session)."""
        return self.assignment is not None and self.assignment.read_only

    def set_reader(self, reader: ReaderInfo | None) -> None:
        """Set the reader at the workstation."""
        self.reader = reader
        emit(self.reader_changed, reader)

    def set_sessions(self, sessions: list[SessionInfo]) -> None:
        """Set the reader's sessions with their progress."""
        self.sessions = list(sessions)
        emit(self.sessions_changed, self.sessions)

    def set_assignment(self, assignment: AssignmentView | None) -> None:
        """Show a new assignment (answers taken from it; images cleared until decoded)."""
        self.assignment = assignment
        self.answers = dict(assignment.answers) if assignment is not None else {}
        self.images = None
        emit(self.images_changed, None)
        emit(self.assignment_changed, assignment)

    def set_images(self, images: CaseImages | None) -> None:
        """Show decoded images (``None``: black)."""
        self.images = images
        if images is not None:
            n = min((v.shape[0] for v in images.volumes), default=0)
            self.view.load(n, images.window, images.presets)
        emit(self.images_changed, images)

    def set_answer(self, key: AnswerKey, value: AnswerValue) -> None:
        """Record that ``key`` now holds ``value`` (already stored by the controller)."""
        if value is None:
            self.answers.pop(key, None)
        else:
            self.answers[key] = value
        emit(self.answer_changed, key, value)

    def set_message(self, message: str) -> None:
        """Show a one-line message to the reader ("" clears it)."""
        self.message = message
        emit(self.message_changed, message)
