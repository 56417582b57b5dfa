"""A calm dark-grey theme for a dim reading room: low contrast chrome, the images stand out."""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication, QWidget

BACKGROUND = "#262626"
PANEL = "#2e2e2e"
RAISED = "#3a3a3a"
TEXT = "#d6d6d6"
MUTED = "#9a9a9a"
ACCENT = "#5f8fb0"  # a muted blue for the chosen answer and the focused row
WARNING = "#c9a15a"
CALM = "#8fb39a"  # a quiet green: saved, finished

STYLE_SHEET = f"""
QWidget {{ color: {TEXT}; }}
QMainWindow, QStackedWidget {{ background: {BACKGROUND}; }}
QLabel {{ background: transparent; }}
QLabel#pageTitle {{ font-size: 17pt; color: {TEXT}; padding: 4px 0 10px 0; }}
QLabel#hint, QLabel#legend {{ color: {MUTED}; font-size: 9pt; }}
QLabel#caseLabel {{ font-size: 12pt; }}
QLabel#sessionLabel, QLabel#remaining {{ color: {MUTED}; }}
QLabel#message {{ color: {WARNING}; }}
QLabel#message[kind="info"] {{ color: {CALM}; }}
QLabel#saveStatus {{ color: {MUTED}; font-size: 9pt; }}
QLabel#saveStatus[kind="pending"] {{ color: {WARNING}; }}
QLabel#legendBar {{ color: {TEXT}; font-size: 9.5pt; background: #333a40;
    border-top: 1px solid {RAISED}; }}
QLabel#finishedDetail, QLabel#instructions {{ font-size: 12pt; }}
QLabel#shortcutKeys {{ color: {TEXT}; font-weight: bold; }}
QLabel#feedbackGroup {{ color: {MUTED}; padding-top: 4px; }}
QLabel#agrees {{ color: {CALM}; font-weight: bold; }}
QLabel#differs {{ color: {WARNING}; font-weight: bold; }}
QLabel#cellCaption {{ color: {MUTED}; font-size: 9pt; padding: 1px; }}
QLabel#cellCaption[active="true"] {{ color: {TEXT}; }}
QFrame#imageCell {{ border: 1px solid transparent; }}
QFrame#imageCell[active="true"] {{ border: 1px solid {ACCENT}; }}
QFrame#shortcutOverlay {{ background: rgba(10, 10, 10, 215); }}
QFrame#shortcutCard {{ background: {PANEL}; border: 1px solid #4a4a4a; border-radius: 6px; }}
QWidget#thumbnailStrip {{ background: #1c1c1c; }}
QToolButton#thumbnail {{ background: #1c1c1c; color: {MUTED}; border: 1px solid #333333;
    border-radius: 3px; padding: 2px 4px; font-size: 9pt; }}
QToolButton#thumbnail:checked {{ color: {TEXT}; border: 1px solid {ACCENT}; }}
QLabel#groupHeader {{ color: {MUTED}; font-size: 9pt; font-weight: bold;
    text-transform: uppercase; padding: 12px 4px 2px 4px; border-bottom: 1px solid {RAISED}; }}
QLabel#blockTitle {{ font-weight: bold; }}
QScrollArea#questionPanel, QWidget#questionBody {{ background: {PANEL}; }}
QFrame#answerRow {{ border-left: 5px solid transparent; border-radius: 2px; }}
QFrame#answerRow[current="true"] {{ background: #3a4a58; border-left: 5px solid {ACCENT}; }}
QFrame#answerRow[missing="true"] {{ border-left: 5px solid {WARNING}; }}
QFrame#answerRow[current="true"] QLabel#rowTitle {{ color: #ffffff; font-weight: bold; }}
QFrame#answerRow[pending="true"] QLabel#rowTitle {{ font-style: italic; }}
QPushButton {{ background: {RAISED}; border: 1px solid #474747; border-radius: 3px;
    padding: 4px 10px; min-height: 20px; }}
QPushButton:hover {{ border-color: #5a5a5a; }}
QWidget#questionBody QPushButton:checked {{ background: {ACCENT}; border-color: {ACCENT};
    color: #ffffff; }}
QPushButton:disabled {{ color: #6e6e6e; }}
QWidget#questionBody QPushButton:checked:disabled {{ background: #45596a; color: #c0c0c0; }}
QPushButton#nextButton {{ padding: 6px 22px; font-weight: bold; }}
QPushButton#nextButton[ready="true"] {{ background: {ACCENT}; border-color: {ACCENT};
    color: white; }}
QLineEdit, QPlainTextEdit {{ background: #1f1f1f; border: 1px solid #474747;
    border-radius: 3px; padding: 3px; }}
QLineEdit:focus, QPlainTextEdit:focus {{ border-color: {ACCENT}; }}
QListWidget {{ background: {PANEL}; border: 1px solid {RAISED}; outline: 0; font-size: 12pt; }}
QListWidget::item {{ padding: 10px 8px; border-bottom: 1px solid {RAISED}; }}
QListWidget::item:selected {{ background: #3b4650; color: {TEXT}; }}
QListWidget::item:disabled {{ color: #777777; }}
QScrollBar:vertical {{ background: {PANEL}; width: 10px; }}
QScrollBar::handle:vertical {{ background: #4a4a4a; border-radius: 4px; min-height: 24px; }}
QScrollBar::add-line, QScrollBar::sub-line {{ height: 0; }}
QToolTip {{ background: {RAISED}; color: {TEXT}; border: 1px solid #555555; }}
"""


def set_style_property(widget: QWidget, name: str, value: object) -> None:
    """Set a property the style sheet selects on, and re-style the widget if it changed."""
    if widget.property(name) != value:
        widget.setProperty(name, value)
        style = widget.style()
        style.unpolish(widget)
        style.polish(widget)


def apply_theme(app: QApplication) -> None:
    """Apply the dark palette, a readable font size and the style sheet to ``app``."""
    app.setStyle("Fusion")
    palette = QPalette()
    for role, colour in (
        (QPalette.ColorRole.Window, BACKGROUND),
        (QPalette.ColorRole.Base, PANEL),
        (QPalette.ColorRole.AlternateBase, RAISED),
        (QPalette.ColorRole.Button, RAISED),
        (QPalette.ColorRole.Text, TEXT),
        (QPalette.ColorRole.WindowText, TEXT),
        (QPalette.ColorRole.ButtonText, TEXT),
        (QPalette.ColorRole.Highlight, ACCENT),
        (QPalette.ColorRole.HighlightedText, "#ffffff"),
        (QPalette.ColorRole.ToolTipBase, RAISED),
        (QPalette.ColorRole.ToolTipText, TEXT),
    ):
        palette.setColor(role, QColor(colour))
    app.setPalette(palette)
    font = QFont(app.font())
    font.setPointSizeF(max(font.pointSizeF(), 10.5))
    app.setFont(font)
    app.setStyleSheet(STYLE_SHEET)
