"""``blindreader read``: open the reading workstation on a study (issue 5)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the ``read`` command to the top-level application."""

    @app.command("read", help="Open the reading workstation on a study database.")
    def read(
        ctx: typer.Context,
        db: Path = typer.Option(..., "--db", help="The study database (STUDY.sqlite)."),
        reader: str | None = typer.Option(
            None, "--reader", help="Reader id: skip the reader picker."
        ),
    ) -> None:
        from reader_app.app import run_workstation  # Qt is imported only when reading
        from studies.cli import command_clock

        raise typer.Exit(run_workstation(db, reader, clock=command_clock(ctx)))
