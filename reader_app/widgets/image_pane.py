"""One image pane: paints the current slice of a series through its view state.

Drawn with the pixel aspect of PixelSpacing (a 0.3 x 0.6 mm pixel is twice as tall as wide) and
the orientation letters of ImageOrientationPatient at the edges; besides them the slice counter
is the only overlay (the window/level readout only when the reader asks for it, key W).
Wheel / arrow keys: slices; ctrl+wheel: zoom about the pointer; left drag: pan; right drag:
window/level (horizontal: width, vertical: level); double click: reset. While a measurement
question is current, left drag draws, moves or reshapes its ROI / ruler instead (see
:mod:`reader_app.widgets.roi_overlay`) and the middle button pans.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from reader_app.images import Geometry, WindowLevel, to_uint8
from reader_app.orientation import EdgeLetters, edge_letters
from reader_app.signals import emit
from reader_app.state import MAX_ZOOM, MIN_ZOOM, ViewState
from reader_app.widgets.keys import ZOOM_STEP, image_key
from studies.api import AnswerKey, Side

if TYPE_CHECKING:
    from reader_app.state import ReadingState
    from reader_app.widgets.roi_overlay import RoiOverlay
    from studies.protocol import Question

_OVERLAY_COLOUR = QColor(150, 150, 150)
_LETTER_COLOUR = QColor(190, 170, 110)


class ImagePane(QWidget):
    """A black pane showing one volume's current slice (or nothing: the black frame)."""

    activated = Signal()  # the reader clicked or scrolled in this pane
    shape_drawn = Signal(object, object)  # AnswerKey, geometry: an ROI / ruler drawn or edited

    def __init__(self, view: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.setObjectName("imagePane")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(120, 120)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self._volume: np.ndarray | None = None
        self._geometry = Geometry()
        self._letters = EdgeLetters()
        self._scratch: np.ndarray | None = None
        self._pixels: np.ndarray | None = None  # the 8-bit slice shown
        self._image: QImage | None = None
        self._drag_button: Qt.MouseButton | None = None
        self._drag_origin = QPointF()
        self._drag_window = WindowLevel(0.5, 1.0)
        self.show_readout = False
        self._overlay_font = QFont(self.font())
        self._overlay_font.setPointSizeF(max(self.font().pointSizeF() * 0.9, 8.0))
        self._letter_font = QFont(self.font())
        self._letter_font.setPointSizeF(max(self.font().pointSizeF(), 9.0))
        self._letter_font.setBold(True)
        self.series_label = ""  # the series shown (its neutral label)
        self.side: Side | None = None  # the side of the paired design this pane shows
        self.roi: RoiOverlay | None = None
        self._connect(view)

    def enable_measurements(self, state: ReadingState, questions: dict[str, Question]) -> None:
        """Show and edit the ROIs / rulers of the current case on this pane."""
        from reader_app.widgets.roi_overlay import RoiOverlay

        if self.roi is None:
            self.roi = RoiOverlay(self, state, questions, self.side)

    def emit_shape(self, key: AnswerKey, value: dict[str, Any]) -> None:
        """Say that the reader drew ``value`` for ``key`` (the reading view records it)."""
        emit(self.shape_drawn, key, value)

    def image_shape(self) -> tuple[int, int]:
        """(rows, columns) of the slice shown ((0, 0) during the black frame)."""
        if self._pixels is None:
            return 0, 0
        rows, cols = self._pixels.shape
        return int(rows), int(cols)

    def scales(self) -> tuple[float, float]:
        """Widget pixels per image column and per image row, as drawn now."""
        return self._scales()

    def centre_point(self) -> tuple[float, float]:
        """The image point at the centre of the pane, kept inside the image."""
        x, y = self.image_point(QPointF(self.width() / 2.0, self.height() / 2.0))
        rows, cols = self.image_shape()
        return min(max(x, 0.0), float(cols)), min(max(y, 0.0), float(rows))

    def _connect(self, view: ViewState) -> None:
        view.slice_changed.connect(self._render_slice)
        view.window_changed.connect(self._render_slice)
        view.geometry_changed.connect(self.update)

    def _disconnect(self, view: ViewState) -> None:
        view.slice_changed.disconnect(self._render_slice)
        view.window_changed.disconnect(self._render_slice)
        view.geometry_changed.disconnect(self.update)

    # -- data ---------------------------------------------------------------------------------
    def set_view(self, view: ViewState) -> None:
        """Follow another series' view state (slice, zoom, pan, window)."""
        if view is not self.view:
            self._disconnect(self.view)
            self.view = view
            self._connect(view)

    def set_volume(self, volume: np.ndarray | None, geometry: Geometry | None = None) -> None:
        """Show ``volume`` (``(slices, rows, columns)`` float32) or nothing (black)."""
        self._volume = volume
        self._geometry = geometry or Geometry()
        self._letters = edge_letters(self._geometry.row_direction, self._geometry.column_direction)
        self._scratch = None
        self._render_slice()

    @property
    def has_image(self) -> bool:
        """Whether a slice is shown (False during the black frame)."""
        return self._image is not None

    @property
    def letters(self) -> EdgeLetters:
        """The orientation letters at the edges."""
        return self._letters

    def displayed_pixels(self) -> np.ndarray | None:
        """The 8-bit slice now shown (for tests)."""
        return self._pixels

    def set_show_readout(self, shown: bool) -> None:
        """Show or hide the window/level readout."""
        if shown != self.show_readout:
            self.show_readout = shown
            self.update()

    def _render_slice(self, *_: object) -> None:
        volume = self._volume
        if volume is None or volume.shape[0] == 0:
            self._pixels = None
            self._image = None
        else:
            index = min(self.view.slice_index, volume.shape[0] - 1)
            image = volume[index]
            if self._scratch is None or self._scratch.shape != image.shape:
                self._scratch = np.empty(image.shape, dtype=np.float32)
            self._pixels = to_uint8(image, self.view.window, self._scratch)
            rows, cols = self._pixels.shape
            grey = QImage(self._pixels.data, cols, rows, cols, QImage.Format.Format_Grayscale8)
            # Qt's scaled drawing is 3-5x faster from RGB32 than from Grayscale8; the conversion
            # itself costs about 0.15 ms for 512x512 (measured, benchmarks/results/reader_app.md).
            self._image = grey.convertToFormat(QImage.Format.Format_RGB32)
        self.update()

    # -- geometry -----------------------------------------------------------------------------
    def _scales(self, zoom: float | None = None) -> tuple[float, float]:
        """Widget pixels per image column and per image row (true aspect, fitted, zoomed)."""
        if self._pixels is None:
            return 1.0, 1.0
        rows, cols = self._pixels.shape
        dx, dy = self._geometry.column_spacing, self._geometry.row_spacing
        fit = min(self.width() / (cols * dx), self.height() / (rows * dy))
        mm = fit * (self.view.zoom if zoom is None else zoom)  # widget pixels per millimetre
        return mm * dx, mm * dy

    def image_rect(self) -> QRectF:
        """Where the slice is drawn, in widget coordinates."""
        if self._pixels is None:
            return QRectF()
        rows, cols = self._pixels.shape
        sx, sy = self._scales()
        w, h = cols * sx, rows * sy
        x = (self.width() - w) / 2.0 + self.view.pan_x * sx
        y = (self.height() - h) / 2.0 + self.view.pan_y * sy
        return QRectF(x, y, w, h)

    def image_point(self, position: QPointF) -> tuple[float, float]:
        """The image (column, row) under a widget position."""
        rect = self.image_rect()
        sx, sy = self._scales()
        return (position.x() - rect.x()) / sx, (position.y() - rect.y()) / sy

    def zoom_about(self, factor: float, position: QPointF) -> None:
        """Zoom by ``factor`` keeping the image point under ``position`` where it is."""
        if self._pixels is None:
            self.view.zoom_by(factor)
            return
        column, row = self.image_point(position)
        view = self.view
        zoom = max(MIN_ZOOM, min(view.zoom * factor, MAX_ZOOM))
        if zoom == view.zoom:
            return
        rows, cols = self._pixels.shape
        sx, sy = self._scales(zoom)
        # x = (W - cols*sx)/2 + pan_x*sx + column*sx must equal position.x()
        pan_x = (position.x() - (self.width() - cols * sx) / 2.0) / sx - column
        pan_y = (position.y() - (self.height() - rows * sy) / 2.0) / sy - row
        view.set_zoom_and_pan(zoom, pan_x, pan_y)

    # -- painting -----------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), Qt.GlobalColor.black)
        if self._image is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.view.zoom < 4)
            painter.drawImage(self.image_rect(), self._image)
            margin = 8
            box = self.rect().adjusted(margin, margin, -margin, -margin)
            painter.setFont(self._overlay_font)
            painter.setPen(_OVERLAY_COLOUR)
            painter.drawText(
                box,
                int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom),
                self.slice_counter_text(),
            )
            if self.roi is not None:
                self.roi.paint(painter)
                painter.setFont(self._overlay_font)
                painter.setPen(_OVERLAY_COLOUR)
            if self.show_readout:
                painter.drawText(
                    box,
                    int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignBottom),
                    self.readout_text(),
                )
            letters = self._letters
            painter.setFont(self._letter_font)
            painter.setPen(_LETTER_COLOUR)
            centre = Qt.AlignmentFlag.AlignHCenter
            middle = Qt.AlignmentFlag.AlignVCenter
            for text, flags in (
                (letters.top, centre | Qt.AlignmentFlag.AlignTop),
                (letters.bottom, centre | Qt.AlignmentFlag.AlignBottom),
                (letters.left, Qt.AlignmentFlag.AlignLeft | middle),
                (letters.right, Qt.AlignmentFlag.AlignRight | middle),
            ):
                if text:
                    painter.drawText(box, int(flags), text)
        painter.end()

    def slice_counter_text(self) -> str:
        """The slice counter (empty during the black frame)."""
        if self._image is None:
            return ""
        return f"{self.view.slice_index + 1} / {self.view.n_slices}"

    def readout_text(self) -> str:
        """The window/level readout, e.g. ``W 1200  L 600  Contrast``."""
        window = self.view.window
        text = f"W {window.width:.4g}  L {window.center:.4g}"
        return f"{text}  {self.view.preset}" if self.view.preset else text

    # -- interaction --------------------------------------------------------------------------
    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps == 0:
            event.ignore()
            return
        emit(self.activated)
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom_about(ZOOM_STEP**steps, event.position())
        else:
            self.view.step_slice(-1 if steps > 0 else 1)
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if image_key(self.view, event.key(), event.modifiers()):
            event.accept()
        else:
            event.ignore()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if self.roi is not None and self.roi.press(event):
            emit(self.activated)
            self.setFocus(Qt.FocusReason.MouseFocusReason)
            event.accept()
            return
        if event.button() == Qt.MouseButton.MiddleButton:
            emit(self.activated)
            self._drag_button = Qt.MouseButton.LeftButton  # the middle button always pans
            self._drag_origin = event.position()
            event.accept()
            return
        if event.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            emit(self.activated)
            self._drag_button = event.button()
            self._drag_origin = event.position()
            self._drag_window = self.view.window
            self.setFocus(Qt.FocusReason.MouseFocusReason)
            event.accept()
        else:
            event.ignore()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self.roi is not None and self.roi.move(event):
            event.accept()
            return
        if self._drag_button is None:
            event.ignore()
            return
        position = event.position()
        if self._drag_button == Qt.MouseButton.LeftButton:
            delta = position - self._drag_origin
            self._drag_origin = position
            sx, sy = self._scales()
            self.view.pan_by(delta.x() / sx, delta.y() / sy)
        else:
            delta = position - self._drag_origin
            sensitivity = self.view.default_window.width / 250.0
            width = max(self._drag_window.width + delta.x() * sensitivity, 1e-3 * sensitivity)
            center = self._drag_window.center - delta.y() * sensitivity
            self.view.set_window(WindowLevel(center, width))
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self.roi is not None and self.roi.release(event):
            event.accept()
            return
        self._drag_button = None
        event.accept()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        self.view.reset_view()
        event.accept()
