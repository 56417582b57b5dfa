"""The viewer's shape geometry: moves keep a shape whole inside the image, scaling keeps its
centre, picking finds the inside of an ellipse or polygon and the line of a ruler."""

from __future__ import annotations

import pytest

from reader_app import measure_tools as mt


def test_move_keeps_the_shape_inside_the_image():
    box = [[2.0, 3.0], [12.0, 9.0]]
    assert mt.move(box, -5.0, 0.0, 64, 64) == [[0.0, 3.0], [10.0, 9.0]]
    assert mt.move(box, 100.0, 100.0, 64, 48) == [[54.0, 42.0], [64.0, 48.0]]


def test_scale_about_the_centre_and_default_shapes():
    grown = mt.scale([[10.0, 10.0], [20.0, 30.0]], 2.0, 64, 64)
    assert grown == [[5.0, 0.0], [25.0, 40.0]]
    for shape in ("ellipse", "freehand", "line"):
        points = mt.default_shape(shape, 64, 32, (32.0, 16.0))
        assert mt.centre_of(points) == pytest.approx((32.0, 16.0))
        assert mt.big_enough(shape, points)


def test_picking():
    assert mt.contains("ellipse", [[0, 0], [10, 4]], 5, 2)
    assert not mt.contains("ellipse", [[0, 0], [10, 4]], 0.5, 0.5)
    square = [[0, 0], [4, 0], [4, 4], [0, 4]]
    assert mt.contains("freehand", square, 2, 2) and not mt.contains("freehand", square, 5, 2)
    assert mt.contains("line", [[0, 0], [10, 0]], 5, 0.5, tolerance=1.0)
    assert not mt.contains("line", [[0, 0], [10, 0]], 12, 0, tolerance=1.0)
    assert not mt.big_enough("ellipse", [[1, 1], [1.2, 5]])  # a click is not an ROI
