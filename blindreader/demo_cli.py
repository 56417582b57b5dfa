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
    arms: int = typer.Option(
        2,
        "--arms",
        min=2,
        max=3,
        help="2: fully sampled RSS vs DL at 4x; 3: adds CG-SENSE at 4x as a third arm.",
    ),
) -> None:
    """Build the demo study end to end and either open the viewer or read it with scripts."""
    from blindreader.demo.run import DemoSettings, run_demo
    from studies.cli import command_clock

    start = time.perf_counter()
    run_demo(
        out,
        headless=headless,
        report=typer.echo,
        settings=DemoSettings(n_arms=arms),
        clock=command_clock(ctx),
    )
    typer.echo(f"demo finished in {time.perf_counter() - start:.0f} s; everything is in {out}")
