"""One pane (sequential design) or two linked panes (paired design).

Linking is by construction: both panes observe the same :class:`ViewState`, so a slice, zoom,
pan or window change made in either pane moves both, and both start from the pair's window.
"""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QWidget

from reader_app.images import CaseImages
from reader_app.state import ViewState
from reader_app.widgets.image_pane import ImagePane


class LinkedPanes(QWidget):
    """The image area of the reading view: ``n_sides`` panes, left first."""

    def __init__(self, view: ViewState, n_sides: int = 1, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("imageArea")
        self.view = view
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(4)
        self.panes: list[ImagePane] = []
        self.set_sides(n_sides)

    def set_sides(self, n_sides: int) -> None:
        """Show ``n_sides`` panes (1 or 2)."""
        n_sides = max(1, min(n_sides, 2))
        layout = self._layout
        while len(self.panes) > n_sides:
            pane = self.panes.pop()
            layout.removeWidget(pane)
            pane.deleteLater()
        while len(self.panes) < n_sides:
            pane = ImagePane(self.view, self)
            self.panes.append(pane)
            layout.addWidget(pane, 1)
        for index, pane in enumerate(self.panes):
            pane.setAccessibleName(
                ("Left image", "Right image")[index] if n_sides == 2 else "Image"
            )

    def set_images(self, images: CaseImages | None) -> None:
        """Show the case's volumes (``None``: every pane black)."""
        for index, pane in enumerate(self.panes):
            volumes = images.volumes if images is not None else ()
            pane.set_volume(volumes[index] if index < len(volumes) else None)
