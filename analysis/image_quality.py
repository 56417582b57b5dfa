"""Image-quality comparisons of a new arm with the reference arm.

- Per-reader Wilcoxon signed-rank test on the paired scores (``zero_method="pratt"``: ties
  between arms are ranked and then dropped, as Pratt 1959 proposed for ordinal scores).
- Proportional-odds (ordinal logistic) model of the score on the arm and reader indicators with
  case-clustered (sandwich) errors: ``statsmodels`` ``OrderedModel`` (no constant; the
  thresholds play its role) fitted with ``cov_type="cluster"``.
- Visual grading characteristics (Båth M, Månsson LG. Visual grading characteristics (VGC)
  analysis: a non-parametric rank-invariant statistical method for image quality evaluation.
  Br J Radiol 2007;80:169-176): the curve of the proportion of reference ratings at or above each
  score threshold (x) against that of the new arm (y); AUC = P(new > reference) +
  P(tie) / 2 > 0.5 when the new arm is rated better. CI by a vectorised case bootstrap.
- Preference proportions (paired design) with Wilson intervals.
- The matched-pairs rank-biserial correlation (Kerby 2014) as the effect size of each Wilcoxon
  test, ``r = (R+ - R-) / (R+ + R-)`` with Pratt's ranks, with a case-bootstrap 95% CI.
- The proportional-odds effect with readers and cases random: the same model's log odds ratio
  with a two-way (reader and case) bootstrap, computed as a score (one-step) bootstrap from each
  read's influence on the estimate, so that 2000 resamples cost one fit. With few readers or
  cases the resampling distribution is too narrow and the result says so (``warnings``).

The inputs are reads tables (:mod:`analysis.reads`) of one score question; preferences take the
raw preference values (an arm code or ``"equal"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from analysis import resampling
from analysis.errors import AnalysisError
from analysis.reads import first_reads, unique_in_order

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class WilcoxonResult:
    """Wilcoxon signed-rank test (Pratt) of one reader's paired scores, new minus reference."""

    finding: str
    reader: str
    n_cases: int
    n_better: int
    n_worse: int
    n_tied: int
    mean_difference: float
    median_difference: float
    statistic: float
    p_value: float
    rank_biserial: float | None = None
    rank_biserial_ci_low: float | None = None
    rank_biserial_ci_high: float | None = None

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dictionary."""
        return _clean(asdict(self))


@dataclass(frozen=True)
class _OddsRatio:
    """The proportional-odds effect on the new arm: log odds ratio, its interval and test."""

    finding: str
    log_odds_ratio: float
    se: float
    ci_low: float
    ci_high: float
    odds_ratio: float
    or_ci_low: float
    or_ci_high: float
    p_value: float
    n_reads: int
    n_cases: int

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dictionary."""
        return _clean(asdict(self))


@dataclass(frozen=True)
class TwoWayOrdinalResult(_OddsRatio):
    """Proportional-odds log odds ratio with a two-way (reader and case) bootstrap.

    ``ci_low``/``ci_high``: percentile 95% interval of the bootstrap; ``p_value``: two-sided,
    from the same distribution (below 0.05 exactly when the interval excludes 0); ``se``: the
    bootstrap SD; ``warnings``: when readers or cases are too few for resampling them to be
    trusted.
    """

    n_readers: int = 0
    n_boot: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class OrdinalResult(_OddsRatio):
    """Proportional-odds model: log odds ratio of a higher score on the new arm (readers
    fixed, case-clustered SE)."""

    reader_effects: bool = True
    converged: bool = True


@dataclass(frozen=True)
class VgcResult:
    """VGC analysis of the new arm against the reference: AUC, case-bootstrap CI and the curve.

    ``curve_x``/``curve_y``: proportion of reference/new ratings at or above each threshold,
    from the highest score down, starting at (0, 0) and ending at (1, 1).
    """

    finding: str
    reader: str | None
    auc: float
    ci_low: float
    ci_high: float
    n_cases: int
    n_boot: int
    thresholds: list[float] = field(default_factory=list)
    curve_x: list[float] = field(default_factory=list)
    curve_y: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dictionary."""
        return _clean(asdict(self))


@dataclass(frozen=True)
class PreferenceResult:
    """How often one choice was preferred, with a Wilson 95% interval."""

    choice: str
    count: int
    n: int
    proportion: float
    ci_low: float
    ci_high: float
    reader: str | None = None

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dictionary."""
        return _clean(asdict(self))


# ---- Wilcoxon ---------------------------------------------------------------------------------


def wilcoxon_by_reader(
    reads: pd.DataFrame,
    reference: str,
    new: str,
    *,
    finding: str | None = None,
    n_boot: int = 0,
    rng: np.random.Generator | None = None,
) -> list[WilcoxonResult]:
    """Per reader, Wilcoxon signed-rank test (Pratt) of new-arm minus reference-arm scores.

    Cases scored on both arms by the reader are paired. With no non-zero difference the test
    has nothing to rank: the statistic is 0 and the p-value 1. Each result carries the
    matched-pairs rank-biserial correlation; with ``n_boot`` and ``rng`` also its case-bootstrap
    percentile 95% CI.
    """
    frame = _one_finding(reads, reference, new, finding)
    name = str(frame["finding"].iloc[0])
    results = []
    for reader, part in frame.groupby("reader", sort=True):
        wide = part.pivot(index="case", columns="arm", values="value").dropna()
        if wide.empty or reference not in wide or new not in wide:
            continue
        diff = (wide[new] - wide[reference]).to_numpy()
        if np.any(diff != 0):
            test = stats.wilcoxon(diff, zero_method="pratt")
            statistic, p_value = float(test.statistic), float(test.pvalue)
        else:
            statistic, p_value = 0.0, 1.0
        effect = float(rank_biserial(diff[None, :])[0])
        low = high = None
        if n_boot > 0 and rng is not None and diff.size > 1 and np.any(diff != 0):
            counts = resampling.case_counts(rng, diff.size, n_boot)
            boot = rank_biserial_bootstrap(diff, counts)
            if np.isfinite(boot).any():
                low, high = resampling.percentile_interval(boot)
        results.append(
            WilcoxonResult(
                finding=name,
                reader=str(reader),
                n_cases=int(diff.size),
                n_better=int((diff > 0).sum()),
                n_worse=int((diff < 0).sum()),
                n_tied=int((diff == 0).sum()),
                mean_difference=float(diff.mean()),
                median_difference=float(np.median(diff)),
                statistic=statistic,
                p_value=p_value,
                rank_biserial=effect if np.isfinite(effect) else None,
                rank_biserial_ci_low=low,
                rank_biserial_ci_high=high,
            )
        )
    return results


def rank_biserial_bootstrap(diff: FloatArray, counts: FloatArray) -> FloatArray:
    """:func:`rank_biserial` of each case-bootstrap resample (counts (B, n)), without sorting.

    The resampled differences take the sample's distinct absolute values only, so each
    resample's average ranks follow from how often it holds each value: the rank of the k-th
    smallest absolute value is the count of smaller ones plus (its own count + 1) / 2, exactly
    what ``scipy.stats.rankdata`` gives for ties.
    """
    diff = np.asarray(diff, dtype=float)
    magnitude = np.abs(diff)
    values, index = np.unique(magnitude, return_inverse=True)
    indicator = np.zeros((diff.size, values.size))
    indicator[np.arange(diff.size), index] = 1.0
    held = counts @ indicator  # (B, K): how often each |d| value is in the resample
    below = np.cumsum(held, axis=1) - held
    ranks = below + (held + 1.0) / 2.0
    plus = counts @ (indicator * (diff > 0)[:, None])
    minus = counts @ (indicator * (diff < 0)[:, None])
    r_plus = (ranks * plus).sum(axis=1)
    r_minus = (ranks * minus).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        result: FloatArray = (r_plus - r_minus) / (r_plus + r_minus)
    return result


def rank_biserial(diffs: FloatArray) -> FloatArray:
    """Matched-pairs rank-biserial correlation of each row of paired differences (B, n).

    ``(R+ - R-) / (R+ + R-)`` with the ranks of ``|d|`` over all differences, zeros included
    (Pratt), and the zeros' ranks then left out; in [-1, 1]; NaN for a row of zeros only.
    """
    diffs = np.atleast_2d(np.asarray(diffs, dtype=float))
    ranks = stats.rankdata(np.abs(diffs), axis=1)
    plus = np.where(diffs > 0, ranks, 0.0).sum(axis=1)
    minus = np.where(diffs < 0, ranks, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        result: FloatArray = (plus - minus) / (plus + minus)
    return result


# ---- proportional odds ------------------------------------------------------------------------


def proportional_odds(
    reads: pd.DataFrame,
    reference: str,
    new: str,
    *,
    finding: str | None = None,
    reader_effects: bool = True,
) -> OrdinalResult:
    """Proportional-odds model of the score with case-clustered errors.

    ``logit P(score <= k) = theta_k - (beta * new + reader effects)``; ``beta > 0`` means higher
    scores on the new arm. No constant (the thresholds theta_k take its place); reader
    indicators (first reader as baseline) when ``reader_effects``; sandwich covariance
    clustered on the case (``cov_type="cluster"``).
    """
    fitted = _fit_proportional_odds(reads, reference, new, finding, reader_effects)
    return _ordinal_result(fitted, reader_effects)


def _ordinal_result(fitted: _FittedOrdinal, reader_effects: bool) -> OrdinalResult:
    fit = fitted.fit
    beta, se = float(fit.params["new"]), float(fit.bse["new"])
    if not np.isfinite(se):
        raise AnalysisError(
            f"finding {fitted.name!r}: the proportional-odds model did not fit (separated scores?)"
        )
    z = float(stats.norm.ppf(0.975))
    low, high = beta - z * se, beta + z * se
    return OrdinalResult(
        finding=fitted.name,
        log_odds_ratio=beta,
        se=se,
        ci_low=low,
        ci_high=high,
        odds_ratio=float(np.exp(beta)),
        or_ci_low=float(np.exp(low)),
        or_ci_high=float(np.exp(high)),
        p_value=float(2 * stats.norm.sf(abs(beta / se))),
        n_reads=len(fitted.frame),
        n_cases=int(fitted.groups.max() + 1),
        reader_effects=reader_effects,
        converged=bool(fit.mle_retvals.get("converged", True)),
    )


#: Below these numbers of clusters, resampling them is said to be unreliable.
FEW_READERS = 10
FEW_CASES = 40


def proportional_odds_two_way(
    reads: pd.DataFrame,
    reference: str,
    new: str,
    *,
    finding: str | None = None,
    n_boot: int = 2000,
    rng: np.random.Generator,
) -> tuple[OrdinalResult, TwoWayOrdinalResult]:
    """The proportional-odds effect with readers and cases random, and the case-clustered fit.

    One fit of :func:`proportional_odds`'s model (reader effects on); then each read's
    influence on the estimate, ``IF = s_read H^-1`` (score times the inverse information), is
    summed per case and reader, and a two-way bootstrap resample moves the estimate by
    ``sum_ij (c_i r_j - 1) IF_ij`` (``c``: case counts, ``r``: reader counts). This one-step
    (score) bootstrap equals refitting each resample to first order.

    Returns
    -------
    (OrdinalResult, TwoWayOrdinalResult)
        The case-clustered result and the two-way bootstrap result of the same fit.
    """
    fitted = _fit_proportional_odds(reads, reference, new, finding, True)
    clustered = _ordinal_result(fitted, True)
    fit, model, frame = fitted.fit, fitted.model, fitted.frame
    params = np.asarray(fit.params, dtype=np.float64)
    names = list(fit.params.index)
    scores = np.asarray(model.score_obs(params), dtype=np.float64)  # (n_reads, k)
    hinv = np.asarray(fit.normalized_cov_params, dtype=np.float64)  # inverse of minus the Hessian
    influence = scores @ hinv[:, names.index("new")]  # (n_reads,)
    case_codes = fitted.groups
    reader_codes, reader_ids = pd.factorize(frame["reader"])
    n_cases, n_readers = int(case_codes.max() + 1), len(reader_ids)
    cell = np.zeros((n_cases, n_readers))
    np.add.at(cell, (case_codes, reader_codes), influence)
    case_counts = resampling.case_counts(rng, n_cases, n_boot)
    reader_counts = resampling.reader_counts(rng, n_readers, n_boot)
    shift = np.einsum("bi,ij,bj->b", case_counts, cell, reader_counts) - cell.sum()
    beta = float(params[names.index("new")])
    boot = beta + shift
    low, high = resampling.percentile_interval(boot)
    p_value = float(min(1.0, 2 * min(np.mean(boot <= 0.0), np.mean(boot >= 0.0))))
    warnings = []
    if n_readers < FEW_READERS:
        warnings.append(
            f"only {n_readers} readers: resampling so few readers understates how much other "
            f"readers could differ (intervals for random readers are unreliable with fewer than "
            f"about {FEW_READERS})"
        )
    if n_cases < FEW_CASES:
        warnings.append(
            f"only {n_cases} cases: cluster-robust and case-bootstrap intervals are unreliable "
            f"with fewer than about {FEW_CASES} cases"
        )
    two_way = TwoWayOrdinalResult(
        finding=fitted.name,
        log_odds_ratio=beta,
        se=float(np.std(boot, ddof=1)),
        ci_low=low,
        ci_high=high,
        odds_ratio=float(np.exp(beta)),
        or_ci_low=float(np.exp(low)),
        or_ci_high=float(np.exp(high)),
        p_value=p_value,
        n_reads=len(frame),
        n_cases=n_cases,
        n_readers=n_readers,
        n_boot=n_boot,
        warnings=warnings,
    )
    return clustered, two_way


@dataclass(frozen=True)
class _FittedOrdinal:
    name: str
    frame: pd.DataFrame
    groups: npt.NDArray[np.int64]
    model: Any
    fit: Any


def _fit_proportional_odds(
    reads: pd.DataFrame,
    reference: str,
    new: str,
    finding: str | None,
    reader_effects: bool,
) -> _FittedOrdinal:
    import warnings

    from statsmodels.miscmodels.ordinal_model import OrderedModel

    frame = _one_finding(reads, reference, new, finding)
    name = str(frame["finding"].iloc[0])
    levels = np.unique(frame["value"].to_numpy(dtype=float))
    if levels.size < 2:
        raise AnalysisError(
            f"finding {name!r}: column 'value' holds one score only; an ordinal model needs two"
        )
    exog = pd.DataFrame({"new": (frame["arm"] == new).astype(float).to_numpy()})
    if reader_effects and frame["reader"].nunique() > 1:
        dummies = pd.get_dummies(frame["reader"], prefix="reader", drop_first=True, dtype=float)
        exog = pd.concat([exog, dummies.reset_index(drop=True)], axis=1)
    endog = np.searchsorted(levels, frame["value"].to_numpy(dtype=float))
    groups = pd.factorize(frame["case"])[0].astype(np.int64)
    model = OrderedModel(endog, exog, distr=_fast_logistic())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(
            method="bfgs",
            disp=False,
            maxiter=500,
            cov_type="cluster",
            cov_kwds={"groups": groups},
        )
    return _FittedOrdinal(name=name, frame=frame, groups=groups, model=model, fit=fit)


def _fast_logistic() -> stats.rv_continuous:
    """The logistic distribution with closed-form cdf/pdf/ppf for ``OrderedModel``.

    Same numbers as ``distr="logit"`` (scipy's generic ``stats.logistic``), about three times
    faster: the model's numerical derivatives call the cdf thousands of times.
    """
    from scipy.special import expit, logit

    class FastLogistic(stats.rv_continuous):  # type: ignore[misc]
        def cdf(self, x: FloatArray, *args: object, **kwds: object) -> FloatArray:
            result: FloatArray = expit(x)
            return result

        def pdf(self, x: FloatArray, *args: object, **kwds: object) -> FloatArray:
            p = expit(x)
            result: FloatArray = p * (1.0 - p)
            return result

        def ppf(self, q: FloatArray, *args: object, **kwds: object) -> FloatArray:
            result: FloatArray = logit(q)
            return result

    return FastLogistic(name="logistic")


# ---- VGC --------------------------------------------------------------------------------------


def vgc(
    reads: pd.DataFrame,
    reference: str,
    new: str,
    *,
    finding: str | None = None,
    reader: str | None = None,
    n_boot: int = 2000,
    rng: np.random.Generator,
    case_counts: resampling.CaseCounts | None = None,
) -> VgcResult:
    """VGC curve and AUC of the new arm against the reference, pooled over readers or for one.

    The case bootstrap resamples cases (with all their ratings); it is vectorised through
    per-case score histograms: ``AUC_b = H_new,b' Psi H_ref,b / (|H_new,b| |H_ref,b|)`` with
    ``Psi[k, l] = 1{s_k > s_l} + 1{s_k = s_l} / 2``. Pass a shared
    :class:`analysis.resampling.CaseCounts` as ``case_counts`` to reuse one draw across calls.
    """
    frame = _one_finding(reads, reference, new, finding)
    name = str(frame["finding"].iloc[0])
    if reader is not None:
        if reader not in set(frame["reader"]):
            raise AnalysisError(f"column 'reader': unknown reader {reader!r}")
        frame = frame[frame["reader"] == reader]
    scores = np.unique(frame["value"].to_numpy(dtype=float))
    h_ref, h_new, cases = _case_histograms(frame, reference, new, scores)
    psi = _psi(scores)
    auc = float(_auc_from_histograms(h_ref.sum(axis=0)[None], h_new.sum(axis=0)[None], psi)[0])
    draws = case_counts if case_counts is not None else resampling.CaseCounts(rng, n_boot)
    counts = draws(len(cases))
    boot = _auc_from_histograms(counts @ h_ref, counts @ h_new, psi)
    low, high = resampling.percentile_interval(boot)
    ref_total, new_total = h_ref.sum(axis=0), h_new.sum(axis=0)
    # Cumulative from the highest score down: proportion rated >= each threshold.
    x = np.concatenate([[0.0], np.cumsum(ref_total[::-1]) / ref_total.sum()])
    y = np.concatenate([[0.0], np.cumsum(new_total[::-1]) / new_total.sum()])
    return VgcResult(
        finding=name,
        reader=reader,
        auc=auc,
        ci_low=low,
        ci_high=high,
        n_cases=len(cases),
        n_boot=n_boot,
        thresholds=[float(s) for s in scores[::-1]],
        curve_x=[float(v) for v in x],
        curve_y=[float(v) for v in y],
    )


def vgc_bootstrap(
    h_ref: FloatArray, h_new: FloatArray, scores: FloatArray, case_counts: FloatArray
) -> FloatArray:
    """VGC AUC in each case-bootstrap resample (per-case histograms (N, K), counts (B, N))."""
    return _auc_from_histograms(case_counts @ h_ref, case_counts @ h_new, _psi(scores))


def _vgc_bootstrap_loop(
    reads: pd.DataFrame, reference: str, new: str, indices: npt.NDArray[np.int64]
) -> FloatArray:
    """Plain-loop reference of the VGC case bootstrap (tests and benchmarks only).

    For each resample, gathers every rating of the resampled cases and computes the
    Mann-Whitney AUC by comparing all pairs of new and reference ratings.
    """
    frame = _one_finding(reads, reference, new, None)
    cases = unique_in_order(frame["case"])
    by_case = {case: part for case, part in frame.groupby("case", sort=False)}
    out = np.empty(indices.shape[0])
    for b in range(indices.shape[0]):
        sample = pd.concat([by_case[cases[i]] for i in indices[b]])
        x = sample.loc[sample["arm"] == new, "value"].to_numpy()
        y = sample.loc[sample["arm"] == reference, "value"].to_numpy()
        greater = (x[:, None] > y[None, :]).mean()
        ties = (x[:, None] == y[None, :]).mean()
        out[b] = greater + ties / 2
    return out


# ---- preference -------------------------------------------------------------------------------


def preference_proportions(
    values: Sequence[str] | pd.Series,
    choices: Sequence[str],
    *,
    reader: str | None = None,
) -> list[PreferenceResult]:
    """Proportion of each choice (e.g. the two arm codes and ``"equal"``) with Wilson 95% CIs.

    Every value must be one of ``choices`` (AnalysisError naming the value otherwise). The CI
    treats preferences as independent; with several readers per case it is a per-read interval.
    """
    from statsmodels.stats.proportion import proportion_confint

    items = [str(v) for v in values]
    if not items:
        raise AnalysisError("no preference answers to summarise")
    unknown = sorted(set(items) - set(choices))
    if unknown:
        raise AnalysisError(
            f"column 'value': unknown preference {unknown[0]!r} (expected one of "
            f"{', '.join(choices)})"
        )
    n = len(items)
    results = []
    for choice in choices:
        count = items.count(choice)
        low, high = proportion_confint(count, n, alpha=0.05, method="wilson")
        results.append(
            PreferenceResult(
                choice=choice,
                count=count,
                n=n,
                proportion=count / n,
                ci_low=float(low),
                ci_high=float(high),
                reader=reader,
            )
        )
    return results


def preference_by_reader(answers: pd.DataFrame, choices: Sequence[str]) -> list[PreferenceResult]:
    """:func:`preference_proportions` overall (``reader=None``) and per reader.

    ``answers`` needs columns ``reader`` and ``value`` (one preference question's answers).
    """
    for column in ("reader", "value"):
        if column not in answers.columns:
            raise AnalysisError(f"preference answers: missing column {column!r}")
    results = preference_proportions(answers["value"], choices)
    for reader, part in answers.groupby("reader", sort=True):
        results += preference_proportions(part["value"], choices, reader=str(reader))
    return results


# ---- helpers ----------------------------------------------------------------------------------


def _one_finding(
    reads: pd.DataFrame, reference: str, new: str, finding: str | None
) -> pd.DataFrame:
    missing = [c for c in ("case", "reader", "arm", "finding", "value") if c not in reads.columns]
    if missing:
        raise AnalysisError(f"reads table: missing column(s) {', '.join(missing)}")
    arms = unique_in_order(reads["arm"])
    for arm in (reference, new):
        if arm not in arms:
            raise AnalysisError(f"column 'arm': unknown arm {arm!r} (arms: {', '.join(arms)})")
    findings = unique_in_order(reads["finding"])
    if finding is None:
        if len(findings) != 1:
            raise AnalysisError(
                f"column 'finding': {len(findings)} findings in the reads; name one "
                f"({', '.join(findings)})"
            )
        finding = findings[0]
    if finding not in findings:
        raise AnalysisError(f"column 'finding': unknown finding {finding!r}")
    frame = reads[(reads["finding"].astype(str) == finding) & reads["arm"].isin([reference, new])]
    frame = first_reads(frame)
    values = pd.to_numeric(frame["value"], errors="coerce")
    if values.isna().any():
        bad = frame["value"][values.isna()].iloc[0]
        raise AnalysisError(f"column 'value': score {bad!r} is not a number")
    return frame.assign(value=values.astype(float)).reset_index(drop=True)


def _case_histograms(
    frame: pd.DataFrame, reference: str, new: str, scores: FloatArray
) -> tuple[FloatArray, FloatArray, list[str]]:
    cases = unique_in_order(frame["case"])
    case_index = pd.Index(cases)
    histograms = []
    for arm in (reference, new):
        part = frame[frame["arm"] == arm]
        rows = case_index.get_indexer(pd.Index(part["case"].astype(str)))
        cols = np.searchsorted(scores, part["value"].to_numpy(dtype=float))
        h = np.zeros((len(cases), scores.size))
        np.add.at(h, (rows, cols), 1.0)
        histograms.append(h)
    if histograms[0].sum() == 0 or histograms[1].sum() == 0:
        raise AnalysisError("VGC needs ratings on both arms")
    return histograms[0], histograms[1], cases


def _psi(scores: FloatArray) -> FloatArray:
    greater = (scores[:, None] > scores[None, :]).astype(float)
    result: FloatArray = greater + 0.5 * np.eye(scores.size)
    return result


def _auc_from_histograms(h_ref: FloatArray, h_new: FloatArray, psi: FloatArray) -> FloatArray:
    """Rows of histograms (B, K) -> (B,) Mann-Whitney AUC of new over reference."""
    numerator = np.einsum("bk,kl,bl->b", h_new, psi, h_ref)
    with np.errstate(invalid="ignore", divide="ignore"):
        result: FloatArray = numerator / (h_new.sum(axis=1) * h_ref.sum(axis=1))
    return result


def _clean(values: dict[str, object]) -> dict[str, object]:
    return {
        key: (None if isinstance(value, float) and not np.isfinite(value) else value)
        for key, value in values.items()
    }
