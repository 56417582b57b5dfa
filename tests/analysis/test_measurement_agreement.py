"""Agreement of continuous read-outs: ICC against Shrout & Fleiss (1979) and R's psych::ICC,
Bland-Altman limits and their CIs by simulation, the mixed model against the moments, TOST's
type I error at the margin, and the bad inputs."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from statsmodels.stats.weightstats import ttost_paired

from analysis.errors import AnalysisError
from analysis.measurement_agreement import (
    POOLED,
    Z975,
    bland_altman,
    compare_measurement,
    icc,
    mixed_model_difference,
    paired_table,
    reml_crossed,
    tost,
    variance_components,
)

#: Shrout & Fleiss (1979), table 2: 6 targets rated by 4 judges.
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]],
    dtype=float,
)
RSCRIPT = shutil.which("Rscript")


def _tidy(values: np.ndarray, arms: tuple[str, str] = ("conv", "dl")) -> pd.DataFrame:
    """A tidy measurement frame from values of shape (2, N, J): arm x case x reader."""
    rows = []
    _, n, j = values.shape
    for a, arm in enumerate(arms):
        for i in range(n):
            for r in range(j):
                rows.append({"case": f"c{i:02d}", "reader": f"R{r + 1}", "arm": arm,
                             "session": a + 1, "measurement": "snr", "value": values[a, i, r],
                             "unit": ""})  # fmt: skip
    return pd.DataFrame(rows)


def _study(rng: np.random.Generator, n: int = 30, j: int = 4, bias: float = 1.0) -> pd.DataFrame:
    truth = 20 + 4 * rng.normal(size=(n, 1))
    reference = truth + 0.5 * rng.normal(size=(1, j)) + rng.normal(size=(n, j))
    new = truth + bias + 0.5 * rng.normal(size=(1, j)) + rng.normal(size=(n, j))
    return _tidy(np.stack([reference, new]))


# ---- ICC ------------------------------------------------------------------------------------


def test_icc_reproduces_shrout_fleiss_table_2() -> None:
    # published: ICC(1,1) = .17, ICC(2,1) = .29, ICC(3,1) = .71 (Shrout & Fleiss 1979, table 4)
    result = icc(SHROUT_FLEISS)
    assert round(result["ICC(1,1)"].value, 2) == 0.17
    assert round(result["ICC(A,1)"].value, 2) == 0.29
    assert round(result["ICC(C,1)"].value, 2) == 0.71
    # their F tests: F = MSR/MSE = 11.03 on 5 and 15 df, MSR/MSW = 1.79 on 5 and 18
    assert result["ICC(A,1)"].f == pytest.approx(11.027, abs=1e-3)
    assert result["ICC(1,1)"].f == pytest.approx(1.795, abs=1e-3)
    assert (result["ICC(A,1)"].df1, result["ICC(A,1)"].df2) == (5, 15)


@pytest.mark.skipif(
    RSCRIPT is None, reason="Rscript not found (Debian: apt-get install r-base-core)"
)
@pytest.mark.parametrize("name", ["shrout_fleiss", "random"])
def test_icc_matches_r_psych(name: str) -> None:
    assert RSCRIPT is not None
    check = subprocess.run([RSCRIPT, "--vanilla", "-e", "library(psych)"], capture_output=True,
                           timeout=60)  # fmt: skip
    if check.returncode != 0:
        pytest.skip("R package psych not installed (Debian: apt-get install r-cran-psych)")
    if name == "shrout_fleiss":
        x = SHROUT_FLEISS
    else:
        rng = np.random.default_rng(7)
        x = 10 + 3 * rng.normal(size=(25, 1)) + np.array([0.0, 1.5]) + rng.normal(size=(25, 2))
    values = ",".join(f"{v:.12g}" for v in x.ravel())
    code = (
        "library(psych); library(jsonlite);"
        f"x <- matrix(c({values}), ncol={x.shape[1]}, byrow=TRUE);"
        "r <- ICC(x, lmer=FALSE)$results;"
        "cat(toJSON(list(icc=r$ICC[1:3], low=r[['lower bound']][1:3],"
        " high=r[['upper bound']][1:3]), digits=NA))"
    )
    done = subprocess.run([RSCRIPT, "--vanilla", "-e", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    if done.returncode != 0 and "jsonlite" in done.stderr:
        pytest.skip("R package jsonlite not installed (Debian: apt-get install r-cran-jsonlite)")
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout.strip().splitlines()[-1])
    ours = icc(x)
    for k, kind in enumerate(("ICC(1,1)", "ICC(A,1)", "ICC(C,1)")):
        assert ours[kind].value == pytest.approx(r["icc"][k], abs=1e-9), kind
        assert ours[kind].ci_low == pytest.approx(r["low"][k], abs=1e-6), kind
        assert ours[kind].ci_high == pytest.approx(r["high"][k], abs=1e-6), kind


@settings(max_examples=60, deadline=None)
@given(
    x=arrays(
        np.int64, st.tuples(st.integers(3, 12), st.integers(2, 4)), elements=st.integers(0, 20)
    ),
    shift=st.floats(-1e3, 1e3),
    scale=st.floats(0.01, 100),
)
def test_icc_is_invariant_to_location_and_scale(x: np.ndarray, shift: float, scale: float) -> None:
    x = x.astype(float)
    if np.all(x == x[:, :1]):  # no variation within any target
        with pytest.raises(AnalysisError):
            icc(x)
        return
    a = icc(x)["ICC(A,1)"]
    b = icc(x * scale + shift)["ICC(A,1)"]
    assert b.value == pytest.approx(a.value, rel=1e-6, abs=1e-6)
    assert a.value <= 1 + 1e-12
    if math.isfinite(a.ci_low) and math.isfinite(a.ci_high):
        assert a.ci_low <= a.value + 1e-9 <= a.ci_high + 2e-9


# ---- Bland-Altman ------------------------------------------------------------------------------


def test_one_reader_bland_altman_is_the_classical_one() -> None:
    rng = np.random.default_rng(2)
    d = rng.normal(1.0, 2.0, size=40)
    result = bland_altman(d[:, None])
    s = np.std(d, ddof=1)
    assert result.bias == pytest.approx(d.mean())
    assert result.sd == pytest.approx(s)
    assert result.loa_high == pytest.approx(d.mean() + Z975 * s)
    half = float(np.diff(np.array(
        __import__("scipy").stats.t.interval(0.95, 39, loc=d.mean(), scale=s / math.sqrt(40))
    ))[0]) / 2  # fmt: skip
    assert result.bias_ci_high - result.bias == pytest.approx(half)
    assert result.loa_high_ci_low < result.loa_high < result.loa_high_ci_high
    assert result.loa_low_ci_low < result.loa_low < result.loa_low_ci_high


@pytest.mark.parametrize(
    ("n", "j", "sd_case", "sd_reader", "sd_error"),
    [(30, 4, 1.0, 0.5, 1.0), (20, 3, 1.0, 0.3, 0.5), (30, 1, 1.0, 0.0, 0.0)],
)
def test_simulation_recovers_bias_and_limits_with_right_coverage(
    n: int, j: int, sd_case: float, sd_reader: float, sd_error: float
) -> None:
    """Known bias and limits are recovered; the bias CI covers 93-97%, the limits' CIs too."""
    rng = np.random.default_rng(11)
    bias = 0.7
    total = math.sqrt(sd_case**2 + sd_reader**2 + sd_error**2)
    low, high = bias - Z975 * total, bias + Z975 * total
    reps = 1500
    covered = np.zeros(3)
    estimates = np.zeros((reps, 3))
    for r in range(reps):
        d = (bias + sd_case * rng.normal(size=(n, 1)) + sd_reader * rng.normal(size=(1, j))
             + sd_error * rng.normal(size=(n, j)))  # fmt: skip
        res = bland_altman(d)
        estimates[r] = res.bias, res.loa_low, res.loa_high
        covered += [res.bias_ci_low <= bias <= res.bias_ci_high,
                    res.loa_low_ci_low <= low <= res.loa_low_ci_high,
                    res.loa_high_ci_low <= high <= res.loa_high_ci_high]  # fmt: skip
    coverage = covered / reps
    assert 0.93 <= coverage[0] <= 0.97, coverage
    assert 0.93 <= coverage[1] <= 0.97, coverage
    assert 0.93 <= coverage[2] <= 0.97, coverage
    mean = estimates.mean(axis=0)
    assert mean[0] == pytest.approx(bias, abs=0.03)
    # the SD estimate is biased low by a little (E s < sigma): the limits to 2% of their width
    assert mean[1] == pytest.approx(low, abs=0.02 * (high - low))
    assert mean[2] == pytest.approx(high, abs=0.02 * (high - low))


@settings(max_examples=40, deadline=None)
@given(
    d=arrays(
        np.float64,
        st.tuples(st.integers(3, 10), st.integers(1, 4)),
        elements=st.floats(-50, 50, allow_nan=False),
    ),
    shift=st.floats(-100, 100),
)
def test_bland_altman_shifts_with_the_bias_and_mirrors_with_the_arms(
    d: np.ndarray, shift: float
) -> None:
    if np.ptp(d) < 1e-3:
        return
    a = bland_altman(d)
    b = bland_altman(d + shift)
    m = bland_altman(-d)
    assert b.bias == pytest.approx(a.bias + shift, abs=1e-6)
    assert b.loa_high - b.loa_low == pytest.approx(a.loa_high - a.loa_low, rel=1e-6, abs=1e-6)
    assert b.bias_ci_high - b.bias_ci_low == pytest.approx(a.bias_ci_high - a.bias_ci_low,
                                                           rel=1e-6, abs=1e-6)  # fmt: skip
    assert m.loa_high == pytest.approx(-a.loa_low, abs=1e-6)
    assert m.loa_high_ci_high == pytest.approx(-a.loa_low_ci_low, abs=1e-6)
    assert a.bias_ci_low <= a.bias <= a.bias_ci_high
    assert a.loa_high_ci_low <= a.loa_high <= a.loa_high_ci_high


def test_variance_components_match_the_anova_by_hand() -> None:
    rng = np.random.default_rng(5)
    d = rng.normal(size=(8, 3)) + rng.normal(size=(8, 1)) * 2
    vc = variance_components(d)
    # Var(mean) = (MS_case + MS_reader - MS_error) / (NJ) when both components are positive
    if vc.ms_case > vc.ms_error and vc.ms_reader > vc.ms_error:
        assert vc.var_mean == pytest.approx((vc.ms_case + vc.ms_reader - vc.ms_error) / 24)
    assert vc.var_total == pytest.approx(vc.var_case + vc.var_reader + vc.var_error)
    assert vc.mean == pytest.approx(d.mean())


# ---- mixed model and TOST --------------------------------------------------------------------


def statsmodels_mixedlm(d: np.ndarray, cases: np.ndarray, readers: np.ndarray) -> Any:
    """The reference: statsmodels' MixedLM with crossed variance components (REML)."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    frame = pd.DataFrame({"d": d, "case": cases, "reader": readers, "all": 1})
    vc = {"case": "0 + C(case)", "reader": "0 + C(reader)"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MixedLM.from_formula("d ~ 1", groups="all", vc_formula=vc, re_formula="0",
                                     data=frame)  # fmt: skip
        return model.fit(reml=True, method=["powell", "lbfgs"])


def test_reml_equals_the_moments_on_balanced_data() -> None:
    rng = np.random.default_rng(3)
    n, j = 30, 4
    d = 0.7 + rng.normal(size=(n, 1)) + 0.5 * rng.normal(size=(1, j)) + rng.normal(size=(n, j))
    vc = variance_components(d)
    assert vc.var_case > 0 and vc.var_reader > 0  # REML = ANOVA while both are positive
    cases = np.repeat(np.arange(n), j).astype(str)
    readers = np.tile(np.arange(j), n).astype(str)
    fit = reml_crossed(d.ravel(), cases, readers)
    assert fit.converged
    assert fit.estimate == pytest.approx(vc.mean, abs=1e-10)
    assert fit.se == pytest.approx(math.sqrt(vc.var_mean), rel=1e-4)
    assert fit.var_case == pytest.approx(vc.var_case, rel=1e-3)
    assert fit.var_reader == pytest.approx(vc.var_reader, rel=1e-3)
    assert fit.var_error == pytest.approx(vc.var_error, rel=1e-4)
    # Satterthwaite's df from the REML covariance of the variances = the ANOVA one
    assert fit.df == pytest.approx(vc.df_mean, rel=1e-3)


@pytest.mark.parametrize("seed", [1, 2])
def test_reml_matchesstatsmodels_mixedlm_on_unbalanced_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, j = 15, 4
    d = 0.7 + rng.normal(size=(n, 1)) + 0.6 * rng.normal(size=(1, j)) + rng.normal(size=(n, j))
    cases = np.repeat(np.arange(n), j).astype(str)
    readers = np.tile(np.arange(j), n).astype(str)
    keep = rng.random(n * j) > 0.2  # a fifth of the cells missing
    y, c, r = d.ravel()[keep], cases[keep], readers[keep]
    ours = reml_crossed(y, c, r)
    theirs = statsmodels_mixedlm(y, c, r)
    assert theirs.converged
    # the same REML optimum: variance components and the GLS estimate
    assert ours.estimate == pytest.approx(float(theirs.fe_params.iloc[0]), abs=1e-4)
    assert ours.var_error == pytest.approx(float(theirs.scale), rel=1e-3)
    var_case, var_reader = (float(v) for v in theirs.vcomp)
    assert [ours.var_case, ours.var_reader] == pytest.approx([var_case, var_reader],
                                                             rel=1e-2, abs=1e-4)  # fmt: skip
    # the SE of the GLS estimate, (1' V^-1 1)^-1/2 with the dense V at statsmodels' estimates
    # (statsmodels' own bse_fe comes from the Hessian of all parameters, which differs from it
    # by a few per cent when a component is on the boundary)
    zc = np.eye(n)[np.unique(c, return_inverse=True)[1]]
    zr = np.eye(j)[np.unique(r, return_inverse=True)[1]]
    v = var_case * zc @ zc.T + var_reader * zr @ zr.T + float(theirs.scale) * np.eye(y.size)
    gls_se = 1.0 / math.sqrt(float(np.ones(y.size) @ np.linalg.solve(v, np.ones(y.size))))
    assert ours.se == pytest.approx(gls_se, rel=1e-3)


def test_per_reader_tost_matches_statsmodels_ttost_paired() -> None:
    rng = np.random.default_rng(9)
    ref = rng.normal(20, 3, size=25)
    new = ref + rng.normal(0.4, 1.0, size=25)
    pairs = pd.DataFrame({"case": [f"c{i}" for i in range(25)], "reader": "R1",
                          "difference": new - ref})  # fmt: skip
    ours = mixed_model_difference(pairs, margin=1.0)
    p, _, _ = ttost_paired(new, ref, -1.0, 1.0)
    assert ours.p_tost == pytest.approx(p, rel=1e-9)
    assert ours.method.startswith("paired t")


@pytest.mark.parametrize("at", [-1.0, 1.0])
def test_tost_type_one_error_at_the_margin_is_five_percent(at: float) -> None:
    """True difference on the margin: equivalence is claimed about 5% of the time."""
    rng = np.random.default_rng(21)
    n, j, margin, reps = 30, 4, 1.0, 2000
    rejected = 0
    for _ in range(reps):
        d = (at * margin + rng.normal(size=(n, 1)) + 0.5 * rng.normal(size=(1, j))
             + rng.normal(size=(n, j)))  # fmt: skip
        vc = variance_components(d)
        rejected += tost(vc.mean, math.sqrt(vc.var_mean), vc.df_mean, margin)[2] < 0.05
    assert 0.035 <= rejected / reps <= 0.065


def test_tost_needs_a_positive_margin() -> None:
    with pytest.raises(AnalysisError, match="margin must be positive"):
        tost(0.0, 1.0, 10.0, 0.0)


# ---- one measurement, arm vs reference ----------------------------------------------------------


def test_compare_measurement_per_reader_and_pooled() -> None:
    frame = _study(np.random.default_rng(4), bias=1.0)
    result = compare_measurement(frame, "snr", "conv", "dl", margin=2.0)
    rows = result.rows()
    assert [r["reader"] for r in rows] == ["R1", "R2", "R3", "R4", POOLED]
    pooled = rows[-1]
    assert pooled["ba_bias_ci_low"] < 1.0 < pooled["ba_bias_ci_high"]
    assert pooled["mm_estimate"] == pytest.approx(pooled["ba_bias"], abs=1e-6)
    assert pooled["mm_method"] == "REML, case and reader random (crossed)"
    assert 0 < pooled["icc"] < 1
    assert pooled["ba_n_readers"] == 4 and pooled["ba_n_cases"] == 30
    assert result.n_dropped_cases == 0


def test_relative_margin_is_a_share_of_the_reference_mean() -> None:
    frame = _study(np.random.default_rng(4))
    result = compare_measurement(frame, "snr", "conv", "dl", margin=0.1, relative=True)
    assert result.margin == pytest.approx(0.1 * result.reference_mean)


def test_incomplete_cases_are_left_out_of_the_balanced_table_and_counted() -> None:
    frame = _study(np.random.default_rng(4))
    gone = (frame["case"] == "c03") & (frame["reader"] == "R2") & (frame["arm"] == "dl")
    result = compare_measurement(frame[~gone], "snr", "conv", "dl", margin=2.0)
    assert result.n_dropped_cases == 1
    assert result.bland_altman[POOLED].n_cases == 29
    assert result.equivalence[POOLED].n_pairs == 119  # the mixed model keeps every pair


def test_bad_inputs_are_named() -> None:
    frame = _study(np.random.default_rng(4), n=5, j=2)
    with pytest.raises(AnalysisError, match="missing column"):
        paired_table(frame.drop(columns="value"), "snr", "conv", "dl")
    bad = frame.astype({"value": object})
    bad.loc[3, "value"] = "abc"
    with pytest.raises(AnalysisError, match="'abc' of reader R2, case c01 is not a number"):
        paired_table(bad, "snr", "conv", "dl")
    twice = pd.concat([frame, frame.iloc[[0]]])
    with pytest.raises(AnalysisError, match="more than one value for case c00 on arm conv"):
        paired_table(twice, "snr", "conv", "dl")
    with pytest.raises(AnalysisError, match="no values on arm cg"):
        paired_table(frame, "snr", "conv", "cg")
    with pytest.raises(AnalysisError, match="at least 2 cases"):
        variance_components(np.ones((1, 3)))
    with pytest.raises(AnalysisError, match="do not vary"):
        variance_components(np.ones((5, 3)))


def test_reml_with_one_reader_is_the_mean_and_its_standard_error() -> None:
    rng = np.random.default_rng(6)
    y = rng.normal(1.0, 2.0, size=20)
    cases = np.array([f"c{i}" for i in range(20)])
    fit = reml_crossed(y, cases, np.array(["R1"] * 20))
    assert fit.estimate == pytest.approx(y.mean())
    assert fit.se == pytest.approx(np.std(y, ddof=1) / math.sqrt(20), rel=1e-6)
    assert fit.var_reader == 0.0
    with pytest.raises(AnalysisError, match="at least 3"):
        reml_crossed(y[:2], cases[:2], np.array(["R1", "R2"]))


def test_reml_df_equals_the_anova_df_with_a_component_at_zero() -> None:
    rng = np.random.default_rng(3)
    n, j = 20, 3
    d = rng.normal(size=(n, 1)) + rng.normal(size=(n, j))
    d = d - d.mean(axis=0) + d.mean()  # equal reader means: MS_reader = 0 < MS_error
    vc = variance_components(d)
    assert vc.var_reader == 0.0
    cases = np.repeat(np.arange(n), j).astype(str)
    readers = np.tile(np.arange(j), n).astype(str)
    fit = reml_crossed(d.ravel(), cases, readers)
    assert fit.var_reader == pytest.approx(0.0, abs=1e-8)
    assert fit.df == pytest.approx(vc.df_mean, rel=1e-3)
