"""Blind one series in one pass, and many of them in a pool of worker processes.

:func:`blind_job` reads each source image once: it writes the blinded copy
(:mod:`studies.blinded_dicom`), finds the protocol's arm words and vendor terms in the source
headers (:mod:`studies.leak_scan`) and measures the image statistics of what it wrote
(:mod:`studies.distinguishability`). Jobs and results are small picklable records, so
:func:`run_blinding` can hand them to worker processes; this module imports nothing heavy (no
SQL, no SciPy) so that a worker starts quickly.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

from studies.blinded_dicom import BlindedIdentity, write_blinded_series
from studies.distinguishability import series_features
from studies.errors import StudyError
from studies.leak_scan import Hit, Term, TextScanner
from studies.progress import ProgressCallback

#: Below this many images a study is blinded in this process (a pool costs seconds to start).
POOL_MIN_IMAGES = 600
#: Fewer CPUs than this: blinded in this process.
POOL_MIN_CPUS = 4
#: At most this many worker processes.
MAX_WORKERS = 8


@dataclass(frozen=True)
class BlindingJob:
    """One series to blind (picklable: it travels to a worker process)."""

    case_id: str
    arm: str
    series: str  # the series label (``CaseRow.series``)
    where: str  # "CASES.csv, line N, case C, arm A" for messages
    files: tuple[Path, ...]
    out_dir: Path
    identity: BlindedIdentity
    terms: tuple[Term, ...]
    # False: some arm of this case's series has no orientation, so none is written for any arm
    oriented: bool = True

    @property
    def key(self) -> tuple[str, str, str]:
        """``(case_id, arm, series)``, as ``CaseRow.key``."""
        return (self.case_id, self.arm, self.series)


@dataclass(frozen=True)
class BlindedResult:
    """What blinding one series produced (small: no pixel data)."""

    case_id: str
    arm: str
    series: str
    files: tuple[Path, ...]
    headers: tuple[Dataset, ...]
    source_hits: tuple[Hit, ...]
    grey_levels: int
    features: dict[str, float]
    digests: tuple[str, ...]  # sha256 of each written file

    @property
    def key(self) -> tuple[str, str, str]:
        """``(case_id, arm, series)``, as ``CaseRow.key``."""
        return (self.case_id, self.arm, self.series)


def blind_job(job: BlindingJob) -> BlindedResult:
    """Blind one series: decode each image once, write the blinded copy, find arm words in the
    source headers and measure the image statistics. Runs in a worker process.

    Raises
    ------
    StudyError
        One line naming the source file (see :func:`studies.blinded_dicom.write_blinded_series`).
    """
    scanner = TextScanner(job.terms)
    hits: list[Hit] = []

    def inspect(path: Path, ds: Dataset) -> None:
        hits.extend((str(path), *hit) for hit in scanner.scan(ds))

    written = write_blinded_series(
        job.files, job.out_dir, job.identity, oriented=job.oriented, inspect_source=inspect
    )
    return BlindedResult(
        case_id=job.case_id,
        arm=job.arm,
        series=job.series,
        files=written.files,
        headers=written.headers,
        source_hits=tuple(hits),
        grey_levels=written.grey_levels,
        features=series_features(written.volume),
        digests=written.digests,
    )


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_count(workers: int | None, n_jobs: int, n_images: int, cpus: int | None = None) -> int:
    """Worker processes for blinding: ``workers`` if given; else, for a study of
    :data:`POOL_MIN_IMAGES` images or more on a machine with :data:`POOL_MIN_CPUS` CPUs or
    more, one per CPU but one (at most :data:`MAX_WORKERS`); else 1 (this process).

    On the 2-core machine of ``benchmarks/RESULTS.md`` a pool of 2 was slower than this process
    alone (13.5-17.4 s against 11.4-13.8 s for 2400 images, under load): the workers' start and
    the results' trip back cost more than a second core gives."""
    if workers is not None:
        if workers < 1:
            raise StudyError(f"--workers must be at least 1 (got {workers})")
        return min(workers, max(n_jobs, 1))
    cpus = _available_cpus() if cpus is None else cpus
    if n_images < POOL_MIN_IMAGES or cpus < POOL_MIN_CPUS:
        return 1
    return max(1, min(cpus - 1, MAX_WORKERS, n_jobs))


def _pool_context() -> multiprocessing.context.BaseContext:
    # Never fork the calling process: it may hold threads and locks (Qt's, torch's).
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _with_row(job: BlindingJob, exc: StudyError) -> StudyError:
    return StudyError(f"{job.where}: {exc}")


def run_blinding(
    jobs: Sequence[BlindingJob],
    workers: int,
    progress: ProgressCallback,
    done: int,
    total: int,
) -> list[BlindedResult]:
    """Blind every job, in ``workers`` processes (in this one when 1); results in job order.

    The first failure stops the rest (queued jobs are cancelled) and is raised with its row.
    """
    results: dict[int, BlindedResult] = {}
    if workers <= 1:
        for i, job in enumerate(jobs):
            progress(done + i, total, "blinding the series")
            try:
                results[i] = blind_job(job)
            except StudyError as exc:
                raise _with_row(job, exc) from None
        return [results[i] for i in range(len(jobs))]
    with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context()) as pool:
        futures: dict[Future[BlindedResult], int] = {
            pool.submit(blind_job, job): i for i, job in enumerate(jobs)
        }
        pending = set(futures)
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in finished:
                    i = futures[future]
                    try:
                        results[i] = future.result()
                    except StudyError as exc:
                        raise _with_row(jobs[i], exc) from None
                    except BrokenProcessPool:
                        raise StudyError(
                            f"{jobs[i].where}: a worker process died while blinding "
                            "(out of memory? try --workers 1)"
                        ) from None
                progress(done + len(results), total, "blinding the series")
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return [results[i] for i in range(len(jobs))]


__all__ = [
    "MAX_WORKERS",
    "POOL_MIN_CPUS",
    "POOL_MIN_IMAGES",
    "BlindedResult",
    "BlindingJob",
    "blind_job",
    "run_blinding",
    "worker_count",
]
