"""Empirical AUC, its jackknife, sensitivity and specificity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import roc
from analysis.errors import AnalysisError


def _auc_by_pairs(truth: np.ndarray, rating: np.ndarray) -> float:
    pos = rating[truth == 1]
    neg = rating[truth == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return float(psi.mean())


def test_auc_perfect_chance_and_ties() -> None:
    truth = np.array([0, 0, 1, 1])
    assert roc.empirical_auc(truth, [1, 2, 3, 4]) == 1.0
    assert roc.empirical_auc(truth, [4, 3, 2, 1]) == 0.0
    assert roc.empirical_auc(truth, [1, 1, 1, 1]) == 0.5
    # one tie between a diseased and a non-diseased case: 3.5 of 4 pairs
    assert roc.empirical_auc(truth, [1, 2, 2, 3]) == pytest.approx(3.5 / 4)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(1, 5), min_size=6, max_size=30),
    st.integers(0, 2**31 - 1),
)
def test_auc_and_jackknife_match_the_pairwise_definition(ratings: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    rating = np.array(ratings, dtype=float)
    truth = np.zeros(rating.size, dtype=int)
    truth[rng.permutation(rating.size)[: rating.size // 2]] = 1
    assert float(roc.empirical_auc(truth, rating)) == pytest.approx(_auc_by_pairs(truth, rating))
    jack = roc.jackknife_auc(truth, rating)
    for k in range(rating.size):
        keep = np.arange(rating.size) != k
        assert jack[k] == pytest.approx(_auc_by_pairs(truth[keep], rating[keep]))


def test_vectorised_over_leading_axes() -> None:
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 40)
    truth[:2] = [0, 1]
    ratings = rng.integers(1, 6, (2, 3, 40)).astype(float)
    auc = roc.empirical_auc(truth, ratings)
    assert auc.shape == (2, 3)
    assert auc[1, 2] == pytest.approx(_auc_by_pairs(truth, ratings[1, 2]))
    assert roc.jackknife_auc(truth, ratings).shape == (2, 3, 40)


def test_sensitivity_specificity_at_threshold() -> None:
    truth = np.array([1, 1, 1, 1, 0, 0, 0])
    rating = np.array([5, 4, 3, 1, 3, 2, 1])
    assert float(roc.sensitivity(truth, rating, 3)) == pytest.approx(3 / 4)
    assert float(roc.specificity(truth, rating, 3)) == pytest.approx(2 / 3)


def test_roc_points_end_at_one_one() -> None:
    fpf, tpf = roc.roc_points([0, 0, 1, 1], [1, 3, 2, 4])
    assert (fpf[0], tpf[0]) == (0.0, 0.0)
    assert (fpf[-1], tpf[-1]) == (1.0, 1.0)
    assert np.trapezoid(tpf, fpf) == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("truth", "rating", "match"),
    [
        ([1, 1, 1], [1, 2, 3], "at least one diseased"),
        ([0, 1, 2], [1, 2, 3], "0 \\(non-diseased\\) or 1"),
        ([0, 1, 1], [1, np.nan, 3], "expected a number"),
        ([0, 1], [1, 2, 3], "one truth value per case"),
    ],
)
def test_bad_input_is_a_clear_error(truth: list[int], rating: list[float], match: str) -> None:
    with pytest.raises(AnalysisError, match=match):
        roc.empirical_auc(truth, rating)
