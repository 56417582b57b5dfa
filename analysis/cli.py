"""``blindreader analyze ...``: report, interchangeability, mrmc (issue 6)."""

from __future__ import annotations

from pathlib import Path

import typer

from analysis.errors import AnalysisError

analyze_app = typer.Typer(help="Analyse a reader study.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``analyze`` command group to the top-level application."""
    app.add_typer(analyze_app, name="analyze")


@analyze_app.command("mrmc")
def mrmc_command(
    list_csv: Path = typer.Argument(
        ..., help="List-mode CSV with columns reader,treatment,case,truth,rating."
    ),
    fom: str = typer.Option("auc", "--fom", help="Figure of merit: auc, sensitivity, specificity."),
    threshold: float | None = typer.Option(
        None, "--threshold", help="Rating at or above which a reading is positive (sens./spec.)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
) -> None:
    """Obuchowski-Rockette MRMC analysis (Hillis ddf): random readers and cases, fixed
    readers, fixed cases."""
    import json

    from analysis.mrmc import mrmc_from_list, read_list_csv

    if not list_csv.is_file():
        raise AnalysisError(f"{list_csv}: no such file (expected a list-mode CSV)")
    result = mrmc_from_list(
        read_list_csv(list_csv), fom=fom, threshold=threshold, source=str(list_csv)
    )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    typer.echo(
        f"{result.fom.upper()}: {len(result.treatments)} treatments x {len(result.readers)} "
        f"readers x {result.n_cases} cases ({result.n_diseased} diseased)"
    )
    for trt, mean in result.treatment_means.items():
        typer.echo(f"  treatment {trt}: mean {result.fom} {mean:.4f}")
    for test, label in (
        (result.rrrc, "random readers, random cases"),
        (result.frrc, "fixed readers, random cases"),
        (result.rrfc, "random readers, fixed cases"),
    ):
        df = f"{test.ndf:g}" if test.statistic_name == "chi2" else f"{test.ndf:g}, {test.ddf:.2f}"
        typer.echo(
            f"{label}: {test.statistic_name} = {test.statistic:.3f} (df {df}), p = {test.p:.4f}"
        )
        for d in test.differences:
            typer.echo(
                f"  {d.first} - {d.second}: {d.estimate:+.4f} (SE {d.se:.4f}, "
                f"95% CI {d.ci_low:+.4f} to {d.ci_high:+.4f})"
            )
