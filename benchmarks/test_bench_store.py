"""Study store benchmarks (issue 4): answer commit latency, ``study create``, assignment storage.

* Answer commit latency: ``Store.record_answer`` on a SQLite file on the local disk with
  ``synchronous=FULL`` (each call is one ``BEGIN IMMEDIATE`` .. ``COMMIT`` with its fsync),
  500 answers to a 170-case study; median and 99th percentile (target < 20 ms).
* ``study create``: 170 cases x 2 arms x 30 slices of small 64x64 16-bit images (written with the
  test DICOM writer; real reconstructions are larger, which costs more copying, not more store
  work), protocol: the shipped knee protocol (6 readers, 10 findings).
* Assignment storage: the 170 cases x 6 readers x 2 sessions of the knee protocol (2040
  assignments) written to a fresh database, without images.

Run as pytest-benchmark::

    .venv/bin/python -m pytest benchmarks/test_bench_store.py --benchmark-enable

or as a script that prints the markdown table of ``benchmarks/results/studies_store.md``::

    .venv/bin/python benchmarks/test_bench_store.py [--skip-create]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy.orm import Session  # noqa: E402

from studies.api import AnswerKey  # noqa: E402
from studies.cases import CaseRow  # noqa: E402
from studies.create import create_study  # noqa: E402
from studies.db.engine import make_engine  # noqa: E402
from studies.db.migrate import upgrade  # noqa: E402
from studies.db.populate import SeriesCopy, write_study  # noqa: E402
from studies.protocol import load_protocol  # noqa: E402
from studies.randomisation import ALGORITHM_VERSION, generate_assignments  # noqa: E402
from studies.store import Store  # noqa: E402

KNEE = ROOT / "studies" / "protocols" / "knee-interchangeability.toml"
N_CASES = 170
N_SLICES = 30
MATRIX = 64
N_ANSWERS = 500


def knee_rows(folder: Path) -> list[CaseRow]:
    """170 cases (85 subjects, 2 knees each) x the knee protocol's 2 arms, folders not needed."""
    protocol = load_protocol(KNEE)
    return [
        CaseRow(
            case_id=f"K{i:03d}",
            subject_id=f"S{i // 2:03d}",
            arm=arm.code,
            series_dir=folder / f"K{i:03d}" / arm.code,
            truth={f.id: int((i * 7 + j) % 3 == 0) for j, f in enumerate(protocol.findings)},
        )
        for i in range(N_CASES)
        for arm in protocol.arms
    ]


def store_assignments(folder: Path) -> tuple[dict[str, float], Path]:
    """Generate and store the knee study's assignments (no images); seconds per step, the db."""
    protocol = load_protocol(KNEE)
    rows = knee_rows(folder)
    t0 = time.perf_counter()
    planned = generate_assignments(protocol, rows, protocol.seed)
    t1 = time.perf_counter()
    db = folder / f"assignments-{time.time_ns()}.sqlite"
    engine = make_engine(db)
    upgrade(engine)
    t2 = time.perf_counter()
    series = {r.key: SeriesCopy(f"s-{i:06x}", f"s-{i:06x}", N_SLICES) for i, r in enumerate(rows)}
    with Session(engine) as s, s.begin():
        write_study(
            s,
            protocol=protocol,
            protocol_toml=KNEE.read_text(),
            cases=rows,
            planned=planned,
            series=series,
            images_dir="images",
            algorithm_version=ALGORITHM_VERSION,
            created_at=datetime.now(UTC),
        )
    t3 = time.perf_counter()
    engine.dispose()
    timings = {
        "n_assignments": float(len(planned)),
        "generate_s": t1 - t0,
        "schema_s": t2 - t1,
        "store_s": t3 - t2,
    }
    return timings, db


def commit_latencies(folder: Path, n: int = N_ANSWERS) -> list[float]:
    """Milliseconds per ``record_answer`` (each a committed, fsynced transaction)."""
    _, db = store_assignments(folder)
    latencies: list[float] = []
    with Store.open(db) as store:
        views = store.assignments("R1", 1)
        findings = [f.id for f in store.protocol.findings]
        for i in range(n):
            view = views[i // len(findings) % len(views)]
            key = AnswerKey("likelihood", findings[i % len(findings)])
            t0 = time.perf_counter()
            store.record_answer(view.assignment_id, key, i % 4 + 1)
            latencies.append((time.perf_counter() - t0) * 1000)
    return latencies


def raw_commit_latencies(folder: Path, n: int = N_ANSWERS) -> list[float]:
    """The floor: one plain sqlite3 INSERT + COMMIT with the same settings (WAL, FULL)."""
    import sqlite3

    con = sqlite3.connect(folder / "raw.sqlite", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("create table t (id integer primary key, v text)")
    latencies = []
    for i in range(n):
        t0 = time.perf_counter()
        con.execute("BEGIN IMMEDIATE")
        con.execute("insert into t (v) values (?)", (str(i),))
        con.execute("COMMIT")
        latencies.append((time.perf_counter() - t0) * 1000)
    con.close()
    return latencies


def make_dicom_inputs(folder: Path) -> tuple[Path, Path]:
    """Protocol copy and CASES.csv with 170 x 2 real DICOM series of 30 64x64 slices."""
    from tests.studies.conftest import make_series, write_cases_csv

    protocol = load_protocol(KNEE)
    rows = []
    for i in range(N_CASES):
        study_uid = f"1.2.826.0.1.3680043.8.498.{i + 1}"
        for arm in protocol.arms:
            make_series(
                folder / "dicom" / f"K{i:03d}" / arm.code,
                n_slices=N_SLICES,
                rows=MATRIX,
                cols=MATRIX,
                study_uid=study_uid,
                seed=i,
            )
            rows.append(
                {
                    "case_id": f"K{i:03d}",
                    "subject_id": f"S{i // 2:03d}",
                    "arm": arm.code,
                    "series_dir": f"dicom/K{i:03d}/{arm.code}",
                }
            )
    cases = write_cases_csv(folder / "CASES.csv", rows)
    return KNEE, cases


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


# ---- pytest-benchmark ------------------------------------------------------------------------


@pytest.mark.slow
def test_bench_answer_commit(benchmark: Any, tmp_path: Path) -> None:
    latencies = benchmark.pedantic(commit_latencies, args=(tmp_path,), rounds=1, iterations=1)
    benchmark.extra_info["median_ms"] = statistics.median(latencies)
    benchmark.extra_info["p99_ms"] = percentile(latencies, 99)
    assert percentile(latencies, 50) < 20


@pytest.mark.slow
def test_bench_assignment_storage(benchmark: Any, tmp_path: Path) -> None:
    result, _ = benchmark.pedantic(store_assignments, args=(tmp_path,), rounds=3, iterations=1)
    assert result["n_assignments"] == 6 * 2 * N_CASES


@pytest.mark.slow
def test_bench_study_create(benchmark: Any, tmp_path: Path) -> None:
    protocol, cases = make_dicom_inputs(tmp_path)
    counter = iter(range(100))

    def create() -> None:
        create_study(protocol, cases, tmp_path / f"study-{next(counter)}.sqlite")

    benchmark.pedantic(create, rounds=1, iterations=1)


# ---- script ----------------------------------------------------------------------------------


def main(skip_create: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        folder = Path(tmp)
        latencies = commit_latencies(folder)
        raw = raw_commit_latencies(folder)
        storage = [store_assignments(folder)[0] for _ in range(3)]
        print("| measurement | result |")
        print("|---|---|")
        print(
            f"| answer commit (`record_answer`, synchronous=FULL, n={len(latencies)}) | median "
            f"{statistics.median(latencies):.1f} ms, p99 {percentile(latencies, 99):.1f} ms, "
            f"max {max(latencies):.1f} ms |"
        )
        print(
            f"| floor: plain sqlite3 INSERT + COMMIT, same settings (n={len(raw)}) | median "
            f"{statistics.median(raw):.1f} ms, p99 {percentile(raw, 99):.1f} ms |"
        )
        best = min(storage, key=lambda r: r["store_s"])
        print(
            f"| assignments: generate {int(best['n_assignments'])} (170 cases x 6 readers x 2 "
            f"sessions) | {min(r['generate_s'] for r in storage):.2f} s |"
        )
        print(
            f"| assignments: store them with the study rows (one transaction) | "
            f"{best['store_s']:.2f} s (schema migration {best['schema_s']:.2f} s) |"
        )
        if not skip_create:
            t0 = time.perf_counter()
            protocol, cases = make_dicom_inputs(folder)
            t1 = time.perf_counter()
            summary = create_study(protocol, cases, folder / "study.sqlite")
            t2 = time.perf_counter()
            print(
                f"| study create: {summary.n_cases} cases x 2 arms x {N_SLICES} slices "
                f"({summary.n_slices} files, {MATRIX}x{MATRIX}) | {t2 - t1:.1f} s "
                f"(writing the inputs took {t1 - t0:.1f} s) |"
            )


if __name__ == "__main__":
    main(skip_create="--skip-create" in sys.argv)
