"""Empirical ROC figures of merit: trapezoidal AUC, sensitivity and specificity.

The trapezoidal (empirical) AUC equals the Mann-Whitney statistic with ties counted as 1/2:
``AUC = mean over (diseased i, non-diseased j) of psi(x_i, y_j)``, ``psi = 1`` when
``x_i > y_j``, ``1/2`` when equal, ``0`` otherwise. Everything here works on arrays whose last
axis is the case axis, so one call scores every treatment x reader at once.

The leave-one-case-out (jackknife) AUCs come from the placement values (DeLong et al. 1988):
with ``V10_i`` the mean of psi for diseased case ``i`` over the non-diseased cases and ``V01_j``
the mean for non-diseased case ``j`` over the diseased cases,
``AUC(-i) = (n1 AUC - V10_i) / (n1 - 1)`` and ``AUC(-j) = (n0 AUC - V01_j) / (n0 - 1)``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import rankdata

from analysis.errors import AnalysisError

FloatArray = NDArray[np.float64]


class PlacementValues(NamedTuple):
    """Placement values of the diseased (``v10``) and non-diseased (``v01``) cases."""

    v10: FloatArray
    v01: FloatArray


def _split_by_truth(truth: ArrayLike, rating: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Return (diseased, non-diseased) ratings; the case axis is the last one."""
    truth_arr = np.asarray(truth)
    ratings = np.asarray(rating, dtype=np.float64)
    if truth_arr.ndim != 1 or ratings.shape[-1] != truth_arr.shape[0]:
        raise AnalysisError(
            f"truth has {truth_arr.shape} values but the ratings' case axis has "
            f"{ratings.shape[-1:]}: expected one truth value per case"
        )
    if not np.isin(truth_arr, (0, 1)).all():
        raise AnalysisError("truth: expected 0 (non-diseased) or 1 (diseased) for every case")
    if np.isnan(ratings).any():
        raise AnalysisError("rating: expected a number for every case, found missing values")
    diseased = truth_arr == 1
    if diseased.all() or not diseased.any():
        raise AnalysisError(
            "truth: the AUC needs at least one diseased (1) and one non-diseased (0) case"
        )
    return ratings[..., diseased], ratings[..., ~diseased]


def placement_values(truth: ArrayLike, rating: ArrayLike) -> PlacementValues:
    """Placement values of every case, vectorised over leading axes.

    Parameters
    ----------
    truth : array_like of {0, 1}, shape (n_cases,)
        1 for a diseased case.
    rating : array_like, shape (..., n_cases)
        Confidence ratings (higher: more likely diseased).

    Returns
    -------
    PlacementValues
        ``v10`` of shape (..., n_diseased) and ``v01`` of shape (..., n_non_diseased).
    """
    pos, neg = _split_by_truth(truth, rating)
    n1, n0 = pos.shape[-1], neg.shape[-1]
    both = np.concatenate([pos, neg], axis=-1)
    rank_all = rankdata(both, axis=-1)
    # mid-rank in the pooled sample minus mid-rank among its own class = number of cases of the
    # other class below it, ties counted 1/2
    below_pos = rank_all[..., :n1] - rankdata(pos, axis=-1)
    below_neg = rank_all[..., n1:] - rankdata(neg, axis=-1)
    return PlacementValues(v10=below_pos / n0, v01=1.0 - below_neg / n1)


def empirical_auc(truth: ArrayLike, rating: ArrayLike) -> FloatArray:
    """Trapezoidal AUC (Mann-Whitney, ties = 1/2) over the last axis.

    Parameters
    ----------
    truth : array_like of {0, 1}, shape (n_cases,)
    rating : array_like, shape (..., n_cases)

    Returns
    -------
    numpy.ndarray
        AUC of shape ``rating.shape[:-1]`` (a 0-d array for one reader).
    """
    return np.asarray(placement_values(truth, rating).v10.mean(axis=-1))


def jackknife_auc(truth: ArrayLike, rating: ArrayLike) -> FloatArray:
    """Leave-one-case-out AUCs, in the original case order.

    Parameters
    ----------
    truth : array_like of {0, 1}, shape (n_cases,)
    rating : array_like, shape (..., n_cases)

    Returns
    -------
    numpy.ndarray
        Shape (..., n_cases): entry ``k`` is the AUC without case ``k``.
    """
    truth_arr = np.asarray(truth)
    pv = placement_values(truth_arr, rating)
    n1, n0 = pv.v10.shape[-1], pv.v01.shape[-1]
    if n1 < 2 or n0 < 2:
        raise AnalysisError(
            "truth: the jackknife AUC needs at least two diseased and two non-diseased cases"
        )
    auc = pv.v10.mean(axis=-1, keepdims=True)
    diseased = truth_arr == 1
    out = np.empty(np.asarray(rating).shape, dtype=np.float64)
    out[..., diseased] = (n1 * auc - pv.v10) / (n1 - 1)
    out[..., ~diseased] = (n0 * auc - pv.v01) / (n0 - 1)
    return out


def positive_calls(rating: ArrayLike, threshold: float) -> NDArray[np.bool_]:
    """A rating at or above ``threshold`` is a positive call."""
    ratings = np.asarray(rating, dtype=np.float64)
    if np.isnan(ratings).any():
        raise AnalysisError("rating: expected a number for every case, found missing values")
    return ratings >= threshold


def sensitivity(truth: ArrayLike, rating: ArrayLike, threshold: float) -> FloatArray:
    """Fraction of diseased cases rated at or above ``threshold`` (over the last axis)."""
    truth_arr = np.asarray(truth)
    calls = positive_calls(rating, threshold)
    if not (truth_arr == 1).any():
        raise AnalysisError("truth: sensitivity needs at least one diseased (1) case")
    return np.asarray(calls[..., truth_arr == 1].mean(axis=-1))


def specificity(truth: ArrayLike, rating: ArrayLike, threshold: float) -> FloatArray:
    """Fraction of non-diseased cases rated below ``threshold`` (over the last axis)."""
    truth_arr = np.asarray(truth)
    calls = positive_calls(rating, threshold)
    if not (truth_arr == 0).any():
        raise AnalysisError("truth: specificity needs at least one non-diseased (0) case")
    return np.asarray((~calls[..., truth_arr == 0]).mean(axis=-1))


def roc_points(truth: ArrayLike, rating: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Empirical ROC operating points (FPF, TPF) from (0, 0) to (1, 1) for one reader."""
    pos, neg = _split_by_truth(truth, rating)
    thresholds = np.unique(np.concatenate([pos, neg]))[::-1]
    tpf = (pos[None, :] >= thresholds[:, None]).mean(axis=1)
    fpf = (neg[None, :] >= thresholds[:, None]).mean(axis=1)
    return np.concatenate([[0.0], fpf]), np.concatenate([[0.0], tpf])
