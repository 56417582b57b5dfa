"""``blindreader demo``: the simulated demo study, end to end."""

from __future__ import annotations

import time
from pathlib import Path

import typer


def demo(
    ctx: typer.Context,
    out: Path = typer.Option(
        Path("demo-output"), "--out", help="Folder for everything the demo makes."
    ),
    headless: bool = typer.Option(
        False, "--headless", help="Scripted readers and screenshots instead of the viewer."
    ),
) -> None:
    """Build the demo study end to end and either open the viewer or read it with scripts."""
    from blindreader.demo.run import run_demo
    from studies.cli import command_clock

    start = time.perf_counter()
    run_demo(out, headless=headless, report=typer.echo, clock=command_clock(ctx))
    typer.echo(f"demo finished in {time.perf_counter() - start:.0f} s; everything is in {out}")
