"""Measuring in the viewer: ellipse, freehand and ruler drawn, edited, mirrored and deleted with
the mouse and the keyboard on the real main window; the stored geometry and values are checked
against numpy on the blinded pixels (mean and SD to 1e-6, area to one pixel)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication

from studies.api import AnswerKey
from studies.roi_stats import roi_mask
from tests.studies.measurement_study import (
    PAIRED_MEASUREMENTS,
    SEQUENTIAL_MEASUREMENTS,
    blinded_pixels,
    build,
    reference_ellipse,
)


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("measuring")
    return {
        "sequential": build(root / "seq", SEQUENTIAL_MEASUREMENTS, size=64),
        "paired": build(root / "paired", PAIRED_MEASUREMENTS, size=64),
    }


def fresh(templates, design: str, tmp_path: Path) -> Path:
    source = templates[design]
    shutil.copytree(source.parent, tmp_path / "study")
    return tmp_path / "study" / source.name


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def open_first_case(ws) -> None:
    ws.window.activateWindow()
    ws.window.picker.choose()
    assert ws.window.worklist.open_session(1)
    ws.wait_images()


def select(ws, question: str, side: str | None = None):
    row = ws.panel.rows[AnswerKey(question, None, side)]  # type: ignore[arg-type]
    ws.panel.focus_row(row)
    assert ws.state.measure_key == row.key
    return row


def at(pane, x: float, y: float) -> QPoint:
    """The widget position of image point (x, y), rounded to a widget pixel."""
    rect = pane.image_rect()
    sx, sy = pane.scales()
    return QPoint(round(rect.x() + x * sx), round(rect.y() + y * sy))


def image_of(pane, pos: QPoint) -> list[float]:
    """The image point the pane maps a widget position to (what a drag really gives)."""
    rect = pane.image_rect()
    sx, sy = pane.scales()
    return [(pos.x() - rect.x()) / sx, (pos.y() - rect.y()) / sy]


def drag(qtbot, pane, path: list[QPoint]) -> None:
    qtbot.mousePress(pane, Qt.MouseButton.LeftButton, pos=path[0])
    for pos in path[1:]:
        qtbot.mouseMove(pane, pos)
    qtbot.mouseRelease(pane, Qt.MouseButton.LeftButton, pos=path[-1])


def stored(ws, key: AnswerKey):
    ws.settle()
    view = ws.store.assignment(ws.state.assignment.assignment_id)
    return view.answers.get(key)


def files_of(ws, side: int = 0) -> tuple[Path, ...]:
    return ws.state.assignment.sides[side].series[0].files


def check_roi_values(value, files) -> None:
    """The stored values against numpy on the blinded slice the value names."""
    pixels, (dy, dx) = blinded_pixels(files[value["slice"]])
    if value["shape"] == "ellipse":
        inside = reference_ellipse(pixels, value["points"])
    else:
        from matplotlib.path import Path as MplPath

        rows, cols = np.mgrid[0 : pixels.shape[0], 0 : pixels.shape[1]]
        centres = np.column_stack([cols.ravel() + 0.5, rows.ravel() + 0.5])
        mask = MplPath(value["points"]).contains_points(centres).reshape(pixels.shape)
        inside = pixels[mask]
        assert abs(int(mask.sum()) - value["n_pixels"]) <= 1  # boundary centres: one pixel
        inside = pixels[roi_mask("freehand", value["points"], pixels.shape)]
    assert value["mean"] == pytest.approx(inside.mean(), abs=1e-6)
    assert value["sd"] == pytest.approx(inside.std(ddof=1), abs=1e-6)
    assert abs(value["area_mm2"] - inside.size * dy * dx) <= dy * dx  # to one pixel


def test_draw_move_reshape_and_delete_an_ellipse_with_the_mouse(
    templates, tmp_path, workstation, qtbot, artifacts_dir
):
    ws = workstation(fresh(templates, "sequential", tmp_path))
    open_first_case(ws)
    row = select(ws, "roi_muscle")
    pane = ws.reading.panes.panes[0]
    key = AnswerKey("roi_muscle")
    start, end = at(pane, 20.0, 24.0), at(pane, 40.0, 38.0)
    drag(qtbot, pane, [start, QPoint((start.x() + end.x()) // 2, start.y() + 5), end])
    value = stored(ws, key)
    assert value["shape"] == "ellipse" and value["slice"] == ws.state.view.slice_index
    expected = [image_of(pane, start), image_of(pane, end)]
    assert np.allclose(value["points"], expected, atol=1e-3)
    check_roi_values(value, files_of(ws))
    assert ws.state.answers[key]["mean"] == value["mean"]  # the panel shows the stored values
    assert f"mean {value['mean']:.0f}" in row.readout.text()
    assert f"slice {value['slice'] + 1}" in row.readout.text()
    ws.window.grab().save(str(_mkdir(artifacts_dir / "measuring") / "ellipse-drawn.png"))

    # drag from inside: moved by the drag, same size
    middle = at(pane, 30.0, 31.0)
    drag(qtbot, pane, [middle, middle + QPoint(12, -6)])
    moved = stored(ws, key)
    shift = np.subtract(image_of(pane, middle + QPoint(12, -6)), image_of(pane, middle))
    assert np.allclose(moved["points"], np.add(value["points"], shift), atol=2e-3)
    check_roi_values(moved, files_of(ws))
    # drag a corner handle: reshaped
    corner = at(pane, *moved["points"][1])
    drag(qtbot, pane, [corner, corner + QPoint(15, 10)])
    reshaped = stored(ws, key)
    assert reshaped["points"][0] == pytest.approx(moved["points"][0], abs=2e-3)
    assert reshaped["n_pixels"] > moved["n_pixels"]
    check_roi_values(reshaped, files_of(ws))
    # the Delete button: a revision that clears it
    row.delete_button.click()
    assert stored(ws, key) is None
    con = sqlite3.connect(ws.store.source)
    revisions = con.execute(
        "SELECT COUNT(*) FROM answer_revision r JOIN answer a ON a.id = r.answer_pk "
        "WHERE a.question_id = 'roi_muscle'"
    ).fetchone()[0]
    con.close()
    assert revisions == 4
    assert "Not drawn" in row.readout.text()


def test_place_move_size_and_delete_by_keyboard(
    templates, tmp_path, workstation, qtbot, artifacts_dir
):
    ws = workstation(fresh(templates, "sequential", tmp_path))
    open_first_case(ws)
    ws.reading.overlay.toggle()  # the ? overlay lists the measuring keys
    assert ws.reading.overlay.isVisible()
    ws.window.grab().save(str(_mkdir(artifacts_dir / "measuring") / "keys-overlay.png"))
    ws.reading.overlay.toggle()
    select(ws, "roi_background")
    pane = ws.reading.panes.panes[0]
    key = AnswerKey("roi_background")

    def press(k, mods=Qt.KeyboardModifier.NoModifier):
        qtbot.keyClick(QApplication.focusWidget() or ws.window, k, mods)

    press(Qt.Key.Key_E)
    placed = stored(ws, key)
    cx, cy = pane.centre_point()
    assert np.mean(placed["points"], axis=0) == pytest.approx([cx, cy], abs=1e-2)
    check_roi_values(placed, files_of(ws))
    slice_before = ws.state.view.slice_index
    press(Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
    press(Qt.Key.Key_Down, Qt.KeyboardModifier.ShiftModifier)
    moved = stored(ws, key)
    assert ws.state.view.slice_index == slice_before  # Shift+arrows move the ROI, not the slice
    assert np.allclose(moved["points"], np.add(placed["points"], [1.0, 1.0]), atol=1e-3)
    press(Qt.Key.Key_Period)
    grown = stored(ws, key)
    assert grown["n_pixels"] > moved["n_pixels"]
    check_roi_values(grown, files_of(ws))
    press(Qt.Key.Key_F)  # background is ellipse only: F is not a shape here
    assert stored(ws, key)["shape"] == "ellipse"
    press(Qt.Key.Key_Down)  # arrows still scroll; the shape stays on its slice
    assert ws.state.view.slice_index == slice_before + 1 and pane.roi.shapes() == []
    press(Qt.Key.Key_G)  # back to the slice it is drawn on
    assert ws.state.view.slice_index == slice_before and pane.roi.shapes()
    press(Qt.Key.Key_Delete)
    assert stored(ws, key) is None
    press(Qt.Key.Key_Down)  # without a question being measured, arrows still scroll
    assert AnswerKey("roi_background") not in ws.state.answers


def test_freehand_and_ruler_by_mouse(templates, tmp_path, workstation, qtbot, artifacts_dir):
    ws = workstation(fresh(templates, "sequential", tmp_path))
    open_first_case(ws)
    row = select(ws, "roi_muscle")
    row.shape_buttons["freehand"].click()
    assert ws.state.measure_shape == "freehand"
    pane = ws.reading.panes.panes[0]
    outline = [
        at(pane, 30 + 12 * np.cos(t), 32 + 9 * np.sin(t)) for t in np.linspace(0, 2 * np.pi, 40)
    ]
    drag(qtbot, pane, outline)
    value = stored(ws, AnswerKey("roi_muscle"))
    assert value["shape"] == "freehand" and len(value["points"]) >= 10
    check_roi_values(value, files_of(ws))

    select(ws, "ruler")
    a, b = at(pane, 10.0, 10.0), at(pane, 40.0, 50.0)
    drag(qtbot, pane, [a, b])
    line = stored(ws, AnswerKey("ruler"))
    (xa, ya), (xb, yb) = image_of(pane, a), image_of(pane, b)
    _, (dy, dx) = blinded_pixels(files_of(ws)[line["slice"]])
    assert line["shape"] == "line"
    assert line["length_mm"] == pytest.approx(np.hypot((xb - xa) * dx, (yb - ya) * dy), abs=1e-3)
    ws.window.grab().save(str(_mkdir(artifacts_dir / "measuring") / "freehand-and-ruler.png"))
    # a click is not a ruler: nothing changes
    drag(qtbot, pane, [a, a])
    assert stored(ws, AnswerKey("ruler")) == line


def test_required_rois_block_next_until_drawn(templates, tmp_path, workstation, qtbot):
    ws = workstation(fresh(templates, "sequential", tmp_path))
    open_first_case(ws)
    first = ws.state.assignment.assignment_id
    ws.controller.set_answer(AnswerKey("quality"), 3)
    ws.settle()
    assert not ws.reading.request_next()
    missing = ws.controller.missing_required()
    assert AnswerKey("roi_muscle") in missing and AnswerKey("roi_background") in missing
    for question in ("roi_muscle", "roi_background"):
        select(ws, question)
        qtbot.keyClick(QApplication.focusWidget() or ws.window, Qt.Key.Key_E)
    ws.settle()
    assert ws.controller.missing_required() == []
    assert ws.reading.request_next()
    ws.settle()
    assert ws.state.assignment.assignment_id != first


def test_mirrored_roi_is_stored_for_both_sides_at_the_same_place(
    templates, tmp_path, workstation, qtbot, artifacts_dir
):
    ws = workstation(fresh(templates, "paired", tmp_path))
    open_first_case(ws)
    select(ws, "roi_muscle", "left")
    left, right = ws.reading.panes.panes
    start, end = at(left, 18.0, 20.0), at(left, 34.0, 36.0)
    drag(qtbot, left, [start, end])
    on_left = stored(ws, AnswerKey("roi_muscle", None, "left"))
    on_right = stored(ws, AnswerKey("roi_muscle", None, "right"))
    assert on_left["points"] == on_right["points"] and on_left["slice"] == on_right["slice"]
    assert on_left["series_id"] != on_right["series_id"]
    check_roi_values(on_left, files_of(ws, 0))
    check_roi_values(on_right, files_of(ws, 1))
    assert on_left["mean"] != on_right["mean"]  # each side measured on its own image
    assert right.roi is not None and right.roi.shapes()  # drawn on the right pane as well
    ws.window.grab().save(str(_mkdir(artifacts_dir / "measuring") / "paired-mirrored.png"))
    # editing on the right pane mirrors back to the left
    middle = at(right, 26.0, 28.0)
    drag(qtbot, right, [middle, middle + QPoint(-10, 8)])
    moved_right = stored(ws, AnswerKey("roi_muscle", None, "right"))
    moved_left = stored(ws, AnswerKey("roi_muscle", None, "left"))
    assert moved_left["points"] == moved_right["points"] != on_left["points"]
    # deleting deletes both
    qtbot.keyClick(QApplication.focusWidget() or ws.window, Qt.Key.Key_Delete)
    assert stored(ws, AnswerKey("roi_muscle", None, "left")) is None
    assert stored(ws, AnswerKey("roi_muscle", None, "right")) is None


def test_a_per_series_roi_has_a_row_per_series_and_is_drawn_on_each(
    tmp_path, workstation, qtbot, artifacts_dir
):
    from tests.studies.measurement_study import EXAM_SERIES, PER_SERIES_MEASUREMENTS

    db = build(tmp_path / "exam", PER_SERIES_MEASUREMENTS, series=EXAM_SERIES, size=48)
    ws = workstation(db)
    open_first_case(ws)
    keys = [k for k in ws.panel.rows if k.question_id == "roi_muscle"]
    assert keys == [AnswerKey("roi_muscle", label) for label in EXAM_SERIES]
    assert [ws.panel.rows[k].title.text() for k in keys] == list(EXAM_SERIES)
    first, second = ws.reading.panes.cells[0], ws.reading.panes.cells[1]
    assert (first.label, second.label) == EXAM_SERIES
    ws.panel.focus_row(ws.panel.rows[keys[1]])
    pane = second.panes[0]
    drag(qtbot, pane, [at(pane, 12.0, 14.0), at(pane, 30.0, 30.0)])
    value = stored(ws, AnswerKey("roi_muscle", "ax_t2"))
    assert value["series"] == "ax_t2"
    check_roi_values(value, ws.state.assignment.sides[0].get("ax_t2").files)
    # the keyboard places the first series' ROI on the cell that shows it
    ws.panel.focus_row(ws.panel.rows[keys[0]])
    qtbot.keyClick(QApplication.focusWidget() or ws.window, Qt.Key.Key_E)
    placed = stored(ws, AnswerKey("roi_muscle", "ax_t1"))
    assert placed["series"] == "ax_t1"
    check_roi_values(placed, ws.state.assignment.sides[0].get("ax_t1").files)
    ws.window.grab().save(str(_mkdir(artifacts_dir / "measuring") / "per-series.png"))
