"""``blindreader plan ...``: cases needed or power, for interchangeability and for MRMC AUC."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from analysis.errors import AnalysisError

plan_app = typer.Typer(
    help="Plan a reader study: cases needed or power, by simulation of the analysis.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``plan`` command group to the top-level application."""
    app.add_typer(plan_app, name="plan")


def _cases(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise AnalysisError(
            f"--cases: expected whole numbers separated by commas, got {text!r}"
        ) from None
    if not values or min(values) < 3:
        raise AnalysisError(f"--cases: expected numbers of cases of at least 3, got {text!r}")
    return sorted(set(values))


@plan_app.command("interchangeability")
def interchangeability_plan(
    readers: int = typer.Option(6, "--readers", help="Readers in the planned study."),
    gamma: float | None = typer.Option(
        None, "--gamma", help="Expected (true) excess disagreement; default 0, or the pilot's."
    ),
    margin: float | None = typer.Option(
        None, "--margin", help="Interchangeability margin (default 0.05 or the protocol's)."
    ),
    agreement: float = typer.Option(
        0.85, "--agreement", help="Reference-reference agreement of two readers (share of cases)."
    ),
    reader_rate_sd: float = typer.Option(
        0.05, "--reader-sd", help="SD of the readers' rates of 'present' calls (heterogeneity)."
    ),
    prevalence: float = typer.Option(0.3, "--prevalence", help="Share of cases with the finding."),
    readers_model: str | None = typer.Option(
        None, "--readers-model", help="fixed or random (default: the protocol's primary, random)."
    ),
    findings: int | None = typer.Option(
        None, "--findings", help="Findings tested (default 1, or the protocol's)."
    ),
    multiplicity: str | None = typer.Option(
        None, "--multiplicity", help="holm or intersection-union (default: the protocol's)."
    ),
    power: float = typer.Option(0.8, "--power", help="Target power (for the cases needed)."),
    cases: str | None = typer.Option(
        None, "--cases", help="Power at these numbers of cases instead, e.g. 100,150,200."
    ),
    protocol: Path | None = typer.Option(
        None, "--protocol", help="Protocol TOML: margin, threshold, findings, analysis plan."
    ),
    pilot_db: str | None = typer.Option(
        None, "--pilot-db", help="A pilot study database: the model is calibrated to it."
    ),
    pilot_reads: Path | None = typer.Option(
        None, "--pilot-reads", help="A pilot reads CSV (case,reader,arm,finding,value)."
    ),
    reference: str | None = typer.Option(None, "--reference", help="Reference arm (pilot CSV)."),
    new: str | None = typer.Option(None, "--new", help="New arm (pilot CSV)."),
    threshold: float | None = typer.Option(
        None, "--threshold", help="Grades >= threshold are present (pilot CSV; default 3)."
    ),
    studies: int = typer.Option(400, "--studies", help="Simulated studies per design."),
    seed: int = typer.Option(0, "--seed", help="Seed of the simulation."),
    out: Path | None = typer.Option(
        None, "--out", help="Folder for plan.json, power_curve.png and planning.toml."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
) -> None:
    """Cases needed (or power) for the interchangeability test the analysis will run."""
    import numpy as np
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from analysis import planning

    proto = None
    if protocol is not None:
        from studies.protocol import load_protocol

        proto = load_protocol(protocol)
    pilot: planning.PilotSummary | None = None
    if pilot_db is not None or pilot_reads is not None:
        if pilot_db is not None and pilot_reads is not None:
            raise AnalysisError("give either --pilot-db or --pilot-reads, not both")
        pilot, proto_from_db = _pilot(pilot_db, pilot_reads, reference, new, threshold)
        proto = proto or proto_from_db
    settings_source = proto.analysis if proto is not None else None
    ic = proto.interchangeability if proto is not None else None
    model_name = readers_model or (
        settings_source.primary_readers if settings_source is not None else "random"
    )
    family = multiplicity or (
        settings_source.multiplicity if settings_source is not None else "holm"
    )
    if findings is None:
        findings = len(proto.findings) if proto is not None and proto.findings else 1
    settings = planning.PlanSettings(
        readers=model_name,  # type: ignore[arg-type]  # checked by PlanSettings
        margin=margin if margin is not None else (ic.margin if ic is not None else 0.05),
        n_findings=findings,
        multiplicity=family,  # type: ignore[arg-type]
    )
    if pilot is not None:
        model = planning.model_from_pilot(pilot, n_readers=readers, gamma=gamma)
    else:
        model = planning.model_from_assumptions(
            n_readers=readers,
            gamma=0.0 if gamma is None else gamma,
            agreement=agreement,
            reader_rate_sd=reader_rate_sd,
            prevalence=prevalence,
        )
    rng = np.random.default_rng(seed)
    grid = _cases(cases)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), transient=True
    ) as bar:
        task = bar.add_task("simulating", total=None)

        def progress(done: int, total: int, message: str) -> None:
            bar.update(task, completed=done, total=total, description=f"simulating: {message}")

        if grid is not None:
            needed = None
            points = planning.power_curve(
                model, grid, settings, n_studies=studies, rng=rng, progress=progress
            )
        else:
            needed, points = planning.cases_needed(
                model, power, settings, n_studies=studies, rng=rng, progress=progress
            )
    plan = _plan_record(model, settings, pilot, points, needed, power if grid is None else None,
                        studies, seed)  # fmt: skip
    if out is not None:
        _write_outputs(out, plan, points, settings, power if grid is None else None)
    if as_json:
        typer.echo(json.dumps(plan, indent=2))
        return
    _print_plan(plan)


def _pilot(
    db: str | None,
    reads_csv: Path | None,
    reference: str | None,
    new: str | None,
    threshold: float | None,
) -> tuple[Any, Any]:
    from analysis import planning

    if db is not None:
        from analysis.reads import reads_from_answers
        from analysis.report import inputs_from_db

        answers, proto, truth = inputs_from_db(db)
        if proto.interchangeability is None:
            raise AnalysisError(f"{db}: the pilot's protocol has no [interchangeability] question")
        table = reads_from_answers(answers, proto, source=str(db))
        others = [a.code for a in proto.other_arms]
        return (
            planning.pilot_summary(
                table.reads,
                proto.reference_arm.code,
                new or others[0],
                threshold=float(proto.interchangeability.threshold),
                truth=truth,
                source=str(db),
            ),
            proto,
        )
    assert reads_csv is not None
    from analysis.reads import load_reads_csv

    table = load_reads_csv(reads_csv)
    if reference is None:
        raise AnalysisError("--pilot-reads needs --reference (the reference arm's code)")
    if reference not in table.arms:
        raise AnalysisError(
            f"{reads_csv}: column 'arm': the reference arm {reference!r} is not in the reads "
            f"(arms: {', '.join(table.arms)})"
        )
    others = [a for a in table.arms if a != reference]
    if new is None and len(others) != 1:
        raise AnalysisError(f"{reads_csv}: name the new arm with --new ({', '.join(others)})")
    return (
        planning.pilot_summary(
            table.reads,
            reference,
            new or others[0],
            threshold=3.0 if threshold is None else threshold,
            source=str(reads_csv),
        ),
        None,
    )


def _plan_record(
    model: Any,
    settings: Any,
    pilot: Any,
    points: list[Any],
    needed: int | None,
    target: float | None,
    studies: int,
    seed: int,
) -> dict[str, Any]:
    from analysis import planning

    check = planning.model_check(model)
    words = "random readers" if settings.readers == "random" else "fixed readers"
    family = (
        f"Holm across {settings.n_findings} findings (each planned at one-sided "
        f"{settings.level:.4g})"
        if settings.multiplicity == "holm"
        else f"intersection-union over {settings.n_findings} findings (each at "
        f"{settings.level:.4g})"
    )
    basis = (
        f"a pilot ({pilot.source}: {pilot.n_cases} cases, {pilot.n_readers} readers; prevalence "
        f"{pilot.prevalence:.2f} from the {pilot.prevalence_from}, reference agreement "
        f"{pilot.agreement:.3f}, reader rate SD {pilot.reader_rate_sd:.3f}, excess "
        f"disagreement {pilot.gamma:.4f})"
        if pilot is not None
        else (
            f"stated assumptions (reference agreement {check['agreement']:.3f}, reader rate SD "
            f"{check['reader_rate_sd']:.3f}, prevalence {check['prevalence']:.2f})"
        )
    )
    if needed is not None and target is not None:
        achieved = next(p for p in points if p.n_cases == needed)
        text = (
            f"{needed} cases read by {model.n_readers} readers give a power of "
            f"{achieved.power:.2f} (Monte-Carlo 95% CI {achieved.power_low:.2f}-"
            f"{achieved.power_high:.2f}; target {target:g}) to declare the new arm "
            f"interchangeable with the reference ({words}, margin {settings.margin:g}, {family}) "
            f"when the true excess disagreement is {check['gamma']:.4f}; simulated from "
            f"{basis}, {studies} studies per design with the analysis's own decision rule."
        )
    elif target is not None:
        text = (
            f"Even {max(p.n_cases for p in points)} cases do not reach a power of {target:g} "
            f"({words}, margin {settings.margin:g}, true excess disagreement "
            f"{check['gamma']:.4f})."
        )
    else:
        listed = ", ".join(f"{p.n_cases} cases {p.power:.2f}" for p in points)
        text = (
            f"Power to declare interchangeability ({words}, {model.n_readers} readers, margin "
            f"{settings.margin:g}, {family}, true excess disagreement {check['gamma']:.4f}): "
            f"{listed}; simulated from {basis}, {studies} studies per design."
        )
    return {
        "statement": text,
        "cases_needed": needed,
        "target_power": target,
        "n_readers": model.n_readers,
        "expected_gamma": check["gamma"],
        "settings": {
            "readers": settings.readers,
            "margin": settings.margin,
            "n_findings": settings.n_findings,
            "multiplicity": settings.multiplicity,
            "level": settings.level,
            "n_boot": settings.n_boot,
        },
        "model": check,
        "pilot": pilot.to_dict() if pilot is not None else None,
        "points": [p.to_dict() for p in points],
        "studies_per_design": studies,
        "seed": seed,
    }


def _write_outputs(
    out: Path, plan: dict[str, Any], points: list[Any], settings: Any, target: float | None
) -> None:
    from analysis import figures
    from analysis.report import json_ready

    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.json").write_text(json.dumps(json_ready(plan), indent=2))
    figures.power_curve(
        [p.to_dict() for p in points],
        out / "power_curve.png",
        target=target,
        title=f"Power to declare interchangeability ({settings.readers} readers model, "
        f"margin {settings.margin:g})",
    )
    record = [
        "[analysis.planning]",
        f"text = {json.dumps(plan['statement'])}",
        f"n_readers = {plan['n_readers']}",
        f"expected_gamma = {plan['expected_gamma']:.4f}",
        f'method = "blindreader plan interchangeability, {plan["studies_per_design"]} simulated '
        f'studies per design, seed {plan["seed"]}"',
    ]
    if plan["cases_needed"] is not None:
        record.insert(2, f"n_cases = {plan['cases_needed']}")
        point = next(p for p in points if p.n_cases == plan["cases_needed"])
        record.insert(3, f"power = {point.power:.3f}")
    (out / "planning.toml").write_text("\n".join(record) + "\n")


def _print_plan(plan: dict[str, Any]) -> None:
    typer.echo(plan["statement"])
    typer.echo(f"{'cases':>6} {'power':>7} {'95% MC interval':>17} {'studies':>8}")
    for p in plan["points"]:
        typer.echo(
            f"{p['n_cases']:>6} {p['power']:>7.3f} [{p['power_low']:.3f}, {p['power_high']:.3f}]"
            f" {p['n_studies']:>8}"
        )


@plan_app.command("mrmc")
def mrmc_plan(
    pilot: Path = typer.Argument(
        ..., help="Pilot list-mode CSV reader,treatment,case,truth,rating (two treatments)."
    ),
    readers: int = typer.Option(6, "--readers", help="Readers in the planned study."),
    delta: float | None = typer.Option(
        None, "--delta", help="AUC difference to detect (default: the pilot's)."
    ),
    power: float = typer.Option(0.8, "--power", help="Target power (for the cases needed)."),
    cases: str | None = typer.Option(None, "--cases", help="Power at these numbers of cases."),
    alpha: float = typer.Option(0.05, "--alpha", help="Two-sided level of the F test."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
) -> None:
    """Cases needed (or power) for the Obuchowski-Rockette AUC comparison, from a pilot."""
    from analysis import planning
    from analysis.mrmc import mrmc_from_list, read_list_csv

    if not pilot.is_file():
        raise AnalysisError(f"{pilot}: no such file (expected a list-mode CSV)")
    result = mrmc_from_list(read_list_csv(pilot), fom="auc", source=str(pilot))
    components = planning.mrmc_components_from_result(result)
    effect = components.delta if delta is None else delta
    assert effect is not None
    grid = _cases(cases)
    rows = []
    needed = None
    if grid is None:
        needed = planning.mrmc_cases_needed(
            components, delta=effect, n_readers=readers, target=power, alpha=alpha
        )
        base = needed or 100
        grid = sorted({max(10, int(base * f)) for f in (0.5, 0.75, 1.0, 1.5, 2.0)})
    for n in grid:
        rows.append(
            {
                "n_cases": n,
                "power": planning.mrmc_power(
                    components, delta=effect, n_readers=readers, n_cases=n, alpha=alpha
                ),
            }
        )
    payload = {
        "pilot": str(pilot),
        "components": components.to_dict(),
        "delta": effect,
        "n_readers": readers,
        "alpha": alpha,
        "cases_needed": needed,
        "target_power": power if cases is None else None,
        "points": rows,
    }
    if as_json:
        typer.echo(json.dumps(payload, indent=2))
        return
    if needed is not None:
        typer.echo(
            f"{needed} cases with {readers} readers give power {power:g} to detect an AUC "
            f"difference of {effect:+.4f} (OR random readers and cases, Hillis ddf, two-sided "
            f"alpha {alpha:g}; pilot {result.n_cases} cases, {len(result.readers)} readers)."
        )
    elif cases is None:
        typer.echo(f"No number of cases up to 100000 reaches power {power:g}.")
    for row in rows:
        typer.echo(f"{row['n_cases']:>7} cases: power {row['power']:.3f}")
