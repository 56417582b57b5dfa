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

import math

import numpy as np
import pandas as pd

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
    if n == 0:
        return math.nan, math.nan
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(successes, n, alpha=1 - level, method="wilson")
    return float(low), float(high)


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
    rows: list[dict[str, object]] = []
    findings = sorted(set(reads["finding"].dropna()) & set(truth["finding"].dropna()))
    for finding in findings:
        frame, n_no_truth = labelled_reads(reads, truth, finding=finding)
        frame = frame[frame["rating"].notna()]
        frame = frame.assign(positive=frame["rating"] >= threshold)
        for (reader, arm), grp in frame.groupby(["reader", "arm"], sort=True):
            diseased = grp[grp["truth"] == 1]
            healthy = grp[grp["truth"] == 0]
            tp = int(diseased["positive"].sum())
            tn = int((~healthy["positive"]).sum())
            n1, n0 = len(diseased), len(healthy)
            se_low, se_high = wilson_interval(tp, n1)
            sp_low, sp_high = wilson_interval(tn, n0)
            rows.append(
                {
                    "finding": finding,
                    "reader": reader,
                    "arm": arm,
                    "n_diseased": n1,
                    "n_non_diseased": n0,
                    "n_no_truth": n_no_truth,
                    "tp": tp,
                    "fn": n1 - tp,
                    "tn": tn,
                    "fp": n0 - tn,
                    "sensitivity": tp / n1 if n1 else math.nan,
                    "sensitivity_ci_low": se_low,
                    "sensitivity_ci_high": se_high,
                    "specificity": tn / n0 if n0 else math.nan,
                    "specificity_ci_low": sp_low,
                    "specificity_ci_high": sp_high,
                }
            )
    return pd.DataFrame(rows, columns=list(ACCURACY_COLUMNS))


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
