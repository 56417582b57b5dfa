"""``blindreader study ...``: validate, create, status, export, verify, seal, pack, merge, copy,
readers (issues 4, 10).

Only typer and the standard library are imported here; the store (SQLAlchemy), pandas and pydicom
are imported inside the commands so ``blindreader --help`` stays fast. User errors are raised as
:class:`~studies.errors.StudyError`; the top-level command prints them as one line, exit 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from studies.clock import Clock, system_clock
from studies.errors import StudyError

if TYPE_CHECKING:
    from studies.distinguishability import Distinguishability

study_app = typer.Typer(help="Create and manage blinded reader studies.", no_args_is_help=True)


class ExportWhat(StrEnum):
    """What ``study export`` writes."""

    answers = "answers"
    assignments = "assignments"
    key = "key"
    events = "events"
    mrmc = "mrmc"
    mrmcaov = "mrmcaov"
    imrmc = "imrmc"
    measurements = "measurements"
    rois = "rois"
    sr = "sr"


DbOption = Annotated[
    str,
    typer.Option("--db", help="The study database (SQLite file, or a postgresql+psycopg:// URL)."),
]
KeyOption = Annotated[
    Path | None,
    typer.Option(
        "--key",
        help="The study key file (default: the one `study create` wrote to the key folder).",
    ),
]
readers_app = typer.Typer(help="The study's readers and how they sign in.", no_args_is_help=True)
study_app.add_typer(readers_app, name="readers")


def command_clock(ctx: typer.Context) -> Clock:
    """The clock the command line was started with (``blindreader.cli.main``'s ``clock``).

    Commands read "now" only through it. It is set in-process by whoever calls ``main``, never
    by an option or an environment variable (see :mod:`studies.clock`).
    """
    obj = ctx.find_root().obj
    return obj if callable(obj) else system_clock


def register(app: typer.Typer) -> None:
    """Add the ``study`` command group to the top-level application."""
    app.add_typer(study_app, name="study")


@study_app.command("validate")
def validate(
    protocol: Annotated[Path, typer.Argument(help="The protocol TOML file.")],
) -> None:
    """Check a protocol file and summarise it."""
    from studies.protocol import load_protocol

    p = load_protocol(protocol)
    arms = ", ".join(f"{a.code}{' (reference)' if a.reference else ''}" for a in p.arms)
    typer.echo(f"{protocol}: valid")
    typer.echo(f"  title:     {p.title}")
    typer.echo(f"  design:    {p.design}, {p.n_sessions} session(s) per reader")
    if p.design == "sequential":
        typer.echo(f"  washout:   {p.washout_days} days")
    typer.echo(f"  arms:      {arms}")
    typer.echo(f"  readers:   {', '.join(r.id for r in p.readers)}")
    typer.echo(f"  findings:  {len(p.findings)}; questions: {len(p.questions)}")
    if p.measurements:
        shown = ", ".join(f"{m.id} ({m.kind})" for m in p.measurements)
        typer.echo(f"  measured:  {shown}")
    typer.echo(f"  seed:      {p.seed}")


@study_app.command("create")
def create(
    ctx: typer.Context,
    protocol: Annotated[Path, typer.Argument(help="The protocol TOML file.")],
    cases: Annotated[Path, typer.Option("--cases", help="CASES.csv: one row per case and arm.")],
    db: Annotated[Path, typer.Option("--db", help="The study database to create (new file).")],
    allow_leak: Annotated[
        str | None,
        typer.Option(
            "--allow-leak",
            metavar="REASON",
            help="Create the study although the leak scan found something (the reason is logged).",
        ),
    ] = None,
    allow_burned_in: Annotated[
        str | None,
        typer.Option(
            "--allow-burned-in",
            metavar="REASON",
            help="Create the study although some series declare burned-in annotation "
            "(the reason is logged).",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", min=1, help="Worker processes for blinding (default: one per CPU)."
        ),
    ] = None,
) -> None:
    """Blind (allow-list copy), check and scan the series; store the assignments (atomic).

    Also reports whether per-series image statistics (noise, texture, sharpness, histogram)
    let a simple classifier tell the arms apart.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from studies.create import create_study

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("creating the study", total=None)

        def progress(done: int, total: int, message: str) -> None:
            bar.update(task, completed=done, total=total, description=message)

        summary = create_study(
            protocol,
            cases,
            db,
            allow_leak=allow_leak,
            allow_burned_in=allow_burned_in,
            workers=workers,
            progress=progress,
            clock=command_clock(ctx),
        )
    typer.echo(f"{summary.db_path}: study {summary.title!r} created ({summary.design})")
    typer.echo(
        f"  {summary.n_cases} cases, {summary.n_series} series ({summary.n_slices} images) in "
        f"{summary.images_dir}"
    )
    typer.echo(
        f"  {summary.n_readers} readers, {summary.n_assignments} assignments "
        f"(seed {summary.seed}, {summary.algorithm_version})"
    )
    if summary.n_leaks_allowed:
        typer.echo(f"  {summary.n_leaks_allowed} leak(s) allowed: {allow_leak}", err=True)
    if summary.key_path is not None:
        typer.echo(f"  study key: {summary.key_path}")
        typer.echo(
            "  Back the key up now (copy it to an encrypted USB stick or a password manager) and "
            "keep it out of the study folder and packages: `study verify` needs it to prove that "
            "nothing was changed, and whoever holds it could change the study unnoticed."
        )
    if summary.n_burned_in_allowed:
        typer.echo(
            f"  {summary.n_burned_in_allowed} series with burned-in annotation allowed: "
            f"{allow_burned_in}",
            err=True,
        )
    _echo_distinguishability(summary.distinguishability)


def _echo_distinguishability(results: Sequence[Distinguishability]) -> None:
    """The distinguishability report, one paragraph per compared arm."""
    if not results:
        return
    typer.echo("Can image statistics tell the arms apart?")
    for result in results:
        typer.echo(f"  {result.summary()}")
        if result.verdict == "distinguishable":
            typer.echo(
                "  -> readers may recognise the arm by its look; consider matching noise or "
                "sharpness between the arms, and report it"
            )


@study_app.command("status")
def status(ctx: typer.Context, db: DbOption) -> None:
    """Progress per reader and session, and which sessions are locked by the washout."""
    from rich.console import Console
    from rich.table import Table

    from studies.distinguishability import stored_distinguishability
    from studies.store import Store

    with Store.open(db, clock=command_clock(ctx)) as store:
        report = stored_distinguishability(store)
        table = Table(title=store.study_title)
        for column in ("reader", "name", "session", "done", "state"):
            table.add_column(column)
        for reader in store.readers():
            for s in store.sessions(reader.reader_id):
                if s.finished:
                    state = "finished"
                elif s.locked and s.not_before is not None:
                    state = f"locked until {s.not_before.isoformat()}"
                elif s.locked:
                    state = f"locked (session {s.index - 1} unfinished)"
                else:
                    state = "open"
                table.add_row(
                    reader.reader_id, reader.name, str(s.index), f"{s.n_done} / {s.n_total}", state
                )
        policy = store.sign_in_policy()
        key = store.key
    console = Console(width=120)
    console.print(table)
    console.print(f"Sign-in: {policy.summary()}", soft_wrap=True)
    console.print(
        f"Study key: {key.path}"
        if key is not None
        else "Study key: not on this machine "
        "(`study verify` here can check only the record's consistency)",
        soft_wrap=True,
    )
    _echo_distinguishability(report)


@study_app.command("export")
def export(
    ctx: typer.Context,
    db: DbOption,
    what: Annotated[ExportWhat, typer.Option("--what", help="Which table to write.")],
    out: Annotated[
        Path, typer.Option("--out", help="The CSV file to write (for --what sr: a folder).")
    ],
    unblinded: Annotated[
        bool,
        typer.Option("--unblinded", help="Answers, measurements or ROIs with case ids and arms."),
    ] = False,
    finding: Annotated[
        str | None,
        typer.Option("--finding", help="The finding (for --what mrmc, mrmcaov, imrmc)."),
    ] = None,
    key: KeyOption = None,
) -> None:
    """Write answers (tidy, blinded by default), assignments, the key, events, MRMC input,
    measurements (SNR, CNR, ... per read), ROIs (geometry and values) or DICOM SR measurement
    reports (TID 1500, one per reader and case; unblinded: they reference the real series)."""
    from studies.export import export as write_export
    from studies.store import Store

    mrmc_like = (ExportWhat.mrmc, ExportWhat.mrmcaov, ExportWhat.imrmc)
    if finding is not None and what not in mrmc_like:
        raise StudyError("--finding applies only to --what mrmc, mrmcaov or imrmc")
    blindable = (ExportWhat.answers, ExportWhat.measurements, ExportWhat.rois)
    if unblinded and what not in blindable:
        raise StudyError("--unblinded applies only to --what answers, measurements or rois")
    if what is ExportWhat.sr:
        from studies.sr import export_sr

        with Store.open(db, clock=command_clock(ctx), key_file=key) as store:
            written = export_sr(store, out)
        typer.echo(f"{out}: {len(written)} SR files (unblinded: they reference the real series)")
        return
    with Store.open(db, clock=command_clock(ctx), key_file=key) as store:
        n = write_export(store, what.value, out, unblinded=unblinded, finding=finding)
    typer.echo(f"{out}: {n} rows ({what.value}{', unblinded' if unblinded else ''})")


def _read_anchors(paths: list[Path]) -> list[dict[str, object]]:
    """Anchors from package folders, manifests, reports (``results.json``) or anchor files."""
    from studies.json_file import read_json_object

    anchors: list[dict[str, object]] = []
    for path in paths:
        file = path / "manifest.json" if path.is_dir() else path
        data = read_json_object(file, "an anchor", missing=f"{file}: anchor file not found")
        found = data.get("anchor", data)
        if isinstance(data.get("study_record"), dict):
            found = data["study_record"]
        if not isinstance(found, dict) or "seq" not in found or "hash" not in found:
            raise StudyError(f"{file}: holds no anchor (an object with 'seq' and 'hash')")
        anchors.append(found)
    return anchors


@study_app.command("verify")
def verify(
    ctx: typer.Context,
    db: DbOption,
    key: KeyOption = None,
    anchor: Annotated[
        list[Path] | None,
        typer.Option(
            "--anchor",
            help="A package folder, manifest.json or report results.json whose anchor to check.",
        ),
    ] = None,
    skip_images: Annotated[
        bool,
        typer.Option(
            "--skip-images",
            help="Do not read the image files (their checksums are checked by default).",
        ),
    ] = False,
) -> None:
    """Check the whole study record, the event chain, the answer history and the blinded image
    files; name every change."""
    from studies.store import Store

    anchors = _read_anchors(list(anchor or []))
    with Store.open(db, clock=command_clock(ctx), key_file=key) as store:
        report = store.verify(anchors, images=not skip_images)
        for note in report.notes:
            typer.echo(f"note: {note}", err=True)
        if not report.ok:
            for problem in report.problems:
                typer.echo(problem, err=True)
            raise StudyError(
                f"{db}: does not verify ({len(report.problems)} problem(s)); first: "
                f"{report.problems[0]}"
            )
        record = report.record
        if report.keyed and record.head is not None:
            store.publish_anchor(record.head, "study verify", store.now())
    how = "with the study key" if report.keyed else "WITHOUT the study key (consistency only)"
    counts = ", ".join(
        _count(n, what)
        for n, what in (
            (record.n_entries, "record entry"),
            (report.n_events, "event"),
            (report.n_revisions, "answer revision"),
            (record.n_anchors, "anchor"),
            (report.n_image_files, "image file"),
        )
    )
    if skip_images:
        counts += "; image files not read (--skip-images)"
    typer.echo(f"{db}: intact ({counts}; checked {how})")


def _count(n: int, what: str) -> str:
    plural = what[:-1] + "ies" if what.endswith("y") else what + "s"
    return f"{n} {what if n == 1 else plural}"


@study_app.command("seal")
def seal(ctx: typer.Context, db: DbOption, key: KeyOption = None) -> None:
    """Vouch for record entries written without the study key (readers on a live database)."""
    from studies.store import Store

    with Store.open(db, clock=command_clock(ctx), key_file=key) as store:
        n = store.seal()
    typer.echo(f"{db}: {n} record entries sealed" if n else f"{db}: nothing to seal")


@readers_app.command("set-passphrase")
def set_passphrase(
    ctx: typer.Context,
    db: DbOption,
    reader: Annotated[str, typer.Option("--reader", help="The reader's id.")],
    remove: Annotated[
        bool, typer.Option("--remove", help="Remove the passphrase (anyone may pick the reader).")
    ] = False,
) -> None:
    """Give a reader a passphrase, asked at the reader picker and when a package is opened."""
    import sys

    from studies.store import Store

    with Store.open(db, clock=command_clock(ctx)) as store:
        store.sessions(reader)  # StudyError naming the known readers
        if remove:
            store.set_passphrase(reader, None)
            typer.echo(f"{db}: reader {reader} has no passphrase now")
            return
        if sys.stdin.isatty():
            passphrase = typer.prompt(
                f"Passphrase for {reader}", hide_input=True, confirmation_prompt=True
            )
        else:  # scripted: the first line of standard input
            passphrase = sys.stdin.readline().rstrip("\n")
        store.set_passphrase(reader, passphrase)
    typer.echo(
        f"{db}: reader {reader} signs in with a passphrase now (packages written from now on "
        "ask for it; packages already handed out keep the old one)"
    )


@readers_app.command("list")
def readers_list(ctx: typer.Context, db: DbOption) -> None:
    """The readers and whether they sign in with a passphrase."""
    from studies.store import Store

    with Store.open(db, clock=command_clock(ctx)) as store:
        policy = store.sign_in_policy()
        for r in store.readers():
            how = "passphrase" if r.reader_id in policy.with_passphrase else "no passphrase"
            typer.echo(f"{r.reader_id}\t{r.name}\t{how}")


@study_app.command("pack")
def pack(
    ctx: typer.Context,
    db: DbOption,
    reader: Annotated[str, typer.Option("--reader", help="The reader's id.")],
    out: Annotated[Path, typer.Option("--out", help="The package folder to create.")],
    key: KeyOption = None,
) -> None:
    """Write a self-contained reading package for one reader's workstation."""
    from studies.package import pack_reader

    summary = pack_reader(db, reader, out, clock=command_clock(ctx), key_file=key)
    typer.echo(
        f"{summary.out_dir}: package for reader {summary.reader_id} "
        f"({summary.n_assignments} assignments, {summary.n_series} series, "
        f"{summary.n_files} files)"
    )


@study_app.command("merge")
def merge(
    ctx: typer.Context,
    db: DbOption,
    packages: Annotated[list[Path], typer.Argument(help="Returned package folders.")],
    key: KeyOption = None,
) -> None:
    """Re-validate returned packages, then import their answers and events (idempotent;
    conflicts are reported; a package with any problem is refused and nothing is merged)."""
    from studies.package import MergeRefusedError, merge_packages

    try:
        report = merge_packages(db, packages, clock=command_clock(ctx), key_file=key)
    except MergeRefusedError as exc:
        if len(exc.problems) > 1:
            for line in exc.lines():
                typer.echo(line, err=True)
        raise
    for p in report.packages:
        typer.echo(
            f"{p.package}: reader {p.reader_id}: {p.n_answers} new answers, {p.n_revisions} "
            f"revisions, {p.n_completed} completed, {p.n_events} events"
            + ("" if p.changed else " (nothing new)")
        )
        for conflict in p.conflicts:
            typer.echo(f"  conflict, left unchanged: {conflict}", err=True)
    if report.conflicts:
        typer.echo(
            f"{len(report.conflicts)} conflict(s) left unresolved; the study's answers were kept",
            err=True,
        )


@study_app.command("copy")
def copy(
    ctx: typer.Context,
    db: DbOption,
    to: Annotated[
        str, typer.Option("--to", help="An empty database URL, e.g. postgresql+psycopg://...")
    ],
) -> None:
    """Copy a study (rows, ids and event chain) into an empty server database."""
    from studies.db.copy import copy_study

    n = copy_study(db, to, clock=command_clock(ctx))
    typer.echo(f"{to}: {n} rows copied from {db}")
