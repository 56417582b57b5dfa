"""The reading state: what the reader sees now. Widgets observe it; only the controller and the
panes' own navigation (slices, zoom, window, which series hangs where) change it; nothing here
touches the store."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from reader_app.images import CaseImages, WindowLevel
from reader_app.signals import emit
from studies.api import AnswerKey, AnswerValue, AssignmentView, ReaderInfo, SessionInfo

MIN_ZOOM = 0.25
MAX_ZOOM = 16.0

#: Message kinds: ``info`` (calm, e.g. "Session 1 finished") and ``warning`` (needs action).
MESSAGE_KINDS = ("info", "warning")


class ViewState(QObject):
    """Slice, zoom, pan and window of one series (shared by the linked panes showing it).

    Pan is in image pixels (so panes of the same matrix move together); zoom 1 fits the image.
    ``preset`` names the window preset shown (None once the reader changes the window by hand).
    """

    slice_changed = Signal(int)
    geometry_changed = Signal()
    window_changed = Signal(object)  # WindowLevel

    def __init__(self, parent: QObject | None = None, label: str = "") -> None:
        super().__init__(parent)
        self.label = label
        self.slice_index = 0
        self.n_slices = 0
        self.zoom = 1.0
        self.pan_x = 0.0
        self.pan_y = 0.0
        self.window = WindowLevel(0.5, 1.0)
        self.default_window = WindowLevel(0.5, 1.0)
        self.presets: dict[str, WindowLevel] = {}
        self.preset: str | None = None

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
        """Multiply the zoom by ``factor`` (about the centre of the pane)."""
        self.set_zoom(self.zoom * factor)

    def set_zoom_and_pan(self, zoom: float, pan_x: float, pan_y: float) -> None:
        """Set zoom and pan together (zoom about a point: one repaint)."""
        zoom = max(MIN_ZOOM, min(float(zoom), MAX_ZOOM))
        if (zoom, pan_x, pan_y) != (self.zoom, self.pan_x, self.pan_y):
            self.zoom, self.pan_x, self.pan_y = zoom, float(pan_x), float(pan_y)
            emit(self.geometry_changed)

    def pan_by(self, dx: float, dy: float) -> None:
        """Move the image by ``dx, dy`` image pixels."""
        if dx or dy:
            self.pan_x += float(dx)
            self.pan_y += float(dy)
            emit(self.geometry_changed)

    def set_window(self, window: WindowLevel, preset: str | None = None) -> None:
        """Set the display window (width kept positive); ``preset`` names it if it is one."""
        window = WindowLevel(window.center, max(window.width, 1e-6))
        self.preset = preset
        if window != self.window:
            self.window = window
            emit(self.window_changed, window)

    def reset_view(self) -> None:
        """Fit the image, centre it and restore the automatic window (the double-click)."""
        self.zoom = 1.0
        self.pan_x = self.pan_y = 0.0
        emit(self.geometry_changed)
        self.set_window(self.default_window, next(iter(self.presets), None))

    def apply_preset(self, name: str) -> None:
        """Apply the named window preset of the current series (unknown names are ignored)."""
        window = self.presets.get(name)
        if window is not None:
            self.set_window(window, name)

    def apply_preset_number(self, number: int) -> None:
        """Apply the ``number``-th preset (1-based: F1, F2, ...)."""
        names = list(self.presets)
        if 1 <= number <= len(names):
            self.apply_preset(names[number - 1])

    def load(
        self, n_slices: int, window: WindowLevel, presets: dict[str, WindowLevel] | None = None
    ) -> None:
        """Start a new series: middle slice, fitted, automatic window."""
        self.n_slices = n_slices
        self.presets = dict(presets or {})
        self.default_window = window
        self.preset = next(iter(self.presets), None)
        self.slice_index = max(n_slices - 1, 0) // 2
        self.zoom = 1.0
        self.pan_x = self.pan_y = 0.0
        self.window = window
        emit(self.slice_changed, self.slice_index)
        emit(self.geometry_changed)
        emit(self.window_changed, window)


class ReadingState(QObject):
    """Reader, session, current assignment, its answers and images, what hangs where, which
    answers are still being saved, and a message line."""

    reader_changed = Signal(object)  # ReaderInfo | None
    sessions_changed = Signal(object)  # list[SessionInfo]
    assignment_changed = Signal(object)  # AssignmentView | None
    images_changed = Signal(object)  # CaseImages | None (None: the black frame); hanging reset
    hanging_changed = Signal()  # which series hangs in which cell, or the active cell
    window_changed = Signal(object)  # WindowLevel of any series' view (the window readout)
    answer_changed = Signal(object, object)  # AnswerKey, AnswerValue
    saving_changed = Signal()  # the set of answers not yet committed changed
    message_changed = Signal(str)
    readout_changed = Signal(bool)  # window/level readout shown or hidden
    start_changed = Signal(bool)  # the start screen (instructions) shown or left
    finished_changed = Signal(object)  # int | None: the session just finished
    measure_changed = Signal()  # the measurement being drawn (question, shape) changed

    def __init__(self, parent: QObject | None = None, n_cells: int = 1) -> None:
        super().__init__(parent)
        self._blank = ViewState(self)
        self.views: dict[str, ViewState] = {}
        self.n_cells = max(1, n_cells)
        self.hung: list[str] = []  # the label in each cell, left to right, top to bottom
        self.active_cell = 0
        self.reader: ReaderInfo | None = None
        self.sessions: list[SessionInfo] = []
        self.session_index: int | None = None
        self.assignment: AssignmentView | None = None
        self.answers: dict[AnswerKey, AnswerValue] = {}
        self.pending: set[AnswerKey] = set()
        self.images: CaseImages | None = None
        self.message = ""
        self.message_kind = "info"
        self.show_readout = False
        self.show_start = False
        self.finished_session: int | None = None
        #: The roi / distance answer the panes draw (the current question row's), or None.
        self.measure_key: AnswerKey | None = None
        self.measure_shape = "ellipse"

    # -- views ----------------------------------------------------------------------------------
    @property
    def view(self) -> ViewState:
        """The view state of the series in the active cell (a blank one without images)."""
        if self.hung and 0 <= self.active_cell < len(self.hung):
            return self.view_of(self.hung[self.active_cell])
        return self._blank

    @property
    def active_label(self) -> str | None:
        """The label of the series in the active cell."""
        return self.hung[self.active_cell] if 0 <= self.active_cell < len(self.hung) else None

    def view_of(self, label: str) -> ViewState:
        """The view state of a series of the current case (a blank one if there is none)."""
        if self.images is None or label not in self.images.labels:
            return self._blank
        return self.views.get(label, self._blank)

    def set_n_cells(self, n_cells: int) -> None:
        """How many series hang at once (the protocol's layout)."""
        self.n_cells = max(1, n_cells)

    def hang(self, label: str, cell: int | None = None) -> None:
        """Hang series ``label`` in ``cell`` (default: the active cell) and make it active.

        A series already hanging elsewhere swaps places with the one it replaces.
        """
        if self.images is None or label not in self.images.labels:
            return
        cell = self.active_cell if cell is None else cell
        if not 0 <= cell < len(self.hung):
            return
        if label in self.hung:
            other = self.hung.index(label)
            self.hung[other] = self.hung[cell]
        self.hung[cell] = label
        self.active_cell = cell
        emit(self.hanging_changed)

    def hang_number(self, number: int) -> None:
        """Hang the ``number``-th series of the case (1-based, hanging order) in the active cell."""
        if self.images is not None and 1 <= number <= len(self.images.labels):
            self.hang(self.images.labels[number - 1])

    def step_series(self, step: int) -> None:
        """Hang the next (``step`` > 0) or previous series of the case in the active cell."""
        if self.images is None or not self.hung:
            return
        labels = list(self.images.labels)
        current = labels.index(self.hung[self.active_cell])
        self.hang(labels[(current + step) % len(labels)])

    def set_active_cell(self, cell: int) -> None:
        """Make ``cell`` the one that keys act on."""
        if 0 <= cell < len(self.hung) and cell != self.active_cell:
            self.active_cell = cell
            emit(self.hanging_changed)

    def step_cell(self, step: int) -> None:
        """Move the active cell forward or back (wrapping)."""
        if self.hung:
            self.set_active_cell((self.active_cell + step) % len(self.hung))

    def toggle_readout(self) -> None:
        """Show or hide the window/level readout."""
        self.show_readout = not self.show_readout
        emit(self.readout_changed, self.show_readout)

    def set_start(self, shown: bool) -> None:
        """Show or leave the start screen."""
        if shown != self.show_start:
            self.show_start = shown
            emit(self.start_changed, shown)

    def set_finished(self, session_index: int | None) -> None:
        """Say that session ``session_index`` was just finished (None: leave that page)."""
        if session_index != self.finished_session:
            self.finished_session = session_index
            emit(self.finished_changed, session_index)

    # -- reader, sessions, assignment -----------------------------------------------------------
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
        self.pending = set()
        self.set_images(None)
        emit(self.assignment_changed, assignment)
        emit(self.saving_changed)

    def set_images(self, images: CaseImages | None) -> None:
        """Show decoded images (``None``: black); each series gets a fresh view state and the
        first series of the hanging order fill the cells."""
        self.images = images
        if images is None:
            self.hung = []
        else:
            # A label keeps its view state object from case to case (exams share their series
            # names): panes showing it stay connected, only the values are reloaded, quietly
            # (the panes render once, when they get the new volumes).
            for series in images.series:
                view = self.views.get(series.label)
                if view is None:
                    view = ViewState(self, series.label)
                    view.window_changed.connect(self._forward_window)
                    self.views[series.label] = view
                view.blockSignals(True)
                try:
                    view.load(series.n_slices, series.window, series.presets)
                finally:
                    view.blockSignals(False)
            self.hung = list(images.labels[: self.n_cells])
            self.active_cell = 0
        emit(self.images_changed, images)  # also says the hanging starts afresh

    def _forward_window(self, window: WindowLevel) -> None:
        emit(self.window_changed, window)

    # -- answers --------------------------------------------------------------------------------
    def set_answer(self, key: AnswerKey, value: AnswerValue, *, pending: bool = False) -> None:
        """Show that ``key`` holds ``value``: being saved (``pending``) or stored."""
        if value is None:
            self.answers.pop(key, None)
        else:
            self.answers[key] = value
        was_pending = key in self.pending
        if pending:
            self.pending.add(key)
        else:
            self.pending.discard(key)
        emit(self.answer_changed, key, value)
        if was_pending != pending:
            emit(self.saving_changed)

    def mark_saved(self, key: AnswerKey) -> None:
        """The answer ``key`` shows is now committed."""
        if key in self.pending:
            self.pending.discard(key)
            emit(self.saving_changed)
            emit(self.answer_changed, key, self.answers.get(key))

    # -- measuring --------------------------------------------------------------------------------
    def set_measuring(self, key: AnswerKey | None, shape: str | None = None) -> None:
        """Draw ``key``'s shape on the panes (None: the panes pan and window as usual)."""
        shape = shape or self.measure_shape
        if (key, shape) != (self.measure_key, self.measure_shape):
            self.measure_key = key
            self.measure_shape = shape
            emit(self.measure_changed)

    def set_message(self, message: str, kind: str = "warning") -> None:
        """Show a one-line message to the reader ("" clears it); ``kind`` info or warning."""
        self.message = message
        self.message_kind = kind if kind in MESSAGE_KINDS else "warning"
        emit(self.message_changed, message)
