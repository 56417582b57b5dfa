"""Diagnostic accuracy against a reference standard: sensitivity and specificity per reader and
arm with Wilson intervals, and the Obuchowski-Rockette MRMC analysis per finding.

Input is the reads table (``case, reader, arm, finding, value``; one row per reading of a finding)
and the truth table (``case, finding, truth`` with truth 0/1). A reading is positive when its value
is at or above the threshold (the protocol's interchangeability threshold for ordinal grades; a
boolean finding counts True as 1). Cases without a truth value for a finding are left out of that
finding and counted in ``n_no_truth``.

Wilson EB. Probable inference, the law of succession, and statistical inference.
J Am Stat Assoc 1927;22:209-212.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from analysis.errors import AnalysisError
from analysis.mrmc import MRMCResult, RatingArray, or_analysis, rating_array

READ_COLUMNS: tuple[str, ...] = ("case", "reader", "arm", "finding", "value")
TRUTH_COLUMNS: tuple[str, ...] = ("case", "finding", "truth")
ACCURACY_COLUMNS: tuple[str, ...] = (
    "finding",
    "reader",
    "arm",
    "n_diseased",
    "n_non_diseased",
    "n_no_truth",
    "tp",
    "fn",
    "tn",
    "fp",
    "sensitivity",
    "sensitivity_ci_low",
    "sensitivity_ci_high",
    "specificity",
    "specificity_ci_low",
    "specificity_ci_high",
)


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (nan, nan when ``n`` is 0)."""
    low, high = wilson_intervals(np.array([successes]), np.array([n]), level)
    return float(low[0]), float(high[0])


def wilson_intervals(
    successes: NDArray[np.int64], n: NDArray[np.int64], level: float = 0.95
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Wilson score intervals of many proportions at once (nan where ``n`` is 0)."""
    from statsmodels.stats.proportion import proportion_confint

    n = np.asarray(n)
    safe = np.where(n > 0, n, 1)
    low, high = proportion_confint(np.asarray(successes), safe, alpha=1 - level, method="wilson")
    empty = n == 0
    return (
        np.where(empty, np.nan, np.asarray(low, dtype=np.float64)),
        np.where(empty, np.nan, np.asarray(high, dtype=np.float64)),
    )


def _require(frame: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise AnalysisError(
            f"{name}: missing column(s) {', '.join(missing)}; expected {', '.join(columns)}"
        )


def numeric_values(values: pd.Series, what: str) -> pd.Series:
    """Reading values as floats (booleans as 0/1); AnalysisError naming the first bad one."""
    if values.dtype == bool:
        return values.astype(float)
    mapped = values.map(lambda v: float(v) if isinstance(v, bool) else v)
    numbers = pd.to_numeric(mapped, errors="coerce")
    bad = numbers.isna() & values.notna()
    if bad.any():
        raise AnalysisError(
            f"{what}: column 'value': expected a number, got {values[bad].iloc[0]!r}"
        )
    return numbers.astype(float)


def labelled_reads(
    reads: pd.DataFrame, truth: pd.DataFrame, *, finding: str | None = None
) -> tuple[pd.DataFrame, int]:
    """Join the reads with the truth of their (case, finding).

    Returns
    -------
    (frame, n_no_truth)
        The reads that have a 0/1 truth (columns of ``reads`` plus ``truth`` and numeric
        ``rating``), and the number of cases left out for want of a truth value.
    """
    _require(reads, READ_COLUMNS, "reads")
    _require(truth, TRUTH_COLUMNS, "truth")
    if finding is not None:
        reads = reads[reads["finding"] == finding]
        truth = truth[truth["finding"] == finding]
    t = truth.loc[:, list(TRUTH_COLUMNS)].copy()
    t["truth"] = pd.to_numeric(t["truth"], errors="coerce")
    if not t["truth"].dropna().isin([0, 1]).all():
        raise AnalysisError("truth: column 'truth': expected 0 or 1 (or empty for unknown)")
    t = t.dropna(subset=["truth"]).drop_duplicates(["case", "finding"])
    keys = ["case", "finding"]
    merged = reads.drop(columns=["truth", "rating"], errors="ignore").merge(t, on=keys, how="left")
    no_truth = merged["truth"].isna()
    n_no_truth = int(merged.loc[no_truth, "case"].nunique())
    merged = merged[~no_truth].copy()
    merged["truth"] = merged["truth"].astype(int)
    merged["rating"] = numeric_values(merged["value"], "reads")
    return merged, n_no_truth


def accuracy_table(reads: pd.DataFrame, truth: pd.DataFrame, *, threshold: float) -> pd.DataFrame:
    """Sensitivity and specificity per finding, reader and arm with Wilson 95% intervals.

    Parameters
    ----------
    reads : pandas.DataFrame
        Columns ``case, reader, arm, finding, value``.
    truth : pandas.DataFrame
        Columns ``case, finding, truth`` (0/1; empty = unknown).
    threshold : float
        A value at or above it is a positive reading.

    Returns
    -------
    pandas.DataFrame
        One row per (finding, reader, arm) with the columns of :data:`ACCURACY_COLUMNS`.
    """
    frame, _ = labelled_reads(reads, truth)
    frame = frame[frame["rating"].notna()]
    if frame.empty:
        return pd.DataFrame(columns=list(ACCURACY_COLUMNS))
    positive = frame["rating"] >= threshold
    diseased = frame["truth"] == 1
    keys = ["finding", "reader", "arm"]
    counts = (
        frame.assign(
            tp=positive & diseased,
            fn=~positive & diseased,
            tn=~positive & ~diseased,
            fp=positive & ~diseased,
        )
        .groupby(keys, sort=True)[["tp", "fn", "tn", "fp"]]
        .sum()
        .astype(int)
        .reset_index()
    )
    # cases of a finding without a truth value, counted per finding
    known = truth.dropna(subset=["truth"])
    read_cases = reads.groupby("finding")["case"].unique()
    no_truth = {
        finding: len(set(cases) - set(known.loc[known["finding"] == finding, "case"]))
        for finding, cases in read_cases.items()
    }
    n1 = (counts["tp"] + counts["fn"]).to_numpy()
    n0 = (counts["tn"] + counts["fp"]).to_numpy()
    se_low, se_high = wilson_intervals(counts["tp"].to_numpy(), n1)
    sp_low, sp_high = wilson_intervals(counts["tn"].to_numpy(), n0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = counts.assign(
            n_diseased=n1,
            n_non_diseased=n0,
            n_no_truth=counts["finding"].map(no_truth).fillna(0).astype(int),
            sensitivity=np.where(n1 > 0, counts["tp"] / np.maximum(n1, 1), np.nan),
            sensitivity_ci_low=se_low,
            sensitivity_ci_high=se_high,
            specificity=np.where(n0 > 0, counts["tn"] / np.maximum(n0, 1), np.nan),
            specificity_ci_low=sp_low,
            specificity_ci_high=sp_high,
        )
    return out.loc[:, list(ACCURACY_COLUMNS)]


def finding_rating_array(
    reads: pd.DataFrame, truth: pd.DataFrame, finding: str, *, treatments: list[str]
) -> RatingArray:
    """The (arm, reader, case) rating array of one finding over the cases with a truth value.

    Only the listed arms are used; every remaining case must be read by every reader on every
    listed arm (AnalysisError otherwise).
    """
    frame, _ = labelled_reads(reads, truth, finding=finding)
    frame = frame[frame["arm"].isin(treatments)]
    if frame.empty:
        raise AnalysisError(f"finding {finding!r}: no reads with a truth value on {treatments}")
    listed = pd.DataFrame(
        {
            "reader": frame["reader"].astype(str),
            "treatment": frame["arm"].astype(str),
            "case": frame["case"].astype(str),
            "truth": frame["truth"].to_numpy(np.int64),
            "rating": frame["rating"],
        }
    )
    return rating_array(listed, source=f"finding {finding!r}", treatments=treatments)


def mrmc_for_finding(
    reads: pd.DataFrame,
    truth: pd.DataFrame,
    finding: str,
    *,
    treatments: list[str],
    fom: str = "auc",
    threshold: float | None = None,
) -> MRMCResult:
    """OR MRMC analysis of one finding, the reading's value being the rating.

    ``treatments`` are arm codes; differences are ``treatments[0] - treatments[1]`` etc.
    See :func:`finding_rating_array` for the cases used.
    """
    arr = finding_rating_array(reads, truth, finding, treatments=treatments)
    return or_analysis(
        arr.truth,
        arr.ratings,
        treatments=arr.treatments,
        readers=arr.readers,
        fom=fom,
        threshold=threshold,
    )
