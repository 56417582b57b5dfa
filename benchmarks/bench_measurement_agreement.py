"""Simulations behind the measurement-agreement intervals (issue 14); results in RESULTS.md.

Script mode (prints markdown tables)::

    .venv/bin/python benchmarks/bench_measurement_agreement.py [--studies 4000] [--boot 1000]
        [--mixed 20]

For each design (cases N, readers J, SDs of the case, reader and residual components of the
differences) it simulates ``d[i, j] = bias + a_i + b_j + e_ij`` and reports

- coverage of the bias's 95% CI (Satterthwaite t on the ANOVA variance components), of the
  limits' 95% CIs (MOVER) and the mean estimated limits against the true ones;
- the TOST's rejection rate with the true difference on the margin (its type I error, nominal
  5%) and away from it (power);
- for comparison, the coverage of the two-way (case and reader, "pigeonhole") bootstrap
  percentile interval of the bias, which the module does not use;
- on a few studies per design, our REML fit (``reml_crossed``) and statsmodels' MixedLM
  (crossed variance components) against the moments on balanced data: convergence, the
  largest difference of the estimate, the SE ratio and the time per fit; and the time of one
  ``compare_measurement`` (per reader and pooled) on a tidy table.
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

from analysis import resampling  # noqa: E402
from analysis.measurement_agreement import (  # noqa: E402
    Z975,
    bland_altman,
    compare_measurement,
    mixed_model_difference,
    reml_crossed,
    tost,
    variance_components,
)
from tests.analysis.test_measurement_agreement import statsmodels_mixedlm  # noqa: E402

#: (N, J, sd_case, sd_reader, sd_error)
DESIGNS = [
    (30, 4, 1.0, 0.5, 1.0),
    (30, 3, 1.0, 0.0, 1.0),
    (60, 6, 0.5, 0.5, 1.0),
    (20, 3, 1.0, 1.0, 0.5),
    (100, 1, 1.0, 0.0, 1.0),
]
BIAS = 0.7


def _mc(rate: float, n: int) -> str:
    return f"{100 * rate:.1f} ± {100 * math.sqrt(max(rate * (1 - rate), 1e-12) / n):.1f}"


def _draw(rng: np.random.Generator, design: tuple[int, int, float, float, float], mu: float) -> Any:
    n, j, sa, sb, se = design
    return (mu + sa * rng.normal(size=(n, 1)) + sb * rng.normal(size=(1, j))
            + se * rng.normal(size=(n, j)))  # fmt: skip


def coverage(studies: int, n_boot: int) -> list[dict[str, Any]]:
    rows = []
    for design in DESIGNS:
        n, j, sa, sb, se = design
        rng = np.random.default_rng(n * 31 + j)
        total = math.sqrt(sa**2 + sb**2 + se**2)
        low, high = BIAS - Z975 * total, BIAS + Z975 * total
        hits = np.zeros(4)
        est = np.zeros(2)
        start = time.perf_counter()
        for _ in range(studies):
            d = _draw(rng, design, BIAS)
            res = bland_altman(d)
            est += res.loa_low, res.loa_high
            hits[:3] += [res.bias_ci_low <= BIAS <= res.bias_ci_high,
                         res.loa_low_ci_low <= low <= res.loa_low_ci_high,
                         res.loa_high_ci_low <= high <= res.loa_high_ci_high]  # fmt: skip
            if j > 1 and n_boot:
                wc = resampling.case_counts(rng, n, n_boot)
                wr = resampling.reader_counts(rng, j, n_boot)
                means = np.einsum("bn,nj,bj->b", wc, d, wr) / (n * j)
                b_low, b_high = resampling.percentile_interval(means)
                hits[3] += b_low <= BIAS <= b_high
        seconds = time.perf_counter() - start
        mean_low, mean_high = est / studies
        rows.append({
            "design (N, J, sd case/reader/error)": f"{n}, {j}, {sa:g}/{sb:g}/{se:g}",
            "bias CI coverage %": _mc(hits[0] / studies, studies),
            "lower LoA CI %": _mc(hits[1] / studies, studies),
            "upper LoA CI %": _mc(hits[2] / studies, studies),
            "mean LoA (true)": f"{mean_low:.3f}, {mean_high:.3f} ({low:.3f}, {high:.3f})",
            "two-way bootstrap bias CI %": _mc(hits[3] / studies, studies) if j > 1 else "-",
            "s": f"{seconds:.1f}",
        })  # fmt: skip
    return rows


def tost_rates(studies: int) -> list[dict[str, Any]]:
    rows = []
    margin = 1.0
    for design in DESIGNS:
        n, j, sa, sb, se = design
        rng = np.random.default_rng(n * 17 + j)
        rates = {}
        for label, mu in (("at +margin", margin), ("at -margin", -margin), ("at 0", 0.0)):
            rejected = 0
            for _ in range(studies):
                vc = variance_components(_draw(rng, design, mu))
                rejected += tost(vc.mean, math.sqrt(vc.var_mean), vc.df_mean, margin)[2] < 0.05
            rates[label] = _mc(rejected / studies, studies)
        rows.append({"design (N, J, sd case/reader/error)": f"{n}, {j}, {sa:g}/{sb:g}/{se:g}",
                     "margin": margin, **{f"equivalence claimed {k} %": v
                                          for k, v in rates.items()}})  # fmt: skip
    return rows


def _statsmodels_fit(d: Any, cases: Any, readers: Any) -> tuple[float, float] | None:
    fit = statsmodels_mixedlm(d, cases, readers)
    if not fit.converged:
        return None
    return float(fit.fe_params.iloc[0]), float(fit.bse_fe.iloc[0])


def mixedlm_check(studies: int) -> list[dict[str, Any]]:
    rows = []
    for design in DESIGNS:
        n, j, *_ = design
        if j == 1:
            continue
        cases = np.repeat(np.arange(n), j).astype(str)
        readers = np.tile(np.arange(j), n).astype(str)
        for name in ("reml_crossed (ours)", "statsmodels MixedLM"):
            rng = np.random.default_rng(n + j)
            converged, d_est, r_se, seconds = 0, 0.0, [], 0.0
            for _ in range(studies):
                d = _draw(rng, design, BIAS)
                vc = variance_components(d)
                start = time.perf_counter()
                if name.startswith("reml"):
                    ours = reml_crossed(d.ravel(), cases, readers)
                    fit = (ours.estimate, ours.se) if ours.converged else None
                else:
                    fit = _statsmodels_fit(d.ravel(), cases, readers)
                seconds += time.perf_counter() - start
                if fit is None:
                    continue
                converged += 1
                d_est = max(d_est, abs(fit[0] - vc.mean))
                r_se.append(fit[1] / math.sqrt(vc.var_mean))
            ratio = np.array(r_se)
            rows.append({
                "design (N, J)": f"{n}, {j}", "fit": name,
                "converged": f"{converged}/{studies}",
                "max abs(estimate - moments)": f"{d_est:.1e}",
                "SE / moments SE (median, min-max)": (
                    f"{np.median(ratio):.3f} ({ratio.min():.3f}-{ratio.max():.3f})"
                    if ratio.size else "-"),
                "ms per fit": f"{1000 * seconds / studies:.1f}",
            })  # fmt: skip
    return rows


def timing() -> list[dict[str, Any]]:
    rng = np.random.default_rng(1)
    rows = []
    for n, j in ((30, 4), (170, 6)):
        truth = 20 + 4 * rng.normal(size=(n, 1))
        frames = []
        for arm, shift in (("conv", 0.0), ("dl", 0.5)):
            values = truth + shift + 0.5 * rng.normal(size=(1, j)) + rng.normal(size=(n, j))
            for r in range(j):
                frames.append(pd.DataFrame({"case": [f"c{i}" for i in range(n)],
                                            "reader": f"R{r}", "arm": arm, "session": 1,
                                            "measurement": "snr", "value": values[:, r],
                                            "unit": ""}))  # fmt: skip
        frame = pd.concat(frames, ignore_index=True)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            compare_measurement(frame, "snr", "conv", "dl", margin=1.0)
            times.append(time.perf_counter() - start)
        rows.append(
            {
                "cases x readers": f"{n} x {j}",
                "compare_measurement median s (5 runs)": f"{np.median(times):.3f}",
            }
        )
    return rows


def unbalanced(studies: int, missing: float = 0.15) -> list[dict[str, Any]]:
    """The pooled mixed-model difference with a share of the case x reader cells missing:
    coverage of its 95% CI and the TOST's rejection rate at the margin (REML on every pair,
    t on the REML Satterthwaite df, as the report does)."""
    rows = []
    margin = 1.0
    for design in ((30, 4, 1.0, 0.5, 1.0), (60, 6, 0.5, 0.5, 1.0)):
        n, j, sa, sb, se = design
        rng = np.random.default_rng(n * 5 + j)
        cases = np.repeat(np.arange(n), j).astype(str)
        readers = np.tile(np.arange(j), n).astype(str)
        covered = rejected = 0
        start = time.perf_counter()
        for mu, count_cover in ((BIAS, True), (margin, False)):
            for _ in range(studies):
                d = _draw(rng, design, mu)
                keep = rng.random(n * j) >= missing
                pairs = pd.DataFrame({"case": cases[keep], "reader": readers[keep],
                                      "difference": d.ravel()[keep]})  # fmt: skip
                e = mixed_model_difference(pairs, margin)
                if count_cover:
                    covered += e.ci_low <= mu <= e.ci_high
                else:
                    rejected += e.p_tost < 0.05
        rows.append({
            "design (N, J, sd case/reader/error)": f"{n}, {j}, {sa:g}/{sb:g}/{se:g}",
            "cells missing": f"{100 * missing:.0f}%",
            "difference CI coverage %": _mc(covered / studies, studies),
            "TOST at +margin %": _mc(rejected / studies, studies),
            "s": f"{time.perf_counter() - start:.0f}",
        })  # fmt: skip
    return rows


def speed(repeats: int = 3) -> list[dict[str, Any]]:
    """Our REML fit against statsmodels' MixedLM on the same tables, interleaved."""
    rows = []
    for n, j in ((30, 4), (170, 6)):
        rng = np.random.default_rng(n * j)
        d = _draw(rng, (n, j, 1.0, 0.5, 1.0), BIAS).ravel()
        cases = np.repeat(np.arange(n), j).astype(str)
        readers = np.tile(np.arange(j), n).astype(str)
        ours, theirs = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            fit = reml_crossed(d, cases, readers)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            ref = statsmodels_mixedlm(d, cases, readers)
            theirs.append(time.perf_counter() - start)
        rows.append({
            "cases x readers": f"{n} x {j}",
            "reml_crossed median s": f"{np.median(ours):.3f}",
            "MixedLM median s": f"{np.median(theirs):.2f}",
            "MixedLM / ours": f"{np.median(theirs) / np.median(ours):.0f}x",
            "estimate ours vs MixedLM": f"{fit.estimate:.6f} vs {float(ref.fe_params.iloc[0]):.6f}",
        })  # fmt: skip
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    frame = pd.DataFrame(rows)
    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.to_numpy()]
    return "\n".join([head, rule, *body])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=4000)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--mixed", type=int, default=20, help="studies for the REML fits")
    args = parser.parse_args()
    print(f"## Bland-Altman coverage ({args.studies} studies, bias {BIAS}; two-way bootstrap "
          f"with {args.boot} resamples)\n")  # fmt: skip
    print(_table(coverage(args.studies, args.boot)))
    print(f"\n## TOST, pooled (Satterthwaite t; {args.studies} studies per cell)\n")
    print(_table(tost_rates(args.studies)))
    n_mixed = args.mixed
    print(f"\n## REML fits against the moments, balanced data ({n_mixed} studies)\n")
    print(_table(mixedlm_check(n_mixed)))
    print("\n## Time of one compare_measurement\n")
    print(_table(timing()))
    n_unbalanced = max(args.studies // 4, 100)
    print(f"\n## Unbalanced data: REML difference ({n_unbalanced} studies per cell)\n")
    print(_table(unbalanced(n_unbalanced)))
    print("\n## REML fit: ours against statsmodels MixedLM, interleaved (3 repeats)\n")
    print(_table(speed()))


if __name__ == "__main__":
    main()
