"""Reader agreement: Cohen's weighted kappa, Fleiss kappa, Gwet's AC1/AC2, pair agreement.

All work on a reads table (:mod:`analysis.reads`: ``case, reader, arm, finding, value``) and on
the full list of categories (for a Likert question 1..points), so that a category nobody used
still has its row and column in every table.

- Cohen's kappa (unweighted, linear or quadratic weights) of each reader with themself between
  two arms, from the full square table (``statsmodels.stats.inter_rater.cohens_kappa``).
- Fleiss' kappa per arm with a case-bootstrap CI (vectorised over per-case category counts) and
  the analytic SE of Gwet (2014) alongside.
- Gwet's AC1 (identity weights) and AC2 (weighted) with the linearised SE of Gwet (2008, 2014):
  Gwet KL. Computing inter-rater reliability and its variance in the presence of high agreement.
  Br J Math Stat Psychol 2008;61:29-48; Gwet KL. Handbook of Inter-Rater Reliability, 4th ed., 2014.
  Values reproduce the published example of irrCAC (``cac.raw4raters``: AC1 = 0.77544,
  SE = 0.14295), see tests/analysis/test_agreement.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from analysis import resampling
from analysis.errors import AnalysisError
from analysis.reads import first_reads, unique_in_order

FloatArray = npt.NDArray[np.float64]
Categories = Sequence[float] | npt.NDArray[np.float64]
WeightName = Literal["identity", "linear", "quadratic"]
WEIGHT_NAMES: tuple[str, ...] = ("identity", "linear", "quadratic")


@dataclass(frozen=True)
class KappaResult:
    """Cohen's kappa of one reader between two arms for one finding."""

    finding: str
    reader: str
    first_arm: str
    second_arm: str
    kappa: float
    se: float
    ci_low: float
    ci_high: float
    n_cases: int
    weights: str
    observed_agreement: float

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dictionary."""
        return _clean(asdict(self))


@dataclass(frozen=True)
class CoefficientResult:
    """A chance-corrected agreement coefficient among the readers of one arm for one finding.

    ``se`` is Gwet's linearised standard error (cases random); ``ci_low``/``ci_high`` the
    t-interval with N - 1 degrees of freedom (capped at 1), as in Gwet (2014). For Fleiss' kappa
    ``boot_ci_low``/``boot_ci_high`` hold the case-bootstrap percentile interval.
    """

    finding: str
    arm: str
    coefficient: str
    value: float
    se: float
    ci_low: float
    ci_high: float
    pa: float
    pe: float
    n_cases: int
    n_readers: int
    weights: str
    boot_ci_low: float | None = None
    boot_ci_high: float | None = None

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dictionary."""
        return _clean(asdict(self))


# ---- building blocks --------------------------------------------------------------------------


def square_table(
    first: Sequence[float] | FloatArray,
    second: Sequence[float] | FloatArray,
    categories: Categories,
) -> FloatArray:
    """Full K x K contingency table of paired ratings over all ``categories`` (rows: ``first``)."""
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    cats = np.asarray(categories, dtype=float)
    rows, cols = _category_index(a, cats), _category_index(b, cats)
    table = np.zeros((cats.size, cats.size))
    np.add.at(table, (rows, cols), 1.0)
    return table


def weight_matrix(categories: Categories, weights: WeightName | FloatArray) -> FloatArray:
    """Agreement weights (1 on the diagonal) for the categories, as in Gwet (2014).

    ``identity``: 1 if equal else 0; ``linear``: ``1 - |k - l| / (max - min)``; ``quadratic``:
    ``1 - (k - l)^2 / (max - min)^2`` on the category values. A given (K, K) matrix is checked and
    returned.
    """
    cats = np.asarray(categories, dtype=float)
    if not isinstance(weights, str):
        matrix = np.asarray(weights, dtype=float)
        if matrix.shape != (cats.size, cats.size):
            raise AnalysisError(
                f"weights: a {cats.size} x {cats.size} matrix is needed for {cats.size} categories"
            )
        return matrix
    if weights not in WEIGHT_NAMES:
        raise AnalysisError(f"weights must be one of {', '.join(WEIGHT_NAMES)}, got {weights!r}")
    if weights == "identity" or cats.size < 2:
        return np.eye(cats.size)
    span = cats.max() - cats.min()
    distance = np.abs(cats[:, None] - cats[None, :]) / span
    result: FloatArray = 1.0 - (distance if weights == "linear" else distance**2)
    return result


def category_counts(ratings: FloatArray, categories: Categories) -> FloatArray:
    """Per-case counts of readers in each category: (N, J) ratings (NaN = not rated) -> (N, K)."""
    cats = np.asarray(categories, dtype=float)
    rated = ~np.isnan(ratings)
    _category_index(ratings[rated], cats)  # raises on values outside the categories
    result: FloatArray = (ratings[:, :, None] == cats[None, None, :]).sum(axis=1).astype(float)
    return result


# ---- Gwet AC1/AC2 and Fleiss kappa on a case x reader matrix ----------------------------------


def gwet_ac(
    ratings: FloatArray,
    categories: Categories,
    *,
    weights: WeightName | FloatArray = "identity",
    finding: str = "",
    arm: str = "",
) -> CoefficientResult:
    """Gwet's AC1 (identity weights) or AC2 (other weights) with its standard error.

    Parameters
    ----------
    ratings : numpy.ndarray
        (N cases, J readers), NaN where a reader did not rate a case.
    categories : sequence of float
        All possible categories (K).
    weights : {"identity", "linear", "quadratic"} or numpy.ndarray
        Agreement weights.

    Notes
    -----
    With r_ik readers of case i in category k, r*_ik = sum_l w_kl r_il, r_i = sum_k r_ik:
    ``pa = mean over cases with r_i >= 2 of sum_k r_ik (r*_ik - 1) / (r_i (r_i - 1))``,
    ``pi_k = mean_i r_ik / r_i``, ``pe = sum(w) / (K (K - 1)) * sum_k pi_k (1 - pi_k)``,
    ``AC = (pa - pe) / (1 - pe)``. Variance (Gwet 2008, no finite-population correction):
    ``sum_i (ac*_i - AC)^2 / (N (N - 1))`` with the linearised per-case terms
    ``ac*_i = ac_i - 2 (1 - AC) (pe_i - pe) / (1 - pe)``.
    """
    counts, w = _counts_and_weights(ratings, categories, weights)
    n_cases, k = counts.shape
    r_i = counts.sum(axis=1)
    multi = r_i >= 2
    n_multi = int(multi.sum())
    pa_i = _pa_per_case(counts, w, r_i)
    pa = float(pa_i[multi].sum() / n_multi)
    pi = (counts / np.where(r_i > 0, r_i, 1)[:, None]).sum(axis=0) / n_cases
    factor = w.sum() / (k * (k - 1))
    pe = float(factor * np.sum(pi * (1 - pi)))
    value = (pa - pe) / (1 - pe)
    ac_i = (n_cases / n_multi) * (pa_i - pe * multi) / (1 - pe)
    pe_i = factor * (counts @ (1 - pi)) / np.where(r_i > 0, r_i, 1)
    linearised = ac_i - 2 * (1 - value) * (pe_i - pe) / (1 - pe)
    se = float(np.sqrt(np.sum((linearised - value) ** 2) / (n_cases * (n_cases - 1))))
    low, high = _t_interval(value, se, n_cases)
    identity = bool(np.allclose(w, np.eye(k)))
    return CoefficientResult(
        finding=finding,
        arm=arm,
        coefficient="AC1" if identity else "AC2",
        value=float(value),
        se=se,
        ci_low=low,
        ci_high=high,
        pa=pa,
        pe=pe,
        n_cases=n_cases,
        n_readers=ratings.shape[1],
        weights=weights if isinstance(weights, str) else "custom",
    )


def fleiss_kappa(
    ratings: FloatArray,
    categories: Categories,
    *,
    n_boot: int = 2000,
    rng: np.random.Generator,
    finding: str = "",
    arm: str = "",
    case_counts: resampling.CaseCounts | None = None,
) -> CoefficientResult:
    """Fleiss' kappa (unweighted) with Gwet's SE and a case-bootstrap percentile CI.

    Uses the generalised form of Gwet (2014) that allows missing ratings; with every case rated
    by every reader it equals Fleiss (1971) (``statsmodels...fleiss_kappa``). The bootstrap is
    vectorised: per-case agreement and category proportions are resampled with a count matrix.
    """
    counts, w = _counts_and_weights(ratings, categories, "identity")
    n_cases, _ = counts.shape
    r_i = counts.sum(axis=1)
    multi = r_i >= 2
    n_multi = int(multi.sum())
    pa_i = _pa_per_case(counts, w, r_i)
    shares = counts / np.where(r_i > 0, r_i, 1)[:, None]
    pa = float(pa_i[multi].sum() / n_multi)
    pi = shares.sum(axis=0) / n_cases
    pe = float(np.sum(pi**2))
    value = (pa - pe) / (1 - pe)
    kappa_i = (n_cases / n_multi) * (pa_i - pe * multi) / (1 - pe)
    pe_i = shares @ pi
    linearised = kappa_i - 2 * (1 - value) * (pe_i - pe) / (1 - pe)
    se = float(np.sqrt(np.sum((linearised - value) ** 2) / (n_cases * (n_cases - 1))))
    low, high = _t_interval(value, se, n_cases)
    draws = case_counts if case_counts is not None else resampling.CaseCounts(rng, n_boot)
    boot = fleiss_bootstrap(counts, draws(n_cases))
    boot_low: float | None = None
    boot_high: float | None = None
    # A resample whose cases all fall in one category has kappa 0/0; with few cases every
    # resample can, and then there is no bootstrap interval (Gwet's SE and t-interval remain).
    if np.isfinite(boot).any():
        boot_low, boot_high = resampling.percentile_interval(boot)
    return CoefficientResult(
        finding=finding,
        arm=arm,
        coefficient="Fleiss kappa",
        value=float(value),
        se=se,
        ci_low=low,
        ci_high=high,
        pa=pa,
        pe=pe,
        n_cases=n_cases,
        n_readers=ratings.shape[1],
        weights="identity",
        boot_ci_low=boot_low,
        boot_ci_high=boot_high,
    )


def fleiss_bootstrap(counts: FloatArray, case_counts: FloatArray) -> FloatArray:
    """Fleiss' kappa in each case-bootstrap resample, vectorised.

    ``counts`` (N, K) readers per category; ``case_counts`` (B, N). Returns (B,); NaN where a
    resample has a single category only (chance agreement 1).
    """
    r_i = counts.sum(axis=1)
    multi = (r_i >= 2).astype(float)
    pa_i = _pa_per_case(counts, np.eye(counts.shape[1]), r_i)
    shares = counts / np.where(r_i > 0, r_i, 1)[:, None]
    pa = (case_counts @ pa_i) / (case_counts @ multi)
    pi = (case_counts @ shares) / case_counts.sum(axis=1)[:, None]
    pe = np.sum(pi**2, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        result: FloatArray = np.where(pe < 1, (pa - pe) / (1 - pe), np.nan)
    return result


def _fleiss_bootstrap_loop(counts: FloatArray, indices: npt.NDArray[np.int64]) -> FloatArray:
    """Plain-loop reference of :func:`fleiss_bootstrap` (tests and benchmarks only)."""
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

    out = np.empty(indices.shape[0])
    for b in range(indices.shape[0]):
        out[b] = sm_fleiss(counts[indices[b]], method="fleiss")
    return out


# ---- on reads tables --------------------------------------------------------------------------


def cohen_kappa_between_arms(
    reads: pd.DataFrame,
    first_arm: str,
    second_arm: str,
    *,
    categories: Categories | None = None,
    weights: WeightName = "quadratic",
) -> list[KappaResult]:
    """Intra-reader Cohen's kappa between two arms, per finding and reader.

    Each reader's ratings of the same case on ``first_arm`` and ``second_arm`` fill a full
    K x K table over ``categories`` (default: every value seen for the finding), and
    ``statsmodels.stats.inter_rater.cohens_kappa`` gives kappa and its asymptotic SE.
    """
    from statsmodels.stats.inter_rater import cohens_kappa

    if weights not in WEIGHT_NAMES:
        raise AnalysisError(f"weights must be one of {', '.join(WEIGHT_NAMES)}, got {weights!r}")
    _check_arms(reads, (first_arm, second_arm))
    results: list[KappaResult] = []
    for finding, part in _by_finding(reads):
        cats = _categories(part, categories, finding)
        part = first_reads(part[part["arm"].isin([first_arm, second_arm])])
        wide = part.pivot(index="case", columns=["arm", "reader"], values="value")
        if first_arm not in wide or second_arm not in wide:
            continue
        for reader in sorted(set(wide[first_arm].columns) & set(wide[second_arm].columns)):
            a = wide[first_arm][reader].to_numpy(dtype=float)
            b = wide[second_arm][reader].to_numpy(dtype=float)
            both = ~np.isnan(a) & ~np.isnan(b)
            if int(both.sum()) < 2:
                continue
            table = square_table(a[both], b[both], cats)
            kwargs = {} if weights == "identity" else {"wt": weights}
            fit = cohens_kappa(table, **kwargs)
            kappa, se = float(fit.kappa), float(fit.std_kappa)
            results.append(
                KappaResult(
                    finding=finding,
                    reader=str(reader),
                    first_arm=first_arm,
                    second_arm=second_arm,
                    kappa=kappa,
                    se=se,
                    ci_low=kappa - _z975() * se,
                    ci_high=min(1.0, kappa + _z975() * se),
                    n_cases=int(both.sum()),
                    weights=weights,
                    observed_agreement=float(np.trace(table) / table.sum()),
                )
            )
    return results


def fleiss_kappa_by_arm(
    reads: pd.DataFrame,
    *,
    categories: Categories | None = None,
    n_boot: int = 2000,
    rng: np.random.Generator,
) -> list[CoefficientResult]:
    """Fleiss' kappa among the readers of each arm, per finding (see :func:`fleiss_kappa`)."""
    draws = resampling.CaseCounts(rng, n_boot)
    return [
        fleiss_kappa(
            matrix, cats, n_boot=n_boot, rng=rng, finding=finding, arm=arm, case_counts=draws
        )
        for finding, arm, matrix, cats in _arm_matrices(reads, categories)
    ]


def gwet_by_arm(
    reads: pd.DataFrame,
    *,
    categories: Categories | None = None,
    weights: WeightName = "identity",
) -> list[CoefficientResult]:
    """Gwet's AC1 (``weights="identity"``) or AC2 among the readers of each arm, per finding."""
    return [
        gwet_ac(matrix, cats, weights=weights, finding=finding, arm=arm)
        for finding, arm, matrix, cats in _arm_matrices(reads, categories)
    ]


def pair_agreement_matrix(
    reads: pd.DataFrame,
    row_arm: str,
    column_arm: str,
    *,
    finding: str,
    threshold: float | None = None,
) -> pd.DataFrame:
    """Proportion of cases on which reader j (``row_arm``) and reader k (``column_arm``) agree.

    For the reader-pair heat maps: with ``row_arm == column_arm`` the diagonal is 1; across
    arms the diagonal is each reader's agreement with themself. ``threshold`` dichotomises.
    """
    _check_arms(reads, (row_arm, column_arm))
    part = first_reads(reads[reads["finding"].astype(str) == finding])
    if part.empty:
        raise AnalysisError(f"column 'finding': no reads of finding {finding!r}")
    wide = part.pivot(index="case", columns=["arm", "reader"], values="value")
    rows, cols = wide[row_arm], wide[column_arm]
    cases = rows.dropna().index.intersection(cols.dropna().index)
    a, b = rows.loc[cases].to_numpy(), cols.loc[cases].to_numpy()
    if threshold is not None:
        a, b = (a >= threshold).astype(float), (b >= threshold).astype(float)
    agree = (a[:, :, None] == b[:, None, :]).mean(axis=0)
    return pd.DataFrame(agree, index=rows.columns.astype(str), columns=cols.columns.astype(str))


# ---- helpers ----------------------------------------------------------------------------------


def _z975() -> float:
    return float(stats.norm.ppf(0.975))


def _counts_and_weights(
    ratings: FloatArray, categories: Categories, weights: WeightName | FloatArray
) -> tuple[FloatArray, FloatArray]:
    ratings = np.asarray(ratings, dtype=float)
    if ratings.ndim != 2:
        raise AnalysisError("ratings must be a cases x readers matrix")
    if len(categories) < 2:
        raise AnalysisError(
            f"agreement coefficients need at least two categories, got {list(categories)}"
        )
    counts = category_counts(ratings, categories)
    keep = counts.sum(axis=1) > 0
    counts = counts[keep]
    if counts.shape[0] < 2:
        raise AnalysisError(f"agreement needs at least 2 rated cases, got {counts.shape[0]}")
    if not np.any(counts.sum(axis=1) >= 2):
        raise AnalysisError("agreement needs cases rated by at least two readers")
    return counts, weight_matrix(categories, weights)


def _pa_per_case(counts: FloatArray, w: FloatArray, r_i: FloatArray) -> FloatArray:
    """Per-case weighted agreement among its readers (0 for cases with fewer than two)."""
    weighted = counts @ w.T
    pairs = r_i * (r_i - 1)
    total = np.sum(counts * (weighted - 1), axis=1)
    result: FloatArray = np.where(pairs > 0, total / np.where(pairs > 0, pairs, 1), 0.0)
    return result


def _t_interval(value: float, se: float, n: int) -> tuple[float, float]:
    half = float(stats.t.ppf(0.975, n - 1)) * se
    return value - half, min(1.0, value + half)


def _category_index(values: FloatArray, cats: FloatArray) -> npt.NDArray[np.int64]:
    index = np.searchsorted(cats, values)
    inside = (index < cats.size) & (cats[np.minimum(index, cats.size - 1)] == values)
    if not np.all(inside):
        bad = values[~inside][0]
        raise AnalysisError(
            f"column 'value': {bad:g} is not one of the categories "
            f"{', '.join(f'{c:g}' for c in cats)}"
        )
    return index.astype(np.int64)


def _categories(part: pd.DataFrame, categories: Categories | None, finding: str) -> FloatArray:
    if categories is not None:
        cats = np.unique(np.asarray(categories, dtype=float))
    else:
        cats = np.unique(part["value"].to_numpy(dtype=float))
    if cats.size < 2:
        raise AnalysisError(
            f"finding {finding!r}: column 'value' holds a single category; pass the question's "
            f"categories to compare ratings"
        )
    return cats


def _by_finding(reads: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    missing = [c for c in ("case", "reader", "arm", "finding", "value") if c not in reads.columns]
    if missing:
        raise AnalysisError(f"reads table: missing column(s) {', '.join(missing)}")
    frame = reads.assign(finding=reads["finding"].astype(str))
    return [(str(name), part) for name, part in frame.groupby("finding", sort=False)]


def _check_arms(reads: pd.DataFrame, arms: Sequence[str]) -> None:
    present = unique_in_order(reads["arm"])
    for arm in arms:
        if arm not in present:
            raise AnalysisError(f"column 'arm': unknown arm {arm!r} (arms: {', '.join(present)})")


def _arm_matrices(
    reads: pd.DataFrame, categories: Categories | None
) -> list[tuple[str, str, FloatArray, FloatArray]]:
    out = []
    for finding, part in _by_finding(reads):
        cats = _categories(part, categories, finding)
        part = first_reads(part)
        for arm, arm_part in part.groupby("arm", sort=False):
            wide = arm_part.pivot(index="case", columns="reader", values="value")
            out.append((finding, str(arm), wide.to_numpy(dtype=float), cats))
    return out


def _clean(values: dict[str, object]) -> dict[str, object]:
    return {
        key: (None if isinstance(value, float) and not np.isfinite(value) else value)
        for key, value in values.items()
    }
