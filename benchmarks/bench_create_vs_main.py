"""``study create`` speed: this tree's allow-list blinding against another commit's (default
``main``), both in this process, interleaved, several repeats.

The other commit's ``studies`` package is exported with ``git archive`` into a temporary folder
as the package ``studies_ref`` (its absolute imports rewritten), so the two implementations run
side by side on the same inputs and the same load. The inputs are those of
``benchmarks/test_bench_store.py``: the shipped knee protocol, 64x64 16-bit series of 30 slices
written by the test DICOM writer (the same pixels in both arms of a case), ``--cases`` cases.

    .venv/bin/python benchmarks/bench_create_vs_main.py [--cases 40] [--repeats 3] [--ref main]

Prints a markdown table: seconds per run for the reference, this tree in one process
(``workers=1``, the default on a machine with fewer than 4 CPUs) and with a pool of two worker
processes, and the ratios of the medians.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from studies.create import create_study  # noqa: E402
from tests.studies.conftest import make_series, write_cases_csv  # noqa: E402

KNEE = ROOT / "studies" / "protocols" / "knee-interchangeability.toml"


def export_reference(ref: str, target: Path) -> Callable[..., object]:
    """``studies`` of commit ``ref`` as the package ``studies_ref``; returns its create_study."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "studies"], check=True, capture_output=True
    ).stdout
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    package = target / "studies_ref"
    (target / "studies").rename(package)
    pattern = re.compile(r"\b(from|import) studies(\.|\b)")
    for path in package.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        path.write_text(pattern.sub(r"\1 studies_ref\2", text), encoding="utf-8")
    sys.path.insert(0, str(target))
    return importlib.import_module("studies_ref.create").create_study  # type: ignore[no-any-return]


def make_inputs(folder: Path, n_cases: int, n_slices: int) -> tuple[Path, Path]:
    rows = []
    for i in range(n_cases):
        study_uid = f"1.2.826.0.1.3680043.8.498.{i + 1}"
        for arm in ("conventional", "dl"):
            make_series(
                folder / "dicom" / f"K{i:03d}" / arm,
                n_slices=n_slices, rows=64, cols=64, study_uid=study_uid, seed=i,
            )  # fmt: skip
            rows.append(
                {
                    "case_id": f"K{i:03d}",
                    "subject_id": f"S{i // 2:03d}",
                    "arm": arm,
                    "series_dir": f"dicom/K{i:03d}/{arm}",
                }
            )
    # The reference may predate the protocol's newer keys: leave them to their defaults.
    text = "".join(
        line for line in KNEE.read_text().splitlines(keepends=True) if not line.startswith("review")
    )
    protocol = folder / "knee.toml"
    protocol.write_text(text, encoding="utf-8")
    return protocol, write_cases_csv(folder / "CASES.csv", rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--slices", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ref", default="main")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-create-") as tmp:
        folder = Path(tmp)
        reference = export_reference(args.ref, folder / "ref")
        t0 = time.perf_counter()
        protocol, cases = make_inputs(folder, args.cases, args.slices)
        print(f"inputs: {args.cases} cases x 2 arms x {args.slices} slices of 64x64 written in "
              f"{time.perf_counter() - t0:.1f} s; cpus {os.cpu_count()}, load "
              f"{os.getloadavg()[0]:.1f}")  # fmt: skip
        variants: dict[str, Callable[[Path], object]] = {
            f"reference ({args.ref})": lambda db: reference(protocol, cases, db),
            "this tree, workers=1": lambda db: create_study(protocol, cases, db, workers=1),
            "this tree, workers=2": lambda db: create_study(protocol, cases, db, workers=2),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        run = 0
        for repeat in range(args.repeats):
            names = list(variants) if repeat % 2 == 0 else list(reversed(variants))
            for name in names:
                run += 1
                start = time.perf_counter()
                variants[name](folder / f"study-{run}.sqlite")
                times[name].append(time.perf_counter() - start)
                print(f"  {name}: {times[name][-1]:.1f} s (load {os.getloadavg()[0]:.1f})")
        ref_median = statistics.median(times[f"reference ({args.ref})"])
        print()
        print("| variant | runs (s) | median (s) | median / reference |")
        print("|---|---|---|---|")
        for name, values in times.items():
            median = statistics.median(values)
            runs = ", ".join(f"{v:.1f}" for v in values)
            print(f"| {name} | {runs} | {median:.1f} | {median / ref_median:.2f} |")


if __name__ == "__main__":
    main()
