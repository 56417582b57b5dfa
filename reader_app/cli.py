"""``blindreader read``: open the reading workstation on a study (issue 5)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``read`` command to the top-level application."""

    @app.command("read", help="Open the reading workstation on a study database.")
    def read() -> None:
        raise NotImplementedError("read: not built yet")
