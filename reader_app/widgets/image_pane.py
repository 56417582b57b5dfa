"""One image pane: paints the current slice of a volume through the shared view state.

Wheel / arrow keys: slices; ctrl+wheel or +/-: zoom; left drag: pan; right drag: window/level
(horizontal: width, vertical: level); F1..F3: window presets; double click: reset. The slice
counter is the only overlay.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
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

from reader_app.images import WindowLevel, to_uint8
from reader_app.state import ViewState

PRESET_KEYS: dict[int, str] = {
    int(Qt.Key.Key_F1): "auto",
    int(Qt.Key.Key_F2): "contrast",
    int(Qt.Key.Key_F3): "wide",
}
_ZOOM_STEP = 1.15
_COUNTER_COLOUR = QColor(150, 150, 150)


class ImagePane(QWidget):
    """A black pane showing one volume's current slice (or nothing: the black frame)."""

    def __init__(self, view: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.setObjectName("imagePane")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(200, 200)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self._volume: np.ndarray | None = None
        self._scratch: np.ndarray | None = None
        self._pixels: np.ndarray | None = None  # the 8-bit slice shown
        self._image: QImage | None = None
        self._drag_button: Qt.MouseButton | None = None
        self._drag_origin = QPointF()
        self._drag_window = WindowLevel(0.5, 1.0)
        self._counter_font = QFont(self.font())
        self._counter_font.setPointSizeF(max(self.font().pointSizeF() * 0.9, 8.0))
        view.slice_changed.connect(self._render_slice)
        view.window_changed.connect(self._render_slice)
        view.geometry_changed.connect(self.update)

    # -- data ---------------------------------------------------------------------------------
    def set_volume(self, volume: np.ndarray | None) -> None:
        """Show ``volume`` (``(slices, rows, columns)`` float32) or nothing (black)."""
        self._volume = volume
        self._scratch = None
        self._render_slice()

    @property
    def has_image(self) -> bool:
        """Whether a slice is shown (False during the black frame)."""
        return self._image is not None

    def displayed_pixels(self) -> np.ndarray | None:
        """The 8-bit slice now shown (for tests)."""
        return self._pixels

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
    def _scale(self) -> float:
        if self._pixels is None:
            return 1.0
        rows, cols = self._pixels.shape
        fit = min(self.width() / cols, self.height() / rows)
        return fit * self.view.zoom

    def image_rect(self) -> QRectF:
        """Where the slice is drawn, in widget coordinates."""
        if self._pixels is None:
            return QRectF()
        rows, cols = self._pixels.shape
        scale = self._scale()
        w, h = cols * scale, rows * scale
        x = (self.width() - w) / 2.0 + self.view.pan_x * scale
        y = (self.height() - h) / 2.0 + self.view.pan_y * scale
        return QRectF(x, y, w, h)

    # -- painting -----------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), Qt.GlobalColor.black)
        if self._image is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.view.zoom < 4)
            painter.drawImage(self.image_rect(), self._image)
            painter.setFont(self._counter_font)
            painter.setPen(_COUNTER_COLOUR)
            text = f"{self.view.slice_index + 1} / {self.view.n_slices}"
            margin = 8
            painter.drawText(
                self.rect().adjusted(margin, margin, -margin, -margin),
                int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom),
                text,
            )
        painter.end()

    def slice_counter_text(self) -> str:
        """The overlay text (empty during the black frame)."""
        if self._image is None:
            return ""
        return f"{self.view.slice_index + 1} / {self.view.n_slices}"

    # -- interaction --------------------------------------------------------------------------
    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps == 0:
            event.ignore()
            return
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.view.zoom_by(_ZOOM_STEP**steps)
        else:
            self.view.step_slice(-1 if steps > 0 else 1)
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Up, Qt.Key.Key_Left):
            self.view.step_slice(-1)
        elif key in (Qt.Key.Key_Down, Qt.Key.Key_Right):
            self.view.step_slice(1)
        elif key == Qt.Key.Key_Home:
            self.view.set_slice(0)
        elif key == Qt.Key.Key_End:
            self.view.set_slice(self.view.n_slices - 1)
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.view.zoom_by(_ZOOM_STEP)
        elif key == Qt.Key.Key_Minus:
            self.view.zoom_by(1.0 / _ZOOM_STEP)
        elif int(key) in PRESET_KEYS:
            self.view.apply_preset(PRESET_KEYS[int(key)])
        elif key == Qt.Key.Key_Escape:
            self.view.reset_view()
        else:
            event.ignore()
            return
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            self._drag_button = event.button()
            self._drag_origin = event.position()
            self._drag_window = self.view.window
            self.setFocus(Qt.FocusReason.MouseFocusReason)
            event.accept()
        else:
            event.ignore()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._drag_button is None:
            event.ignore()
            return
        position = event.position()
        if self._drag_button == Qt.MouseButton.LeftButton:
            delta = position - self._drag_origin
            self._drag_origin = position
            scale = self._scale()
            self.view.pan_by(delta.x() / scale, delta.y() / scale)
        else:
            delta = position - self._drag_origin
            sensitivity = self.view.default_window.width / 250.0
            width = max(self._drag_window.width + delta.x() * sensitivity, 1e-3 * sensitivity)
            center = self._drag_window.center - delta.y() * sensitivity
            self.view.set_window(WindowLevel(center, width))
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._drag_button = None
        event.accept()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        self.view.reset_view()
        event.accept()
