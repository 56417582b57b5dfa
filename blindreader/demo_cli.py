"""``blindreader demo``: the simulated demo study, end to end."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", help="Folder for everything the demo makes."),
    headless: bool = typer.Option(False, "--headless", help="Scripted readers instead of the viewer."),
) -> None:
    """Build the demo study end to end and either open the viewer or read it with scripts."""
    raise NotImplementedError("demo: not built yet")
