"""Agreement statistics: published Gwet/Fleiss values, hand-computed kappas, bootstrap, inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from analysis import resampling
from analysis.agreement import (
    _fleiss_bootstrap_loop,
    category_counts,
    cohen_kappa_between_arms,
    fleiss_bootstrap,
    fleiss_kappa,
    fleiss_kappa_by_arm,
    gwet_ac,
    gwet_by_arm,
    pair_agreement_matrix,
    square_table,
    weight_matrix,
)
from analysis.errors import AnalysisError

NAN = np.nan
# Gwet (2014) / irrCAC example data "cac.raw4raters": 12 subjects, 4 raters, categories 1..5.
RAW_4_RATERS = np.array(
    [
        [1, 1, NAN, 1],
        [2, 2, 3, 2],
        [3, 3, 3, 3],
        [3, 3, 3, 3],
        [2, 2, 2, 2],
        [1, 2, 3, 4],
        [4, 4, 4, 4],
        [1, 1, 2, 1],
        [2, 2, 2, 2],
        [NAN, 5, 5, 5],
        [NAN, NAN, 1, 1],
        [NAN, NAN, 3, NAN],
    ]
)
# irrCAC's "bipolar" weights for categories 1..5 (printed in its documentation).
BIPOLAR = np.array(
    [
        [1.0, 0.85714286, 0.66666667, 0.4, 0.0],
        [0.85714286, 1.0, 0.93333333, 0.75, 0.4],
        [0.66666667, 0.93333333, 1.0, 0.93333333, 0.66666667],
        [0.4, 0.75, 0.93333333, 1.0, 0.85714286],
        [0.0, 0.4, 0.66666667, 0.85714286, 1.0],
    ]
)


def test_gwet_ac1_reproduces_the_published_example():
    # Published (irrCAC / Gwet 2014): AC1 = 0.77544, SE = 0.14295, 95% CI 0.46081 to 1,
    # pa = 0.81818, pe = 0.19032.
    result = gwet_ac(RAW_4_RATERS, [1, 2, 3, 4, 5])
    assert result.coefficient == "AC1"
    assert round(result.value, 5) == 0.77544
    assert round(result.se, 5) == 0.14295
    assert round(result.ci_low, 5) == 0.46081 and result.ci_high == 1.0
    assert round(result.pa, 5) == 0.81818 and round(result.pe, 5) == 0.19032


def test_gwet_ac2_reproduces_the_published_weighted_example():
    # Published (irrCAC, bipolar weights): AC2 = 0.90037, SE = 0.10582, pa 0.96836, pe 0.68244.
    result = gwet_ac(RAW_4_RATERS, [1, 2, 3, 4, 5], weights=BIPOLAR)
    assert result.coefficient == "AC2"
    assert round(result.value, 5) == 0.90037
    assert round(result.se, 5) == 0.10582
    assert round(result.pa, 5) == 0.96836 and round(result.pe, 5) == 0.68244


def test_fleiss_kappa_reproduces_the_published_example_with_missing_ratings():
    # Published (irrCAC): Fleiss' kappa = 0.76117, SE = 0.15302, 95% CI 0.42438 to 1.
    result = fleiss_kappa(RAW_4_RATERS, [1, 2, 3, 4, 5], n_boot=300, rng=np.random.default_rng(0))
    assert round(result.value, 5) == 0.76117
    assert round(result.se, 5) == 0.15302
    assert round(result.ci_low, 5) == 0.42438
    assert result.boot_ci_low is not None and result.boot_ci_low < result.value


def test_gwet_ac1_hand_computed_two_raters():
    # Two raters, binary, 4 subjects: (1,1) (1,1) (0,0) (1,0). pa = 3/4.
    # pi_1 = (1 + 1 + 0 + 0.5) / 4 = 0.625; pe = 1/(K-1) * sum pi (1 - pi) = 2 * 0.625 * 0.375
    ratings = np.array([[1.0, 1.0], [1, 1], [0, 0], [1, 0]])
    result = gwet_ac(ratings, [0, 1])
    pe = 2 * 0.625 * 0.375
    assert result.pa == pytest.approx(0.75)
    assert result.pe == pytest.approx(pe)
    assert result.value == pytest.approx((0.75 - pe) / (1 - pe))


def test_fleiss_kappa_equals_statsmodels_on_complete_data():
    rng = np.random.default_rng(1)
    ratings = np.clip(rng.integers(1, 4, size=(40, 1)) + rng.integers(-1, 2, size=(40, 5)), 1, 3)
    ratings = ratings.astype(float)
    counts = category_counts(ratings, [1, 2, 3])
    result = fleiss_kappa(ratings, [1, 2, 3], n_boot=100, rng=rng)
    assert result.value == pytest.approx(sm_fleiss_kappa(counts, method="fleiss"), abs=1e-12)


def test_fleiss_bootstrap_vectorised_equals_loop():
    rng = np.random.default_rng(2)
    ratings = rng.integers(1, 4, size=(25, 4)).astype(float)
    counts = category_counts(ratings, [1, 2, 3])
    indices = resampling.case_indices(rng, 25, 50)
    vectorised = fleiss_bootstrap(counts, resampling.index_counts(indices, 25))
    np.testing.assert_allclose(vectorised, _fleiss_bootstrap_loop(counts, indices), atol=1e-12)


def test_square_table_keeps_unused_categories():
    table = square_table([1, 2, 2], [2, 2, 1], [1, 2, 3, 4, 5])
    assert table.shape == (5, 5)
    assert table[0, 1] == 1 and table[1, 1] == 1 and table[1, 0] == 1 and table.sum() == 3


def test_weight_matrices():
    quadratic = weight_matrix([1, 2, 3], "quadratic")
    np.testing.assert_allclose(quadratic, [[1, 0.75, 0], [0.75, 1, 0.75], [0, 0.75, 1]])
    linear = weight_matrix([1, 2, 3], "linear")
    np.testing.assert_allclose(linear, [[1, 0.5, 0], [0.5, 1, 0.5], [0, 0.5, 1]])
    with pytest.raises(AnalysisError, match="weights"):
        weight_matrix([1, 2], "cubic")  # type: ignore[arg-type]


def _reads(values_a, values_b, reader="r1", finding="f"):
    rows = [(f"c{i}", reader, "A", finding, float(v)) for i, v in enumerate(values_a)]
    rows += [(f"c{i}", reader, "B", finding, float(v)) for i, v in enumerate(values_b)]
    return pd.DataFrame(rows, columns=["case", "reader", "arm", "finding", "value"])


def test_cohen_kappa_hand_computed_2x2():
    # Table [[20, 5], [10, 15]]: po = 0.7, pe = (25 * 30 + 25 * 20) / 2500 = 0.5, kappa = 0.4.
    a = [1] * 25 + [0] * 25
    b = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
    (result,) = cohen_kappa_between_arms(_reads(a, b), "A", "B", weights="identity")
    assert result.kappa == pytest.approx(0.4)
    assert result.observed_agreement == pytest.approx(0.7)
    assert result.n_cases == 50 and result.ci_low < 0.4 < result.ci_high


def test_cohen_weighted_kappa_uses_all_categories():
    # A reader who uses only grades 1 and 2 of a 1..5 scale: with the full 5 x 5 table a 1-vs-2
    # disagreement is small (quadratic weight 1/16), so kappa is higher than on a 2 x 2 table.
    a = [1, 1, 2, 2, 1, 2, 1, 2]
    b = [1, 2, 2, 1, 1, 2, 1, 2]
    (full,) = cohen_kappa_between_arms(_reads(a, b), "A", "B", categories=[1, 2, 3, 4, 5])
    (observed,) = cohen_kappa_between_arms(_reads(a, b), "A", "B")
    # Hand: 2x2 table [[3, 1], [1, 3]] with quadratic weights on 2 categories = plain kappa 0.5.
    assert observed.kappa == pytest.approx(0.5)
    # Full table: disagreement weights (k-l)^2/16 -> observed 2/8 * 1/16, expected from margins.
    p = np.zeros((5, 5))
    p[:2, :2] = [[3, 1], [1, 3]]
    p /= 8
    w = (np.subtract.outer(np.arange(5), np.arange(5)) ** 2) / 16
    expected = np.outer(p.sum(1), p.sum(0))
    assert full.kappa == pytest.approx(1 - (w * p).sum() / (w * expected).sum())


def test_by_arm_results_and_pair_matrix():
    rng = np.random.default_rng(3)
    rows = []
    for i in range(30):
        truth = rng.integers(1, 6)
        for r in ("r1", "r2", "r3"):
            for arm in ("A", "B"):
                value = int(np.clip(truth + rng.integers(-1, 2), 1, 5))
                rows.append((f"c{i}", r, arm, "f", float(value)))
    reads = pd.DataFrame(rows, columns=["case", "reader", "arm", "finding", "value"])
    fleiss = fleiss_kappa_by_arm(reads, categories=[1, 2, 3, 4, 5], n_boot=200, rng=rng)
    assert [r.arm for r in fleiss] == ["A", "B"]
    assert all(-1 <= r.value <= 1 and r.n_readers == 3 for r in fleiss)
    ac2 = gwet_by_arm(reads, categories=[1, 2, 3, 4, 5], weights="quadratic")
    assert all(r.coefficient == "AC2" for r in ac2)
    kappas = cohen_kappa_between_arms(reads, "A", "B", categories=[1, 2, 3, 4, 5])
    assert [k.reader for k in kappas] == ["r1", "r2", "r3"]
    same = pair_agreement_matrix(reads, "A", "A", finding="f")
    assert np.allclose(np.diag(same.to_numpy()), 1.0)
    assert same.to_numpy() == pytest.approx(same.to_numpy().T)
    cross = pair_agreement_matrix(reads, "A", "B", finding="f", threshold=3)
    assert list(cross.index) == ["r1", "r2", "r3"]
    assert ((cross.to_numpy() >= 0) & (cross.to_numpy() <= 1)).all()


@given(st.integers(0, 10_000), st.integers(2, 5), st.integers(3, 20))
@settings(max_examples=40, deadline=None)
def test_coefficients_are_bounded_and_perfect_agreement_gives_one(seed, n_readers, n_cases):
    rng = np.random.default_rng(seed)
    ratings = rng.integers(1, 4, size=(n_cases, n_readers)).astype(float)
    if len(np.unique(ratings)) < 2:
        return
    ac1 = gwet_ac(ratings, [1, 2, 3])
    assert -1.0 <= ac1.value <= 1.0 and ac1.se >= 0
    perfect = np.repeat(ratings[:, :1], n_readers, axis=1)
    if len(np.unique(perfect)) >= 2:
        assert gwet_ac(perfect, [1, 2, 3]).value == pytest.approx(1.0)
        assert fleiss_kappa(perfect, [1, 2, 3], n_boot=5, rng=rng).value == pytest.approx(1.0)
    # Relabelling readers (column order) does not change the coefficients.
    order = rng.permutation(n_readers)
    assert gwet_ac(ratings[:, order], [1, 2, 3]).value == pytest.approx(ac1.value)


def test_fleiss_without_any_estimable_resample_has_no_bootstrap_interval():
    # Three cases, perfect agreement: a resample of only the two category-1 cases has kappa 0/0.
    # With this seed all five resamples are such (found by search; hypothesis met it under CI).
    perfect = np.array([[1.0, 1.0], [1.0, 1.0], [2.0, 2.0]])
    result = fleiss_kappa(perfect, [1, 2, 3], n_boot=5, rng=np.random.default_rng(160))
    assert result.value == pytest.approx(1.0)
    assert result.boot_ci_low is None and result.boot_ci_high is None
    assert result.to_dict()["boot_ci_low"] is None


def test_bad_inputs():
    with pytest.raises(AnalysisError, match="not one of the categories"):
        gwet_ac(np.array([[1.0, 7.0], [1.0, 1.0]]), [1, 2, 3])
    with pytest.raises(AnalysisError, match="two categories"):
        gwet_ac(np.array([[1.0, 1.0], [1.0, 1.0]]), [1])
    with pytest.raises(AnalysisError, match="two readers"):
        gwet_ac(np.array([[1.0, NAN], [2.0, NAN]]), [1, 2])
    with pytest.raises(AnalysisError, match="unknown arm"):
        cohen_kappa_between_arms(_reads([1, 2], [1, 2]), "A", "C")
    with pytest.raises(AnalysisError, match="single category"):
        cohen_kappa_between_arms(_reads([1, 1], [1, 1]), "A", "B")
