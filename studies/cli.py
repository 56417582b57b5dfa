"""``blindreader study ...``: validate, create, status, export, verify, pack, merge (issue 4)."""

from __future__ import annotations

import typer

study_app = typer.Typer(help="Create and manage blinded reader studies.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``study`` command group to the top-level application."""
    app.add_typer(study_app, name="study")
