"""The intervals that decide interchangeability, chosen by simulation (benchmarks/RESULTS.md).

Both take the per-case excess disagreements ``d_i`` (and, for random readers, the per-case values
with each reader left out) and return a :class:`DecisionInterval`: the two-sided 95% interval, the
one-sided p-value of ``H0: gamma >= margin`` and what was used. The new arm is declared
interchangeable when the upper bound lies below the margin, which happens exactly when
``p < 0.025`` (both come from the same quantities, so they cannot disagree).

**Fixed readers: calibrated bootstrap-t** (Beran's prepivoting, Hall's iterated bootstrap). The
``d_i`` are right-skewed (skewness about 1, half of them exactly 0), so the Wald bound and the
case-bootstrap percentile bound declare interchangeability in 3.3-5% of studies whose true gamma
is at the margin, the plain bootstrap-t in 2.4-3.3% and BCa in 2.6-3.6% (2000-20000 simulated
studies per scenario). The bootstrap-t's own error is estimated by a second, inner bootstrap
inside each outer resample: ``p_b`` = the inner bootstrap-t p-value of resample b for its own
truth (the mean of the sample); the calibrated p-value is the share of ``p_b`` at or below the
observed bootstrap-t p-value, and the calibrated bound uses the bootstrap-t at the level where
``p_b`` reaches 2.5%. These empirical shares decide at the 2.5% level; below 2% the p-value comes
from kernel-smoothed shares instead (capped at 2%, so the decision is unchanged), because the
empirical ones tie at 0 and cannot go below about ``1 / n_inner``, which Holm's procedure over a
dozen findings needs. Measured rates at the margin: benchmarks/RESULTS.md.

**Random readers: Obuchowski-Rockette / Hillis on reader pseudovalues.** The reader jackknife
pseudovalues ``psi_ij = J d_i - (J - 1) d_i^(-j)`` (``d_i^(-j)``: case i without reader j) play
the readers' figures of merit: ``se^2 = MS_R(psi) / J + max(Cov2, 0)`` with ``MS_R`` the
between-reader mean square of ``psi_j = mean_i psi_ij`` and ``Cov2`` the mean case covariance of
two readers' ``psi``; t with Hillis's ``df = (MS_R + J max(Cov2, 0))^2 / (MS_R^2 / (J - 1))``.
It never truncates the reader variance to zero (the earlier jackknife variance components did
in 20-60% of studies and, with z, covered 88-96%). Measured coverage 94.7-97.3% across reader
heterogeneity for J = 4, 6, 10 (conservative at J = 4: the reader jackknife of a pair statistic
counts the pair-specific noise more than once). The upper bound is never below the fixed-reader
(calibrated) one, a claim about radiologists in general being no surer than one about the
readers at hand; this also carries the skewness correction into the random-reader decision
(at a prevalence of 10% the t bound alone declared interchangeability in 3.4% of studies at the
margin).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special, stats

from analysis import resampling
from analysis.errors import AnalysisError

FloatArray = npt.NDArray[np.float64]

#: One-sided level of the decision (the upper bound of a two-sided 95% interval).
ALPHA = 0.025
#: Inner resamples of the calibrated bootstrap-t (per outer resample).
N_INNER = 200
#: Calibrated p-values below this come from kernel-smoothed shares (see the function).
SMOOTH_BELOW = 0.02
#: At most this many outer resamples for the calibrated bootstrap-t (its p-value and levels are
#: shares of them); the simulations of benchmarks/RESULTS.md used 1000 x 200.
N_OUTER = 1000


@dataclass(frozen=True)
class DecisionInterval:
    """A two-sided 95% interval for gamma and the one-sided test against the margin.

    ``p_value`` tests ``H0: gamma >= margin`` and is below 0.025 exactly when ``ci_high`` is below
    the margin. ``df`` is the t degrees of freedom (inf where no t distribution is used).
    """

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    df: float
    interval: str
    method: str


@dataclass(frozen=True)
class ReaderPseudovalueVariance:
    """Obuchowski-Rockette pieces of the random-reader variance, from reader pseudovalues.

    ``ms_r``: between-reader mean square of the readers' pseudovalue means; ``var``/``cov2``: the
    mean case variance of one reader's pseudovalue mean and the mean case covariance of two
    readers'; ``case_var``: the fixed-reader (case) variance of gamma; ``total = ms_r / J +
    max(cov2, 0)``; ``df``: Hillis's degrees of freedom; ``reader_var = max(total - case_var,
    0)``, the part that readers add (reported, not used).
    """

    n_readers: int
    ms_r: float
    var: float
    cov2: float
    case_var: float
    total: float
    df: float
    reader_var: float
    pseudovalues: FloatArray


def pseudovalue_variance(d: FloatArray, leave_out: FloatArray) -> ReaderPseudovalueVariance:
    """OR variance of mean(d) with readers and cases random (see the module docstring).

    Parameters
    ----------
    d : numpy.ndarray
        Per-case values, shape (N,).
    leave_out : numpy.ndarray
        Per-case values with reader j left out, shape (N, J).
    """
    n_cases, n_readers = leave_out.shape
    if n_readers < 3:
        raise AnalysisError(
            f"column 'reader': random-reader inference needs at least three readers, found "
            f"{n_readers}"
        )
    if n_cases < 2:
        raise AnalysisError(f"random-reader inference needs at least 2 cases, got {n_cases}")
    psi = n_readers * d[:, None] - (n_readers - 1) * leave_out  # (N, J)
    per_reader = psi.mean(axis=0)
    ms_r = float(np.var(per_reader, ddof=1))
    cov = np.cov(psi, rowvar=False) / n_cases
    off = ~np.eye(n_readers, dtype=bool)
    cov2 = float(cov[off].mean())
    var = float(np.diag(cov).mean())
    den = ms_r + n_readers * max(cov2, 0.0)
    case_var = float(np.var(d, ddof=1) / n_cases)
    total = den / n_readers
    df = den**2 / (ms_r**2 / (n_readers - 1)) if ms_r > 0 else math.inf
    return ReaderPseudovalueVariance(
        n_readers=n_readers,
        ms_r=ms_r,
        var=var,
        cov2=cov2,
        case_var=case_var,
        total=total,
        df=df,
        reader_var=max(total - case_var, 0.0),
        pseudovalues=per_reader,
    )


def _studentised(means: FloatArray, squares: FloatArray, centre: FloatArray, n: int) -> FloatArray:
    """(mean* - centre) / se* for resample means and mean squares; se* = 0 gives +-inf or 0."""
    var = np.maximum((squares - means**2) * n / (n - 1), 0.0)
    se = np.sqrt(var / n)
    diff = means - centre
    with np.errstate(divide="ignore", invalid="ignore"):
        t = diff / se
    infinite = np.where(diff > 0, np.inf, np.where(diff < 0, -np.inf, 0.0))
    result: FloatArray = np.where(se > 0, t, infinite)
    return result


def _quantile(values: FloatArray, level: float) -> float:
    """The ``inverted_cdf`` quantile: the smallest value v with share(values <= v) >= level."""
    return float(np.quantile(values, min(max(level, 0.0), 1.0), method="inverted_cdf"))


def calibrated_bootstrap_t(
    d: FloatArray,
    margin: float,
    *,
    rng: np.random.Generator,
    n_boot: int = 2000,
    n_inner: int = N_INNER,
    case_indices: npt.NDArray[np.int64] | None = None,
) -> DecisionInterval:
    """Fixed-reader interval and test: the calibrated (double) bootstrap-t of mean(d).

    Parameters
    ----------
    d : numpy.ndarray
        Per-case excess disagreements, shape (N,).
    margin : float
        The interchangeability margin.
    rng : numpy.random.Generator
        Draws the outer resamples (unless ``case_indices`` is given) and the inner ones.
    n_boot, n_inner : int
        Outer and inner resamples (at most :data:`N_OUTER` outer resamples are used).
    case_indices : numpy.ndarray, optional
        Outer resamples as case indices (B, N), shared with other analyses of the same cases.
    """
    n = int(d.shape[0])
    if n < 2:
        raise AnalysisError(f"interchangeability needs at least 2 cases, got {n}")
    mean = float(d.mean())
    se = float(np.std(d, ddof=1) / math.sqrt(n))
    name = "calibrated bootstrap-t"
    n_outer = min(n_boot, N_OUTER)
    method = f"fixed readers: calibrated bootstrap-t over cases ({n_outer} x {n_inner} resamples)"
    if se == 0:  # every case has the same d: nothing varies, the interval is the point
        p = 0.0 if mean < margin else 1.0
        return DecisionInterval(mean, 0.0, mean, mean, p, math.inf, name, method)
    if case_indices is None:
        case_indices = resampling.case_indices(rng, n, n_outer)
    values = d[case_indices[:n_outer]]  # (B, N): the outer resamples
    outer_mean = values.mean(axis=1)
    outer_square = (values * values).mean(axis=1)
    t_outer = _studentised(outer_mean, outer_square, np.full(1, mean), n)
    # Inner resamples: positions within an outer resample, the same draws for every resample
    # (each outer resample is its own population), as counts over the N positions.
    # float32 halves the time of the one large product; means of values in [-K^2, K^2] over
    # N <= a few thousand cases keep 6 significant digits, far below the resampling noise.
    inner = resampling.case_counts(rng, n, n_inner).astype(np.float32)  # (n_inner, N)
    stacked = np.concatenate([values, values * values]).T.astype(np.float32)  # (N, 2B)
    sums = (inner @ stacked).astype(np.float64) / n
    inner_mean, inner_square = sums[:, : values.shape[0]], sums[:, values.shape[0] :]
    with np.errstate(divide="ignore", invalid="ignore"):
        se_inner = np.sqrt(np.maximum(inner_square - inner_mean**2, 0.0) / (n - 1))
        diff = inner_mean - outer_mean[None, :]
        t_inner = np.where(se_inner > 0, diff / se_inner, np.sign(diff) * 1e6)
    t_outer = np.clip(t_outer, -1e6, 1e6)
    t_obs = (mean - margin) / se
    # The interval and the decision at the 2.5% level: the empirical calibrated bootstrap-t.
    p_lower = np.mean(t_inner <= t_outer[None, :], axis=0)  # each resample's inner p-value
    p_upper = np.mean(t_inner >= t_outer[None, :], axis=0)
    p_obs = float(np.mean(t_outer <= t_obs))
    p_value = float(np.mean(p_lower <= p_obs))
    level_high = _quantile(p_lower, ALPHA)  # the bootstrap-t level whose actual error is ALPHA
    level_low = _quantile(p_upper, ALPHA)
    # At level 0 no bootstrap-t bound is justified (too many resamples already reject at their
    # most extreme value): no finite bound then, which agrees with p_value >= ALPHA.
    ci_high = mean - _quantile(t_outer, level_high) * se if level_high > 0 else math.inf
    ci_low = mean - _quantile(t_outer, 1.0 - level_low) * se if level_low > 0 else -math.inf
    if p_value < SMOOTH_BELOW:
        # Below the empirical shares' resolution (they tie at 0 and would put a floor of
        # about 1 / n_inner under every p-value, which Holm over a dozen findings cannot
        # pass), the p-value comes from kernel-smoothed shares (Gaussian kernel, Silverman's
        # bandwidth), capped so that the decision at the 2.5% level stays the empirical one.
        h_inner = _bandwidth(t_inner, axis=0)
        smooth_lower = special.ndtr((t_outer[None, :] - t_inner) / h_inner[None, :]).mean(axis=0)
        h_outer = float(_bandwidth(t_outer[:, None], axis=0)[0])
        smooth_obs = float(special.ndtr((t_obs - t_outer) / h_outer).mean())
        p_value = min(float(np.mean(smooth_lower <= smooth_obs)), SMOOTH_BELOW)
    return DecisionInterval(
        estimate=mean,
        se=se,
        ci_low=float(ci_low),
        ci_high=float(ci_high),
        p_value=p_value,
        df=math.inf,
        interval=name,
        method=method,
    )


def _bandwidth(values: FloatArray, axis: int) -> FloatArray:
    """Silverman's rule-of-thumb bandwidth ``1.06 sd n^(-1/5)`` of each column (floor 1e-3)."""
    n = values.shape[axis]
    sd = np.std(values, axis=axis, ddof=1)
    result: FloatArray = np.maximum(1.06 * sd * n ** (-0.2), 1e-3)
    return result


def hillis_t_interval(
    d: FloatArray, leave_out: FloatArray, margin: float
) -> tuple[DecisionInterval, ReaderPseudovalueVariance]:
    """The random-reader t interval (OR pseudovalue variance, Hillis df) on its own."""
    components = pseudovalue_variance(d, leave_out)
    gamma = float(d.mean())
    se = math.sqrt(components.total)
    df = components.df
    if se == 0:
        p = 0.0 if gamma < margin else 1.0
        interval = DecisionInterval(gamma, 0.0, gamma, gamma, p, df, "Hillis t", "")
        return interval, components
    crit = float(stats.t.ppf(1 - ALPHA, df)) if math.isfinite(df) else float(stats.norm.ppf(0.975))
    dist = stats.t(df) if math.isfinite(df) else stats.norm
    p = float(dist.cdf((gamma - margin) / se))
    interval = DecisionInterval(
        estimate=gamma,
        se=se,
        ci_low=gamma - crit * se,
        ci_high=gamma + crit * se,
        p_value=p,
        df=df,
        interval="Hillis t",
        method="",
    )
    return interval, components


def random_reader_interval(
    d: FloatArray,
    leave_out: FloatArray,
    margin: float,
    fixed: DecisionInterval,
) -> tuple[DecisionInterval, ReaderPseudovalueVariance]:
    """Random-reader interval and test: the Hillis t interval, never narrower than ``fixed``.

    ``ci_low = min(t low, fixed low)``, ``ci_high = max(t high, fixed high)`` and ``p = max(p_t,
    p_fixed)``, so the new arm is interchangeable for random readers only when it is for the
    readers at hand as well.
    """
    t_interval, components = hillis_t_interval(d, leave_out, margin)
    df_text = "inf" if not math.isfinite(t_interval.df) else f"{t_interval.df:.1f}"
    method = (
        f"random readers and cases: Obuchowski-Rockette variance of the reader pseudovalues, "
        f"t with Hillis df ({df_text}); bounds never inside the fixed-reader calibrated "
        f"bootstrap-t bounds"
    )
    interval = DecisionInterval(
        estimate=t_interval.estimate,
        se=t_interval.se,
        ci_low=min(t_interval.ci_low, fixed.ci_low),
        ci_high=max(t_interval.ci_high, fixed.ci_high),
        p_value=max(t_interval.p_value, fixed.p_value),
        df=t_interval.df,
        interval="Hillis t (guarded by the fixed-reader bound)",
        method=method,
    )
    return interval, components
