"""Agreement of a continuous read-out (SNR, CNR, a distance, an ROI mean) between two arms.

Input: the tidy measurement table of ``studies.export.measurements_frame`` with columns
``case, reader, arm, session, measurement, value, unit``, one row per reader, case, arm and
measurement. Each analysis compares one new arm with the reference arm on the paired
differences ``d[i, j] = y_new[i, j] - y_reference[i, j]`` of case ``i`` read by reader ``j``.

Model and why
-------------
The differences of a multi-reader study are crossed: ``d[i, j] = mu + a_i + b_j + e_ij`` with a
case effect ``a`` (var ``s2_case``), a reader effect ``b`` (``s2_reader``: a reader who places
ROIs differently on the new arm) and a residual (``s2_error``). Bland and Altman's limits for
repeated measures (Bland & Altman 1999, section 5; 2007) and Carstensen's model-based limits
(Carstensen, Simpson & Gurrin 2008) are ``mu +/- 1.96 sqrt(s2_case + s2_reader + s2_error)``:
where the difference of one new case measured by one new reader falls.

- Variance components are the method-of-moments (two-way ANOVA) estimates of the balanced
  case x reader table, truncated at zero; cases that not every reader measured on both arms
  are left out of this table (their number is reported). ANOVA estimates equal REML's on
  balanced data while they are positive, and they give closed-form intervals.
- The CI of the bias is ``t`` on Satterthwaite's degrees of freedom of
  ``Var(mean d) = s2_case/N + s2_reader/J + s2_error/(NJ)`` written as a combination of the
  mean squares. We do not bootstrap readers: with the 3-6 readers of a reader study a reader
  bootstrap has a handful of distinct resamples, and the two-way (pigeonhole) bootstrap,
  conservative as a variance estimate in large crossed samples (Owen 2007), gives percentile
  intervals of the bias that cover only 82-92% with 3-6 readers
  (benchmarks/bench_measurement_agreement.py); the t interval's coverage is checked by
  simulation in ``tests/analysis/test_measurement_agreement.py``.
- The CIs of the limits of agreement use MOVER (Zou 2013, who derived it for Bland-Altman
  limits with repeated measures): the bias's interval combined with the chi-square interval of
  the total SD on its Satterthwaite degrees of freedom.
- The mixed model of the paired differences (``d ~ 1`` with case and reader as crossed random
  effects) is fitted by REML (:func:`reml_crossed`) on every complete pair, balanced or not;
  its difference is tested for equivalence (TOST, Schuirmann 1987) with ``t`` on
  Satterthwaite's degrees of freedom from the REML covariance of the variance estimates (as
  lmerTest does; on balanced data they equal the ANOVA ones). The REML fit is our own, profiled
  and in the dimension of the random effects, because ``statsmodels`` ``MixedLM`` with
  crossed variance components (``vc_formula``) took 50 s for a 170-case, 6-reader table and
  its first optimiser often stops without converging; the tests check ours against MixedLM's
  estimates where it converges, and against the ANOVA estimates on balanced data (REML equals
  them there while they are positive).
- ICC: two-way random effects, absolute agreement, single measurement (ICC(A,1) of McGraw &
  Wong 1996 = ICC(2,1) of Shrout & Fleiss 1979) with its F-based CI, the arms being the
  "raters"; per reader on the cases x arms table, and pooled on the (case, reader) x arms table
  (whose CI treats the (case, reader) targets as independent, so it is too narrow when
  readers differ much: the per-reader values show that).

References
----------
Bland JM, Altman DG. Measuring agreement in method comparison studies. Stat Methods Med Res
1999;8:135-160. Bland JM, Altman DG. Agreement between methods of measurement with multiple
observations per individual. J Biopharm Stat 2007;17:571-582. Carstensen B, Simpson J, Gurrin LC.
Statistical models for assessing agreement in method comparison studies with replicate
measurements. Int J Biostat 2008;4:16. Zou GY. Confidence interval estimation for the
Bland-Altman limits of agreement with multiple observations per individual. Stat Methods Med
Res 2013;22:630-642. McGraw KO, Wong SP. Forming inferences about some intraclass correlation
coefficients. Psychol Methods 1996;1:30-46. Shrout PE, Fleiss JL. Intraclass correlations: uses
in assessing rater reliability. Psychol Bull 1979;86:420-428. Schuirmann DJ. A comparison of the
two one-sided tests procedure and the power approach for assessing the equivalence of average
bioavailability. J Pharmacokinet Biopharm 1987;15:657-680. Satterthwaite FE. An approximate
distribution of estimates of variance components. Biometrics Bull 1946;2:110-114. Owen AB. The
pigeonhole bootstrap. Ann Appl Stat 2007;1:386-411.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from analysis.errors import AnalysisError

FloatArray = npt.NDArray[np.float64]

#: Columns of the tidy measurement table (``studies.export.measurements_frame``).
MEASUREMENT_COLUMNS = ("case", "reader", "arm", "session", "measurement", "value", "unit")
Z975 = float(stats.norm.ppf(0.975))
POOLED = "all readers"

BLAND_ALTMAN_1999 = (
    "Bland JM, Altman DG. Measuring agreement in method comparison studies. Stat Methods Med "
    "Res 1999;8:135-160."
)
BLAND_ALTMAN_2007 = (
    "Bland JM, Altman DG. Agreement between methods of measurement with multiple observations "
    "per individual. J Biopharm Stat 2007;17:571-582."
)
CARSTENSEN = (
    "Carstensen B, Simpson J, Gurrin LC. Statistical models for assessing agreement in method "
    "comparison studies with replicate measurements. Int J Biostat 2008;4:16."
)
ZOU = (
    "Zou GY. Confidence interval estimation for the Bland-Altman limits of agreement with "
    "multiple observations per individual. Stat Methods Med Res 2013;22:630-642."
)
MCGRAW_WONG = (
    "McGraw KO, Wong SP. Forming inferences about some intraclass correlation coefficients. "
    "Psychol Methods 1996;1:30-46."
)
SHROUT_FLEISS = (
    "Shrout PE, Fleiss JL. Intraclass correlations: uses in assessing rater reliability. "
    "Psychol Bull 1979;86:420-428."
)
SCHUIRMANN = (
    "Schuirmann DJ. A comparison of the two one-sided tests procedure and the power approach "
    "for assessing the equivalence of average bioavailability. J Pharmacokinet Biopharm "
    "1987;15:657-680."
)
SATTERTHWAITE = (
    "Satterthwaite FE. An approximate distribution of estimates of variance components. "
    "Biometrics Bull 1946;2:110-114."
)
GUDBJARTSSON_PATZ = (
    "Gudbjartsson H, Patz S. The Rician distribution of noisy MRI data. Magn Reson Med "
    "1995;34:910-914."
)
DIETRICH = (
    "Dietrich O, Raya JG, Reeder SB, Reiser MF, Schoenberg SO. Measurement of signal-to-noise "
    "ratios in MR images: influence of multichannel coils, parallel imaging, and reconstruction "
    "filters. J Magn Reson Imaging 2007;26:375-385."
)
REFERENCES = [
    BLAND_ALTMAN_1999,
    BLAND_ALTMAN_2007,
    CARSTENSEN,
    ZOU,
    MCGRAW_WONG,
    SHROUT_FLEISS,
    SCHUIRMANN,
    SATTERTHWAITE,
]


# ---- variance components of a case x reader table of differences ----------------------------


@dataclass(frozen=True)
class VarianceComponents:
    """Method-of-moments variance components of a complete N x J table of differences.

    ``var_mean`` is the estimated variance of the mean difference (cases and readers random),
    ``df_mean`` its Satterthwaite degrees of freedom; ``var_total`` the variance of one new
    difference (new case, new reader) with ``df_total``. With one reader there is no reader
    component: ``var_mean = s^2 / N`` on ``N - 1`` degrees of freedom.
    """

    n_cases: int
    n_readers: int
    mean: float
    ms_case: float
    ms_reader: float
    ms_error: float
    var_case: float
    var_reader: float
    var_error: float
    var_mean: float
    df_mean: float
    var_total: float
    df_total: float


def variance_components(table: FloatArray) -> VarianceComponents:
    """Two-way crossed (case x reader) ANOVA variance components of the differences.

    Parameters
    ----------
    table : numpy.ndarray
        Shape (N, J): the difference of case ``i`` read by reader ``j``; no missing cells.

    Raises
    ------
    AnalysisError
        Fewer than 2 cases, missing cells, or no variation at all.
    """
    d = np.asarray(table, dtype=float)
    if d.ndim != 2:
        raise AnalysisError(f"expected a case x reader table, got shape {d.shape}")
    n, j = d.shape
    if n < 2:
        raise AnalysisError(f"agreement needs at least 2 cases measured on both arms, got {n}")
    if not np.all(np.isfinite(d)):
        raise AnalysisError("the case x reader table of differences has missing cells")
    mean = float(d.mean())
    if j == 1:
        ms = float(np.var(d[:, 0], ddof=1))
        return VarianceComponents(n, 1, mean, ms, math.nan, math.nan, ms, 0.0, 0.0,
                                  ms / n, float(n - 1), ms, float(n - 1))  # fmt: skip
    case_means = d.mean(axis=1)
    reader_means = d.mean(axis=0)
    df_c, df_r, df_e = n - 1, j - 1, (n - 1) * (j - 1)
    ms_c = float(j * np.sum((case_means - mean) ** 2) / df_c)
    ms_r = float(n * np.sum((reader_means - mean) ** 2) / df_r)
    resid = d - case_means[:, None] - reader_means[None, :] + mean
    ms_e = float(np.sum(resid**2) / df_e)
    mss = np.array([ms_c, ms_r, ms_e])
    dfs = np.array([df_c, df_r, df_e], dtype=float)
    # each component as coefficients on (MS_case, MS_reader, MS_error); a negative estimate is
    # truncated at zero and leaves the combinations (a tie, up to rounding, counts as zero so
    # that shifting the data never flips the choice)
    tol = 1e-9 * max(ms_c, ms_r, ms_e)
    comp_case = np.array([1.0 / j, 0.0, -1.0 / j]) if ms_c - ms_e > tol else np.zeros(3)
    comp_reader = np.array([0.0, 1.0 / n, -1.0 / n]) if ms_r - ms_e > tol else np.zeros(3)
    comp_error = np.array([0.0, 0.0, 1.0])
    mean_coef = comp_case / n + comp_reader / j + comp_error / (n * j)
    total_coef = comp_case + comp_reader + comp_error
    var_mean, df_mean = _satterthwaite(mean_coef, mss, dfs)
    var_total, df_total = _satterthwaite(total_coef, mss, dfs)
    if not var_total > 0:
        raise AnalysisError("the differences do not vary: agreement is exact")
    return VarianceComponents(
        n, j, mean, ms_c, ms_r, ms_e,
        float(comp_case @ mss), float(comp_reader @ mss), ms_e,
        var_mean, df_mean, var_total, df_total,
    )  # fmt: skip


def _satterthwaite(coef: FloatArray, ms: FloatArray, dfs: FloatArray) -> tuple[float, float]:
    """``sum c_k MS_k`` and its Satterthwaite (1946) degrees of freedom."""
    value = float(coef @ ms)
    denominator = float(np.sum((coef * ms) ** 2 / dfs))
    df = value**2 / denominator if denominator > 0 else math.inf
    return value, float(df)


# ---- Bland-Altman ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlandAltman:
    """Bias and 95% limits of agreement (new - reference) with their 95% CIs."""

    bias: float
    bias_ci_low: float
    bias_ci_high: float
    sd: float
    loa_low: float
    loa_low_ci_low: float
    loa_low_ci_high: float
    loa_high: float
    loa_high_ci_low: float
    loa_high_ci_high: float
    df_bias: float
    df_sd: float
    sd_case: float
    sd_reader: float
    sd_error: float
    n_cases: int
    n_readers: int

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary (NaN where a value does not exist)."""
        return asdict(self)


def bland_altman(table: FloatArray, level: float = 0.95) -> BlandAltman:
    """Bland-Altman bias and limits of agreement of a case x reader table of differences.

    Parameters
    ----------
    table : numpy.ndarray
        Shape (N, J), new minus reference, complete. One column: the classical analysis of one
        reader (cases random); several: cases and readers random (see the module docstring).
    level : float
        Confidence level of the intervals (the limits themselves are always 95% limits).
    """
    vc = variance_components(table)
    return bland_altman_from_components(vc, level)


def bland_altman_from_components(vc: VarianceComponents, level: float = 0.95) -> BlandAltman:
    """Bland-Altman limits and their CIs (t interval for the bias, MOVER for the limits)."""
    q = 1.0 - (1.0 - level) / 2.0
    se = math.sqrt(max(vc.var_mean, 0.0))
    t = float(stats.t.ppf(q, vc.df_mean))
    bias_low, bias_high = vc.mean - t * se, vc.mean + t * se
    sd = math.sqrt(vc.var_total)
    nu = vc.df_total
    sd_low = sd * math.sqrt(nu / float(stats.chi2.ppf(q, nu)))
    sd_high = sd * math.sqrt(nu / float(stats.chi2.ppf(1.0 - q, nu)))
    # MOVER (Zou 2013): the upper limit mu + z sd from the intervals of mu and sd
    up = vc.mean + Z975 * sd
    up_low = up - math.hypot(vc.mean - bias_low, Z975 * (sd - sd_low))
    up_high = up + math.hypot(bias_high - vc.mean, Z975 * (sd_high - sd))
    lo = vc.mean - Z975 * sd
    lo_low = lo - math.hypot(vc.mean - bias_low, Z975 * (sd_high - sd))
    lo_high = lo + math.hypot(bias_high - vc.mean, Z975 * (sd - sd_low))
    return BlandAltman(
        bias=vc.mean, bias_ci_low=bias_low, bias_ci_high=bias_high, sd=sd,
        loa_low=lo, loa_low_ci_low=lo_low, loa_low_ci_high=lo_high,
        loa_high=up, loa_high_ci_low=up_low, loa_high_ci_high=up_high,
        df_bias=vc.df_mean, df_sd=nu, sd_case=math.sqrt(vc.var_case),
        sd_reader=math.sqrt(vc.var_reader), sd_error=math.sqrt(vc.var_error),
        n_cases=vc.n_cases, n_readers=vc.n_readers,
    )  # fmt: skip


# ---- ICC -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ICCResult:
    """One intraclass correlation with its F-based CI (McGraw & Wong 1996; Shrout & Fleiss 1979).

    ``kind``: ``"ICC(1,1)"`` one-way random; ``"ICC(A,1)"`` two-way random, absolute agreement
    (= Shrout-Fleiss ICC(2,1)); ``"ICC(C,1)"`` two-way, consistency (= ICC(3,1)).
    """

    kind: str
    value: float
    ci_low: float
    ci_high: float
    f: float
    df1: float
    df2: float
    p: float
    n_targets: int
    n_raters: int

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary."""
        return asdict(self)


def icc(ratings: FloatArray, level: float = 0.95) -> dict[str, ICCResult]:
    """The single-measure intraclass correlations of a complete targets x raters table.

    Parameters
    ----------
    ratings : numpy.ndarray
        Shape (n, k): target ``i`` (a case) rated by rater ``j`` (here: an arm), no missing cells.
    level : float
        Confidence level.

    Returns
    -------
    dict
        ``{"ICC(1,1)": ..., "ICC(A,1)": ..., "ICC(C,1)": ...}``; ICC(A,1) is the one the
        measurement analysis reports. The CIs are those of McGraw & Wong (1996, table 7) and
        Shrout & Fleiss (1979), which R's ``psych::ICC`` also gives.
    """
    x = np.asarray(ratings, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise AnalysisError(f"the ICC needs at least 2 targets x 2 raters, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise AnalysisError("the ICC table has missing cells")
    n, k = x.shape
    grand = x.mean()
    ss_rows = k * float(np.sum((x.mean(axis=1) - grand) ** 2))
    ss_cols = n * float(np.sum((x.mean(axis=0) - grand) ** 2))
    ss_total = float(np.sum((x - grand) ** 2))
    ss_error = ss_total - ss_rows - ss_cols
    df_r, df_c, df_e, df_w = n - 1, k - 1, (n - 1) * (k - 1), n * (k - 1)
    msr, msc, mse = ss_rows / df_r, ss_cols / df_c, ss_error / df_e
    msw = (ss_cols + ss_error) / df_w
    if not ss_total - ss_rows > 1e-12 * ss_total:
        raise AnalysisError("the ratings do not vary within targets: the ICC is undefined")
    a = 1.0 - level
    out: dict[str, ICCResult] = {}

    def f_bounds(f: float, d1: float, d2: float) -> tuple[float, float]:
        return f / float(stats.f.ppf(1 - a / 2, d1, d2)), f * float(stats.f.ppf(1 - a / 2, d2, d1))

    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = msr / msw
        lo, hi = f_bounds(f1, df_r, df_w)
        out["ICC(1,1)"] = ICCResult(
            "ICC(1,1)", (msr - msw) / (msr + (k - 1) * msw), (lo - 1) / (lo + k - 1),
            (hi - 1) / (hi + k - 1), f1, df_r, df_w, float(stats.f.sf(f1, df_r, df_w)), n, k,
        )  # fmt: skip
        f3 = msr / mse
        lo, hi = f_bounds(f3, df_r, df_e)
        out["ICC(C,1)"] = ICCResult(
            "ICC(C,1)", (msr - mse) / (msr + (k - 1) * mse), (lo - 1) / (lo + k - 1),
            (hi - 1) / (hi + k - 1), f3, df_r, df_e, float(stats.f.sf(f3, df_r, df_e)), n, k,
        )  # fmt: skip
        value = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
        aa = k * value / (n * (1 - value))
        bb = 1 + k * value * (n - 1) / (n * (1 - value))
        v = (aa * msc + bb * mse) ** 2 / (
            (aa * msc) ** 2 / (k - 1) + (bb * mse) ** 2 / ((n - 1) * (k - 1))
        )
        f_star = float(stats.f.ppf(1 - a / 2, n - 1, v))
        f_2star = float(stats.f.ppf(1 - a / 2, v, n - 1))
        low = n * (msr - f_star * mse) / (f_star * (k * msc + (k * n - k - n) * mse) + n * msr)
        high = n * (f_2star * msr - mse) / (k * msc + (k * n - k - n) * mse + n * f_2star * msr)
    out["ICC(A,1)"] = ICCResult(
        "ICC(A,1)", float(value), float(low), float(high), f3, df_r, df_e,
        float(stats.f.sf(f3, df_r, df_e)), n, k,
    )  # fmt: skip
    return out


# ---- equivalence (TOST) and the mixed model ------------------------------------------------------


@dataclass(frozen=True)
class Equivalence:
    """The mean difference (new - reference) with its 95% CI and the TOST against +/- margin.

    ``p_tost`` is the larger of the two one-sided p-values; equivalence at level alpha holds
    when it is below alpha (equivalently: the 1 - 2 alpha CI lies inside the margins).
    """

    estimate: float
    se: float
    df: float
    ci_low: float
    ci_high: float
    margin: float
    p_lower: float
    p_upper: float
    p_tost: float
    method: str
    n_pairs: int
    n_cases: int
    n_readers: int

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary."""
        return asdict(self)


def tost(estimate: float, se: float, df: float, margin: float) -> tuple[float, float, float]:
    """Two one-sided t tests of H0: difference <= -margin and H0: difference >= margin.

    Returns ``(p_lower, p_upper, p_tost)``; ``df = inf`` gives the z tests.
    """
    if not margin > 0:
        raise AnalysisError(f"the equivalence margin must be positive, got {margin}")
    if not se > 0:
        inside = -margin < estimate < margin
        p = 0.0 if inside else 1.0
        return p, p, p
    p_lower = float(stats.t.sf((estimate + margin) / se, df))
    p_upper = float(stats.t.cdf((estimate - margin) / se, df))
    return p_lower, p_upper, max(p_lower, p_upper)


@dataclass(frozen=True)
class RemlFit:
    """REML fit of ``d = mu + a_case + b_reader + e`` (crossed random effects)."""

    estimate: float
    se: float
    var_case: float
    var_reader: float
    var_error: float
    converged: bool
    df: float = math.nan  # Satterthwaite's df of the estimate (REML covariance of the variances)


def reml_crossed(y: FloatArray, cases: npt.NDArray[Any], readers: npt.NDArray[Any]) -> RemlFit:
    """REML fit of ``y = mu + a_case + b_reader + e`` with crossed random case and reader effects.

    The REML likelihood is profiled over the residual variance and evaluated in the dimension
    of the random effects (Woodbury), where the case block of ``Z'Z`` is diagonal: with the
    Schur complement on the reader block one evaluation costs O(N J^2 + J^3), microseconds for
    a 170-case, 6-reader table. (statsmodels' ``MixedLM`` with crossed ``vc_formula`` took 5 s
    and 50 s on two such tables, 44 times ours on the first; see
    benchmarks/bench_measurement_agreement.py. The tests check this fit against it and
    against the ANOVA estimates on balanced data.) The two variance
    ratios are optimised as squares (so that zero, a component on the boundary, is reached)
    by Nelder-Mead from several starts (scipy's L-BFGS-B cost 2 ms per step here and TNC
    stopped short of the optimum); a factor with one level (one reader) has no variance of
    its own.

    Parameters
    ----------
    y : numpy.ndarray
        The n responses (here: paired differences), balanced or not.
    cases, readers : numpy.ndarray
        The case and the reader of each response.
    """
    from scipy.optimize import minimize

    y = np.asarray(y, dtype=float)
    n = y.size
    if n < 3:
        raise AnalysisError(f"the mixed model needs at least 3 differences, got {n}")
    _, ci = np.unique(np.asarray(cases).astype(str), return_inverse=True)
    _, ri = np.unique(np.asarray(readers).astype(str), return_inverse=True)
    n_c, n_r = int(ci.max()) + 1, int(ri.max()) + 1
    count_c = np.bincount(ci, minlength=n_c).astype(float)
    count_r = np.bincount(ri, minlength=n_r).astype(float)
    cross = np.zeros((n_c, n_r))
    np.add.at(cross, (ci, ri), 1.0)
    zy_c: FloatArray = np.bincount(ci, weights=y, minlength=n_c).astype(float)
    zy_r: FloatArray = np.bincount(ri, weights=y, minlength=n_r).astype(float)
    yty, ysum = float(y @ y), float(y.sum())
    free = [n_c > 1, n_r > 1]

    def parts(theta: FloatArray) -> tuple[float, float, float, float]:
        g = np.zeros(2)
        g[np.array(free)] = np.maximum(theta, 0.0)
        sa, sb = math.sqrt(g[0]), math.sqrt(g[1])
        a = 1.0 + g[0] * count_c  # the (diagonal) case block of I + S Z'Z S
        a_inv_b = (sa * sb) * cross / a[:, None]
        schur = np.diag(1.0 + g[1] * count_r) - (sa * sb) * cross.T @ a_inv_b
        sign, logdet_schur = np.linalg.slogdet(schur)
        logdet = float(np.log(a).sum()) + float(logdet_schur)

        def form(p_c: FloatArray, p_r: FloatArray, q_c: FloatArray, q_r: FloatArray) -> float:
            p_c, p_r, q_c, q_r = sa * p_c, sb * p_r, sa * q_c, sb * q_r
            t_p = p_r - a_inv_b.T @ p_c
            t_q = q_r - a_inv_b.T @ q_c
            return float(p_c @ (q_c / a) + t_p @ np.linalg.solve(schur, t_q))

        xhx = n - form(count_c, count_r, count_c, count_r)
        xhy = ysum - form(count_c, count_r, zy_c, zy_r)
        beta = xhy / xhx
        rhr = yty - form(zy_c, zy_r, zy_c, zy_r) - beta * xhy
        return logdet if sign > 0 else math.inf, xhx, max(rhr, 1e-300), beta

    def objective(theta: FloatArray) -> float:
        logdet, xhx, rhr, _ = parts(theta * theta)
        return (n - 1) * math.log(rhr / (n - 1)) + logdet + math.log(xhx)

    k = sum(free)
    best, best_value, converged = np.zeros(k), objective(np.zeros(k)), True
    for start in (0.3, 1.0, 3.0) if k else ():
        fit = minimize(objective, np.full(k, start), method="Nelder-Mead",
                       options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000})  # fmt: skip
        if fit.fun < best_value:
            best, best_value, converged = np.abs(fit.x), float(fit.fun), bool(fit.success)
    best = best * best
    _, xhx, rhr, beta = parts(best)
    s_e = rhr / (n - 1)
    ratios = np.zeros(2)
    ratios[np.array(free)] = best
    variances = np.array([ratios[0] * s_e, ratios[1] * s_e, s_e])

    def minus_two_reml(v: FloatArray) -> float:
        """-2 REML log-likelihood (up to a constant) at variances (case, reader, error)."""
        logdet, xhx_v, rhr_v, _ = parts(v[np.array([*free, False])] / v[2])
        return (n - 1) * math.log(v[2]) + logdet + math.log(xhx_v) + rhr_v / v[2]

    def var_beta(v: FloatArray) -> float:
        return float(v[2] / parts(v[np.array([*free, False])] / v[2])[1])

    df = _satterthwaite_reml(minus_two_reml, var_beta, variances)
    return RemlFit(float(beta), math.sqrt(s_e / xhx), float(variances[0]), float(variances[1]),
                   s_e, converged, df)  # fmt: skip


def _satterthwaite_reml(minus_two_reml: Any, var_beta: Any, variances: FloatArray) -> float:
    """Satterthwaite's df of the intercept's variance, ``2 Var^2 / Var(Var-hat)``, with the
    REML covariance of the variance estimates (twice the inverse Hessian of -2 log L) by
    central differences; components estimated at zero stay fixed (as lmerTest does). NaN
    where the Hessian is not positive definite."""
    active = [i for i in range(3) if variances[i] > 1e-8 * variances[2]]
    k = len(active)
    steps = 1e-4 * variances[active]
    hess = np.zeros((k, k))
    grad = np.zeros(k)

    def at(shift: dict[int, float]) -> FloatArray:
        v = variances.copy()
        for a, delta in shift.items():
            v[active[a]] += delta
        return v

    f0 = minus_two_reml(variances)
    for a in range(k):
        ha = steps[a]
        grad[a] = (var_beta(at({a: ha})) - var_beta(at({a: -ha}))) / (2 * ha)
        for b in range(a, k):
            hb = steps[b]
            if a == b:
                value = minus_two_reml(at({a: ha})) - 2 * f0 + minus_two_reml(at({a: -ha}))
                value /= ha * ha
            else:
                value = (
                    minus_two_reml(at({a: ha, b: hb}))
                    - minus_two_reml(at({a: ha, b: -hb}))
                    - minus_two_reml(at({a: -ha, b: hb}))
                    + minus_two_reml(at({a: -ha, b: -hb}))
                ) / (4 * ha * hb)
            hess[a, b] = hess[b, a] = value
    try:
        cov = 2.0 * np.linalg.inv(hess)
    except np.linalg.LinAlgError:
        return math.nan
    spread = float(grad @ cov @ grad)
    if not spread > 0:
        return math.nan
    return 2.0 * var_beta(variances) ** 2 / spread


def mixed_model_difference(
    pairs: pd.DataFrame, margin: float, *, df: float | None = None, level: float = 0.95
) -> Equivalence:
    """Mean difference with case and reader random (REML, :func:`reml_crossed`) and its TOST.

    Parameters
    ----------
    pairs : pandas.DataFrame
        ``case, reader, difference``: one row per case and reader with both arms measured
        (need not be balanced).
    margin : float
        The equivalence margin (absolute, in the measurement's units); ``inf`` when the
        protocol declares none (the p-values are then NaN).
    df : float, optional
        Degrees of freedom of the t reference; by default Satterthwaite's for the REML
        estimate (:class:`RemlFit` ``df``; equal to the ANOVA one on balanced data, and
        ``min(cases, readers) - 1`` where it cannot be computed), ``N - 1`` with one reader.

    Notes
    -----
    With one reader the model is the paired t test (cases random), whose TOST equals
    ``statsmodels.stats.weightstats.ttost_paired``.
    """
    n_pairs = len(pairs)
    cases = pairs["case"].astype(str)
    readers = pairs["reader"].astype(str)
    n_cases, n_readers = cases.nunique(), readers.nunique()
    d = pairs["difference"].to_numpy(dtype=float)
    if n_cases < 2:
        raise AnalysisError(f"the mixed model needs at least 2 cases, got {n_cases}")
    if n_readers == 1:
        estimate, se = float(d.mean()), float(np.std(d, ddof=1) / math.sqrt(n_pairs))
        method = "paired t (one reader)"
        df = float(n_cases - 1) if df is None else df
    else:
        fit = reml_crossed(d, cases.to_numpy(), readers.to_numpy())
        estimate, se = fit.estimate, fit.se
        method = "REML, case and reader random (crossed)" + (
            "" if fit.converged else "; the optimiser reported no convergence"
        )
        if df is None:
            df = fit.df if math.isfinite(fit.df) else float(min(n_cases, n_readers) - 1)
    q = 1.0 - (1.0 - level) / 2.0
    t = float(stats.t.ppf(q, df))
    if math.isfinite(margin):
        p_lower, p_upper, p_tost = tost(estimate, se, df, margin)
    else:  # no margin declared: the difference and its CI, no test
        p_lower = p_upper = p_tost = math.nan
    return Equivalence(
        estimate, se, df, estimate - t * se, estimate + t * se, margin, p_lower, p_upper, p_tost,
        method, n_pairs, n_cases, n_readers,
    )  # fmt: skip


# ---- one measurement, one arm against the reference ----------------------------------------------


@dataclass(frozen=True)
class MeasurementComparison:
    """Everything the report shows for one measurement and one new arm vs the reference."""

    measurement: str
    reference: str
    new: str
    unit: str
    margin: float
    reference_mean: float
    new_mean: float
    n_dropped_cases: int
    bland_altman: dict[str, BlandAltman]
    icc: dict[str, ICCResult]
    equivalence: dict[str, Equivalence]
    pairs: pd.DataFrame

    def rows(self) -> list[dict[str, Any]]:
        """One row per reader and the pooled row (``reader = "all readers"``)."""
        out = []
        for reader in [*sorted(k for k in self.bland_altman if k != POOLED), POOLED]:
            if reader not in self.bland_altman:
                continue
            row: dict[str, Any] = {"measurement": self.measurement, "new": self.new,
                                   "reference": self.reference, "reader": reader,
                                   "unit": self.unit}  # fmt: skip
            row.update({f"ba_{k}": v for k, v in self.bland_altman[reader].to_dict().items()})
            if reader in self.icc:
                i = self.icc[reader]
                row.update(icc=i.value, icc_ci_low=i.ci_low, icc_ci_high=i.ci_high)
            if reader in self.equivalence:
                e = self.equivalence[reader]
                row.update({f"mm_{k}": v for k, v in e.to_dict().items()})
            out.append(row)
        return out


def paired_table(frame: pd.DataFrame, measurement: str, reference: str, new: str) -> pd.DataFrame:
    """``case, reader, reference, new, mean, difference`` of one measurement (complete pairs).

    Raises
    ------
    AnalysisError
        A missing column, a non-numeric value, or the same reader, case and arm twice.
    """
    missing = [c for c in ("case", "reader", "arm", "measurement", "value") if c not in frame]
    if missing:
        raise AnalysisError(
            f"measurements: missing column(s) {', '.join(missing)}; expected "
            f"{', '.join(MEASUREMENT_COLUMNS)}"
        )
    part = frame[(frame["measurement"].astype(str) == measurement)
                 & frame["arm"].astype(str).isin([reference, new])].copy()  # fmt: skip
    values = pd.to_numeric(part["value"], errors="coerce")
    bad = values.isna() & part["value"].notna()
    if bad.any():
        row = part[bad].iloc[0]
        raise AnalysisError(
            f"measurements: {measurement}: value {row['value']!r} of reader {row['reader']}, "
            f"case {row['case']} is not a number"
        )
    part = part.assign(
        value=values,
        case=part["case"].astype(str),
        reader=part["reader"].astype(str),
        arm=part["arm"].astype(str),
    )
    part = part.dropna(subset=["value"])  # fmt: skip
    twice = part.duplicated(["case", "reader", "arm"], keep=False)
    if twice.any():
        row = part[twice].iloc[0]
        raise AnalysisError(
            f"measurements: {measurement}: reader {row['reader']} has more than one value for "
            f"case {row['case']} on arm {row['arm']}"
        )
    wide = part.pivot(index=["case", "reader"], columns="arm", values="value")
    if reference not in wide or new not in wide:
        raise AnalysisError(
            f"measurements: {measurement}: no values on arm "
            f"{reference if reference not in wide else new}"
        )
    wide = wide[[reference, new]].dropna().reset_index()
    wide.columns = ["case", "reader", "reference", "new"]
    return wide.assign(mean=(wide["reference"] + wide["new"]) / 2,
                       difference=wide["new"] - wide["reference"])  # fmt: skip


def compare_measurement(
    frame: pd.DataFrame,
    measurement: str,
    reference: str,
    new: str,
    *,
    margin: float,
    relative: bool = False,
    unit: str = "",
) -> MeasurementComparison:
    """Bland-Altman, ICC(A,1) and the mixed-model TOST of one measurement, per reader and pooled.

    Parameters
    ----------
    frame : pandas.DataFrame
        The tidy measurement table (see the module docstring).
    measurement : str
        Its id.
    reference, new : str
        Arm codes.
    margin : float
        Equivalence margin; with ``relative`` a fraction of the reference arm's mean; ``inf``
        for none (no equivalence test).
    """
    pairs = paired_table(frame, measurement, reference, new)
    if pairs.empty:
        raise AnalysisError(f"{measurement}: no case was measured on both {reference} and {new}")
    reference_mean = float(pairs["reference"].mean())
    absolute = margin * abs(reference_mean) if relative else margin
    bland: dict[str, BlandAltman] = {}
    iccs: dict[str, ICCResult] = {}
    equivalence: dict[str, Equivalence] = {}
    for reader, rows in pairs.groupby("reader", sort=True):
        name = str(reader)
        if len(rows) < 2:
            continue
        try:
            bland[name] = bland_altman(rows["difference"].to_numpy()[:, None])
            iccs[name] = icc(rows[["reference", "new"]].to_numpy())["ICC(A,1)"]
            equivalence[name] = mixed_model_difference(rows, absolute)
        except AnalysisError:
            bland.pop(name, None)
            iccs.pop(name, None)
    table = pairs.pivot(index="case", columns="reader", values="difference")
    complete = table.dropna()
    dropped = len(table) - len(complete)
    vc = variance_components(complete.to_numpy())
    bland[POOLED] = bland_altman_from_components(vc)
    iccs[POOLED] = icc(pairs[["reference", "new"]].to_numpy())["ICC(A,1)"]
    equivalence[POOLED] = mixed_model_difference(pairs, absolute)
    units = frame.loc[frame["measurement"].astype(str) == measurement, "unit"] if "unit" in frame \
        else pd.Series(dtype=str)  # fmt: skip
    return MeasurementComparison(
        measurement=measurement, reference=reference, new=new,
        unit=unit or next((str(u) for u in units.dropna() if str(u)), ""),
        margin=absolute, reference_mean=reference_mean, new_mean=float(pairs["new"].mean()),
        n_dropped_cases=int(dropped), bland_altman=bland, icc=iccs, equivalence=equivalence,
        pairs=pairs,
    )  # fmt: skip


def measurement_ids(frame: pd.DataFrame) -> Sequence[str]:
    """The measurements present in a tidy measurement table, in order of first appearance."""
    return list(dict.fromkeys(frame["measurement"].astype(str)))
