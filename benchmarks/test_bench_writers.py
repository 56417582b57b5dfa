"""Answer commit latency, 1 to 16 concurrent writers, on SQLite and PostgreSQL (issue 10).

Each writer is a separate process (a reader's workstation on one live database) that records
answers back to back, each ``Store.record_answer`` one committed transaction (SQLite: WAL,
``synchronous=FULL``, ``BEGIN IMMEDIATE``; PostgreSQL: a throwaway local server with ``fsync``
on, the store's ``SELECT ... FOR UPDATE`` on the study row). Back to back is the worst case: a
radiologist gives an answer every few seconds, not every few milliseconds. Latency is measured
around each call in the writer; median, 99th percentile and maximum over all writers.

Also the cost of the study record (issue 10) on one writer: the same commits with and without
its entries (``record_rows`` replaced by a no-op), interleaved, several rounds, as a ratio.

Run as a script (prints the tables of ``benchmarks/results/studies_writers.md``)::

    .venv/bin/python benchmarks/test_bench_writers.py [--answers 40] [--no-postgres]

or as pytest-benchmark: ``.venv/bin/python -m pytest benchmarks/test_bench_writers.py
--benchmark-enable``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from studies.api import AnswerKey  # noqa: E402
from studies.db.copy import copy_study  # noqa: E402
from studies.store import Store  # noqa: E402
from tests.studies.study_factory import SEQUENTIAL_TOML, build_study  # noqa: E402

WRITERS = (1, 4, 8, 16)
N_ANSWERS = 40  # per writer


def protocol_with_readers(n: int) -> str:
    """The test protocol with ``n`` readers (one per writer)."""
    extra = "".join(f'\n[[readers]]\nid = "R{i}"\nname = "Reader {i}"\n' for i in range(3, n + 1))
    return SEQUENTIAL_TOML + extra


def _writer(db: str, reader_id: str, n: int, barrier: Any, queue: Any) -> None:
    try:
        with Store.open(db) as store:
            views = store.assignments(reader_id, 1)
            barrier.wait(timeout=120)
            latencies = []
            for i in range(n):
                view = views[i % len(views)]
                t0 = time.perf_counter()
                store.record_answer(view.assignment_id, AnswerKey("comment"), f"{reader_id}-{i}")
                latencies.append((time.perf_counter() - t0) * 1000)
        queue.put(("ok", latencies))
    except BaseException as exc:  # pragma: no cover - reported to the parent
        queue.put(("error", repr(exc)))


def concurrent_latencies(db: str, n_writers: int, n_answers: int) -> list[float]:
    """Milliseconds per commit of ``n_writers`` processes writing at once."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["studies.store"])
    barrier = ctx.Barrier(n_writers)
    queue = ctx.Queue()
    processes = [
        ctx.Process(target=_writer, args=(db, f"R{k + 1}", n_answers, barrier, queue))
        for k in range(n_writers)
    ]
    for p in processes:
        p.start()
    results = [queue.get(timeout=600) for _ in processes]
    for p in processes:
        p.join(timeout=60)
    errors = [r[1] for r in results if r[0] != "ok"]
    if errors:
        raise RuntimeError(errors[0])
    return [x for _, values in results for x in values]


def summary(latencies: list[float]) -> dict[str, float]:
    values = np.asarray(latencies)
    return {
        "n": float(len(values)),
        "median": float(np.median(values)),
        "p99": float(np.percentile(values, 99)),
        "max": float(values.max()),
    }


@contextmanager
def sqlite_study(folder: Path, n_readers: int) -> Iterator[str]:
    yield str(
        build_study(folder, n_cases=8, n_slices=1, protocol_text=protocol_with_readers(n_readers))
    )


@contextmanager
def postgres_study(folder: Path, n_readers: int) -> Iterator[str]:
    from sqlalchemy import text

    from studies.db.engine import make_engine
    from tests.studies.pg_server import throwaway_postgres

    with throwaway_postgres(fsync=True) as url:
        engine = make_engine(url)
        with engine.begin() as con:
            con.execute(text("DROP SCHEMA public CASCADE"))
            con.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        with sqlite_study(folder, n_readers) as db:
            copy_study(db, url)
        yield url


def _no_record(*args: object, **kwargs: object) -> None:
    return None


def record_overhead(folder: Path, rounds: int = 5, n: int = 60) -> tuple[list[float], list[float]]:
    """Median ms per commit with and without the study record's entries, interleaved rounds."""
    import studies.events as events_module
    import studies.store as store_module

    db = build_study(folder, n_cases=8, n_slices=1)
    with_record: list[float] = []
    without: list[float] = []
    real = store_module.record_rows
    modules = (store_module, events_module)
    with Store.open(db) as store:
        views = store.assignments("R1", 1)
        for r in range(rounds):
            for variant in ("with", "without"):
                for module in modules:
                    module.record_rows = real if variant == "with" else _no_record  # type: ignore[assignment]
                try:
                    times = []
                    for i in range(n):
                        t0 = time.perf_counter()
                        store.record_answer(
                            views[i % len(views)].assignment_id,
                            AnswerKey("comment"),
                            f"{variant}-{r}-{i}",
                        )
                        times.append((time.perf_counter() - t0) * 1000)
                finally:
                    for module in modules:
                        module.record_rows = real
                (with_record if variant == "with" else without).append(statistics.median(times))
    return with_record, without


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=N_ANSWERS, help="answers per writer")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("BLINDREADER_KEY_DIR", tempfile.mkdtemp(prefix="bench-keys-"))
    print(f"load average at start: {os.getloadavg()[0]:.1f}; cpus: {os.cpu_count()}")
    backends = [("SQLite (local ext4, WAL, synchronous=FULL)", sqlite_study)]
    if not args.no_postgres:
        backends.append(("PostgreSQL (local server, fsync on)", postgres_study))
    print("| back end | writers | commits | median ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    for name, make in backends:
        for n in WRITERS:
            with tempfile.TemporaryDirectory() as folder, make(Path(folder), max(WRITERS)) as db:
                s = summary(concurrent_latencies(db, n, args.answers))
            print(
                f"| {name} | {n} | {int(s['n'])} | {s['median']:.1f} | {s['p99']:.1f} | "
                f"{s['max']:.1f} |",
                flush=True,
            )
    with tempfile.TemporaryDirectory() as folder:
        with_record, without = record_overhead(Path(folder))
    ratios = [a / b for a, b in zip(with_record, without, strict=True)]
    print()
    print("| one writer, SQLite | median ms per commit, 5 interleaved rounds of 60 |")
    print("|---|---|")
    print(f"| with the study record | {', '.join(f'{x:.1f}' for x in with_record)} |")
    print(f"| without (record_rows a no-op) | {', '.join(f'{x:.1f}' for x in without)} |")
    print(
        f"| ratio with / without | {', '.join(f'{x:.2f}' for x in ratios)} "
        f"(median {statistics.median(ratios):.2f}) |"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


# ---- pytest-benchmark ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.system_clock
@pytest.mark.parametrize("n_writers", [1, 16])
def test_bench_concurrent_sqlite_writers(benchmark: Any, tmp_path: Path, n_writers: int) -> None:
    with sqlite_study(tmp_path, 16) as db:
        latencies = benchmark.pedantic(
            concurrent_latencies, args=(db, n_writers, 20), rounds=1, iterations=1
        )
    stats = summary(latencies)
    benchmark.extra_info.update(stats)
    assert stats["max"] < 30_000  # below the busy timeout: no writer gave up


if __name__ == "__main__":
    main()
