"""Whole exams: several series per case hung by the protocol's layout, switched by keys and the
thumbnail strip (labelled with the neutral series names), paired cells with the same series of
both arms side by side, and true geometry (pixel aspect, orientation letters)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from reader_app.orientation import EdgeLetters, direction_letters, edge_letters
from tests.reader_app.conftest import KNEE_SERIES
from tests.reader_app.test_blinding import check_page, forbidden_terms


def open_case(ws) -> None:
    ws.window.activateWindow()
    ws.window.picker.choose()
    assert ws.window.worklist.open_session(1)
    ws.wait_images()


def key(ws, k, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    target = QApplication.focusWidget() or ws.window
    ws.qtbot.keyClick(target, k, modifiers)


def hung(ws) -> list[str]:
    return [cell.label for cell in ws.reading.panes.cells if not cell.isHidden()]


def test_a_knee_exam_is_hung_by_the_protocol_and_switched_by_keys(
    make_study, workstation, artifacts_dir
):
    db = make_study("sequential", series=KNEE_SERIES, layout="1x2", n_slices=5)
    ws = workstation(db)
    open_case(ws)
    area = ws.reading.panes
    assert hung(ws) == ["cor_pd", "sag_t2fs"]  # the protocol's first two, left to right
    assert list(area.strip.buttons) == ["cor_pd", "sag_t2fs", "ax_pdfs"]
    assert [b.isChecked() for b in area.strip.buttons.values()] == [True, True, False]
    assert [c.caption.text() for c in area.cells] == ["cor_pd", "sag_t2fs"]
    # every series keeps its own slice: the active cell scrolls, the other stays
    first, second = area.cells
    assert first.panes[0].slice_counter_text() == "3 / 5"
    assert second.panes[0].slice_counter_text() == "3 / 6"
    ws.reading.panel.focus_first()  # keys go to the active view wherever the focus is
    key(ws, Qt.Key.Key_Down)
    assert first.panes[0].slice_counter_text() == "4 / 5"
    assert second.panes[0].slice_counter_text() == "3 / 6"
    key(ws, Qt.Key.Key_F6)  # the other cell becomes active
    assert ws.state.active_cell == 1 and second.property("active") is True
    key(ws, Qt.Key.Key_Down)
    key(ws, Qt.Key.Key_Down)
    assert second.panes[0].slice_counter_text() == "5 / 6"
    key(ws, Qt.Key.Key_BracketRight)  # next series in the active cell: ax_pdfs
    assert hung(ws) == ["cor_pd", "ax_pdfs"]
    assert second.panes[0].slice_counter_text() == "4 / 7"
    ws.window.grab().save(str(artifacts_dir / "exam-sequential-1x2.png"))
    key(ws, Qt.Key.Key_BracketRight)  # wraps to cor_pd, which swaps into this cell
    assert hung(ws) == ["ax_pdfs", "cor_pd"]
    key(ws, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)  # series 2 of the case
    assert hung(ws) == ["ax_pdfs", "sag_t2fs"]
    assert second.panes[0].slice_counter_text() == "5 / 6"  # sag_t2fs remembered its slice
    area.strip.buttons["cor_pd"].click()  # a thumbnail hangs it in the active cell
    assert hung(ws) == ["ax_pdfs", "cor_pd"]
    assert ws.state.active_label == "cor_pd"
    wheel_at(first.panes[0], -1)  # scrolling a pane makes its cell active
    assert ws.state.active_cell == 0
    terms = forbidden_terms(db.parent, ws.store)
    check_page(ws, terms, "cor_pd")  # series names shown, no arm, patient or file


def test_keys_and_answers_reach_an_exam_case(make_study, workstation):
    db = make_study("sequential", series=KNEE_SERIES, layout="2x2", n_slices=4)
    ws = workstation(db)
    open_case(ws)
    assert hung(ws) == list(KNEE_SERIES)  # 2x2 holds all three; the fourth cell is hidden
    assert len(ws.reading.panes.panes) == 3
    ws.reading.panes.panes[2].setFocus()
    key(ws, Qt.Key.Key_3)  # a digit with the focus on an image answers the current row
    ws.settle()
    first = ws.reading.panel.visible_rows()[0]
    assert ws.store.assignment(ws.state.assignment.assignment_id).answers[first.key] == 3


def test_paired_cells_show_the_same_series_of_both_arms_side_by_side(
    make_study, workstation, artifacts_dir
):
    db = make_study("paired", series=KNEE_SERIES, layout="1x2", n_slices=4)
    ws = workstation(db)
    open_case(ws)
    area = ws.reading.panes
    view = ws.state.assignment
    left, right = view.sides
    assert left.labels == right.labels == KNEE_SERIES
    for cell, label in zip(area.cells, ("cor_pd", "sag_t2fs"), strict=True):
        assert [p.accessibleName() for p in cell.panes] == ["Left image", "Right image"]
        series = ws.state.images.get(label)
        assert cell.label == label and len(series.volumes) == 2
        lp, rp = cell.panes
        assert lp.view is rp.view is ws.state.view_of(label)  # linked within the cell
        assert lp.slice_counter_text() == rp.slice_counter_text()
    a, b = area.cells
    ws.reading.panel.focus_first()
    key(ws, Qt.Key.Key_Down)
    assert a.panes[0].slice_counter_text() == a.panes[1].slice_counter_text() == "3 / 4"
    assert b.panes[0].slice_counter_text() == "3 / 5"  # the other series did not move
    # a per-side answer still names the side, never the arm
    assert ws.controller.set_answer(ws.reading.panel.visible_rows()[0].key, 2)
    ws.settle()
    ws.window.grab().save(str(artifacts_dir / "exam-paired-1x2.png"))
    check_page(ws, forbidden_terms(db.parent, ws.store), "Left image")


def wheel_at(widget, steps, modifiers=Qt.KeyboardModifier.NoModifier, pos=None) -> None:
    pos = pos or QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(
        pos, widget.mapToGlobal(pos), QPoint(0, 0), QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False,
    )  # fmt: skip
    QApplication.sendEvent(widget, event)


def test_true_geometry_pixel_aspect_and_orientation_letters(make_study, workstation):
    ws = workstation(make_study("sequential", series=KNEE_SERIES, layout="1x3", size=32))
    open_case(ws)
    cor, sag, ax = (cell.panes[0] for cell in ws.reading.panes.cells)
    # coronal: rows run to the patient's left, columns to the feet
    assert cor.letters == EdgeLetters(left="R", right="L", top="S", bottom="I")
    assert sag.letters == EdgeLetters(left="A", right="P", top="S", bottom="I")
    assert ax.letters == EdgeLetters(left="R", right="L", top="A", bottom="P")
    # sagittal pixels are 0.3 mm wide and 0.6 mm tall: drawn twice as tall as wide
    rect = sag.image_rect()
    assert rect.height() / rect.width() == pytest.approx(2.0, rel=1e-6)
    square = cor.image_rect()
    assert square.height() == pytest.approx(square.width())
    # the overlay is the slice counter and the letters; the readout only on request
    assert not sag.show_readout
    ws.reading.panel.focus_first()
    key(ws, Qt.Key.Key_W)
    assert all(p.show_readout for p in (cor, sag, ax))
    assert cor.readout_text().startswith("W ") and cor.readout_text().endswith("Auto")
    key(ws, Qt.Key.Key_F2)
    assert ws.state.view.preset == "Contrast" and cor.readout_text().endswith("Contrast")


def test_orientation_letters_of_oblique_and_missing_orientation():
    assert direction_letters((1, 0, 0)) == "L"
    assert direction_letters((-0.9, 0.0, 0.44)) == "RS"  # about 26 degrees oblique
    assert direction_letters((0.0, -0.98, 0.2)) == "A"  # under the threshold: one letter
    assert edge_letters(None, None) == EdgeLetters()


def test_zoom_about_the_pointer_keeps_that_point_still(make_study, workstation):
    ws = workstation(make_study("sequential", size=64))
    open_case(ws)
    pane = ws.reading.panes.panes[0]
    at = QPointF(pane.width() * 0.3, pane.height() * 0.4)
    before = pane.image_point(at)
    wheel_at(pane, 3, Qt.KeyboardModifier.ControlModifier, pos=at)
    assert ws.state.view.zoom == pytest.approx(1.15**3)
    assert pane.image_point(at) == pytest.approx(before, abs=1e-6)
    key(ws, Qt.Key.Key_Escape)
    assert ws.state.view.zoom == 1.0 and (ws.state.view.pan_x, ws.state.view.pan_y) == (0, 0)
