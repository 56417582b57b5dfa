"""The ROIs and rulers on one image pane: drawn from the reading state's answers, edited with the
mouse while a measurement question is current.

While the current question row is an roi / distance question (``ReadingState.measure_key``), a
left drag on the pane draws that question's shape (ellipse: corner to corner; freehand: the
traced outline; ruler: end to end), a drag inside the drawn shape moves it and a drag on a
handle (an ellipse's corner, a ruler's end) reshapes it; the middle button pans. On release the
pane emits the new geometry; the controller records it and the store measures it. The overlay
never writes anything and never computes a value: the numbers shown are the stored ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import (
    QColor,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPen,
    QPolygonF,
    QTransform,
)

from reader_app import measure_tools
from studies.api import AnswerKey, Side
from studies.protocol import MEASUREMENT_TYPES

if TYPE_CHECKING:
    from reader_app.state import ReadingState
    from reader_app.widgets.image_pane import ImagePane
    from studies.protocol import Question

_ACTIVE = QColor(255, 210, 60)
_OTHER = QColor(90, 200, 230)
_PREVIEW = QColor(255, 240, 150)
#: Handles are picked within this many widget pixels.
HANDLE_PX = 7.0
#: Outlines kept per pane (a case's shapes; cleared when full).
_PATH_CACHE = 512


class RoiOverlay:
    """Paints and edits the shapes of one pane (``side``: the pane's side in the paired design)."""

    def __init__(
        self,
        pane: ImagePane,
        state: ReadingState,
        questions: dict[str, Question],
        side: Side | None,
    ) -> None:
        self.pane = pane
        self.state = state
        self.questions = {k: q for k, q in questions.items() if q.type in MEASUREMENT_TYPES}
        self.side = side
        self._mode: str | None = None  # "draw", "move", "handle"
        self._handle = 0
        self._start = (0.0, 0.0)
        self._points: measure_tools.Points = []
        self._origin_points: measure_tools.Points = []
        self._shape = "ellipse"
        self._paths: dict[tuple[Any, ...], QPainterPath] = {}
        state.answer_changed.connect(self._answer_changed)
        state.measure_changed.connect(pane.update)

    # -- what is shown ------------------------------------------------------------------------
    def key(self) -> AnswerKey | None:
        """The answer this pane draws now: the current measurement question, on this side."""
        key = self.state.measure_key
        if key is None or self.state.read_only or not self.pane.has_image:
            return None
        question = self.questions.get(key.question_id)
        series = (
            self.pane.series_label if question is not None and question.per == "series" else None
        )
        return AnswerKey(key.question_id, series, self.side)

    def shapes(self) -> list[tuple[AnswerKey, dict[str, Any]]]:
        """The stored shapes on this pane's series, side and slice."""
        out = []
        for key, value in self.state.answers.items():
            if (
                key.question_id in self.questions
                and key.side == self.side
                and isinstance(value, dict)
                and value.get("series") == self.pane.series_label
                and value.get("slice") == self.pane.view.slice_index
            ):
                out.append((key, value))
        return out

    def stored(self, key: AnswerKey) -> dict[str, Any] | None:
        """The stored shape of ``key`` when it lies on this pane's series and slice."""
        value = self.state.answers.get(key)
        if (
            isinstance(value, dict)
            and value.get("series") == self.pane.series_label
            and value.get("slice") == self.pane.view.slice_index
        ):
            return value
        return None

    def _answer_changed(self, key: AnswerKey, _value: object) -> None:
        if key.question_id in self.questions:
            self.pane.update()

    # -- painting -----------------------------------------------------------------------------
    def _path(self, shape: str, points: measure_tools.Points) -> QPainterPath:
        """The shape's outline in image coordinates (kept: the painter's transform maps it)."""
        key = (shape, tuple((float(x), float(y)) for x, y in points))
        path = self._paths.get(key)
        if path is not None:
            return path
        path = QPainterPath()
        if shape == "ellipse":
            (xa, ya), (xb, yb) = points
            path.addEllipse(QRectF(QPointF(xa, ya), QPointF(xb, yb)).normalized())
        elif shape == "line":
            path.moveTo(QPointF(*points[0]))
            path.lineTo(QPointF(*points[1]))
        else:
            path.addPolygon(QPolygonF([QPointF(x, y) for x, y in points]))
            path.closeSubpath()
        if len(self._paths) >= _PATH_CACHE:
            self._paths.clear()
        self._paths[key] = path
        return path

    def paint(self, painter: QPainter) -> None:
        """Draw the stored shapes of this slice, the active one with handles, and a preview.

        Outlines are drawn in image coordinates through the painter's transform (one cached
        path per shape, cosmetic pens keep their width in screen pixels); handles and labels
        are placed in widget coordinates.
        """
        active = self.key()
        rect = self.pane.image_rect()
        sx, sy = self.pane.scales()
        to_widget = QTransform(sx, 0.0, 0.0, sy, rect.x(), rect.y())
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        labels: list[tuple[QPointF, str, QColor]] = []
        for key, value in self.shapes():
            if self._mode is not None and key == active:
                continue  # being edited: the preview stands in for it
            is_active = key == active
            colour = _ACTIVE if is_active else _OTHER
            pen = QPen(colour, 2.0 if is_active else 1.4)
            pen.setCosmetic(True)
            painter.setTransform(to_widget)
            painter.setPen(pen)
            painter.drawPath(self._path(value["shape"], value["points"]))
            painter.resetTransform()
            if is_active:
                for hx, hy in measure_tools.handles(value["shape"], value["points"]):
                    centre = to_widget.map(QPointF(hx, hy))
                    painter.drawRect(QRectF(centre.x() - 3, centre.y() - 3, 6, 6))
            question = self.questions[key.question_id]
            text = question.roi or "ruler"
            if value.get("length_mm") is not None:
                text = f"{value['length_mm']:.1f} mm"
            if value["shape"] == "line":  # a ruler's length beside its middle
                at = QPointF(*measure_tools.centre_of(value["points"]))
            else:  # an ROI's name above its top-right corner, off the tissue it measures
                at = QPointF(max(x for x, _ in value["points"]), min(y for _, y in value["points"]))
            labels.append((to_widget.map(at) + QPointF(4, -4), text, colour))
        for anchor, text, colour in labels:
            painter.setPen(colour)
            painter.drawText(anchor, text)
        if self._mode is not None and self._points:
            pen = QPen(_PREVIEW, 1.6, Qt.PenStyle.DashLine)
            pen.setCosmetic(True)
            painter.setTransform(to_widget)
            painter.setPen(pen)
            shape = self._shape
            if shape == "freehand" and self._mode == "draw":
                painter.drawPolyline(QPolygonF([QPointF(x, y) for x, y in self._points]))
            elif len(self._points) >= (3 if shape == "freehand" else 2):
                painter.drawPath(self._path(shape, self._points))
        painter.restore()

    # -- editing ------------------------------------------------------------------------------
    def _image_point(self, event: QMouseEvent) -> tuple[float, float]:
        x, y = self.pane.image_point(event.position())
        rows, cols = self.pane.image_shape()
        return min(max(x, 0.0), float(cols)), min(max(y, 0.0), float(rows))

    def press(self, event: QMouseEvent) -> bool:
        """Start drawing, moving or reshaping (left button, while measuring)."""
        key = self.key()
        if key is None or event.button() != Qt.MouseButton.LeftButton:
            return False
        x, y = self._image_point(event)
        value = self.stored(key)
        self._start = (x, y)
        if value is not None:
            sx, sy = self.pane.scales()
            for index, (hx, hy) in enumerate(
                measure_tools.handles(value["shape"], value["points"])
            ):
                if abs(hx - x) * sx <= HANDLE_PX and abs(hy - y) * sy <= HANDLE_PX:
                    self._begin("handle", value["shape"], value["points"], index)
                    return True
            tolerance = HANDLE_PX / max(sx, 1e-6)
            if measure_tools.contains(value["shape"], value["points"], x, y, tolerance):
                self._begin("move", value["shape"], value["points"])
                return True
        question = self.questions[key.question_id]
        shape = self.state.measure_shape if question.type == "roi" else "line"
        if shape not in question.roi_shapes:
            shape = question.roi_shapes[0]
        self._begin("draw", shape, [[x, y]] if shape == "freehand" else [[x, y], [x, y]])
        return True

    def _begin(self, mode: str, shape: str, points: measure_tools.Points, handle: int = 0) -> None:
        self._mode = mode
        self._shape = shape
        self._handle = handle
        self._points = [list(p) for p in points]
        self._origin_points = [list(p) for p in points]
        self.pane.update()

    def move(self, event: QMouseEvent) -> bool:
        """Follow the pointer."""
        if self._mode is None:
            return False
        x, y = self._image_point(event)
        rows, cols = self.pane.image_shape()
        if self._mode == "move":
            dx, dy = x - self._start[0], y - self._start[1]
            self._points = measure_tools.move(self._origin_points, dx, dy, cols, rows)
        elif self._mode == "handle":
            self._points = measure_tools.drag_handle(self._origin_points, self._handle, (x, y))
        elif self._shape == "freehand":
            lx, ly = self._points[-1]
            if abs(x - lx) + abs(y - ly) >= measure_tools.FREEHAND_STEP:
                self._points.append([x, y])
        else:
            self._points = [self._points[0], [x, y]]
        self.pane.update()
        return True

    def release(self, event: QMouseEvent) -> bool:
        """Hand the finished shape to whoever records it (the pane's ``shape_drawn``)."""
        if self._mode is None:
            return False
        self.move(event)
        mode, shape, points = self._mode, self._shape, self._points
        self._mode = None
        self._points = []
        self.pane.update()
        key = self.key()
        if key is None:
            return True
        if mode == "draw" and shape == "freehand":
            points = points[: measure_tools.MAX_VERTICES]
        if mode == "move" and points == self._origin_points:
            return True
        if not measure_tools.big_enough(shape, points):
            return True
        value = measure_tools.geometry(
            self.pane.series_label, self.pane.view.slice_index, shape, points
        )
        self.pane.emit_shape(key, value)
        return True

    @property
    def editing(self) -> bool:
        """Whether a drag is in progress."""
        return self._mode is not None
