"""Simulations behind the decision rules and the planner (issue 13); results in RESULTS.md.

Script mode, one part at a time (each prints a markdown table)::

    .venv/bin/python benchmarks/test_bench_decision.py fixed     # type I error, fixed readers
    .venv/bin/python benchmarks/test_bench_decision.py random    # coverage / type I, random
    .venv/bin/python benchmarks/test_bench_decision.py plan      # plan vs brute force
    .venv/bin/python benchmarks/test_bench_decision.py mrmc      # MRMC plan vs brute force

``--studies N`` changes the number of simulated studies (defaults: 8000 / 2000 / 400 / 1000).
As pytest-benchmark it only times one calibrated bootstrap-t (170 cases)::

    .venv/bin/python -m pytest benchmarks/test_bench_decision.py --benchmark-enable

Studies are simulated from the latent-variable model of ``analysis.simulation`` (4-point
grades, dichotomised at 3) and analysed with the functions the report uses.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analysis import decision, planning  # noqa: E402
from analysis.interchangeability import excess_disagreement  # noqa: E402
from analysis.mrmc import or_analysis  # noqa: E402
from analysis.planning import _crossed_case_values  # noqa: E402
from analysis.simulation import LatentReadModel, simulate_roe_metz  # noqa: E402


def _mc(rate: float, n: int) -> str:
    return f"{100 * rate:.2f} ± {100 * math.sqrt(max(rate * (1 - rate), 1e-12) / n):.2f}"


# ---- fixed readers: type I error at the margin ----------------------------------------------

FIXED_SCENARIOS = [(100, 6, 0.25, 0.3), (60, 4, 0.6, 0.15), (170, 6, 0.25, 0.3)]


def fixed_type_one(studies: int) -> list[dict[str, Any]]:
    """Share of studies at the margin declared interchangeable by the calibrated bound."""
    rows = []
    for n_cases, n_readers, reader_sd, prevalence in FIXED_SCENARIOS:
        rng = np.random.default_rng(n_cases * 7 + n_readers)
        model = LatentReadModel(n_readers=n_readers, reader_sd=reader_sd, prevalence=prevalence)
        readers = model.draw_readers(rng)
        at_margin = model.with_gamma(0.05, readers=readers)
        ref, new, _ = at_margin.simulate(rng, n_cases, readers, n_studies=studies)
        d, _ = _crossed_case_values(ref, new, 3)
        start = time.perf_counter()
        p = np.array(
            [decision.calibrated_bootstrap_t(row, 0.05, rng=rng, n_boot=1000).p_value for row in d]
        )
        wald = d.mean(axis=1) + 1.959963984540054 * d.std(axis=1, ddof=1) / math.sqrt(n_cases)
        rows.append(
            {
                "cases": n_cases,
                "readers": n_readers,
                "reader_sd": reader_sd,
                "prevalence": prevalence,
                "skewness": float(np.nanmean(pd.DataFrame(d.T).skew())),
                "calibrated_0.025": float(np.mean(p < 0.025)),
                "calibrated_0.0025": float(np.mean(p < 0.0025)),
                "wald_0.025": float(np.mean(wald < 0.05)),
                "studies": studies,
                "ms_per_study": 1000 * (time.perf_counter() - start) / studies,
            }
        )
        print(rows[-1], flush=True)
    return rows


# ---- random readers: coverage across heterogeneity, type I at the margin ---------------------

RANDOM_SCENARIOS = [
    (100, 6, 0.25, 0.0, 0.3), (100, 6, 0.6, 0.0, 0.3), (100, 6, 0.25, 0.3, 0.3),
    (100, 6, 0.6, 0.5, 0.3), (100, 4, 0.25, 0.0, 0.3), (100, 4, 0.6, 0.3, 0.3),
    (60, 4, 0.25, 0.3, 0.3), (170, 4, 0.6, 0.5, 0.3), (100, 10, 0.6, 0.3, 0.3),
    (100, 6, 0.0, 0.0, 0.3), (100, 4, 1.0, 0.0, 0.3), (100, 6, 0.25, 0.3, 0.1),
]  # fmt: skip


def random_coverage(studies: int) -> list[dict[str, Any]]:
    """Coverage of the random-reader intervals of the population gamma (at the margin)."""
    rows = []
    for n_cases, n_readers, reader_sd, arm_sd, prevalence in RANDOM_SCENARIOS:
        seed = n_cases * 1000 + n_readers * 100 + int(reader_sd * 10) * 10 + int(arm_sd * 10)
        rng = np.random.default_rng(seed + int(prevalence * 100))
        model = LatentReadModel(
            n_readers=n_readers, reader_sd=reader_sd, reader_arm_sd=arm_sd, prevalence=prevalence
        ).with_gamma(0.05)
        truth = model.gamma()
        t_cover = g_cover = t_miss = g_miss = 0
        start = time.perf_counter()
        for _ in range(studies):
            ref, new, _ = model.simulate(rng, n_cases, model.draw_readers(rng))
            d, leave_out = _crossed_case_values(ref, new, 3)
            t_int, _ = decision.hillis_t_interval(d[0], leave_out[0], 0.05)
            fixed = decision.calibrated_bootstrap_t(d[0], 0.05, rng=rng, n_boot=1000)
            guarded, _ = decision.random_reader_interval(d[0], leave_out[0], 0.05, fixed)
            t_cover += t_int.ci_low <= truth <= t_int.ci_high
            g_cover += guarded.ci_low <= truth <= guarded.ci_high
            t_miss += t_int.ci_high < truth
            g_miss += guarded.ci_high < truth
        rows.append(
            {
                "cases": n_cases, "readers": n_readers, "reader_sd": reader_sd,
                "reader_arm_sd": arm_sd, "prevalence": prevalence,
                "hillis_coverage": t_cover / studies, "guarded_coverage": g_cover / studies,
                "hillis_type_one": t_miss / studies, "guarded_type_one": g_miss / studies,
                "studies": studies,
                "ms_per_study": 1000 * (time.perf_counter() - start) / studies,
            }
        )  # fmt: skip
        print(rows[-1], flush=True)
    return rows


# ---- the planner against brute force ---------------------------------------------------------

PLAN_POINTS = [
    # (readers, cases, gamma, reader model, agreement, reader rate sd, prevalence)
    (6, 100, 0.0, "random", 0.86, 0.05, 0.3),
    (4, 150, 0.01, "random", 0.88, 0.08, 0.2),
    (6, 60, 0.0, "fixed", 0.85, 0.05, 0.3),
]


def _tidy(ref: np.ndarray, new: np.ndarray) -> pd.DataFrame:
    n_cases, n_readers = ref.shape
    case = np.repeat([f"c{i}" for i in range(n_cases)], n_readers)
    reader = np.tile([f"r{j}" for j in range(n_readers)], n_cases)
    return pd.concat(
        [
            pd.DataFrame({"case": case, "reader": reader, "arm": arm, "finding": "f",
                          "value": values.ravel().astype(float)})
            for arm, values in (("conv", ref), ("dl", new))
        ],
        ignore_index=True,
    )  # fmt: skip


def plan_against_brute_force(studies: int) -> list[dict[str, Any]]:
    """Planned power vs the full analysis (reads table -> excess_disagreement) at 3 designs."""
    rows = []
    for k, (n_readers, n_cases, gamma, readers, agreement, rate_sd, prevalence) in enumerate(
        PLAN_POINTS
    ):
        model = planning.model_from_assumptions(
            n_readers=n_readers, gamma=gamma, agreement=agreement, reader_rate_sd=rate_sd,
            prevalence=prevalence,
        )  # fmt: skip
        settings = planning.PlanSettings(readers=readers, margin=0.05)  # type: ignore[arg-type]
        start = time.perf_counter()
        planned = planning.power_at(
            model, n_cases, settings, n_studies=studies, rng=np.random.default_rng(100 + k)
        )
        plan_seconds = time.perf_counter() - start
        rng = np.random.default_rng(200 + k)
        declared = 0
        start = time.perf_counter()
        for _ in range(studies):
            ref, new, _ = model.simulate(rng, n_cases, model.draw_readers(rng))
            result = excess_disagreement(
                _tidy(ref[0], new[0]), "conv", "dl", threshold=3, margin=0.05,
                readers=readers, n_boot=2000, rng=rng,  # type: ignore[arg-type]
            )  # fmt: skip
            declared += result.interchangeable
        brute = declared / studies
        se = math.sqrt(planned.se**2 + brute * (1 - brute) / studies)
        rows.append(
            {
                "readers": n_readers, "cases": n_cases, "gamma": gamma, "model": readers,
                "agreement": agreement, "reader_rate_sd": rate_sd, "prevalence": prevalence,
                "planned": planned.power, "brute_force": brute, "difference_in_se":
                (planned.power - brute) / se if se > 0 else 0.0, "studies": studies,
                "plan_s": plan_seconds, "brute_s": time.perf_counter() - start,
            }
        )  # fmt: skip
        print(rows[-1], flush=True)
    return rows


MRMC_POINTS = [(5, 120), (8, 200), (4, 80)]


def mrmc_against_brute_force(studies: int) -> list[dict[str, Any]]:
    """Hillis 2011 power from a large pilot's components vs simulated OR analyses."""
    from scipy import stats

    separation = (1.2, 1.55)
    delta = float(stats.norm.cdf(1.55 / math.sqrt(2)) - stats.norm.cdf(1.2 / math.sqrt(2)))
    rows = []
    for k, (n_readers, n_cases) in enumerate(MRMC_POINTS):
        rng = np.random.default_rng(300 + k)
        readers = [f"r{j}" for j in range(n_readers)]
        # The formula is checked at the model's expected components (the mean over 40 large
        # pilots); a single pilot's components carry its own readers' error, shown alongside.
        pilots = []
        for _ in range(40):
            pilot_truth, pilot_ratings = simulate_roe_metz(
                rng, n_readers=n_readers, n_normal=250, n_abnormal=250, separation=separation
            )
            pilot = or_analysis(pilot_truth, pilot_ratings, treatments=["a", "b"], readers=readers)
            pilots.append(planning.mrmc_components_from_result(pilot))
        mean = planning.MrmcComponents(
            **{
                name: float(np.mean([getattr(c, name) for c in pilots]))
                for name in ("var", "cov1", "cov2", "cov3", "var_tr")
            },
            n_cases=500,
        )
        predicted = planning.mrmc_power(mean, delta=delta, n_readers=n_readers, n_cases=n_cases)
        singles = [
            planning.mrmc_power(c, delta=delta, n_readers=n_readers, n_cases=n_cases)
            for c in pilots
        ]
        rejected = 0
        for _ in range(studies):
            truth, ratings = simulate_roe_metz(
                rng, n_readers=n_readers, n_normal=n_cases // 2,
                n_abnormal=n_cases - n_cases // 2, separation=separation,
            )  # fmt: skip
            result = or_analysis(truth, ratings, treatments=["a", "b"], readers=readers)
            rejected += result.rrrc.p < 0.05
        brute = rejected / studies
        rows.append(
            {"readers": n_readers, "cases": n_cases, "delta": delta, "predicted": predicted,
             "brute_force": brute, "mc_se": math.sqrt(brute * (1 - brute) / studies),
             "single_pilot_p10": float(np.percentile(singles, 10)),
             "single_pilot_p90": float(np.percentile(singles, 90)), "studies": studies}
        )  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def _markdown(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for column in columns:
            value = row[column]
            cells.append(f"{value:.4g}" if isinstance(value, float) else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_calibrated_bootstrap_t_time(benchmark: Any) -> None:
    rng = np.random.default_rng(0)
    d = np.where(rng.random(170) < 0.5, 0.0, rng.gamma(0.8, 0.08, 170) - 0.03)
    benchmark(lambda: decision.calibrated_bootstrap_t(d, 0.05, rng=rng))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["fixed", "random", "plan", "mrmc"])
    parser.add_argument("--studies", type=int, default=None)
    args = parser.parse_args()
    defaults = {"fixed": 8000, "random": 2000, "plan": 400, "mrmc": 1000}
    studies = args.studies or defaults[args.part]
    run = {
        "fixed": fixed_type_one,
        "random": random_coverage,
        "plan": plan_against_brute_force,
        "mrmc": mrmc_against_brute_force,
    }[args.part]
    start = time.perf_counter()
    rows = run(studies)
    print()
    print(_markdown(rows))
    print(f"\n{args.part}: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
