"""Sensitivity/specificity per reader and arm (Wilson CIs) and the per-finding MRMC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.accuracy import accuracy_table, mrmc_for_finding, wilson_interval
from analysis.errors import AnalysisError
from analysis.mrmc import mrmc_from_list, read_list_csv

DATA = Path(__file__).resolve().parent.parent / "data" / "mrmc"


def _reads() -> tuple[pd.DataFrame, pd.DataFrame]:
    # 6 cases (3 diseased); reader A perfect on arm "ref", misses one diseased case on "ai"
    truth = pd.DataFrame(
        {"case": [f"c{i}" for i in range(6)], "finding": "lesion", "truth": [1, 1, 1, 0, 0, 0]}
    )
    truth.loc[len(truth)] = ["c6", "lesion", None]  # no reference standard for c6
    rows = []
    grades = {
        ("A", "ref"): [4, 5, 3, 1, 2, 1, 5],
        ("A", "ai"): [4, 5, 2, 1, 2, 1, 5],
        ("B", "ref"): [3, 3, 3, 3, 1, 1, 1],
        ("B", "ai"): [3, 3, 3, 1, 1, 1, 1],
    }
    for (reader, arm), values in grades.items():
        rows += [(f"c{i}", reader, arm, "lesion", v) for i, v in enumerate(values)]
    return pd.DataFrame(rows, columns=["case", "reader", "arm", "finding", "value"]), truth


def test_wilson_interval_known_value() -> None:
    # Wilson interval of 8/10 at 95%: (0.4902, 0.9433) (Newcombe 1998, Table I, method 3)
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert all(np.isnan(wilson_interval(0, 0)))


def test_accuracy_counts_and_exclusions() -> None:
    reads, truth = _reads()
    table = accuracy_table(reads, truth, threshold=3).set_index(["reader", "arm"])
    a_ref, a_ai, b_ref = table.loc[("A", "ref")], table.loc[("A", "ai")], table.loc[("B", "ref")]
    assert (a_ref["tp"], a_ref["tn"], a_ref["sensitivity"], a_ref["specificity"]) == (3, 3, 1, 1)
    assert (a_ai["tp"], a_ai["fn"], a_ai["sensitivity"]) == (2, 1, pytest.approx(2 / 3))
    assert (b_ref["fp"], b_ref["specificity"]) == (1, pytest.approx(2 / 3))
    assert (table["n_no_truth"] == 1).all()
    assert (table["n_diseased"] == 3).all()
    assert (table["sensitivity_ci_low"] <= table["sensitivity"]).all()
    assert (table["sensitivity"] <= table["sensitivity_ci_high"]).all()


def test_boolean_values_count_true_as_positive() -> None:
    reads, truth = _reads()
    reads["value"] = reads["value"] >= 3
    table = accuracy_table(reads, truth, threshold=1)
    assert table["tp"].tolist() == accuracy_table(*_reads(), threshold=3)["tp"].tolist()


def test_non_numeric_value_is_an_error() -> None:
    reads, truth = _reads()
    reads["value"] = reads["value"].astype(object)
    reads.loc[3, "value"] = "maybe"
    with pytest.raises(AnalysisError, match="expected a number, got 'maybe'"):
        accuracy_table(reads, truth, threshold=3)


def test_mrmc_for_finding_equals_the_list_mode_analysis() -> None:
    vd = read_list_csv(DATA / "vandyke.csv")
    reads = vd.rename(columns={"treatment": "arm", "rating": "value"}).assign(finding="aorta")
    truth = vd.groupby("case", as_index=False)["truth"].first().assign(finding="aorta")
    res = mrmc_for_finding(reads, truth, "aorta", treatments=["2", "1"])
    direct = mrmc_from_list(vd, treatments=["2", "1"])
    assert res.rrrc.statistic == pytest.approx(direct.rrrc.statistic)
    assert res.rrrc.differences[0].estimate == pytest.approx(0.0438, abs=5e-5)


def test_mrmc_for_finding_with_a_missing_read_is_an_error() -> None:
    reads, truth = _reads()
    with pytest.raises(AnalysisError, match="has no rating from reader"):
        mrmc_for_finding(reads.iloc[1:], truth, "lesion", treatments=["ai", "ref"])
