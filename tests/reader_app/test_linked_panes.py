"""Image panes: slice scrolling, zoom, pan, window/level, presets, reset; two linked panes move
together (slice, zoom, pan, window) and start from the pair's automatic window."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from reader_app.images import load_case, to_uint8
from reader_app.state import ReadingState
from reader_app.widgets.hanging import HangingArea
from studies.api import SeriesImages, SideImages
from tests.reader_app.conftest import write_series


class Paired:
    """The one series of a paired case: both volumes, its presets and automatic window."""

    def __init__(self, images):
        self.case = images
        self.series = images.series[0]
        self.volumes = self.series.volumes
        self.presets = self.series.presets
        self.window = self.series.window


@pytest.fixture
def paired(qtbot, tmp_path):
    sides = [
        SideImages((SeriesImages(name, tuple(write_series(tmp_path / name, 7, 32, seed=seed,
                                                          patient="X^Y"))),))
        for name, seed in (("l", 1), ("r", 2))
    ]  # fmt: skip
    images = load_case("a1", sides)
    state = ReadingState()
    panes = HangingArea(state, 2)
    qtbot.addWidget(panes)
    panes.resize(800, 400)
    panes.show()
    qtbot.waitExposed(panes)
    state.set_images(images)
    return state, panes, Paired(images)


def wheel(widget, steps: int, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(
        pos, widget.mapToGlobal(pos), QPoint(0, 0), QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False,
    )  # fmt: skip
    QApplication.sendEvent(widget, event)


def shown_slice(pane, volume, state):
    return np.array_equal(
        pane.displayed_pixels(), to_uint8(volume[state.view.slice_index], state.view.window)
    )


def test_both_panes_start_on_the_middle_slice_with_the_pairs_window(paired):
    state, panes, images = paired
    assert state.view.slice_index == 3
    assert state.view.window == images.window
    for pane, volume in zip(panes.panes, images.volumes, strict=True):
        assert shown_slice(pane, volume, state)
        assert pane.slice_counter_text() == "4 / 7"


def test_wheel_and_arrow_keys_scroll_both_panes(paired, qtbot):
    state, panes, images = paired
    left, right = panes.panes
    wheel(left, -1)  # wheel down: next slice
    assert state.view.slice_index == 4
    qtbot.keyClick(right, Qt.Key.Key_Up)
    qtbot.keyClick(right, Qt.Key.Key_Up)
    assert state.view.slice_index == 2
    qtbot.keyClick(left, Qt.Key.Key_End)
    assert state.view.slice_index == 6
    wheel(left, -1)  # clamped at the last slice
    assert state.view.slice_index == 6
    for pane, volume in zip(panes.panes, images.volumes, strict=True):
        assert shown_slice(pane, volume, state)
        assert pane.slice_counter_text() == "7 / 7"


def test_zoom_pan_and_window_are_linked(paired, qtbot):
    state, panes, images = paired
    left, right = panes.panes
    before = right.image_rect()
    wheel(left, 2, Qt.KeyboardModifier.ControlModifier)
    assert state.view.zoom == pytest.approx(1.15**2)
    assert right.image_rect().width() == pytest.approx(before.width() * 1.15**2)
    assert left.image_rect().size() == right.image_rect().size()

    start = right.image_rect().topLeft()
    qtbot.mousePress(left, Qt.MouseButton.LeftButton, pos=QPoint(100, 100))
    qtbot.mouseMove(left, QPoint(130, 80))
    qtbot.mouseRelease(left, Qt.MouseButton.LeftButton, pos=QPoint(130, 80))
    moved = right.image_rect().topLeft() - start
    assert (moved.x(), moved.y()) == pytest.approx((30, -20), abs=0.01)

    window = state.view.window
    qtbot.mousePress(right, Qt.MouseButton.RightButton, pos=QPoint(100, 100))
    qtbot.mouseMove(right, QPoint(150, 90))
    qtbot.mouseRelease(right, Qt.MouseButton.RightButton, pos=QPoint(150, 90))
    assert state.view.window.width > window.width  # drag right: wider
    assert state.view.window.center > window.center  # drag up: higher level
    for pane, volume in zip(panes.panes, images.volumes, strict=True):
        assert shown_slice(pane, volume, state)


def test_presets_and_double_click_reset(paired, qtbot):
    state, panes, images = paired
    left, _ = panes.panes
    qtbot.keyClick(left, Qt.Key.Key_F2)
    assert state.view.window == images.presets["Contrast"] and state.view.preset == "Contrast"
    wheel(left, 3, Qt.KeyboardModifier.ControlModifier)
    state.view.pan_by(5, 5)
    qtbot.mouseDClick(left, Qt.MouseButton.LeftButton, pos=QPoint(50, 50))
    assert state.view.zoom == 1.0
    assert (state.view.pan_x, state.view.pan_y) == (0.0, 0.0)
    assert state.view.window == images.window


def test_no_images_is_black(paired):
    state, panes, _ = paired
    state.set_images(None)
    for pane in panes.panes:
        assert not pane.has_image
        assert pane.slice_counter_text() == ""
        image = pane.grab().toImage()
        assert image.pixelColor(pane.width() // 2, pane.height() // 2).lightness() == 0
