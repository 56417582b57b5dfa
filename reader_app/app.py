"""Building the workstation: the Qt application, the store, the controller and the main window."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

from reader_app.errors import ReaderAppError
from studies.clock import Clock, system_clock

#: Where Qt's platform plugin needs Debian packages, the one line that says which.
XCB_PACKAGES = (
    "libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 "
    "libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0"
)
#: How long the display probe may take (Qt connecting to the display server).
PROBE_TIMEOUT_S = 20.0

_PROBE = "from PySide6.QtWidgets import QApplication; QApplication(['blindreader-probe'])"


def has_display() -> bool:
    """Whether Qt can open a window: a display server, or an explicit ``QT_QPA_PLATFORM``."""
    return any(os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def probe_display(timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Start Qt's platform plugin in a child process; None when it works, else why not.

    Qt aborts the whole process (SIGABRT, a bare "Aborted" in the terminal) when its platform
    plugin cannot start, e.g. no X server behind ``DISPLAY`` or libxcb-cursor0 missing; the
    child takes that abort so the workstation can say what is wrong in one line.
    """
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=os.environ.copy(),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"the display did not answer within {timeout_s:.0f} s"
    if done.returncode == 0:
        return None
    return display_problem(done.stderr)


#: Libraries the xcb platform plugin loads (checked when it fails; Qt's own hint names only
#: libxcb-cursor0, and prints it for any xcb failure).
XCB_LIBRARIES = (
    "libxcb-cursor.so.0",
    "libxcb-icccm.so.4",
    "libxcb-image.so.0",
    "libxcb-keysyms.so.1",
    "libxcb-randr.so.0",
    "libxcb-render-util.so.0",
    "libxcb-shape.so.0",
    "libxcb-xkb.so.1",
    "libxkbcommon-x11.so.0",
)


def missing_libraries(names: tuple[str, ...] = XCB_LIBRARIES) -> list[str]:
    """The shared libraries of ``names`` that cannot be loaded."""
    missing = []
    for name in names:
        try:
            ctypes.CDLL(name)
        except OSError:
            missing.append(name)
    return missing


def display_problem(stderr: str, missing: list[str] | None = None) -> str:
    """One line from Qt's start-up complaints: what to do about a display that cannot open.

    ``missing`` are the xcb libraries that cannot be loaded (looked up when None).
    """
    text = stderr.lower()
    display = os.environ.get("WAYLAND_DISPLAY") or os.environ.get("DISPLAY") or ""
    if "could not connect to display" in text or "cannot open display" in text:
        return (
            f"cannot open the display {display!r} (no X server there, or no permission: "
            "check DISPLAY and xauth)"
        )
    if "xcb" in text:
        missing = missing_libraries() if missing is None else missing
        if missing or "xcb-cursor" in text:
            which = ", ".join(missing) if missing else "libxcb-cursor0 and its siblings"
            return (
                f"Qt's X11 (xcb) platform cannot load {which}; install them with: "
                f"sudo apt-get install -y {XCB_PACKAGES}"
            )
    if "could not find the qt platform plugin" in text or "could not load the qt platform" in text:
        platform = os.environ.get("QT_QPA_PLATFORM", "xcb")
        return f"Qt's platform plugin {platform!r} cannot be loaded (check QT_QPA_PLATFORM)"
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    first = next((line for line in lines if "qt.qpa" in line or "platform" in line.lower()), "")
    return f"the display cannot be opened ({(first or 'Qt could not start')[:200]})"


def run_workstation(db: Path, reader_id: str | None = None, *, clock: Clock = system_clock) -> int:
    """Open the reading workstation on ``db`` and run until the window closes.

    Raises
    ------
    ReaderAppError
        No display (or one that cannot be opened), or ``reader_id`` is not a reader of the
        study.
    studies.errors.StudyError
        ``db`` is not a study database.
    """
    if not has_display() and sys.platform.startswith("linux"):
        raise ReaderAppError(
            "no display: DISPLAY / WAYLAND_DISPLAY are not set (run it on a workstation "
            "with a screen, or set QT_QPA_PLATFORM=offscreen for a headless check)"
        )
    from PySide6.QtWidgets import QApplication

    if QApplication.instance() is None and os.environ.get("QT_QPA_PLATFORM") != "offscreen":
        problem = probe_display()
        if problem is not None:
            raise ReaderAppError(f"no display: {problem}")

    from PySide6.QtCore import QSettings

    from reader_app.controller import ReadingController
    from reader_app.widgets.main_window import MainWindow
    from reader_app.widgets.theme import apply_theme
    from studies.store import Store

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("blindreader")
    app.setOrganizationName("blindreader")
    apply_theme(app)
    with Store.open(db, clock=clock) as store:
        controller = ReadingController(store)
        try:
            if reader_id is not None and not controller.requires_passphrase(reader_id):
                controller.select_reader(reader_id)  # before the window: its pages start from it
            window = MainWindow(controller, settings=QSettings("blindreader", "workstation"))
            if reader_id is not None and controller.state.reader is None:
                window.picker.preselect(reader_id)  # the passphrase is asked there
            window.show()
            code = int(app.exec())
            window.close()
        finally:
            controller.shutdown()
    return code
