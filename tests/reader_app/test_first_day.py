"""A reader's first day: the start page with the protocol's instructions, training cases with
reference answers and feedback, the ``?`` overlay, named window presets, full screen and a
window that fits its screen and remembers its size."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSettings, QSize, Qt
from PySide6.QtWidgets import QApplication, QLabel

from reader_app.widgets.main_window import MainWindow, fitted_size
from studies.api import AnswerKey
from tests.reader_app.test_blinding import check_page, forbidden_terms
from tests.reader_app.test_reading import next_case, press

ACL = AnswerKey("likelihood", "acl")
MENISCUS = AnswerKey("likelihood", "meniscus")


def test_the_start_page_shows_the_protocols_instructions(make_study, workstation, artifacts_dir):
    db = make_study("sequential", training=True)
    ws = workstation(db)
    ws.window.activateWindow()
    ws.qtbot.waitUntil(lambda: QApplication.focusWidget() is not None)
    press(ws, Qt.Key.Key_Return)  # picker: the first reader, who has read nothing yet
    start = ws.window.start
    assert ws.window.stack.currentWidget() is start
    assert start.title.text() == "Welcome, Dr Ada Reader"
    assert start.instructions.textFormat() == Qt.TextFormat.MarkdownText
    assert "Grade each **finding**" in start.instructions.text()
    texts = [w.text() for w in start.findChildren(QLabel) if w.isVisible()]
    assert any("1 training case" in t for t in texts)
    assert any("previous / next slice" in t for t in texts)  # the keys are listed
    check_page(ws, forbidden_terms(db.parent, ws.store), "Welcome")
    ws.window.grab().save(str(artifacts_dir / "start-page-training.png"))
    press(ws, Qt.Key.Key_Return)
    assert ws.window.stack.currentWidget() is ws.window.worklist
    ws.window.worklist.instructions_button.click()  # back to the instructions at any time
    assert ws.window.stack.currentWidget() is start


def test_a_reader_with_progress_goes_straight_to_the_worklist(make_study, workstation):
    db = make_study("sequential")
    ws = workstation(db)
    ws.window.picker.choose()
    ws.controller.show_worklist()
    assert ws.window.worklist.open_session(1)
    ws.wait_images()
    ws.controller.set_answer(ACL, 2)
    for key, value in ((MENISCUS, 1), (AnswerKey("quality"), 3), (AnswerKey("artifact"), False)):
        ws.controller.set_answer(key, value)
    next_case(ws)
    ws.close()
    again = workstation(db)
    again.window.picker.choose()
    assert again.window.stack.currentWidget() is again.window.worklist


def test_a_training_case_shows_the_reference_answers_after_it(
    make_study, workstation, artifacts_dir
):
    db = make_study("sequential", training=True)
    ws = workstation(db)
    ws.window.picker.choose()
    ws.controller.show_worklist()
    assert ws.window.worklist.open_session(1)
    ws.wait_images()
    view = ws.state.assignment
    assert view.is_training and view.training_case == "train01"
    assert ws.reading.case_label.text().endswith("(training)")
    for key, value in ((ACL, 3), (MENISCUS, 1), (AnswerKey("quality"), 4),
                       (AnswerKey("artifact"), False)):  # fmt: skip
        assert ws.controller.set_answer(key, value)
    press(ws, Qt.Key.Key_Return)
    ws.settle()
    assert ws.store.assignment(view.assignment_id).completed  # answered first, then shown
    panel = ws.reading.feedback
    assert ws.reading.stack.currentWidget() is panel
    assert ws.state.assignment.assignment_id == view.assignment_id  # images stay to compare
    assert all(p.has_image for p in ws.reading.panes.panes)
    rows = [tuple(c.text() for c in cells) for cells in panel.item_labels]
    assert rows == [
        ("ACL tear", "3 Probably present", "1 Definitely absent", "\u2717"),
        ("Medial meniscal tear", "1 Definitely absent", "1 Definitely absent", "\u2713"),
        ("Overall image quality", "4 Excellent", "4 Excellent", "\u2713"),
        ("Artifacts present?", "No", "No", "\u2713"),
    ]  # fmt: skip
    assert panel.summary.text() == "3 of 4 of your answers agree with the reference."
    assert "study lead" in panel.explanation.text()
    assert not ws.controller.set_answer(ACL, 1)  # the training case is done
    ws.window.grab().save(str(artifacts_dir / "training-feedback.png"))
    check_page(ws, forbidden_terms(db.parent, ws.store), "reference")
    press(ws, Qt.Key.Key_Return)  # on to the first study case
    ws.wait_images()
    assert ws.state.assignment.position == 2 and not ws.state.assignment.is_training
    assert ws.reading.stack.currentWidget() is ws.reading.panel


def test_the_question_mark_shows_every_key(make_study, workstation, artifacts_dir):
    ws = workstation(make_study("sequential"))
    ws.window.picker.choose()
    ws.controller.show_worklist()
    assert ws.window.worklist.open_session(1)
    ws.wait_images()
    overlay = ws.reading.overlay
    press(ws, "?")
    assert overlay.isVisible() and overlay.geometry() == ws.reading.rect()
    texts = [w.text() for w in overlay.findChildren(QLabel)]
    for expected in ("F1 \u2026 F5", "named window presets", "Shift+Enter", "F11", "[ / ]"):
        assert any(expected in t for t in texts), expected
    ws.window.grab().save(str(artifacts_dir / "shortcut-overlay.png"))
    slice_before = ws.state.view.slice_index
    press(ws, Qt.Key.Key_Down)  # any key closes it (and does nothing else)
    assert not overlay.isVisible() and ws.state.view.slice_index == slice_before
    ws.reading.keys_button.click()
    assert overlay.isVisible()


def test_named_presets_from_the_protocol(make_study, workstation):
    ws = workstation(make_study("sequential"))
    ws.window.picker.choose()
    ws.controller.show_worklist()
    assert ws.window.worklist.open_session(1)
    ws.wait_images()
    view = ws.state.view
    assert list(view.presets) == ["Auto", "Contrast", "Wide"] and view.preset == "Auto"
    ws.reading.panel.focus_first()
    press(ws, Qt.Key.Key_F3)
    assert view.window == view.presets["Wide"] and view.preset == "Wide"
    view.set_window(type(view.window)(view.window.center + 5, view.window.width))
    assert view.preset is None  # by hand: no longer a preset
    press(ws, Qt.Key.Key_F5)  # no fifth preset: nothing happens
    assert view.preset is None


def test_the_window_fits_the_screen_and_remembers_its_size(make_study, qtbot, tmp_path):
    from reader_app.controller import ReadingController
    from studies.store import Store
    from tests.studies.study_factory import FakeClock

    assert fitted_size(QSize(1400, 860), QRect(0, 0, 1366, 728)) == QSize(1366, 728)
    db = make_study("sequential")
    settings = QSettings(str(tmp_path / "workstation.ini"), QSettings.Format.IniFormat)
    with Store.open(db, clock=FakeClock()) as store:
        controller = ReadingController(store)
        window = MainWindow(controller, settings=settings)
        qtbot.addWidget(window)
        available = window.screen().availableGeometry()
        assert window.width() <= available.width() and window.height() <= available.height()
        window.resize(640, 480)
        window.show()
        qtbot.waitExposed(window)
        window.activateWindow()
        qtbot.waitUntil(window.isActiveWindow)
        qtbot.keyClick(window, Qt.Key.Key_F11)
        assert window.isFullScreen()
        window.toggle_full_screen()
        assert not window.isFullScreen()
        window.resize(700, 500)
        window.close()
        assert settings.value("window/size") == QSize(700, 500)
        again = MainWindow(ReadingController(store), settings=settings)
        qtbot.addWidget(again)
        assert again.size() == fitted_size(QSize(700, 500), available)
        again.close()
    QApplication.processEvents()
