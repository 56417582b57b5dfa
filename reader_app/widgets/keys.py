"""The workstation's keys: one table that the key handling, the hint and the ``?`` overlay share.

Image keys act on the active cell's series wherever the keyboard focus is (the reading view
routes them); answer keys act on the current question row, also while the focus is on an image.
"""

from __future__ import annotations

from PySide6.QtCore import Qt

from reader_app.state import ViewState

ZOOM_STEP = 1.15

#: Window presets: F1..F5 in protocol order (F6 moves between the views).
PRESET_KEYS: dict[int, int] = {int(getattr(Qt.Key, f"Key_F{n}")): n for n in range(1, 6)}

#: (keys, what they do) per group, for the shortcut overlay.
SHORTCUTS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Images",
        (
            ("\u2191 \u2193  or  wheel", "previous / next slice"),
            ("Page Up / Page Down", "previous / next slice"),
            ("Home / End", "first / last slice"),
            ("Ctrl+wheel", "zoom about the mouse pointer"),
            ("+ / \u2212", "zoom in / out"),
            ("drag", "pan"),
            ("right-drag", "window (left-right) and level (up-down)"),
            ("F1 \u2026 F5", "named window presets"),
            ("W", "show / hide the window and level readout"),
            ("Esc  or  double-click", "reset zoom, pan and window"),
        ),
    ),
    (
        "Series",
        (
            ("[ / ]", "previous / next series in the active view"),
            ("Ctrl+1 \u2026 Ctrl+9", "hang that series in the active view"),
            ("F6 / Shift+F6", "next / previous view"),
            ("click a thumbnail", "hang that series in the active view"),
        ),
    ),
    (
        "Questions",
        (
            ("1 \u2026 9, 0", "answer the highlighted question (0 = 10th choice)"),
            ("Y / N", "yes / no"),
            ("Tab / Shift+Tab", "next / previous question"),
            ("Enter", "next case (when the required answers are given)"),
            ("Shift+Enter", "previous case (answers stay editable)"),
        ),
    ),
    (
        "Measuring",
        (  # one line each: the overlay sizes its rows before wrapping
            ("drag", "draw the ROI / ruler"),
            ("drag the shape", "move (a corner: size)"),
            ("E / F", "ellipse / freehand"),
            ("Shift+arrows", "move by one pixel"),
            (", / .", "smaller / larger"),
            ("G", "go to its slice"),
            ("Del", "delete it"),
            ("middle-drag", "pan"),
        ),
    ),
    (
        "Window",
        (
            ("?", "show / hide this list"),
            ("F11", "full screen"),
        ),
    ),
)

#: The one-line hint under the question panel.
KEYS_HINT = (
    "\u2191\u2193 slices \u00b7 1\u20139 answer \u00b7 Tab next question \u00b7 "
    "Enter next case \u00b7 [ ] series \u00b7 ? all keys"
)


def image_key(view: ViewState, key: int, modifiers: Qt.KeyboardModifier) -> bool:
    """Apply an image key to ``view``; False when ``key`` is not one."""
    if modifiers & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier):
        return False
    if key in (Qt.Key.Key_Up, Qt.Key.Key_Left, Qt.Key.Key_PageUp):
        view.step_slice(-1)
    elif key in (Qt.Key.Key_Down, Qt.Key.Key_Right, Qt.Key.Key_PageDown):
        view.step_slice(1)
    elif key == Qt.Key.Key_Home:
        view.set_slice(0)
    elif key == Qt.Key.Key_End:
        view.set_slice(view.n_slices - 1)
    elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
        view.zoom_by(ZOOM_STEP)
    elif key in (Qt.Key.Key_Minus, Qt.Key.Key_Underscore):
        view.zoom_by(1.0 / ZOOM_STEP)
    elif int(key) in PRESET_KEYS:
        view.apply_preset_number(PRESET_KEYS[int(key)])
    elif key == Qt.Key.Key_Escape:
        view.reset_view()
    else:
        return False
    return True
