"""Interchangeability of a new arm with a reference arm (Obuchowski, Subhas & Schoenhagen 2014).

Obuchowski NA, Subhas N, Schoenhagen P. Testing for interchangeability of imaging tests.
Acad Radiol 2014;21:1483-1489. For one finding with reference arm C and new arm D, N cases and J
readers, per case i over ordered reader pairs j != j'::

    A_CC,i = mean 1{Y_C[i,j] = Y_C[i,j']}     reference-reference agreement
    A_DC,i = mean 1{Y_D[i,j] = Y_C[i,j']}     new-reference agreement
    A_DD,i = mean 1{Y_D[i,j] = Y_D[i,j']}     new-new agreement (reported, not tested)
    d_i = A_CC,i - A_DC,i,   gamma = mean_i d_i  (excess disagreement; > 0: the new arm adds some)

A reader is never paired with itself, so readers that read only one arm (the paper's TAVR design)
and fully crossed designs are handled alike. The new arm is interchangeable with the reference
when the upper bound of the reported two-sided 95% interval lies below the margin (equivalently,
the one-sided p-value of H0: gamma >= margin is below 0.025).

The intervals that decide are those of :mod:`analysis.decision`, chosen by simulation: fixed
readers, the calibrated bootstrap-t over cases (the Wald bound, SE = sd(d)/sqrt(N), is given
alongside as ``se`` and is anti-conservative on skewed d_i); random readers, the
Obuchowski-Rockette variance of the reader jackknife pseudovalues with Hillis's degrees of
freedom, never narrower than the fixed-reader interval. The case-bootstrap percentile interval
(fixed) and the two-way reader and case bootstrap without self-pairs (random; it over-covers) are
reported as second opinions only.

Repeat reads (column ``read``) allow the paper's same-reader estimator, which compares each
reader's reference re-reads with that reader's new-arm reads.

Sensitivity measures for ordinal findings: ``"exact"`` (exact-category agreement, a probability
like the binary one) and ``"squared"`` (squared-difference index in score units squared:
``gamma = mean (Y_D - Y_C')^2 - mean (Y_C - Y_C')^2``, which needs its own margin).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from analysis import decision, resampling
from analysis.errors import AnalysisError
from analysis.reads import first_reads, unique_in_order

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Measure = Literal["binary", "exact", "squared"]
ReaderModel = Literal["fixed", "random"]
Estimator = Literal["between-reader", "same-reader"]

MEASURES: tuple[str, ...] = ("binary", "exact", "squared")
READER_MODELS: tuple[str, ...] = ("fixed", "random")
ESTIMATORS: tuple[str, ...] = ("between-reader", "same-reader")
REQUIRED_COLUMNS: tuple[str, ...] = ("case", "reader", "arm", "finding", "value")
_Z975 = float(stats.norm.ppf(0.975))


@dataclass(frozen=True)
class InterchangeabilityResult:
    """Excess disagreement of one finding and the decision against the margin.

    ``a_rr``, ``a_tr`` and ``a_tt`` are the mean reference-reference, new-reference and new-new
    agreement rates (for ``measure="squared"``: mean squared differences, so that then
    ``excess_disagreement = a_tr - a_rr``). ``ci_low``/``ci_high`` are the deciding two-sided 95%
    interval (``interval`` names it: the calibrated bootstrap-t for fixed readers, the Hillis t
    interval for random readers) and ``interchangeable`` is ``ci_high < margin``. ``p_value`` is
    the one-sided p-value of H0: gamma >= margin from the same interval (below 0.025 exactly when
    interchangeable). ``se`` is the case-jackknife SE (fixed) or the random-reader SE, ``df``
    the t degrees of freedom of the random-reader interval (inf otherwise).
    ``boot_ci_low``/``boot_ci_high`` hold a bootstrap percentile interval as a second opinion
    (fixed readers: case bootstrap; random readers: the two-way bootstrap without self-pairs).
    For random readers ``case_var`` and ``reader_var`` split the variance into what the cases
    give (the fixed-reader variance) and what the readers add; ``ms_r`` and ``cov2`` are the
    Obuchowski-Rockette pieces of the reader pseudovalues.
    """

    finding: str
    reference: str
    new: str
    excess_disagreement: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    a_rr: float
    a_tr: float
    a_tt: float | None
    n_cases: int
    n_readers: int
    margin: float
    readers: str
    method: str
    measure: str
    threshold: float | None
    estimator: str
    n_boot: int
    interval: str = ""
    df: float = math.inf
    boot_ci_low: float | None = None
    boot_ci_high: float | None = None
    case_var: float | None = None
    reader_var: float | None = None
    ms_r: float | None = None
    cov2: float | None = None
    skewness: float | None = None
    p_holm: float | None = None
    interchangeable_holm: bool | None = None
    # Derived from the interval and the margin, so no constructor can state it inconsistently.
    interchangeable: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "interchangeable", bool(self.ci_high < self.margin))

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dictionary (NaN and infinity become None)."""
        return {key: _json_number(value) for key, value in asdict(self).items()}


@dataclass(frozen=True)
class GeeResult:
    """The GEE form of the excess disagreement (cross-check of the per-case estimator).

    One row per case x ordered reader pair x pair type (reference-reference or new-reference),
    outcome the pair's agreement, covariate ``new`` (1 for new-reference pairs), identity link,
    Gaussian variance, groups = case; ``estimate = -coefficient(new)`` with the robust SE.
    """

    finding: str
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    working_correlation: str
    n_rows: int
    n_cases: int

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dictionary."""
        return {key: _json_number(value) for key, value in asdict(self).items()}


@dataclass(frozen=True)
class PairScores:
    """Per-case agreement scores of every ordered reader pair for one finding.

    ``cc[i, j, k]``: agreement of reader j (reference) with reader k (reference) on case i;
    ``dc[i, j, k]``: reader j (new) with reader k (reference); ``dd``: new with new. The masks
    mark the pairs that exist (both readers read the arm, j != k). Scores are 1/0 agreement, or
    the negative squared difference for the squared-difference index, so that in every case
    ``gamma = mean A_CC - mean A_DC``.
    """

    cases: tuple[str, ...]
    readers: tuple[str, ...]
    cc: FloatArray
    dc: FloatArray
    dd: FloatArray
    cc_mask: BoolArray
    dc_mask: BoolArray
    dd_mask: BoolArray

    def per_case(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Per-case mean scores ``(A_CC,i, A_DC,i, A_DD,i)`` (A_DD is NaN without new-new pairs)."""
        return (
            _masked_case_means(self.cc, self.cc_mask),
            _masked_case_means(self.dc, self.dc_mask),
            _masked_case_means(self.dd, self.dd_mask),
        )


@dataclass(frozen=True)
class SameReaderScores:
    """Per case and reader: agreement of reference re-reads and of new with reference reads."""

    cases: tuple[str, ...]
    readers: tuple[str, ...]
    rr: FloatArray  # (N, J) mean over ordered pairs of distinct reference reads
    tr: FloatArray  # (N, J) mean over (new read, reference read) pairs
    tt: FloatArray  # (N, J) mean over distinct new reads (NaN with one new read)


def excess_disagreement(
    reads: pd.DataFrame,
    reference: str,
    new: str,
    *,
    finding: str | None = None,
    threshold: float | None = None,
    margin: float = 0.05,
    readers: ReaderModel = "fixed",
    n_boot: int = 2000,
    rng: np.random.Generator,
    measure: Measure = "binary",
    estimator: Estimator = "between-reader",
    case_counts: resampling.CaseCounts | None = None,
) -> InterchangeabilityResult:
    """Excess disagreement of the ``new`` arm over the ``reference`` arm for one finding.

    Parameters
    ----------
    reads : pandas.DataFrame
        Reads table with columns ``case, reader, arm, finding, value`` (+ optional ``read``), as
        made by :mod:`analysis.reads`.
    reference, new : str
        Arm codes of the reference and the new arm.
    finding : str, optional
        Which finding to analyse; required when ``reads`` holds more than one.
    threshold : float, optional
        Dichotomise ordinal values: ``value >= threshold`` counts as present. Used by the
        ``"binary"`` measure only; without it the values are compared as they are.
    margin : float
        Interchangeability margin for gamma (0.05 or 0.10 in the literature).
    readers : {"fixed", "random"}
        Which interval is reported and decides: fixed readers (case-jackknife Wald) or random
        readers (jackknife variance-component Wald).
    n_boot : int
        Bootstrap resamples.
    rng : numpy.random.Generator
        Source of randomness for the bootstraps.
    measure : {"binary", "exact", "squared"}
        Agreement measure: dichotomised agreement, exact-category agreement, or the
        squared-difference index (sensitivity analyses for ordinal findings).
    estimator : {"between-reader", "same-reader"}
        ``"same-reader"`` needs repeat reads (column ``read``, at least two reference reads per
        reader and case).
    case_counts : analysis.resampling.CaseCounts, optional
        Shared case-bootstrap draws (as :func:`interchangeability_by_finding` passes); default:
        drawn from ``rng``.

    Returns
    -------
    InterchangeabilityResult
    """
    outcome = excess_disagreement_models(
        reads,
        reference,
        new,
        finding=finding,
        threshold=threshold,
        margin=margin,
        models=(readers,),
        n_boot=n_boot,
        rng=rng,
        measure=measure,
        estimator=estimator,
        case_counts=case_counts,
    )[readers]
    if isinstance(outcome, AnalysisError):
        raise outcome
    return outcome


def excess_disagreement_models(
    reads: pd.DataFrame,
    reference: str,
    new: str,
    *,
    finding: str | None = None,
    threshold: float | None = None,
    margin: float = 0.05,
    models: Sequence[ReaderModel] = ("fixed", "random"),
    n_boot: int = 2000,
    rng: np.random.Generator,
    measure: Measure = "binary",
    estimator: Estimator = "between-reader",
    case_counts: resampling.CaseCounts | None = None,
    second_opinion: bool = True,
    matrices: ArmMatrices | None = None,
) -> dict[str, InterchangeabilityResult | AnalysisError]:
    """:func:`excess_disagreement` for several reader models at once (one fixed-reader
    bootstrap serves both, the random-reader bound being guarded by it).

    ``second_opinion=False`` leaves out the percentile intervals (``boot_ci_low/high`` None),
    which decide nothing (sensitivity analyses and simulations skip them). ``matrices``: the
    finding's case x reader matrices from :func:`arm_matrices` (between-reader estimator
    only), to skip validating and reshaping ``reads`` again.

    Returns
    -------
    dict
        Per model the result, or the :class:`AnalysisError` that model raised (e.g. random
        readers with two readers) while the others could be computed.
    """
    for model in models:
        _check_options(margin, model, n_boot, measure, estimator)
    draws = case_counts if case_counts is not None else resampling.CaseCounts(rng, n_boot)
    if draws.n_boot != n_boot:
        raise AnalysisError(f"case_counts holds {draws.n_boot} resamples, n_boot is {n_boot}")
    if matrices is not None:
        if estimator != "between-reader":
            raise AnalysisError("precomputed matrices serve the between-reader estimator only")
        name = matrices.finding
        values = _between_reader_values(
            matrices.scores(reference, new, threshold, measure), measure
        )
    else:
        frame = _finding_frame(reads, reference, new, finding)
        name = str(frame["finding"].iloc[0])
        if estimator == "same-reader":
            values = _same_reader_values(frame, reference, new, threshold, measure)
        else:
            scores = pair_scores(frame, reference, new, threshold=threshold, measure=measure)
            values = _between_reader_values(scores, measure)
    d = values.d
    n_cases = d.shape[0]
    fixed = decision.calibrated_bootstrap_t(
        d, margin, rng=rng, n_boot=n_boot, case_indices=draws.indices(n_cases)
    )
    counts = draws(n_cases)
    common = {
        "finding": name,
        "reference": reference,
        "new": new,
        "excess_disagreement": float(d.mean()),
        "a_rr": values.a_rr,
        "a_tr": values.a_tr,
        "a_tt": values.a_tt,
        "n_cases": n_cases,
        "n_readers": values.n_readers,
        "margin": margin,
        "measure": measure,
        "threshold": threshold,
        "estimator": estimator,
        "n_boot": n_boot,
        "skewness": _skewness(d),
    }
    prefix = "same-reader estimator, " if estimator == "same-reader" else ""
    out: dict[str, InterchangeabilityResult | AnalysisError] = {}
    for model in models:
        low: float | None = None
        high: float | None = None
        if model == "fixed":
            if second_opinion:
                low, high = resampling.percentile_interval(resampling.bootstrap_means(d, counts))
            out[model] = InterchangeabilityResult(
                **common,  # type: ignore[arg-type]
                se=_sd_over_sqrt_n(d),
                ci_low=fixed.ci_low,
                ci_high=fixed.ci_high,
                p_value=fixed.p_value,
                readers="fixed",
                method=prefix + fixed.method + " (case-bootstrap percentile CI alongside)",
                interval=fixed.interval,
                df=fixed.df,
                boot_ci_low=low,
                boot_ci_high=high,
            )
            continue
        try:
            leave_out = values.leave_out()
        except AnalysisError as exc:
            out[model] = exc
            continue
        chosen, components = decision.random_reader_interval(d, leave_out, margin, fixed)
        if second_opinion:
            low, high = resampling.percentile_interval(values.two_way(rng, counts, n_boot))
        out[model] = InterchangeabilityResult(
            **common,  # type: ignore[arg-type]
            se=chosen.se,
            ci_low=chosen.ci_low,
            ci_high=chosen.ci_high,
            p_value=chosen.p_value,
            readers="random",
            method=prefix
            + chosen.method
            + " (two-way bootstrap percentile CI alongside; it is conservative)",
            interval=chosen.interval,
            df=chosen.df,
            boot_ci_low=low,
            boot_ci_high=high,
            case_var=components.case_var,
            reader_var=components.reader_var,
            ms_r=components.ms_r,
            cov2=components.cov2,
        )
    return out


@dataclass(frozen=True)
class _CaseValues:
    """Per-case excess disagreements of one finding, and how to get what random readers need."""

    d: FloatArray
    a_rr: float
    a_tr: float
    a_tt: float | None
    n_readers: int
    leave_out: Callable[[], FloatArray]
    two_way: Callable[[np.random.Generator, FloatArray, int], FloatArray]


def _between_reader_values(scores: PairScores, measure: Measure) -> _CaseValues:
    a_cc, a_dc, a_dd = scores.per_case()
    sign = -1.0 if measure == "squared" else 1.0
    a_tt = float(np.nanmean(a_dd)) if np.any(np.isfinite(a_dd)) else None

    def two_way(rng: np.random.Generator, counts: FloatArray, n_boot: int) -> FloatArray:
        weights = resampling.reader_counts(rng, len(scores.readers), n_boot)
        return two_way_bootstrap(scores, counts, weights)

    return _CaseValues(
        d=a_cc - a_dc,
        a_rr=sign * float(a_cc.mean()),
        a_tr=sign * float(a_dc.mean()),
        a_tt=None if a_tt is None else sign * a_tt,
        n_readers=len(scores.readers),
        leave_out=lambda: _leave_out_matrix(scores),
        two_way=two_way,
    )


def _same_reader_values(
    frame: pd.DataFrame, reference: str, new: str, threshold: float | None, measure: Measure
) -> _CaseValues:
    scores = same_reader_scores(frame, reference, new, threshold=threshold, measure=measure)
    d_ij = scores.rr - scores.tr
    n_readers = d_ij.shape[1]
    sign = -1.0 if measure == "squared" else 1.0
    a_tt = float(np.nanmean(scores.tt)) if np.any(np.isfinite(scores.tt)) else None

    def leave_out() -> FloatArray:
        if n_readers < 3:
            raise AnalysisError(
                f"column 'reader': random-reader inference needs at least three readers, "
                f"found {n_readers}"
            )
        result: FloatArray = (d_ij.sum(axis=1, keepdims=True) - d_ij) / (n_readers - 1)
        return result

    def two_way(rng: np.random.Generator, counts: FloatArray, n_boot: int) -> FloatArray:
        weights = resampling.reader_counts(rng, n_readers, n_boot)
        per_reader = counts @ d_ij / counts.sum(axis=1)[:, None]  # (B, J)
        result: FloatArray = (per_reader * weights).sum(axis=1) / weights.sum(axis=1)
        return result

    return _CaseValues(
        d=d_ij.mean(axis=1),
        a_rr=sign * float(scores.rr.mean()),
        a_tr=sign * float(scores.tr.mean()),
        a_tt=None if a_tt is None else sign * a_tt,
        n_readers=n_readers,
        leave_out=leave_out,
        two_way=two_way,
    )


def interchangeability_by_finding(
    reads: pd.DataFrame,
    reference: str,
    new: str,
    *,
    threshold: float | None = None,
    margin: float = 0.05,
    readers: ReaderModel = "fixed",
    n_boot: int = 2000,
    rng: np.random.Generator,
    holm: bool = False,
    measure: Measure = "binary",
    estimator: Estimator = "between-reader",
) -> list[InterchangeabilityResult]:
    """:func:`excess_disagreement` for every finding in ``reads`` (in order of appearance).

    With ``holm=True`` the one-sided p-values are Holm-adjusted across findings
    (:func:`analysis.multiplicity.holm`) into ``p_holm``, and ``interchangeable_holm``
    is ``p_holm < 0.025`` (the one-sided level matching the two-sided 95% interval).
    """
    _require_columns(reads)
    if reads.empty:
        raise AnalysisError("the reads table is empty: no finding to analyse")
    names = reads["finding"].astype(str)
    _check_options(margin, readers, n_boot, measure, estimator)
    draws = resampling.CaseCounts(rng, n_boot)
    results = [
        excess_disagreement(
            part,
            reference,
            new,
            finding=name,
            threshold=threshold,
            margin=margin,
            readers=readers,
            n_boot=n_boot,
            rng=rng,
            measure=measure,
            estimator=estimator,
            case_counts=draws,
        )
        for name, part in reads.groupby(names, sort=False)
    ]
    if holm:
        results = holm_adjust(results)
    return results


def interchangeability_by_finding_models(
    reads: pd.DataFrame,
    reference: str,
    new: str,
    *,
    models: Sequence[ReaderModel] = ("fixed", "random"),
    threshold: float | None = None,
    margin: float = 0.05,
    n_boot: int = 2000,
    rng: np.random.Generator,
    measure: Measure = "binary",
    estimator: Estimator = "between-reader",
    second_opinion: bool = True,
    matrices: Mapping[str, ArmMatrices] | None = None,
) -> tuple[dict[str, list[InterchangeabilityResult]], dict[str, str]]:
    """:func:`excess_disagreement_models` for every finding (one joint case bootstrap).

    ``matrices`` (finding -> :func:`arm_matrices`), when given, are used instead of reshaping
    ``reads`` again for every analysis of the same findings.

    Returns
    -------
    results : dict
        Per model, the results of every finding in order of appearance (a model that failed
        for some finding is left out entirely).
    errors : dict
        Per model that could not be computed, the first error's message.
    """
    _require_columns(reads)
    if reads.empty:
        raise AnalysisError("the reads table is empty: no finding to analyse")
    draws = resampling.CaseCounts(rng, n_boot)
    names = reads["finding"].astype(str)
    results: dict[str, list[InterchangeabilityResult]] = {model: [] for model in models}
    errors: dict[str, str] = {}
    for name, part in reads.groupby(names, sort=False):
        outcome = excess_disagreement_models(
            part,
            reference,
            new,
            finding=str(name),
            threshold=threshold,
            margin=margin,
            models=models,
            n_boot=n_boot,
            rng=rng,
            measure=measure,
            estimator=estimator,
            case_counts=draws,
            second_opinion=second_opinion,
            matrices=None if matrices is None else matrices[str(name)],
        )
        for model, value in outcome.items():
            if isinstance(value, AnalysisError):
                errors.setdefault(model, str(value))
            else:
                results[model].append(value)
    for model in errors:
        results.pop(model, None)
    return results, errors


def holm_adjust(results: Sequence[InterchangeabilityResult]) -> list[InterchangeabilityResult]:
    """Add Holm-adjusted one-sided p-values (``p_holm``, ``interchangeable_holm``)."""
    from analysis.multiplicity import holm

    if not results:
        return []
    adjusted = holm([result.p_value for result in results])
    return [
        replace(result, p_holm=float(p), interchangeable_holm=bool(p < 0.025))
        for result, p in zip(results, adjusted, strict=True)
    ]


@dataclass(frozen=True)
class ArmMatrices:
    """One finding's first reads as case x reader matrices of both arms (NaN: not read)."""

    finding: str
    cases: tuple[str, ...]
    readers: tuple[str, ...]
    ref: FloatArray
    new: FloatArray

    def scores(
        self, reference: str, new: str, threshold: float | None, measure: Measure
    ) -> PairScores:
        """The pair scores of these matrices (see :func:`pair_scores_from_arrays`)."""
        return pair_scores_from_arrays(
            self.ref, self.new, cases=self.cases, readers=self.readers, threshold=threshold,
            measure=measure, reference=reference, new=new,
        )  # fmt: skip


def arm_matrices(
    reads: pd.DataFrame, reference: str, new: str, *, finding: str | None = None
) -> ArmMatrices:
    """Validate one finding's reads and arrange them as case x reader matrices per arm."""
    frame = _finding_frame(reads, reference, new, finding)
    cases, readers, ref, nov = _arm_matrices(first_reads(frame), reference, new)
    return ArmMatrices(str(frame["finding"].iloc[0]), cases, readers, ref, nov)


def pair_scores(
    reads: pd.DataFrame,
    reference: str,
    new: str,
    *,
    threshold: float | None = None,
    measure: Measure = "binary",
) -> PairScores:
    """Agreement scores of all ordered reader pairs, per case, for one finding's reads.

    Uses the first read (smallest ``read``) of each case, reader and arm. Raises
    :class:`AnalysisError` when fewer than two readers read the reference arm, when no reader
    pair links the new arm to the reference, or when a reader read some but not all cases of an arm.
    """
    frame = first_reads(reads)
    cases, reader_ids, ref, nov = _arm_matrices(frame, reference, new)
    return pair_scores_from_arrays(
        ref,
        nov,
        cases=cases,
        readers=reader_ids,
        threshold=threshold,
        measure=measure,
        reference=reference,
        new=new,
    )


def pair_scores_from_arrays(
    ref: FloatArray,
    nov: FloatArray,
    *,
    cases: Sequence[str] | None = None,
    readers: Sequence[str] | None = None,
    threshold: float | None = None,
    measure: Measure = "binary",
    reference: str = "reference",
    new: str = "new",
) -> PairScores:
    """:func:`pair_scores` from case x reader matrices (NaN columns: readers not on that arm).

    ``ref`` and ``nov`` have shape (N, J) with the same reader order; a reader that did not read
    an arm has an all-NaN column there. Used directly by simulations.
    """
    n_cases, n_readers = ref.shape
    cases = tuple(cases) if cases is not None else tuple(str(i) for i in range(n_cases))
    reader_ids = tuple(readers) if readers is not None else tuple(str(j) for j in range(n_readers))
    ref_v, new_v = _transform(ref, threshold, measure), _transform(nov, threshold, measure)
    reads_ref: BoolArray = np.asarray(~np.isnan(ref).all(axis=0))
    reads_new: BoolArray = np.asarray(~np.isnan(nov).all(axis=0))
    off_diagonal = ~np.eye(len(reader_ids), dtype=bool)
    cc_mask = reads_ref[:, None] & reads_ref[None, :] & off_diagonal
    dc_mask = reads_new[:, None] & reads_ref[None, :] & off_diagonal
    dd_mask = reads_new[:, None] & reads_new[None, :] & off_diagonal
    if int(reads_ref.sum()) < 2:
        raise AnalysisError(
            f"column 'reader': interchangeability needs at least two readers on the reference "
            f"arm {reference!r}, found {int(reads_ref.sum())}"
        )
    if not dc_mask.any():
        raise AnalysisError(
            f"column 'reader': no reader on arm {new!r} can be paired with a different reader on "
            f"the reference arm {reference!r}"
        )
    return PairScores(
        cases=cases,
        readers=reader_ids,
        cc=_pair_score(ref_v, ref_v, measure),
        dc=_pair_score(new_v, ref_v, measure),
        dd=_pair_score(new_v, new_v, measure),
        cc_mask=cc_mask,
        dc_mask=dc_mask,
        dd_mask=dd_mask,
    )


def two_way_bootstrap(
    scores: PairScores, case_counts: FloatArray, reader_counts: FloatArray
) -> FloatArray:
    """Excess disagreement in each resample of a two-way (reader and case) bootstrap, vectorised.

    Parameters
    ----------
    scores : PairScores
        The per-case pair scores.
    case_counts : numpy.ndarray
        Shape (B, N) from :func:`analysis.resampling.case_counts`.
    reader_counts : numpy.ndarray
        Shape (B, J) from :func:`analysis.resampling.reader_counts`.

    Returns
    -------
    numpy.ndarray
        Shape (B,); NaN where a resample has no reference-reference or new-reference pair left
        (all its readers are copies of one reader).
    """
    n_cases, n_readers = case_counts.shape[1], reader_counts.shape[1]
    # Case sums of every pair's score in each resample: (B, N) @ (N, J*J).
    sum_cc = case_counts @ scores.cc.reshape(n_cases, n_readers * n_readers)
    sum_dc = case_counts @ scores.dc.reshape(n_cases, n_readers * n_readers)
    w_cc = resampling.pair_weights(reader_counts, scores.cc_mask).reshape(-1, n_readers**2)
    w_dc = resampling.pair_weights(reader_counts, scores.dc_mask).reshape(-1, n_readers**2)
    total = case_counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        a_cc = (sum_cc * w_cc).sum(axis=1) / (total * w_cc.sum(axis=1))
        a_dc = (sum_dc * w_dc).sum(axis=1) / (total * w_dc.sum(axis=1))
    result: FloatArray = a_cc - a_dc
    return result


def random_reader_variance(scores: PairScores) -> decision.ReaderPseudovalueVariance:
    """Variance of gamma with readers and cases random: Obuchowski-Rockette on the reader
    jackknife pseudovalues (:func:`analysis.decision.pseudovalue_variance`), with Hillis's df.

    Needs at least three readers, with reader pairs left on both arms whenever any one reader is
    left out.
    """
    a_cc, a_dc, _ = scores.per_case()
    return decision.pseudovalue_variance(a_cc - a_dc, _leave_out_matrix(scores))


def _leave_out_matrix(scores: PairScores) -> FloatArray:
    """(N, J): d_i without reader j, for every reader."""
    leave_out = np.column_stack([_leave_reader_out(scores, j) for j in range(len(scores.readers))])
    if len(scores.readers) < 3 or not np.isfinite(leave_out).all():
        raise AnalysisError(
            "column 'reader': random-reader inference needs at least three readers, with reader "
            "pairs left on both arms when any one reader is left out"
        )
    result: FloatArray = leave_out
    return result


def per_reader_excess_disagreement(scores: PairScores) -> pd.DataFrame:
    """Each reader's own excess disagreement, with a case-jackknife SE.

    For reader j: the mean over the other readers k (reference arm) of ``1{Y_C[j] = Y_C[k]} -
    1{Y_D[j] = Y_C[k]}``, i.e. how much more reader j disagrees with colleagues when reading the
    new arm than when reading the reference. For a fully crossed design the mean over readers
    equals gamma. Columns ``reader, excess_disagreement, se, ci_low, ci_high, n_cases``.
    """
    rows = []
    n_cases = len(scores.cases)
    for j, reader in enumerate(scores.readers):
        cc = scores.cc[:, j, :][:, scores.cc_mask[j]]
        dc = scores.dc[:, j, :][:, scores.dc_mask[j]]
        if cc.shape[1] == 0 or dc.shape[1] == 0:
            continue
        theta = cc.mean(axis=1) - dc.mean(axis=1)
        value = float(theta.mean())
        se = _sd_over_sqrt_n(theta)
        rows.append(
            {
                "reader": reader,
                "excess_disagreement": value,
                "se": se,
                "ci_low": value - _Z975 * se,
                "ci_high": value + _Z975 * se,
                "n_cases": n_cases,
            }
        )
    return pd.DataFrame(
        rows, columns=["reader", "excess_disagreement", "se", "ci_low", "ci_high", "n_cases"]
    )


def _leave_reader_out(scores: PairScores, j: int) -> FloatArray:
    keep = np.ones(len(scores.readers), dtype=bool)
    keep[j] = False
    pair_keep = keep[:, None] & keep[None, :]
    a_cc = _masked_case_means(scores.cc, scores.cc_mask & pair_keep)
    a_dc = _masked_case_means(scores.dc, scores.dc_mask & pair_keep)
    result: FloatArray = a_cc - a_dc
    return result


def case_bootstrap(scores: PairScores, case_counts: FloatArray) -> FloatArray:
    """Excess disagreement in each case-bootstrap resample (readers fixed), vectorised."""
    a_cc, a_dc, _ = scores.per_case()
    return resampling.bootstrap_means(a_cc - a_dc, case_counts)


def _bootstrap_loop(
    reads: pd.DataFrame,
    reference: str,
    new: str,
    case_indices: npt.NDArray[np.int64],
    reader_counts: FloatArray | None = None,
    *,
    threshold: float | None = None,
    measure: Measure = "binary",
) -> FloatArray:
    """Plain-loop reference of the case / two-way bootstrap (tests and benchmarks only).

    Rebuilds each resample's data (cases by ``case_indices`` (B, N); readers by expanding
    ``reader_counts`` (B, J) into copies) and recomputes gamma with Python loops over reader
    pairs, skipping pairs of copies of the same reader. Gives the same numbers as
    :func:`case_bootstrap` / :func:`two_way_bootstrap` for the same draws.
    """
    frame = first_reads(reads)
    _, reader_ids, ref, nov = _arm_matrices(frame, reference, new)
    ref_v, new_v = _transform(ref, threshold, measure), _transform(nov, threshold, measure)
    n_readers = len(reader_ids)
    reads_ref: BoolArray = np.asarray(~np.isnan(ref).all(axis=0))
    reads_new: BoolArray = np.asarray(~np.isnan(nov).all(axis=0))
    out = np.empty(case_indices.shape[0])
    for b in range(case_indices.shape[0]):
        rows = case_indices[b]
        if reader_counts is None:
            copies = list(range(n_readers))
        else:
            copies = [j for j in range(n_readers) for _ in range(int(reader_counts[b, j]))]
        sample_ref, sample_new = ref_v[rows], new_v[rows]
        cc_total = dc_total = 0.0
        cc_pairs = dc_pairs = 0
        for j in copies:
            for k in copies:
                if j == k or not reads_ref[k]:
                    continue
                if reads_ref[j]:
                    cc_total += float(_score(sample_ref[:, j], sample_ref[:, k], measure).sum())
                    cc_pairs += 1
                if reads_new[j]:
                    dc_total += float(_score(sample_new[:, j], sample_ref[:, k], measure).sum())
                    dc_pairs += 1
        if cc_pairs == 0 or dc_pairs == 0:
            out[b] = math.nan
            continue
        n = len(rows)
        out[b] = cc_total / (cc_pairs * n) - dc_total / (dc_pairs * n)
    return out


def same_reader_scores(
    reads: pd.DataFrame,
    reference: str,
    new: str,
    *,
    threshold: float | None = None,
    measure: Measure = "binary",
) -> SameReaderScores:
    """Per case and reader agreement of repeat reads (the paper's same-reader estimator).

    Needs column ``read``: every reader reads every case at least twice on the reference arm and
    at least once on the new arm.
    """
    if "read" not in reads.columns:
        raise AnalysisError(
            "the same-reader estimator needs column 'read' (repeat reads numbered 1, 2, ...)"
        )
    frame = reads.copy()
    frame["read"] = pd.to_numeric(frame["read"], errors="raise").astype(int)
    cases = tuple(unique_in_order(frame["case"]))
    reader_ids = tuple(sorted(unique_in_order(frame["reader"])))
    cube_ref = _read_cube(frame, reference, cases, reader_ids)
    cube_new = _read_cube(frame, new, cases, reader_ids)
    if cube_ref.shape[2] < 2:
        raise AnalysisError(
            f"column 'read': the same-reader estimator needs at least two reads of every case by "
            f"every reader on the reference arm {reference!r}"
        )
    ref_v = _transform(cube_ref, threshold, measure)
    new_v = _transform(cube_new, threshold, measure)
    rr = _mean_read_pairs(ref_v, ref_v, distinct=True, measure=measure)
    tr = _mean_read_pairs(new_v, ref_v, distinct=False, measure=measure)
    tt = (
        _mean_read_pairs(new_v, new_v, distinct=True, measure=measure)
        if new_v.shape[2] >= 2
        else np.full(rr.shape, np.nan)
    )
    return SameReaderScores(cases=cases, readers=reader_ids, rr=rr, tr=tr, tt=tt)


def gee_excess_disagreement(
    reads: pd.DataFrame,
    reference: str,
    new: str,
    *,
    finding: str | None = None,
    threshold: float | None = None,
    measure: Measure = "binary",
    working_correlation: Literal["exchangeable", "independence"] = "exchangeable",
) -> GeeResult:
    """GEE form of the excess disagreement (statsmodels GEE, groups = case, identity link).

    With the independence working correlation and complete data the estimate equals
    :func:`excess_disagreement`'s exactly; the exchangeable one weights the pairs differently and
    agrees closely.
    """
    import statsmodels.api as sm

    if working_correlation not in ("exchangeable", "independence"):
        raise AnalysisError(
            f"working correlation must be 'exchangeable' or 'independence', got "
            f"{working_correlation!r}"
        )
    frame = _finding_frame(reads, reference, new, finding)
    scores = pair_scores(frame, reference, new, threshold=threshold, measure=measure)
    n_cases = len(scores.cases)
    cc = scores.cc[:, scores.cc_mask]
    dc = scores.dc[:, scores.dc_mask]
    outcome = np.concatenate([cc, dc], axis=1)
    is_new = np.concatenate([np.zeros(cc.shape[1]), np.ones(dc.shape[1])])
    groups = np.repeat(np.arange(n_cases), outcome.shape[1])
    design = np.column_stack([np.ones(outcome.size), np.tile(is_new, n_cases)])
    structure = (
        sm.cov_struct.Exchangeable()
        if working_correlation == "exchangeable"
        else sm.cov_struct.Independence()
    )
    model = sm.GEE(
        outcome.ravel(),
        design,
        groups=groups,
        family=sm.families.Gaussian(),
        cov_struct=structure,
    )
    fit = model.fit()
    estimate = -float(fit.params[1])
    se = float(fit.bse[1])
    return GeeResult(
        finding=str(frame["finding"].iloc[0]),
        estimate=estimate,
        se=se,
        ci_low=estimate - _Z975 * se,
        ci_high=estimate + _Z975 * se,
        working_correlation=working_correlation,
        n_rows=int(outcome.size),
        n_cases=n_cases,
    )


# ---------------------------------------------------------------------------------------------
# helpers


def _check_options(margin: float, readers: str, n_boot: int, measure: str, estimator: str) -> None:
    if readers not in READER_MODELS:
        raise AnalysisError(f"--readers must be one of {', '.join(READER_MODELS)}, got {readers!r}")
    if measure not in MEASURES:
        raise AnalysisError(f"measure must be one of {', '.join(MEASURES)}, got {measure!r}")
    if estimator not in ESTIMATORS:
        raise AnalysisError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")
    if not math.isfinite(margin) or margin <= 0:
        raise AnalysisError(f"--margin must be a positive number, got {margin}")
    if n_boot < 1:
        raise AnalysisError(f"--n-boot must be at least 1, got {n_boot}")


def _require_columns(reads: pd.DataFrame) -> None:
    missing = [column for column in REQUIRED_COLUMNS if column not in reads.columns]
    if missing:
        raise AnalysisError(
            f"reads table: missing column(s) {', '.join(missing)}; expected "
            f"{', '.join(REQUIRED_COLUMNS)} (+ optional read)"
        )


def _finding_frame(
    reads: pd.DataFrame, reference: str, new: str, finding: str | None
) -> pd.DataFrame:
    _require_columns(reads)
    if reads.empty:
        raise AnalysisError("the reads table is empty")
    arms = unique_in_order(reads["arm"])
    for arm, role in ((reference, "reference"), (new, "new")):
        if arm not in arms:
            raise AnalysisError(
                f"column 'arm': the {role} arm {arm!r} is not in the reads "
                f"(arms: {', '.join(arms)})"
            )
    if reference == new:
        raise AnalysisError(f"the reference and the new arm are the same arm {reference!r}")
    findings = unique_in_order(reads["finding"])
    if finding is None:
        if len(findings) > 1:
            raise AnalysisError(
                f"column 'finding': the reads hold {len(findings)} findings; name one "
                f"({', '.join(findings)})"
            )
        finding = findings[0]
    if finding not in findings:
        raise AnalysisError(
            f"column 'finding': unknown finding {finding!r} (findings: {', '.join(findings)})"
        )
    frame = reads[reads["finding"].astype(str) == finding]
    values = pd.to_numeric(frame["value"], errors="coerce")
    bad = frame["value"][values.isna() | ~np.isfinite(values.astype(float))]
    if not bad.empty:
        raise AnalysisError(
            f"column 'value': finding {finding!r} has a non-numeric or missing score "
            f"{bad.iloc[0]!r}"
        )
    out = frame.assign(
        case=frame["case"].astype(str),
        reader=frame["reader"].astype(str),
        arm=frame["arm"].astype(str),
        finding=finding,
        value=values.astype(float),
    )
    return out[out["arm"].isin([reference, new])]


def _arm_matrices(
    frame: pd.DataFrame, reference: str, new: str
) -> tuple[tuple[str, ...], tuple[str, ...], FloatArray, FloatArray]:
    duplicated = frame.duplicated(["case", "reader", "arm"], keep=False)
    if duplicated.any():
        row = frame[duplicated].iloc[0]
        raise AnalysisError(
            f"case {row['case']!r}, reader {row['reader']!r}, arm {row['arm']!r}: more than one "
            f"value for one read (number repeat reads in column 'read')"
        )
    cases = tuple(unique_in_order(frame["case"]))
    reader_ids = tuple(sorted(unique_in_order(frame["reader"])))
    matrices = []
    for arm in (reference, new):
        wide = (
            frame[frame["arm"] == arm]
            .pivot(index="case", columns="reader", values="value")
            .reindex(index=list(cases), columns=list(reader_ids))
        )
        matrix = wide.to_numpy(dtype=float)
        unread = np.isnan(matrix).all(axis=1)
        if unread.any():
            case = cases[int(np.argmax(unread))]
            raise AnalysisError(
                f"case {case!r} was not read on arm {arm!r} (exclude incomplete cases with "
                f"analysis.reads first)"
            )
        for j, reader in enumerate(reader_ids):
            column = np.isnan(matrix[:, j])
            if column.any() and not column.all():
                case = cases[int(np.argmax(column))]
                raise AnalysisError(
                    f"case {case!r}: reader {reader!r} read arm {arm!r} on other cases but not on "
                    f"this one (exclude incomplete cases with analysis.reads first)"
                )
        matrices.append(matrix)
    return cases, reader_ids, matrices[0], matrices[1]


def _read_cube(
    frame: pd.DataFrame, arm: str, cases: tuple[str, ...], reader_ids: tuple[str, ...]
) -> FloatArray:
    part = frame[frame["arm"] == arm]
    reads = sorted(int(r) for r in pd.unique(part["read"]))
    index = pd.MultiIndex.from_product([cases, reader_ids, reads])
    series = part.set_index(["case", "reader", "read"])["value"]
    if series.index.duplicated().any():
        case, reader, read = series.index[series.index.duplicated()][0]
        raise AnalysisError(
            f"case {case!r}, reader {reader!r}, arm {arm!r}, read {read}: more than one value"
        )
    flat = series.reindex(index).to_numpy(dtype=float)
    cube: FloatArray = flat.reshape(len(cases), len(reader_ids), len(reads))
    if np.isnan(cube).any():
        i, j, r = (int(x[0]) for x in np.nonzero(np.isnan(cube)))
        raise AnalysisError(
            f"case {cases[i]!r}: reader {reader_ids[j]!r} has no read {reads[r]} on arm {arm!r}; "
            f"the same-reader estimator needs every read of every reader and case"
        )
    return cube


def _transform(values: FloatArray, threshold: float | None, measure: str) -> FloatArray:
    if measure == "binary" and threshold is not None:
        return np.where(np.isnan(values), np.nan, (values >= threshold).astype(float))
    return values


def _score(a: FloatArray, b: FloatArray, measure: str) -> FloatArray:
    if measure == "squared":
        result: FloatArray = -((a - b) ** 2)
        return result
    return (a == b).astype(float)


def _pair_score(first: FloatArray, second: FloatArray, measure: str) -> FloatArray:
    """(N, J) x (N, J) -> (N, J, J) scores: [i, j, k] compares first[i, j] with second[i, k]."""
    scores = _score(first[:, :, None], second[:, None, :], measure)
    return np.nan_to_num(scores, nan=0.0)


def _mean_read_pairs(
    first: FloatArray, second: FloatArray, *, distinct: bool, measure: str
) -> FloatArray:
    """(N, J, R1) x (N, J, R2) -> (N, J): mean score over read pairs (r1 != r2 when distinct)."""
    scores = _score(first[:, :, :, None], second[:, :, None, :], measure)
    if distinct:
        mask = ~np.eye(first.shape[2], dtype=bool)
        result: FloatArray = scores[:, :, mask].mean(axis=2)
        return result
    mean: FloatArray = scores.mean(axis=(2, 3))
    return mean


def _masked_case_means(scores: FloatArray, mask: BoolArray) -> FloatArray:
    n_pairs = int(mask.sum())
    if n_pairs == 0:
        return np.full(scores.shape[0], np.nan)
    result: FloatArray = scores[:, mask].sum(axis=1) / n_pairs
    return result


def _sd_over_sqrt_n(d: FloatArray) -> float:
    if d.shape[0] < 2:
        raise AnalysisError(f"interchangeability needs at least 2 cases, got {d.shape[0]}")
    return float(np.std(d, ddof=1) / math.sqrt(d.shape[0]))


def _skewness(d: FloatArray) -> float | None:
    """Sample skewness of the per-case values (None when they do not vary)."""
    centred = d - d.mean()
    spread = float(np.mean(centred**2))
    if spread <= 0:
        return None
    return float(np.mean(centred**3) / spread**1.5)


def _json_number(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
