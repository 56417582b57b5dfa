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
    for i, (trt, mean) in enumerate(result.treatment_means.items()):
        per_reader = ", ".join(
            f"{reader} {result.foms[i, j]:.4f}" for j, reader in enumerate(result.readers)
        )
        typer.echo(f"  treatment {trt}: mean {result.fom} {mean:.4f} (readers: {per_reader})")
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


@analyze_app.command("interchangeability")
def interchangeability_command(
    reads_csv: Path = typer.Argument(
        ..., help="Reads CSV with columns case,reader,arm,finding,value (+ optional read)."
    ),
    reference: str = typer.Option(..., "--reference", help="Arm code of the reference arm."),
    new: str | None = typer.Option(
        None, "--new", help="Arm code of the new arm (default: the only other arm)."
    ),
    margin: float = typer.Option(0.05, "--margin", help="Interchangeability margin for gamma."),
    threshold: float | None = typer.Option(
        None, "--threshold", help="Dichotomise ordinal values: value >= threshold is present."
    ),
    readers: str = typer.Option("fixed", "--readers", help="Reader model: fixed or random."),
    measure: str = typer.Option(
        "binary", "--measure", help="Agreement measure: binary, exact or squared."
    ),
    same_reader: bool = typer.Option(
        False, "--same-reader", help="Use the same-reader estimator (needs repeat reads)."
    ),
    n_boot: int = typer.Option(2000, "--n-boot", help="Bootstrap resamples."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap random generator."),
    holm: bool = typer.Option(False, "--holm", help="Holm-adjust the p-values across findings."),
    gee: bool = typer.Option(
        False, "--gee", help="Add the GEE form (exchangeable working correlation) as a cross-check."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Excess disagreement per finding (Obuchowski 2014) and the decision against the margin."""
    import json

    import numpy as np

    from analysis.interchangeability import interchangeability_by_finding
    from analysis.reads import load_reads_csv

    table = load_reads_csv(reads_csv)
    if reference not in table.arms:
        raise AnalysisError(
            f"{reads_csv}: column 'arm': the reference arm {reference!r} is not in the reads "
            f"(arms: {', '.join(table.arms)})"
        )
    if new is None:
        others = [arm for arm in table.arms if arm != reference]
        if len(others) != 1:
            raise AnalysisError(
                f"{reads_csv}: column 'arm' holds {len(others)} arms besides {reference!r} "
                f"({', '.join(others)}); name the new arm with --new"
            )
        new = others[0]
    results = interchangeability_by_finding(
        table.reads,
        reference,
        new,
        threshold=threshold,
        margin=margin,
        readers=readers,  # type: ignore[arg-type]  # checked by the analysis
        n_boot=n_boot,
        rng=np.random.default_rng(seed),
        holm=holm,
        measure=measure,  # type: ignore[arg-type]
        estimator="same-reader" if same_reader else "between-reader",
    )
    gee_results = {}
    if gee:
        from analysis.interchangeability import gee_excess_disagreement

        gee_results = {
            r.finding: gee_excess_disagreement(
                table.reads,
                reference,
                new,
                finding=r.finding,
                threshold=threshold,
                measure=r.measure,  # type: ignore[arg-type]
            )
            for r in results
        }
    if as_json:
        findings = [result.to_dict() for result in results]
        for item in findings:
            if item["finding"] in gee_results:
                item["gee"] = gee_results[str(item["finding"])].to_dict()
        payload = {
            "reads": str(reads_csv),
            "reference": reference,
            "new": new,
            "seed": seed,
            "findings": findings,
            "exclusions": [exclusion.to_dict() for exclusion in table.exclusions],
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    first = results[0]
    typer.echo(
        f"Excess disagreement of {new} over reference {reference} ({first.readers} readers, "
        f"{first.measure}, margin {margin:g}): {first.method}"
    )
    header = f"{'finding':<20} {'gamma':>8} {'95% CI':>19} {'A_RR':>7} {'A_TR':>7} {'A_TT':>7}"
    header += f" {'N':>5} {'J':>3} {'p':>7}" + (f" {'p_holm':>7}" if holm else "") + "  decision"
    typer.echo(header)
    for r in results:
        a_tt = "-" if r.a_tt is None else f"{r.a_tt:.3f}"
        line = (
            f"{r.finding:<20} {r.excess_disagreement:>+8.4f} "
            f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}] {r.a_rr:>7.3f} {r.a_tr:>7.3f} {a_tt:>7} "
            f"{r.n_cases:>5} {r.n_readers:>3} {r.p_value:>7.4f}"
        )
        if holm:
            line += f" {r.p_holm:>7.4f}"
        line += "  interchangeable" if r.interchangeable else "  not shown"
        typer.echo(line)
    for finding, g in gee_results.items():
        typer.echo(
            f"GEE cross-check {finding}: {g.estimate:+.4f} "
            f"[{g.ci_low:+.4f}, {g.ci_high:+.4f}] (robust SE {g.se:.4f})"
        )
    for exclusion in table.exclusions:
        typer.echo(
            f"excluded: case {exclusion.case}, finding {exclusion.finding}: {exclusion.reason}"
        )


@analyze_app.command("report")
def report_command(
    ctx: typer.Context,
    db: str | None = typer.Option(
        None, "--db", help="Study database (SQLite file or postgresql+psycopg:// URL)."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Folder for results.json, CSVs, PNGs, report.html."
    ),
    answers: Path | None = typer.Option(
        None, "--answers", help="Tidy unblinded answers CSV (instead of --db)."
    ),
    protocol: Path | None = typer.Option(
        None, "--protocol", help="Protocol TOML (with --answers)."
    ),
    truth: Path | None = typer.Option(
        None, "--truth", help="Reference standard CSV case,finding,truth (with --answers)."
    ),
    measurements: Path | None = typer.Option(
        None,
        "--measurements",
        help="Tidy measurements CSV case,reader,arm,session,measurement,value,unit (with "
        "--answers; from the database it is read with --db).",
    ),
    n_boot: int = typer.Option(2000, "--n-boot", help="Bootstrap resamples."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap random generator."),
    simulated_note: str | None = typer.Option(
        None, "--simulated-note", help="First line of the report, e.g. 'SIMULATED DATA: ...'."
    ),
) -> None:
    """Analyse a study and write the report (results.json, CSV tables, figures, report.html)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from analysis.report import (
        assignments_from_db,
        build_report,
        inputs_from_csv,
        inputs_from_db,
        measurements_from_csv,
        measurements_from_db,
        study_record_from_db,
    )
    from studies.cli import command_clock

    if (db is None) == (answers is None):
        raise AnalysisError("give either --db STUDY or --answers ANSWERS.csv --protocol TOML")
    if db is not None:
        if protocol is not None or truth is not None or measurements is not None:
            raise AnalysisError(
                "--protocol, --truth and --measurements go with --answers, not with --db"
            )
        frame, proto, truth_frame = inputs_from_db(db)
        assignments = assignments_from_db(db)
        measured = measurements_from_db(db)
        record = study_record_from_db(db, clock=command_clock(ctx))
    else:
        assignments = None
        record = None
        if protocol is None:
            raise AnalysisError("--answers needs --protocol PROTOCOL.toml")
        assert answers is not None
        frame, proto, truth_frame = inputs_from_csv(answers, protocol, truth)
        measured = measurements_from_csv(measurements) if measurements is not None else None
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), transient=True
    ) as bar:
        task = bar.add_task("analysing", total=None)

        def progress(done: int, total: int, message: str) -> None:
            bar.update(task, completed=done, total=total, description=message)

        results = build_report(
            frame,
            proto,
            truth_frame,
            out,
            n_boot=n_boot,
            seed=seed,
            simulated_note=simulated_note,
            assignments=assignments,
            measurements=measured,
            study_record=record,
            progress=progress,
        )
    typer.echo(f"{out / 'report.html'}: report of {results['study']['title']!r}")
    for sentence in results.get("decisions", []):
        typer.echo(f"  {sentence}")
    files = results["files"]
    typer.echo(f"  {len(files['tables'])} tables and {len(files['figures'])} figures in {out}")
