"""The child of the real-window test: opens the workstation on an X server (Xvfb) and reads a
session to its end by keyboard, checking that every control lies on the screen.

Run as ``python -m tests.reader_app.xvfb_reader OUT STUDY.sqlite [STUDY.sqlite ...]`` with
``DISPLAY`` set; prints one JSON line with what it found and saves screenshots of the real
screen (``QScreen.grabWindow``) to OUT. Keys go in through ``QTest`` to the focus widget, as the
window system would deliver them; the geometry is the X server's.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractButton, QApplication, QLabel, QScrollArea, QWidget

from reader_app.controller import ReadingController
from reader_app.widgets.image_pane import ImagePane
from reader_app.widgets.main_window import MainWindow
from reader_app.widgets.theme import apply_theme
from studies.store import Store
from tests.studies.study_factory import START, FakeClock

TIMEOUT_S = 20.0


def wait(app: QApplication, condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        app.processEvents()
        time.sleep(0.005)


def press(app: QApplication, key: Qt.Key, text: str = "") -> None:
    target = QApplication.focusWidget() or QApplication.activeWindow()
    if text:
        QTest.keyClicks(target, text)
    else:
        QTest.keyClick(target, key)
    app.processEvents()


def global_rect(widget: QWidget) -> QRect:
    return QRect(widget.mapToGlobal(QPoint(0, 0)), widget.size())


def off_screen(window: MainWindow, screen: QRect) -> list[str]:
    """Visible controls of the current page not wholly on the screen. What scrolls inside a
    scroll area counts by its scroll area (the question rows are checked as they are reached)."""
    page = window.stack.currentWidget()
    scrolled = [area.viewport() for area in page.findChildren(QScrollArea)]
    found = []
    for widget in [page, *page.findChildren(QWidget)]:
        if not widget.isVisible() or widget.width() == 0:
            continue
        if any(viewport.isAncestorOf(widget) for viewport in scrolled):
            continue
        if not isinstance(widget, QAbstractButton | QLabel | ImagePane | QScrollArea):
            continue
        if not screen.contains(global_rect(widget)):
            name = widget.objectName() or getattr(widget, "text", lambda: "")() or "?"
            found.append(f"{type(widget).__name__} {name!r} at {global_rect(widget)}")
    return found


def shoot(app: QApplication, out: Path, name: str) -> str:
    app.processEvents()
    screen = app.primaryScreen()
    path = out / f"{name}.png"
    screen.grabWindow(0).save(str(path))
    return path.name


def read_session(app: QApplication, window: MainWindow, out: Path, tag: str) -> dict[str, object]:
    """Picker -> start page -> worklist -> every case of session 1 by keyboard."""
    controller = window.controller
    screen = app.primaryScreen().geometry()
    result: dict[str, object] = {"off_screen": [], "rows_off_screen": [], "shots": []}
    shots: list[str] = result["shots"]  # type: ignore[assignment]
    problems: list[str] = result["off_screen"]  # type: ignore[assignment]
    rows_off: list[str] = result["rows_off_screen"]  # type: ignore[assignment]
    window.activateWindow()
    wait(app, lambda: QApplication.focusWidget() is not None, "focus on the picker")
    press(app, Qt.Key.Key_Return)  # the first reader
    wait(app, lambda: window.stack.currentWidget() is window.start, "the start page")
    problems += off_screen(window, screen)
    shots.append(shoot(app, out, f"{tag}-start"))
    press(app, Qt.Key.Key_Return)  # start page -> worklist
    press(app, Qt.Key.Key_Return)  # worklist -> session 1
    n_read = 0
    while controller.state.assignment is not None:
        wait(app, lambda: controller.settled and controller.state.images is not None, "images")
        wait(app, lambda: window.reading.isAncestorOf(QApplication.focusWidget()), "focus")
        view = controller.state.assignment
        problems += off_screen(window, screen)
        panel = window.reading.panel
        for _ in range(100):  # answer the highlighted row, Tab to the next, to the last one
            row = panel.current_row()
            assert row is not None
            if not screen.contains(global_rect(row)):
                rows_off.append(f"{row.key} at {global_rect(row)}")
            if row.buttons:  # shown rows change as show-if rules follow the answers
                press(app, Qt.Key.Key_2 if row.question.type == "likert" else Qt.Key.Key_1)
            elif row.question.type == "number":
                press(app, Qt.Key.Key_unknown, "7")
            if row is panel.visible_rows()[-1]:
                break
            press(app, Qt.Key.Key_Tab)
        if n_read == 0:
            shots.append(shoot(app, out, f"{tag}-case"))
            window.reading.panes.panes[0].setFocus()  # as a click on the image would
            press(app, Qt.Key.Key_Question)
            shots.append(shoot(app, out, f"{tag}-keys"))
            press(app, Qt.Key.Key_Question)  # any key closes it
        wait(app, lambda: controller.settled, "answers saved")
        press(app, Qt.Key.Key_Return)
        wait(app, lambda: controller.settled, "case saved")
        if controller.feedback is not None:
            problems += off_screen(window, screen)
            shots.append(shoot(app, out, f"{tag}-training-feedback"))
            press(app, Qt.Key.Key_Return)
            wait(app, lambda: controller.settled, "after the feedback")
        if controller.state.assignment is view:
            raise RuntimeError(
                f"Enter did not leave case {view.position}: {controller.state.message}"
            )
        n_read += 1
    wait(app, lambda: window.stack.currentWidget() is window.finished, "session finished")
    shots.append(shoot(app, out, f"{tag}-finished"))
    result["n_read"] = n_read
    result["finished"] = window.finished.title.text()
    return result


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    app = QApplication(["blindreader-xvfb"])
    apply_theme(app)
    screen = app.primaryScreen()
    report: dict[str, object] = {
        "platform": app.platformName(),
        "screen": [screen.geometry().width(), screen.geometry().height()],
        "studies": [],
    }
    for db in argv[1:]:
        with Store.open(db, clock=FakeClock(START)) as store:
            controller = ReadingController(store)
            window = MainWindow(controller)
            window.show()
            wait(app, window.isVisible, "the window")
            frame = window.frameGeometry()
            available = screen.availableGeometry()
            tag = (
                f"{store.protocol.design}-{screen.geometry().width()}x{screen.geometry().height()}"
            )
            entry = read_session(app, window, out, tag)
            entry["design"] = store.protocol.design
            entry["window_fits"] = available.contains(frame)
            entry["window"] = [frame.x(), frame.y(), frame.width(), frame.height()]
            entry["n_session"] = len(store.assignments(store.readers()[0].reader_id, 1))
            window.toggle_full_screen()  # F11
            wait(app, window.isFullScreen, "full screen")
            app.processEvents()
            entry["full_screen"] = [window.width(), window.height()]
            window.close()
            report["studies"].append(entry)  # type: ignore[union-attr]
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
