"""The image area: the protocol's layout of cells (1x1, 1x2, 2x2, 1x3) and, for a case of several
series, the thumbnail strip that hangs any series in the active cell.

The strip is labelled with the neutral series names of CASES.csv (``cor_pd``, ...) and marks
which cell each hung series is in; it never names an arm (both arms show the same series).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from reader_app.images import CaseImages
from reader_app.state import ReadingState
from reader_app.widgets.image_pane import ImagePane
from reader_app.widgets.linked_panes import LinkedPanes
from studies.api import AnswerKey

if TYPE_CHECKING:
    from studies.protocol import Question

THUMB_PIXELS = 56


def _pixmap(pixels: np.ndarray) -> QPixmap:
    rows, cols = pixels.shape
    data = np.ascontiguousarray(pixels)
    image = QImage(data.data, cols, rows, cols, QImage.Format.Format_Grayscale8).copy()
    return QPixmap.fromImage(image)


class ThumbnailStrip(QWidget):
    """One button per series of the case (thumbnail + label); a click hangs it."""

    def __init__(self, state: ReadingState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("thumbnailStrip")
        self.state = state
        self.buttons: dict[str, QToolButton] = {}
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(6, 4, 6, 4)
        self._layout.setSpacing(6)
        self._layout.addStretch(1)

    def show_case(self, images: CaseImages | None) -> None:
        """One button per series of ``images`` (none without images); the buttons of the last
        case are kept when its series had the same names (only their thumbnails change)."""
        labels = images.labels if images is not None else ()
        if images is not None and tuple(self.buttons) == labels:
            for series in images.series:
                self.buttons[series.label].setIcon(QIcon(_pixmap(series.thumbnail)))
            self.sync()
            return
        for button in self.buttons.values():
            self._layout.removeWidget(button)
            button.deleteLater()
        self.buttons = {}
        if images is None:
            return
        for number, series in enumerate(images.series, start=1):
            button = QToolButton(self)
            button.setObjectName("thumbnail")
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
            button.setIcon(QIcon(_pixmap(series.thumbnail)))
            button.setIconSize(QSize(THUMB_PIXELS, THUMB_PIXELS))
            button.setText(series.label)
            button.setCheckable(True)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.setToolTip(f"Hang {series.label} in the active view (Ctrl+{number})")
            button.clicked.connect(lambda _=False, label=series.label: self._clicked(label))
            self._layout.insertWidget(self._layout.count() - 1, button)
            self.buttons[series.label] = button
        self.sync()

    def _clicked(self, label: str) -> None:
        self.state.hang(label)
        self.sync()

    def sync(self) -> None:
        """Check the buttons of the hung series (the active cell's in bold)."""
        active = self.state.active_label
        for label, button in self.buttons.items():
            button.setChecked(label in self.state.hung)
            font = button.font()
            font.setBold(label == active)
            button.setFont(font)


class HangingArea(QWidget):
    """The cells of the layout (each one series on one or two linked panes) and the strip."""

    def __init__(
        self,
        state: ReadingState,
        n_sides: int,
        grid: tuple[int, int] = (1, 1),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("imageArea")
        self.state = state
        self.strip = ThumbnailStrip(state, self)
        self.strip.hide()
        rows, columns = grid
        grid_layout = QGridLayout()
        grid_layout.setContentsMargins(0, 0, 0, 0)
        grid_layout.setSpacing(4)
        self.cells: list[LinkedPanes] = []
        for index in range(rows * columns):
            cell = LinkedPanes(state.view_of(""), n_sides, self)
            cell.activated.connect(lambda i=index: state.set_active_cell(i))
            grid_layout.addWidget(cell, index // columns, index % columns)
            self.cells.append(cell)
        for r in range(rows):
            grid_layout.setRowStretch(r, 1)
        for c in range(columns):
            grid_layout.setColumnStretch(c, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.strip)
        layout.addLayout(grid_layout, 1)
        state.images_changed.connect(self._images_changed)
        state.hanging_changed.connect(self._hanging_changed)
        state.readout_changed.connect(self._readout_changed)
        self._images_changed(state.images)

    def enable_measurements(
        self, questions: dict[str, Question], drawn: Callable[[AnswerKey, object], object]
    ) -> None:
        """Show the case's ROIs / rulers on every pane; ``drawn(key, geometry)`` records one."""
        for cell in self.cells:
            for pane in cell.panes:
                pane.enable_measurements(self.state, questions)
                pane.shape_drawn.connect(drawn)

    @property
    def panes(self) -> list[ImagePane]:
        """Every image pane shown, cell by cell, left side first."""
        return [pane for cell in self.cells if not cell.isHidden() for pane in cell.panes]

    def _images_changed(self, images: CaseImages | None) -> None:
        if images is None:  # the black frame: the strip keeps its buttons for the next exam
            self._hanging_changed()
            return
        several = len(images.series) > 1
        self.strip.show_case(images if several else None)
        self.strip.setVisible(several)
        self._hanging_changed()

    def _hanging_changed(self) -> None:
        state = self.state
        images = state.images
        several = images is not None and len(images.series) > 1
        for index, cell in enumerate(self.cells):
            if images is None:
                cell.show_series(None)
                cell.setVisible(True)
                cell.set_active(False)
                continue
            if index < len(state.hung):
                label = state.hung[index]
                cell.show_series(images.get(label), state.view_of(label), caption=several)
                cell.setVisible(True)
            else:  # a case with fewer series than cells
                cell.show_series(None)
                cell.setVisible(False)
            cell.set_active(several and index == state.active_cell)
        self.strip.sync()

    def _readout_changed(self, shown: bool) -> None:
        for cell in self.cells:
            cell.set_show_readout(shown)

    def active_cell(self) -> LinkedPanes:
        """The cell keys act on."""
        return self.cells[min(self.state.active_cell, len(self.cells) - 1)]
