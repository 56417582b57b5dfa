"""The whole analysis report, and the vectorised bootstraps against plain loops (issue 6).

Study: 170 cases x 6 readers x 2 arms x 12 findings (the knee protocol, with its [analysis]
plan of four sensitivity analyses, plus two findings), simulated answers
(``analysis.simulated_study``), 2000 bootstrap resamples, seed 0. The report runs every
section (issue 13): interchangeability with both reader models and the calibrated bootstrap-t,
the sensitivity analyses, reader heterogeneity, agreement, image quality with the two-way
proportional-odds bootstrap and rank-biserial CIs, reading order (GEE), accuracy and MRMC.

Run as pytest-benchmark::

    .venv/bin/python -m pytest benchmarks/test_bench_analysis.py --benchmark-enable

or as a script that prints the markdown table of ``benchmarks/results/analysis.md``::

    .venv/bin/python benchmarks/test_bench_analysis.py

The loop references are the plain-Python implementations kept next to the statistics for tests
and benchmarks (``analysis.interchangeability._bootstrap_loop``,
``analysis.image_quality._vgc_bootstrap_loop``); both forms get the same resample draws, and the
script checks that they give the same numbers.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analysis import resampling  # noqa: E402
from analysis.interchangeability import (  # noqa: E402
    _bootstrap_loop,
    case_bootstrap,
    pair_scores,
    two_way_bootstrap,
)
from analysis.reads import reads_from_answers  # noqa: E402
from analysis.report import build_report  # noqa: E402
from analysis.simulated_study import SIMULATED_NOTE, simulate_answers  # noqa: E402
from studies.protocol import Protocol, parse_protocol  # noqa: E402

N_CASES = 170
N_BOOT = 2000
N_BOOT_SLOW_LOOP = 200  # the VGC loop rebuilds a DataFrame per resample: timed on fewer
EXTRA_FINDINGS = """
[[findings]]
id = "effusion"
label = "Joint effusion"

[[findings]]
id = "cyst"
label = "Popliteal cyst"
"""


def benchmark_protocol() -> Protocol:
    """The shipped knee protocol (6 readers, 10 findings) with two more findings."""
    text = (ROOT / "studies" / "protocols" / "knee-interchangeability.toml").read_text()
    return parse_protocol(text + EXTRA_FINDINGS, "knee-12-findings.toml")


def benchmark_study() -> tuple[Protocol, pd.DataFrame, pd.DataFrame]:
    protocol = benchmark_protocol()
    study = simulate_answers(protocol, N_CASES, np.random.default_rng(0), extra_noise=0.15)
    return protocol, study.answers, study.truth


def one_finding_reads(protocol: Protocol, answers: pd.DataFrame) -> pd.DataFrame:
    reads = reads_from_answers(answers, protocol).reads
    return reads[reads["finding"] == protocol.findings[0].id].reset_index(drop=True)


def run_report(
    protocol: Protocol,
    answers: pd.DataFrame,
    truth: pd.DataFrame,
    sections: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The whole report; ``sections`` collects the CPU seconds of each section."""
    last = [time.process_time(), "start"]

    def progress(done: int, total: int, message: str) -> None:
        now = time.process_time()
        if sections is not None:
            sections[str(last[1])] = sections.get(str(last[1]), 0.0) + now - float(last[0])
        last[:] = [now, message]

    with tempfile.TemporaryDirectory() as out:
        return build_report(
            answers, protocol, truth, Path(out), n_boot=N_BOOT, seed=0,
            simulated_note=SIMULATED_NOTE, progress=progress,
        )  # fmt: skip


# ---- pytest-benchmark ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def study() -> tuple[Protocol, pd.DataFrame, pd.DataFrame]:
    return benchmark_study()


def test_bench_full_report(benchmark, study) -> None:
    results = benchmark.pedantic(run_report, args=study, rounds=1, iterations=1)
    assert len(results["interchangeability"]["fixed_readers"]) == 12


@pytest.mark.parametrize("form", ["vectorised", "loop"])
@pytest.mark.parametrize("design", ["case", "two-way"])
def test_bench_interchangeability_bootstrap(benchmark, study, form: str, design: str) -> None:
    protocol, answers, _ = study
    reads = one_finding_reads(protocol, answers)
    rng = np.random.default_rng(1)
    indices = resampling.case_indices(rng, N_CASES, N_BOOT)
    readers = resampling.reader_counts(rng, 6, N_BOOT) if design == "two-way" else None
    if form == "vectorised":
        scores = pair_scores(reads, "conventional", "dl", threshold=3)
        counts = resampling.index_counts(indices, N_CASES)
        if readers is None:
            out = benchmark(case_bootstrap, scores, counts)
        else:
            out = benchmark(two_way_bootstrap, scores, counts, readers)
    else:
        out = benchmark.pedantic(
            _bootstrap_loop,
            args=(reads, "conventional", "dl", indices, readers),
            kwargs={"threshold": 3},
            rounds=1,
        )
    assert out.shape == (N_BOOT,)


# ---- script -------------------------------------------------------------------------------


def _best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    import platform

    protocol, answers, truth = benchmark_study()
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}; "
        f"{N_CASES} cases x 6 readers x 2 arms x {len(protocol.findings)} findings, "
        f"{len(answers)} answers, B = {N_BOOT}"
    )
    # import everything once so that the report timing is the analysis, not module loading
    start, cpu = time.perf_counter(), time.process_time()
    run_report(protocol, answers, truth)
    first, first_cpu = time.perf_counter() - start, time.process_time() - cpu
    cpu = time.process_time()
    per_section: dict[str, float] = {}
    load_before = os.getloadavg()[0]
    report_s, results = _best_of(lambda: run_report(protocol, answers, truth, per_section), 2)
    report_cpu = (time.process_time() - cpu) / 2
    load_after = os.getloadavg()[0]
    n_interchangeable = sum(
        r["interchangeable"] for r in results["interchangeability"]["fixed_readers"]
    )
    print()
    print("| step | wall time (s) | CPU time (s) |")
    print("|---|---:|---:|")
    print(
        "| whole report, first run (lazy imports of matplotlib, statsmodels included) | "
        f"{first:.2f} | {first_cpu:.2f} |"
    )
    print(
        f"| whole report, further runs (best wall / mean CPU of 2) | {report_s:.2f} | "
        f"{report_cpu:.2f} |"
    )
    print(f"\nload average (1 min) before / after: {load_before:.1f} / {load_after:.1f}")
    print(f"({n_interchangeable} of 12 findings interchangeable in the simulated study)\n")
    print("| section | CPU time (s), mean of 2 |")
    print("|---|---:|")
    for name, seconds in per_section.items():
        print(f"| {name} | {seconds / 2:.2f} |")
    print()

    reads = one_finding_reads(protocol, answers)
    rng = np.random.default_rng(1)
    indices = resampling.case_indices(rng, N_CASES, N_BOOT)
    readers = resampling.reader_counts(rng, 6, N_BOOT)
    counts = resampling.index_counts(indices, N_CASES)
    scores = pair_scores(reads, "conventional", "dl", threshold=3)

    rows = []
    vec_s, vec = _best_of(lambda: case_bootstrap(scores, counts), 20)
    loop_s, loop = _best_of(
        lambda: _bootstrap_loop(reads, "conventional", "dl", indices, threshold=3), 1
    )
    assert np.allclose(vec, loop)
    rows.append(("interchangeability, case bootstrap", N_BOOT, vec_s, loop_s, N_BOOT))
    vec_s, vec = _best_of(lambda: two_way_bootstrap(scores, counts, readers), 20)
    loop_s, loop = _best_of(
        lambda: _bootstrap_loop(reads, "conventional", "dl", indices, readers, threshold=3), 1
    )
    assert np.allclose(vec, loop, equal_nan=True)
    rows.append(("interchangeability, two-way bootstrap", N_BOOT, vec_s, loop_s, N_BOOT))

    from analysis.image_quality import _case_histograms, _vgc_bootstrap_loop, vgc_bootstrap

    iq = reads_from_answers(answers, protocol, question="quality_overall").reads
    iq_scores = np.unique(iq["value"].to_numpy(dtype=float))
    h_ref, h_new, _ = _case_histograms(iq, "conventional", "dl", iq_scores)
    vec_s, vec = _best_of(lambda: vgc_bootstrap(h_ref, h_new, iq_scores, counts), 20)
    loop_s, loop = _best_of(
        lambda: _vgc_bootstrap_loop(iq, "conventional", "dl", indices[:N_BOOT_SLOW_LOOP]), 1
    )
    assert np.allclose(vec[:N_BOOT_SLOW_LOOP], loop)
    rows.append(("VGC AUC, case bootstrap", N_BOOT, vec_s, loop_s, N_BOOT_SLOW_LOOP))

    from analysis import roc

    truth = (np.arange(N_CASES) % 3 == 0).astype(int)
    ratings = np.random.default_rng(2).integers(1, 6, (2, 6, N_CASES)).astype(float)

    def jackknife_loop() -> np.ndarray:
        keep = np.ones(N_CASES, dtype=bool)
        out = np.empty(ratings.shape)
        for k in range(N_CASES):
            keep[k] = False
            out[..., k] = roc.empirical_auc(truth[keep], ratings[..., keep])
            keep[k] = True
        return out

    vec_s, vec = _best_of(lambda: roc.jackknife_auc(truth, ratings), 20)
    loop_s, loop = _best_of(jackknife_loop, 1)
    assert np.allclose(vec, loop)
    rows.append(("MRMC jackknife AUCs (2 x 6 readers)", N_CASES, vec_s, loop_s, N_CASES))

    print("| resampling | resamples | vectorised (ms) | loop (ms) | loop resamples | speed-up |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, n_vec, v, lp, n_loop in rows:
        speed = (lp / n_loop) / (v / n_vec)
        print(f"| {name} | {n_vec} | {1e3 * v:.1f} | {1e3 * lp:.0f} | {n_loop} | {speed:.0f}x |")


if __name__ == "__main__":
    main()
