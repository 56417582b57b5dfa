"""One cell of the hanging: one pane (sequential design) or two linked panes (paired design)
showing one series, with a caption (the series' neutral name) above the images.

Linking is by construction: both panes observe the same :class:`ViewState` (the series'), so a
slice, zoom, pan or window change made in either pane moves both, and both start from the pair's
window. In the paired design the left pane shows the left side's arm, the right pane the right's.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from reader_app.images import SeriesVolumes
from reader_app.signals import emit
from reader_app.state import ViewState
from reader_app.widgets.image_pane import ImagePane
from reader_app.widgets.theme import set_style_property


class LinkedPanes(QFrame):
    """One series on ``n_sides`` panes, left first."""

    activated = Signal()  # the reader clicked, scrolled or focused a pane of this cell

    def __init__(self, view: ViewState, n_sides: int = 1, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("imageCell")
        self.setProperty("active", False)
        self.view = view
        self.label = ""
        self.caption = QLabel("", self)
        self.caption.setObjectName("cellCaption")
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.caption.hide()
        self._row = QHBoxLayout()
        self._row.setContentsMargins(0, 0, 0, 0)
        self._row.setSpacing(4)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(2, 2, 2, 2)
        outer.setSpacing(2)
        outer.addWidget(self.caption)
        outer.addLayout(self._row, 1)
        self.panes: list[ImagePane] = []
        self.set_sides(n_sides)

    def set_sides(self, n_sides: int) -> None:
        """Show ``n_sides`` panes (1 or 2)."""
        n_sides = max(1, min(n_sides, 2))
        while len(self.panes) > n_sides:
            pane = self.panes.pop()
            self._row.removeWidget(pane)
            pane.deleteLater()
        while len(self.panes) < n_sides:
            pane = ImagePane(self.view, self)
            pane.activated.connect(lambda: emit(self.activated))
            self.panes.append(pane)
            self._row.addWidget(pane, 1)
        for index, pane in enumerate(self.panes):
            pane.setAccessibleName(
                ("Left image", "Right image")[index] if n_sides == 2 else "Image"
            )
            pane.side = ("left", "right")[index] if n_sides == 2 else None

    def show_series(
        self,
        series: SeriesVolumes | None,
        view: ViewState | None = None,
        *,
        caption: bool = False,
    ) -> None:
        """Show ``series`` (every side) through ``view``; ``None``: every pane black.

        Without ``view`` the panes keep the one they follow (the black frame does not rebind
        them: each Qt connection made and undone costs time and a little memory for good).
        """
        if view is not None:
            self.view = view
        self.label = series.label if series is not None else ""
        self.caption.setText(self.label)
        self.caption.setVisible(caption and series is not None)
        for index, pane in enumerate(self.panes):
            pane.series_label = self.label
            if view is not None:
                pane.set_view(view)
            if series is not None and index < len(series.volumes):
                pane.set_volume(series.volumes[index], series.geometries[index])
            else:
                pane.set_volume(None)

    def set_active(self, active: bool) -> None:
        """Outline the cell that keys act on."""
        set_style_property(self, "active", active)
        set_style_property(self.caption, "active", active)

    def set_show_readout(self, shown: bool) -> None:
        """Show or hide the window/level readout on every pane."""
        for pane in self.panes:
            pane.set_show_readout(shown)
