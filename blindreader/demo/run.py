"""``blindreader demo``: simulated k-space -> two reconstructions -> study -> reads -> report."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from blindreader.demo import SIMULATED_NOTE
from blindreader.demo.lesions import FINDINGS, place_lesions
from blindreader.demo.scripted_readers import RoiPlan, ScriptedReader, SeriesFacts, roi_plan
from studies.clock import Clock, system_clock

#: A file that marks a folder as made by the demo, so a re-run may clear it.
MARKER = ".blindreader-demo"
#: The study arm each reconstruction method stands for (zero-filled only without the demo model).
ARM_OF_METHOD = {"rss": "conventional", "varnet": "dl", "zero-filled": "dl", "cg-sense": "cgsense"}
#: The third arm of ``blindreader demo --arms 3``: the classical accelerated reconstruction.
THIRD_ARM = """
[[arms]]
code = "cgsense"
description = "CG-SENSE (conjugate-gradient SENSE) from 4x undersampled k-space"
"""
THREE_ARM_TITLE = (
    'title = "blindreader demo (SIMULATED): DL and CG-SENSE reconstructions at 4x vs fully '
    'sampled RSS"'
)
READER_ERROR_RATES = (0.06, 0.10, 0.14)

Report = Callable[[str], None]


@dataclass
class DemoSettings:
    """Size of the demo study (small enough for a laptop CPU in a couple of minutes)."""

    n_cases: int = 8
    n_slices: int = 8
    n_coils: int = 8
    noise_std: float = 0.002
    seed: int = 20261121
    n_arms: int = 2  # 3 adds CG-SENSE at 4x (the classical accelerated method) as a third arm


@dataclass
class DemoResult:
    """Where the demo put things."""

    out: Path
    kspace_files: list[Path] = field(default_factory=list)
    cases_csv: Path | None = None
    db: Path | None = None
    screenshots: list[Path] = field(default_factory=list)
    report_dir: Path | None = None
    n_reads: int = 0
    ai_method: str = "varnet"


def has_display() -> bool:
    """Whether a real screen is available for the viewer."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def prepare_out_dir(out: Path) -> None:
    """Create ``out``; clear it only when an earlier demo made it (never a user's folder)."""
    from studies.errors import StudyError

    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise StudyError(
                f"{out}: folder exists and was not made by the demo; choose an empty or new --out"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by blindreader demo; cleared when the demo runs again\n")


def simulate_cases(
    out: Path, settings: DemoSettings, report: Report, plans: dict[str, RoiPlan] | None = None
) -> dict[str, dict[str, int]]:
    """Write the demo's simulated k-space files and return the truth per case and finding;
    ``plans`` receives where each case's ROIs go (from the simulated images)."""
    from recon_backend.data.fastmri_h5 import write_fastmri_h5
    from recon_backend.simulate import demo_volume, simulate_kspace

    kspace_dir = out / "kspace"
    kspace_dir.mkdir()
    truth: dict[str, dict[str, int]] = {}
    root = np.random.SeedSequence(settings.seed)
    for index, seq in enumerate(root.spawn(settings.n_cases)):
        rng = np.random.default_rng(seq)
        case_id = f"demo{index + 1:02d}"
        images = demo_volume(index, rng, settings.n_slices)
        images, case_truth, _ = place_lesions(images, rng)
        if plans is not None:
            plans[case_id] = roi_plan(images)
        kspace = simulate_kspace(images, settings.n_coils, rng, settings.noise_std)
        write_fastmri_h5(
            kspace_dir / f"{case_id}.h5",
            kspace,
            attrs={"acquisition": "SIMULATED_T1", "patient_id": f"SIM-{index + 1:02d}"},
        )
        truth[case_id] = case_truth
    report(f"simulated {settings.n_cases} cases of multi-coil k-space in {kspace_dir}")
    return truth


def reconstruct_arms(out: Path, report: Report, n_arms: int = 2) -> list[dict[str, Any]]:
    """Reconstruct every case for every arm; the AI arm uses the bundled demo VarNet, the third
    arm (``n_arms = 3``) CG-SENSE on the same 4x mask."""
    from blindreader.progress import progress_bar
    from recon_backend.pipeline import default_model_path, run_recon

    inputs = sorted((out / "kspace").glob("*.h5"))
    recon_dir = out / "recon"
    ai_method = "varnet" if default_model_path("varnet") is not None else "zero-filled"
    with progress_bar() as progress:
        entries = run_recon(inputs, recon_dir, "rss", progress=progress)
        entries += run_recon(
            inputs, recon_dir, ai_method, accel=4, center_fraction=0.08, progress=progress
        )
        if n_arms == 3:
            entries += run_recon(
                inputs, recon_dir, "cg-sense", accel=4, center_fraction=0.08, progress=progress
            )
    methods = f"{ai_method} (4x)" + (" and cg-sense (4x)" if n_arms == 3 else "")
    report(f"reconstructed {len(inputs)} cases: rss (fully sampled), {methods} in {recon_dir}")
    return entries


def demo_protocol(n_arms: int = 2) -> str:
    """The demo protocol's text; with three arms, CG-SENSE at 4x joins as a third arm."""
    from studies.errors import StudyError

    text = resources.files("blindreader.demo").joinpath("protocol.toml").read_text()
    if n_arms == 2:
        return text
    if n_arms != 3:
        raise StudyError(f"--arms: the demo has 2 or 3 arms, got {n_arms}")
    lines = text.splitlines(keepends=True)
    title = next(i for i, line in enumerate(lines) if line.startswith("title = "))
    lines[title] = THREE_ARM_TITLE + "\n"
    readers = next(i for i, line in enumerate(lines) if line.strip() == "[[readers]]")
    lines.insert(readers, THIRD_ARM.lstrip("\n") + "\n")
    return "".join(lines)


def write_cases_csv(
    out: Path, entries: list[dict[str, Any]], truth: dict[str, dict[str, int]]
) -> Path:
    """CASES.csv for ``study create``: one row per case and arm, with the truth columns."""
    path = out / "CASES.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["case_id", "subject_id", "arm", "series_dir", *[f"truth_{x}" for x in FINDINGS]]
        )
        for entry in entries:
            case_id = Path(entry["input"]).stem
            series_dir = Path(entry["series_dir"])
            writer.writerow(
                [
                    case_id,
                    f"subject-{case_id}",
                    ARM_OF_METHOD[entry["method"]],
                    (Path("recon") / series_dir).as_posix(),
                    *[truth[case_id][x] for x in FINDINGS],
                ]
            )
    return path


def series_facts(
    db: Path,
    entries: list[dict[str, Any]],
    truth: dict[str, dict[str, int]],
    plans: dict[str, RoiPlan] | None = None,
) -> dict[str, SeriesFacts]:
    """Facts per opaque series id (the demo's scripts may unblind; readers never can)."""
    from studies.export import key_frame
    from studies.store import Store

    ssim = {}
    for entry in entries:
        metrics = entry.get("metrics") or {}
        arm = ARM_OF_METHOD[entry["method"]]
        # the demo's k-space is fully sampled, so every series has an SSIM against its RSS
        value = 1.0 if arm == "conventional" else float(metrics["ssim"])
        ssim[(Path(entry["input"]).stem, arm)] = value
    with Store.open(db) as store:
        key = key_frame(store)
    facts = {}
    for row in key[key["kind"] == "series"].itertuples():
        case_id, arm = str(row.case_id), str(row.arm)
        plan = (plans or {}).get(case_id)
        facts[str(row.opaque_id)] = SeriesFacts(
            case_id, arm, ssim[(case_id, arm)], truth[case_id], plan
        )
    return facts


def _chooser(script: ScriptedReader, facts: dict[str, SeriesFacts]) -> Callable[..., Any]:
    """The viewer's ``choose`` callback for one scripted reader."""

    def choose(view: Any, question: Any, finding_id: str | None, side: str | None) -> Any:
        series = view.sides[1] if side == "right" and len(view.sides) > 1 else view.sides[0]
        value = script.answer(facts[series.series_id], question, finding_id)
        if isinstance(value, dict):  # an ROI: on the case's (first) series
            value = {"series": series.series[0].label, **value}
        return value

    return choose


def read_headless(
    out: Path,
    db: Path,
    facts: dict[str, SeriesFacts],
    settings: DemoSettings,
    report: Report,
    clock: Clock = system_clock,
) -> tuple[int, list[Path]]:
    """Scripted readers answer every assignment through the real viewer, offscreen."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from reader_app.scripted import read_study_scripted
    from studies.store import Store

    with Store.open(db) as store:
        reader_ids = [r.reader_id for r in store.readers()]
    shots = out / "screenshots"
    n_reads = 0
    for index, reader_id in enumerate(reader_ids):
        script = ScriptedReader(
            reader_id, READER_ERROR_RATES[index % len(READER_ERROR_RATES)], settings.seed
        )

        choose = _chooser(script, facts)
        n_reads += read_study_scripted(
            db,
            reader_id,
            choose,
            screenshot_dir=shots if index == 0 else None,
            max_screenshots=4,
            clock=clock,
        )
        report(f"scripted reader {reader_id} read every assignment through the viewer")
    return n_reads, sorted(shots.glob("*.png"))


def analyse(out: Path, db: Path, settings: DemoSettings, clock: Clock = system_clock) -> Path:
    """The analysis report of the demo study, marked as simulated."""
    from analysis.report import build_report, measurements_from_db, study_record_from_db
    from studies.export import answers_frame, assignments_frame, truth_frame
    from studies.store import Store

    report_dir = out / "report"
    with Store.open(db, clock=clock) as store:
        answers = answers_frame(store, unblinded=True)
        truth = truth_frame(store)
        assignments = assignments_frame(store)
        protocol = store.protocol
    record = study_record_from_db(db, clock=clock)
    build_report(
        answers,
        protocol,
        truth,
        report_dir,
        n_boot=2000,
        seed=settings.seed,
        simulated_note=SIMULATED_NOTE,
        assignments=assignments,
        measurements=measurements_from_db(db),  # None when the protocol has no [[measurements]]
        study_record=record,
    )
    return report_dir


def run_demo(
    out: Path,
    *,
    headless: bool,
    report: Report = print,
    settings: DemoSettings | None = None,
    clock: Clock = system_clock,
) -> DemoResult:
    """Build the demo study end to end; read it with scripts (headless) or open the viewer.

    Parameters
    ----------
    out
        Folder for everything the demo makes (cleared first if an earlier demo made it).
    headless
        Scripted readers and screenshots instead of the viewer (also when there is no display).
    report
        Called with one line per step.
    settings
        Size of the study; the defaults take a couple of minutes on a laptop CPU.
    clock
        Where the study, the scripted reads and the workstation read "now".
    """
    from blindreader.progress import progress_bar
    from studies.create import create_study

    settings = settings or DemoSettings()
    out = Path(out)
    report(SIMULATED_NOTE)
    prepare_out_dir(out)
    result = DemoResult(out=out)
    plans: dict[str, RoiPlan] = {}
    truth = simulate_cases(out, settings, report, plans)
    result.kspace_files = sorted((out / "kspace").glob("*.h5"))
    if settings.n_arms not in (2, 3):
        from studies.errors import StudyError

        raise StudyError(f"--arms: the demo has 2 or 3 arms, got {settings.n_arms}")
    entries = reconstruct_arms(out, report, settings.n_arms)
    result.ai_method = str(entries[-1]["method"])
    result.cases_csv = write_cases_csv(out, entries, truth)
    protocol_path = out / "protocol.toml"
    protocol_path.write_text(demo_protocol(settings.n_arms))
    result.db = out / "study.sqlite"
    with progress_bar() as progress:
        create_study(protocol_path, result.cases_csv, result.db, progress=progress, clock=clock)
    report(
        f"created the blinded study {result.db} "
        f"(protocol {protocol_path}, cases {result.cases_csv})"
    )
    if headless or not has_display():
        facts = series_facts(result.db, entries, truth, plans)
        result.n_reads, result.screenshots = read_headless(
            out, result.db, facts, settings, report, clock
        )
        result.report_dir = analyse(out, result.db, settings, clock)
        (out / "demo-summary.json").write_text(
            json.dumps({"note": SIMULATED_NOTE, "reads": result.n_reads}, indent=2)
        )
        report(f"analysis report: {result.report_dir / 'report.html'}")
        report(f"screenshots of the reading view: {out / 'screenshots'}")
    else:
        from reader_app.app import run_workstation

        report("opening the reading workstation; close it to finish")
        run_workstation(result.db, clock=clock)
        report(
            "analyse the answers with: blindreader analyze report "
            f"--db {result.db} --out {out / 'report'}"
        )
    return result
