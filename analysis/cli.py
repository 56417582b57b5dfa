"""``blindreader analyze ...``: report, interchangeability, mrmc (issue 6)."""

from __future__ import annotations

import typer

analyze_app = typer.Typer(help="Analyse a reader study.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``analyze`` command group to the top-level application."""
    app.add_typer(analyze_app, name="analyze")
