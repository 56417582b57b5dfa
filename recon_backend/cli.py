"""``blindreader recon``: reconstruct raw k-space files into DICOM series (see issue 3)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``recon`` command to the top-level application."""

    @app.command("recon", help="Reconstruct k-space files into DICOM series with provenance.")
    def recon() -> None:
        raise NotImplementedError("recon: not built yet")
