"""``blindreader recon``: reconstruct raw k-space files into DICOM series (see issue 3)."""

from __future__ import annotations

from pathlib import Path

import typer

METHOD_HELP = "rss (fully sampled), zero-filled, cg-sense, varnet or unet."


def register(app: typer.Typer) -> None:
    """Add the ``recon`` command to the top-level application."""

    @app.command("recon", help="Reconstruct k-space files into DICOM series with provenance.")
    def recon(
        inputs: list[Path] = typer.Argument(..., help="fastMRI or ISMRMRD HDF5 k-space files."),
        out: Path = typer.Option(..., "--out", help="Output folder (series + manifest.json)."),
        method: str = typer.Option(..., "--method", help=METHOD_HELP),
        model: Path | None = typer.Option(
            None, "--model", help="Weights file (varnet default: the bundled demo model)."
        ),
        accel: int = typer.Option(4, "--accel", help="Acceleration of the undersampling mask."),
        center_fraction: float = typer.Option(
            0.08, "--center-fraction", help="Fully sampled centre fraction of the mask."
        ),
        mask: str = typer.Option(
            "equispaced-fraction", "--mask", help="random, equispaced or equispaced-fraction."
        ),
        device: str = typer.Option("auto", "--device", help="auto, cuda, mps or cpu."),
        batch_size: int | None = typer.Option(
            None,
            "--batch-size",
            help="Slices per batch (default: measured per device, within the memory budget).",
        ),
        precision: str = typer.Option(
            "fp32",
            "--precision",
            help="Networks' arithmetic: fp32 (default; GPU matches CPU), tf32 or amp. "
            "FFTs stay complex64.",
        ),
    ) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskID,
            TimeElapsedColumn,
        )

        from recon_backend.pipeline import default_model_path, run_recon

        if method == "varnet" and model is None:
            bundled = default_model_path(method)
            if bundled is not None:
                typer.echo(f"--model not given: using the bundled demo VarNet {bundled}", err=True)
        tasks: dict[str, TaskID] = {}
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=False,
        ) as bar:

            def progress(done: int, total: int, message: str) -> None:
                if message not in tasks:
                    tasks[message] = bar.add_task(message, total=total)
                bar.update(tasks[message], completed=done, total=total)

            entries = run_recon(
                inputs,
                out,
                method,
                model_path=model,
                accel=accel,
                center_fraction=center_fraction,
                mask_type=mask,
                device=device,
                batch_size=batch_size,
                precision=precision,
                progress=progress,
            )
        for entry in entries:
            metrics = entry["metrics"]
            summary = (
                ", ".join(
                    f"{key} {value:.4g}" for key, value in metrics.items() if value is not None
                )
                if metrics
                else "no fully sampled reference"
            )
            typer.echo(f"{entry['input']} -> {out / entry['series_dir']} ({summary})")
        typer.echo(f"manifest: {out / 'manifest.json'}")
