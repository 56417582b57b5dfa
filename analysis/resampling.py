"""Case bootstrap, two-way (reader and case) bootstrap and jackknife, vectorised.

Every resampling draws from an explicit :class:`numpy.random.Generator`. The draws are made once as
index or count matrices (one row per resample) so that a statistic built from per-case sums is a
matrix product instead of a Python loop; the loop-based reference implementations live with the
statistics that use them (e.g. ``analysis.interchangeability._bootstrap_loop``) and are used only
by tests and benchmarks to check and time the vectorised forms.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from analysis.errors import AnalysisError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def case_indices(rng: np.random.Generator, n_cases: int, n_boot: int) -> IntArray:
    """Draw case-bootstrap indices.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    n_cases : int
        Number of cases N to resample from.
    n_boot : int
        Number of bootstrap resamples B.

    Returns
    -------
    numpy.ndarray
        Integer array of shape (B, N); row b holds the cases of resample b (with replacement).
    """
    _check_counts(n_cases, n_boot)
    return rng.integers(0, n_cases, size=(n_boot, n_cases), dtype=np.int64)


def index_counts(indices: IntArray, n: int) -> FloatArray:
    """Turn resample indices of shape (B, M) into counts of shape (B, n).

    ``counts[b, i]`` is how many times item ``i`` appears in resample ``b``; a statistic that is a
    sum over the resampled items is then ``counts @ per_item_values``.
    """
    n_boot = indices.shape[0]
    flat = indices + (np.arange(n_boot, dtype=np.int64) * n)[:, None]
    return np.bincount(flat.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def case_counts(rng: np.random.Generator, n_cases: int, n_boot: int) -> FloatArray:
    """Draw a case bootstrap as counts: shape (B, N), each row sums to N."""
    return index_counts(case_indices(rng, n_cases, n_boot), n_cases)


class CaseCounts:
    """Case-bootstrap draws made once per number of cases and then reused.

    Analyses of several findings (or arms) over the same cases share one draw, which is the
    joint case bootstrap and saves drawing and counting B x N indices again for each. The draw
    is kept both as indices (B, N) (:meth:`indices`) and as counts (B, N) (calling the object).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (used on the first request for each number of cases).
    n_boot : int
        Number of bootstrap resamples B.
    """

    def __init__(self, rng: np.random.Generator, n_boot: int) -> None:
        _check_counts(1, n_boot)
        self.rng = rng
        self.n_boot = n_boot
        self._indices: dict[int, IntArray] = {}
        self._counts: dict[int, FloatArray] = {}

    def indices(self, n_cases: int) -> IntArray:
        """Indices (B, n_cases) of the resampled cases for a data set of ``n_cases`` cases."""
        if n_cases not in self._indices:
            self._indices[n_cases] = case_indices(self.rng, n_cases, self.n_boot)
        return self._indices[n_cases]

    def __call__(self, n_cases: int) -> FloatArray:
        """Counts (B, n_cases) for a data set of ``n_cases`` cases."""
        if n_cases not in self._counts:
            self._counts[n_cases] = index_counts(self.indices(n_cases), n_cases)
        return self._counts[n_cases]


def reader_counts(rng: np.random.Generator, n_readers: int, n_boot: int) -> FloatArray:
    """Draw a reader bootstrap as counts: shape (B, J), each row sums to J.

    Row b holds how many copies of each reader resample b contains. Statistics over reader pairs
    weight pair (j, j') by ``w[j] * w[j']`` for ``j != j'`` only, so a reader is never paired with a
    copy of itself (see :func:`pair_weights`).
    """
    _check_counts(n_readers, n_boot)
    probabilities = np.full(n_readers, 1.0 / n_readers)
    return rng.multinomial(n_readers, probabilities, size=n_boot).astype(np.float64)


def pair_weights(counts: FloatArray, mask: npt.NDArray[np.bool_]) -> FloatArray:
    """Weights of ordered reader pairs in each reader-bootstrap resample.

    Parameters
    ----------
    counts : numpy.ndarray
        Reader counts of shape (B, J) from :func:`reader_counts`.
    mask : numpy.ndarray
        Boolean (J, J) matrix of the pairs that exist in the data; its diagonal (a reader with
        itself) must be False.

    Returns
    -------
    numpy.ndarray
        Shape (B, J, J): ``counts[b, j] * counts[b, j'] * mask[j, j']``. Copies of one reader are
        never paired with each other because the diagonal of ``mask`` is False.
    """
    if np.any(np.diagonal(mask)):
        raise ValueError("pair mask must exclude a reader paired with itself")
    return counts[:, :, None] * counts[:, None, :] * mask[None, :, :]


def bootstrap_means(values: FloatArray, counts: FloatArray) -> FloatArray:
    """Means of per-case ``values`` ((N,) or (N, K)) over each resample of ``counts`` (B, N)."""
    totals = counts.sum(axis=1)
    result: FloatArray = (counts @ values) / (totals if values.ndim == 1 else totals[:, None])
    return result


def jackknife_means(values: FloatArray) -> FloatArray:
    """Leave-one-case-out means of per-case ``values`` (shape (N,)): element i omits case i."""
    n = values.shape[0]
    if n < 2:
        raise AnalysisError(f"the jackknife needs at least 2 cases, got {n}")
    result: FloatArray = (values.sum() - values) / (n - 1)
    return result


def jackknife_se(estimates: FloatArray) -> float:
    """Jackknife standard error from the N leave-one-out estimates.

    ``sqrt((N - 1) / N * sum((theta_(i) - mean theta_(.))**2))``. For a mean of per-case values this
    equals ``sd(values, ddof=1) / sqrt(N)`` exactly.
    """
    n = estimates.shape[0]
    if n < 2:
        raise AnalysisError(f"the jackknife needs at least 2 estimates, got {n}")
    centred = estimates - estimates.mean()
    return float(np.sqrt((n - 1) / n * np.sum(centred**2)))


def percentile_interval(samples: FloatArray, level: float = 0.95) -> tuple[float, float]:
    """Two-sided percentile interval of bootstrap ``samples`` (NaN resamples dropped)."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        raise AnalysisError("no bootstrap resample gave a finite estimate")
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _check_counts(n_items: int, n_boot: int) -> None:
    if n_items < 1:
        raise AnalysisError(f"nothing to resample: {n_items} items")
    if n_boot < 1:
        raise AnalysisError(f"--n-boot must be at least 1, got {n_boot}")
