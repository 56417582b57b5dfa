"""Obuchowski-Rockette (OR) multi-reader multi-case analysis with Hillis degrees of freedom.

For t treatments, r readers and the figure of merit (FOM) ``theta[i, j]`` of treatment i and
reader j, the error covariance of the FOMs is estimated by the case jackknife
(``cov = (n - 1)/n * sum_k (theta_(k) - theta_(.)) (theta_(k) - theta_(.))^T``), then averaged
into the OR components: ``Var`` (diagonal), ``Cov1`` (same reader, different treatment),
``Cov2`` (different reader, same treatment) and ``Cov3`` (different reader and treatment).
With ``MS(T)``, ``MS(R)``, ``MS(T*R)`` the two-way ANOVA mean squares of the FOM table:

- random readers and random cases (Hillis 2007, 2008):
  ``F = MS(T) / (MS(T*R) + r max(Cov2 - Cov3, 0))`` on ``t - 1`` and
  ``ddf = (MS(T*R) + r max(Cov2 - Cov3, 0))^2 / (MS(T*R)^2 / ((t - 1)(r - 1)))``;
- fixed readers, random cases: ``chi2 = (t - 1) MS(T) / (Var - Cov1 + (r - 1) max(Cov2 - Cov3, 0))``
  on ``t - 1`` degrees of freedom;
- random readers, fixed cases: ``F = MS(T) / MS(T*R)`` on ``t - 1`` and ``(t - 1)(r - 1)``.

Sensitivity is jackknifed over the diseased cases only and specificity over the non-diseased
cases only (the other cases do not change it).

References: Obuchowski & Rockette, Commun Stat Simul 1995;24:285. Hillis, Stat Med
2007;26:596. Hillis, Berbaum & Metz, Acad Radiol 2008;15:647. Hillis, Obuchowski & Berbaum,
Acad Radiol 2011;18:129 (per-treatment intervals).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import stats

from analysis import roc
from analysis.errors import AnalysisError

FloatArray = NDArray[np.float64]
FomName = Literal["auc", "sensitivity", "specificity"]
FOMS: tuple[str, ...] = ("auc", "sensitivity", "specificity")
LIST_COLUMNS: tuple[str, ...] = ("reader", "treatment", "case", "truth", "rating")
ALPHA = 0.05


@dataclass(frozen=True)
class Difference:
    """A difference of reader-averaged FOMs between two treatments (``first - second``)."""

    first: str
    second: str
    estimate: float
    se: float
    statistic: float
    df: float
    p: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (``df`` is null for a normal-theory interval)."""
        return _clean(
            {
                "treatments": [self.first, self.second],
                "difference": self.estimate,
                "se": self.se,
                "statistic": self.statistic,
                "df": self.df,
                "p": self.p,
                "ci_low": self.ci_low,
                "ci_high": self.ci_high,
            }
        )


@dataclass(frozen=True)
class Estimate:
    """A reader-averaged FOM of one treatment (or one reader's difference) with its interval."""

    label: str
    estimate: float
    se: float
    df: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return _clean(
            {
                "label": self.label,
                "estimate": self.estimate,
                "se": self.se,
                "df": self.df,
                "ci_low": self.ci_low,
                "ci_high": self.ci_high,
            }
        )


@dataclass(frozen=True)
class ORTest:
    """One OR analysis: the global test, the pairwise differences and per-treatment intervals."""

    name: Literal["rrrc", "frrc", "rrfc"]
    statistic_name: Literal["F", "chi2"]
    statistic: float
    ndf: float
    ddf: float  # inf for the chi-square form
    p: float
    differences: list[Difference]
    treatment_estimates: list[Estimate]
    reader_differences: list[Estimate] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary keyed as in the issue: ``F`` or ``chi2``, ``df``, ``p``."""
        out: dict[str, Any] = {self.statistic_name: self.statistic}
        out["df"] = [self.ndf, self.ddf] if self.statistic_name == "F" else self.ndf
        out["p"] = self.p
        out["differences"] = [d.to_dict() for d in self.differences]
        out["treatment_estimates"] = [e.to_dict() for e in self.treatment_estimates]
        if self.reader_differences:
            out["reader_differences"] = [e.to_dict() for e in self.reader_differences]
        return _clean(out)


@dataclass(frozen=True)
class VarianceComponents:
    """OR error covariances (case jackknife) and the treatment x reader ANOVA mean squares."""

    var: float
    cov1: float
    cov2: float
    cov3: float
    ms_t: float
    ms_r: float
    ms_tr: float
    var_r: float
    var_tr: float

    def to_dict(self) -> dict[str, float | None]:
        """JSON-ready dictionary."""
        return _clean(
            {
                "var": self.var,
                "cov1": self.cov1,
                "cov2": self.cov2,
                "cov3": self.cov3,
                "ms_t": self.ms_t,
                "ms_r": self.ms_r,
                "ms_tr": self.ms_tr,
                "var_r": self.var_r,
                "var_tr": self.var_tr,
            }
        )


@dataclass(frozen=True)
class MRMCResult:
    """Result of :func:`or_analysis`."""

    fom: str
    threshold: float | None
    treatments: list[str]
    readers: list[str]
    n_cases: int
    n_diseased: int
    n_non_diseased: int
    foms: FloatArray  # (treatment, reader)
    components: VarianceComponents
    rrrc: ORTest
    frrc: ORTest
    rrfc: ORTest

    @property
    def treatment_means(self) -> dict[str, float]:
        """Reader-averaged FOM per treatment."""
        return {t: float(m) for t, m in zip(self.treatments, self.foms.mean(axis=1), strict=True)}

    def fom_table(self) -> pd.DataFrame:
        """Long table ``reader, treatment, fom``."""
        rows = [
            {"reader": reader, "treatment": trt, "fom": float(self.foms[i, j])}
            for i, trt in enumerate(self.treatments)
            for j, reader in enumerate(self.readers)
        ]
        return pd.DataFrame(rows, columns=["reader", "treatment", "fom"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary: per analysis (``rrrc``, ``frrc``, ``rrfc``) the test, the
        differences with SE and 95% CI, and the reader-by-treatment FOM table."""
        return _clean(
            {
                "fom": self.fom,
                "threshold": self.threshold,
                "treatments": self.treatments,
                "readers": self.readers,
                "n_cases": self.n_cases,
                "n_diseased": self.n_diseased,
                "n_non_diseased": self.n_non_diseased,
                "reader_foms": self.fom_table().to_dict(orient="records"),
                "treatment_means": self.treatment_means,
                "variance_components": self.components.to_dict(),
                "rrrc": self.rrrc.to_dict(),
                "frrc": self.frrc.to_dict(),
                "rrfc": self.rrfc.to_dict(),
            }
        )


def _clean(value: Any) -> Any:
    """Turn numpy scalars into Python numbers and non-finite floats into None (valid JSON)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _natural_key(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def _ratio(num: float, den: float) -> float:
    """num / den with 0/0 -> nan and x/0 -> inf (a degenerate but legal study)."""
    if den > 0:
        return num / den
    return math.nan if num == 0 else math.inf


# ---------------------------------------------------------------------------------------------
# input
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RatingArray:
    """Ratings arranged as (treatment, reader, case) with one truth value per case."""

    treatments: list[str]
    readers: list[str]
    cases: list[str]
    truth: NDArray[np.int64]
    ratings: FloatArray


def rating_array(
    frame: pd.DataFrame, *, source: str = "list", treatments: list[str] | None = None
) -> RatingArray:
    """Check a list-mode table and arrange it as a (treatment, reader, case) array.

    Parameters
    ----------
    frame : pandas.DataFrame
        Columns ``reader, treatment, case, truth, rating``: one row per reading.
    source : str
        Name of the input used in error messages (e.g. the CSV path).
    treatments : list of str, optional
        Treatment order (differences are ``first - second``); default: sorted naturally.

    Raises
    ------
    AnalysisError
        Missing columns, non-numeric ratings, truth not 0/1 or not constant per case,
        fewer than two treatments or readers, duplicate readings, or a case that is not read by
        every reader on every treatment.
    """
    missing = [c for c in LIST_COLUMNS if c not in frame.columns]
    if missing:
        raise AnalysisError(
            f"{source}: missing column(s) {', '.join(missing)}; expected {', '.join(LIST_COLUMNS)}"
        )
    if frame.empty:
        raise AnalysisError(f"{source}: no rows")
    data = frame.loc[:, list(LIST_COLUMNS)].copy()
    for col in ("reader", "treatment", "case"):
        if data[col].isna().any():
            raise AnalysisError(f"{source}: column '{col}' has empty values")
        data[col] = data[col].astype(str).str.strip()
    rating = pd.to_numeric(data["rating"], errors="coerce")
    bad = rating.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise AnalysisError(
            f"{source}: column 'rating' row {row + 1}: expected a number, "
            f"got {frame['rating'].iloc[row]!r}"
        )
    truth = pd.to_numeric(data["truth"], errors="coerce")
    bad = ~truth.isin([0, 1])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise AnalysisError(
            f"{source}: column 'truth' row {row + 1}: expected 0 or 1, "
            f"got {frame['truth'].iloc[row]!r}"
        )
    data["rating"] = rating.astype(float)
    data["truth"] = truth.astype(int)
    per_case = data.groupby("case")["truth"].nunique()
    if (per_case > 1).any():
        raise AnalysisError(
            f"{source}: column 'truth': case {per_case[per_case > 1].index[0]!r} has both 0 and 1;"
            " expected one truth value per case"
        )
    found = sorted(data["treatment"].unique(), key=_natural_key)
    if treatments is None:
        treatments = found
    else:
        unknown = sorted(set(found) - set(treatments))
        absent = [t for t in treatments if t not in found]
        if unknown or absent:
            raise AnalysisError(
                f"{source}: column 'treatment': expected {treatments}, found {found}"
            )
    if len(treatments) < 2:
        raise AnalysisError(
            f"{source}: column 'treatment': found only {found}; expected at least two treatments"
        )
    readers = sorted(data["reader"].unique(), key=_natural_key)
    if len(readers) < 2:
        raise AnalysisError(
            f"{source}: column 'reader': found only {readers}; expected at least two readers"
        )
    dup = data.duplicated(["reader", "treatment", "case"])
    if dup.any():
        first = data[dup].iloc[0]
        raise AnalysisError(
            f"{source}: reader {first['reader']!r}, treatment {first['treatment']!r}, case "
            f"{first['case']!r} is rated more than once; expected one rating per reading"
        )
    cases = sorted(data["case"].unique(), key=_natural_key)
    full = len(treatments) * len(readers)
    counts = data.groupby("case").size()
    if (counts != full).any():
        case = counts[counts != full].index[0]
        have = data[data["case"] == case]
        missing_reads = sorted(
            {(t, r) for t in treatments for r in readers}
            - set(zip(have["treatment"], have["reader"], strict=True))
        )
        t, r = missing_reads[0]
        raise AnalysisError(
            f"{source}: case {case!r} has no rating from reader {r!r} on treatment {t!r}; "
            "expected every case read by every reader on every treatment (factorial design)"
        )
    wide = data.pivot_table(
        index=["treatment", "reader"], columns="case", values="rating", aggfunc="first"
    )
    index = pd.MultiIndex.from_product([treatments, readers], names=["treatment", "reader"])
    ratings = wide.reindex(index=index, columns=cases).to_numpy(dtype=np.float64)
    truth_by_case = data.groupby("case")["truth"].first().reindex(cases).to_numpy(np.int64)
    return RatingArray(
        treatments=list(treatments),
        readers=readers,
        cases=cases,
        truth=truth_by_case,
        ratings=ratings.reshape(len(treatments), len(readers), len(cases)),
    )


def read_list_csv(path: Path) -> pd.DataFrame:
    """Read a list-mode CSV (``reader,treatment,case,truth,rating``) keeping ids as text."""
    try:
        return pd.read_csv(
            path, dtype={"reader": str, "treatment": str, "case": str}, skipinitialspace=True
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"{path}: not a readable CSV file ({exc})") from exc


# ---------------------------------------------------------------------------------------------
# figures of merit and their jackknife
# ---------------------------------------------------------------------------------------------


def fom_and_jackknife(
    truth: NDArray[np.int64],
    ratings: FloatArray,
    fom: str,
    threshold: float | None = None,
) -> tuple[FloatArray, FloatArray]:
    """FOM of every (treatment, reader) and its leave-one-case-out values.

    Returns
    -------
    (foms, jack)
        ``foms`` of shape (t, r); ``jack`` of shape (t, r, n_jack), where the jackknife runs over
        all cases for the AUC, over the diseased cases for sensitivity and over the non-diseased
        cases for specificity.
    """
    if fom == "auc":
        return roc.empirical_auc(truth, ratings), roc.jackknife_auc(truth, ratings)
    if fom not in ("sensitivity", "specificity"):
        raise AnalysisError(f"fom: expected one of {', '.join(FOMS)}, got {fom!r}")
    if threshold is None:
        raise AnalysisError(f"fom {fom}: a --threshold is needed (rating >= threshold: positive)")
    calls = roc.positive_calls(ratings, threshold)
    cls = 1 if fom == "sensitivity" else 0
    # sensitivity: fraction of diseased called positive; specificity: non-diseased called negative
    hits = (calls if cls == 1 else ~calls)[..., truth == cls].astype(np.float64)
    n = hits.shape[-1]
    if n < 2:
        which = "diseased" if cls == 1 else "non-diseased"
        raise AnalysisError(f"truth: {fom} needs at least two {which} cases, found {n}")
    total = hits.sum(axis=-1, keepdims=True)
    return hits.mean(axis=-1), (total - hits) / (n - 1)


def jackknife_covariance(jack: FloatArray) -> FloatArray:
    """(t*r) x (t*r) jackknife covariance of the FOMs: ``(n - 1)/n * sum of outer products``."""
    t, r, n = jack.shape
    flat = jack.reshape(t * r, n)
    dev = flat - flat.mean(axis=1, keepdims=True)
    return np.asarray((n - 1) / n * (dev @ dev.T))


def _covariance_averages(cov: FloatArray, t: int, r: int) -> tuple[float, float, float, float]:
    """Var, Cov1, Cov2, Cov3 as averages over the blocks of a (t*r)^2 covariance matrix."""
    trt = np.repeat(np.arange(t), r)
    rdr = np.tile(np.arange(r), t)
    same_t = trt[:, None] == trt[None, :]
    same_r = rdr[:, None] == rdr[None, :]
    var = float(np.mean(np.diag(cov)))
    cov1 = float(cov[~same_t & same_r].mean()) if t > 1 else math.nan
    cov2 = float(cov[same_t & ~same_r].mean()) if r > 1 else math.nan
    cov3 = float(cov[~same_t & ~same_r].mean()) if t > 1 and r > 1 else math.nan
    return var, cov1, cov2, cov3


# ---------------------------------------------------------------------------------------------
# the analysis
# ---------------------------------------------------------------------------------------------


def or_analysis(
    truth: NDArray[np.int64],
    ratings: FloatArray,
    *,
    treatments: list[str],
    readers: list[str],
    fom: str = "auc",
    threshold: float | None = None,
) -> MRMCResult:
    """Obuchowski-Rockette analysis of a (treatment, reader, case) rating array.

    Parameters
    ----------
    truth : array of {0, 1}, shape (n_cases,)
    ratings : array, shape (t, r, n_cases)
    treatments, readers : list of str
        Labels of the first two axes; differences are reported as ``treatments[a] -
        treatments[b]`` for ``a < b``.
    fom : {"auc", "sensitivity", "specificity"}
    threshold : float, optional
        Rating at or above which a reading is positive (sensitivity / specificity only).

    Returns
    -------
    MRMCResult
        Random readers and cases (``rrrc``, Hillis ddf), fixed readers (``frrc``, chi-square)
        and fixed cases (``rrfc``).
    """
    ratings = np.asarray(ratings, dtype=np.float64)
    t, r, n_cases = ratings.shape
    if t < 2 or r < 2:
        raise AnalysisError(
            f"OR analysis needs at least two treatments and two readers, got {t} and {r}"
        )
    foms, jack = fom_and_jackknife(truth, ratings, fom, threshold)
    cov = jackknife_covariance(jack)
    var, cov1, cov2, cov3 = _covariance_averages(cov, t, r)

    grand = foms.mean()
    trt_means = foms.mean(axis=1)
    rdr_means = foms.mean(axis=0)
    ms_t = r * float(np.sum((trt_means - grand) ** 2)) / (t - 1)
    ms_r = t * float(np.sum((rdr_means - grand) ** 2)) / (r - 1)
    resid = foms - trt_means[:, None] - rdr_means[None, :] + grand
    ms_tr = float(np.sum(resid**2)) / ((t - 1) * (r - 1))
    var_tr = ms_tr - var + cov1 + max(cov2 - cov3, 0.0)
    components = VarianceComponents(
        var=var,
        cov1=cov1,
        cov2=cov2,
        cov3=cov3,
        ms_t=ms_t,
        ms_r=ms_r,
        ms_tr=ms_tr,
        # OR reader and treatment-by-reader variances from the expected mean squares
        var_r=(ms_r - var_tr - var - (t - 1) * cov1 + cov2 + (t - 1) * cov3) / t,
        var_tr=var_tr,
    )
    pairs = list(combinations(range(t), 2))
    cov_extra = max(cov2 - cov3, 0.0)

    # per-treatment pieces (Hillis, Obuchowski & Berbaum 2011)
    ms_r_i = np.array([float(np.var(foms[i], ddof=1)) for i in range(t)])
    var_i = np.empty(t)
    cov2_i = np.empty(t)
    for i in range(t):
        block = cov[i * r : (i + 1) * r, i * r : (i + 1) * r]
        var_i[i] = float(np.mean(np.diag(block)))
        cov2_i[i] = float(block[~np.eye(r, dtype=bool)].mean())

    rrrc = _rrrc(foms, treatments, pairs, components, cov_extra, ms_r_i, cov2_i)
    frrc = _frrc(foms, treatments, readers, pairs, components, cov, cov_extra, var_i, cov2_i)
    rrfc = _rrfc(foms, treatments, pairs, components, ms_r_i)
    n_diseased = int(np.sum(truth == 1))
    return MRMCResult(
        fom=fom,
        threshold=threshold if fom != "auc" else None,
        treatments=list(treatments),
        readers=list(readers),
        n_cases=n_cases,
        n_diseased=n_diseased,
        n_non_diseased=n_cases - n_diseased,
        foms=foms,
        components=components,
        rrrc=rrrc,
        frrc=frrc,
        rrfc=rrfc,
    )


def _t_difference(first: str, second: str, est: float, se: float, df: float) -> Difference:
    """Difference with a t (df finite) or normal (df = inf) interval and two-sided p."""
    stat = _ratio(est, se)
    if math.isinf(df):
        crit = float(stats.norm.ppf(1 - ALPHA / 2))
        p = float(2 * stats.norm.sf(abs(stat))) if not math.isnan(stat) else math.nan
    else:
        crit = float(stats.t.ppf(1 - ALPHA / 2, df)) if df > 0 else math.nan
        p = float(2 * stats.t.sf(abs(stat), df)) if not math.isnan(stat) else math.nan
    return Difference(first, second, est, se, stat, df, p, est - crit * se, est + crit * se)


def _t_estimate(label: str, est: float, se: float, df: float) -> Estimate:
    if math.isinf(df):
        crit = float(stats.norm.ppf(1 - ALPHA / 2))
    else:
        crit = float(stats.t.ppf(1 - ALPHA / 2, df)) if df > 0 else math.nan
    return Estimate(label, est, se, df, est - crit * se, est + crit * se)


def _rrrc(
    foms: FloatArray,
    treatments: list[str],
    pairs: list[tuple[int, int]],
    vc: VarianceComponents,
    cov_extra: float,
    ms_r_i: FloatArray,
    cov2_i: FloatArray,
) -> ORTest:
    t, r = foms.shape
    den = vc.ms_tr + r * cov_extra
    f_stat = _ratio(vc.ms_t, den)
    ddf = _ratio(den**2, vc.ms_tr**2 / ((t - 1) * (r - 1)))
    p = float(stats.f.sf(f_stat, t - 1, ddf)) if math.isfinite(f_stat) else _p_degenerate(f_stat)
    means = foms.mean(axis=1)
    se = math.sqrt(2.0 / r * den)
    diffs = [
        _t_difference(treatments[a], treatments[b], float(means[a] - means[b]), se, ddf)
        for a, b in pairs
    ]
    per_trt = []
    for i in range(t):
        den_i = ms_r_i[i] + r * max(cov2_i[i], 0.0)
        df_i = _ratio(den_i**2, ms_r_i[i] ** 2 / (r - 1))
        per_trt.append(_t_estimate(treatments[i], float(means[i]), math.sqrt(den_i / r), df_i))
    return ORTest("rrrc", "F", f_stat, t - 1, ddf, p, diffs, per_trt)


def _frrc(
    foms: FloatArray,
    treatments: list[str],
    readers: list[str],
    pairs: list[tuple[int, int]],
    vc: VarianceComponents,
    cov: FloatArray,
    cov_extra: float,
    var_i: FloatArray,
    cov2_i: FloatArray,
) -> ORTest:
    t, r = foms.shape
    den = vc.var - vc.cov1 + (r - 1) * cov_extra
    chi2 = _ratio((t - 1) * vc.ms_t, den)
    p = float(stats.chi2.sf(chi2, t - 1)) if math.isfinite(chi2) else _p_degenerate(chi2)
    means = foms.mean(axis=1)
    se = math.sqrt(max(2.0 / r * den, 0.0))
    inf = math.inf
    diffs = [
        _t_difference(treatments[a], treatments[b], float(means[a] - means[b]), se, inf)
        for a, b in pairs
    ]
    per_trt = [
        _t_estimate(
            treatments[i],
            float(means[i]),
            math.sqrt((var_i[i] + (r - 1) * max(cov2_i[i], 0.0)) / r),
            inf,
        )
        for i in range(t)
    ]
    # single-reader differences: SE from that reader's own variance and Cov1
    per_reader = []
    for j, reader in enumerate(readers):
        idx = np.arange(t) * r + j
        block = cov[np.ix_(idx, idx)]
        var_j = float(np.mean(np.diag(block)))
        cov1_j = float(block[~np.eye(t, dtype=bool)].mean())
        se_j = math.sqrt(max(2.0 * (var_j - cov1_j), 0.0))
        for a, b in pairs:
            label = f"{reader}: {treatments[a]} - {treatments[b]}"
            per_reader.append(_t_estimate(label, float(foms[a, j] - foms[b, j]), se_j, inf))
    return ORTest("frrc", "chi2", chi2, t - 1, inf, p, diffs, per_trt, per_reader)


def _rrfc(
    foms: FloatArray,
    treatments: list[str],
    pairs: list[tuple[int, int]],
    vc: VarianceComponents,
    ms_r_i: FloatArray,
) -> ORTest:
    t, r = foms.shape
    ddf = float((t - 1) * (r - 1))
    f_stat = _ratio(vc.ms_t, vc.ms_tr)
    p = float(stats.f.sf(f_stat, t - 1, ddf)) if math.isfinite(f_stat) else _p_degenerate(f_stat)
    means = foms.mean(axis=1)
    se = math.sqrt(2.0 * vc.ms_tr / r)
    diffs = [
        _t_difference(treatments[a], treatments[b], float(means[a] - means[b]), se, ddf)
        for a, b in pairs
    ]
    per_trt = [
        _t_estimate(treatments[i], float(means[i]), math.sqrt(ms_r_i[i] / r), float(r - 1))
        for i in range(t)
    ]
    return ORTest("rrfc", "F", f_stat, t - 1, ddf, p, diffs, per_trt)


def _p_degenerate(statistic: float) -> float:
    """p for a statistic with a zero denominator: 0 for inf (a sure difference), nan for 0/0."""
    return 0.0 if math.isinf(statistic) else math.nan


def mrmc_from_list(
    frame: pd.DataFrame,
    *,
    fom: str = "auc",
    threshold: float | None = None,
    treatments: list[str] | None = None,
    source: str = "list",
) -> MRMCResult:
    """OR analysis of a list-mode table ``reader, treatment, case, truth, rating``.

    Parameters
    ----------
    frame : pandas.DataFrame
    fom : {"auc", "sensitivity", "specificity"}
    threshold : float, optional
        Needed for sensitivity and specificity: rating >= threshold is a positive call.
    treatments : list of str, optional
        Treatment order; differences are ``first - second``.
    source : str
        Name of the input for error messages.

    Returns
    -------
    MRMCResult
    """
    if fom not in FOMS:
        raise AnalysisError(f"fom: expected one of {', '.join(FOMS)}, got {fom!r}")
    arr = rating_array(frame, source=source, treatments=treatments)
    return or_analysis(
        arr.truth,
        arr.ratings,
        treatments=arr.treatments,
        readers=arr.readers,
        fom=fom,
        threshold=threshold,
    )
