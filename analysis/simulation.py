"""A latent-variable model of a two-arm reader study: simulated reads and their true values.

The model behind the simulation tests, the benchmarks and ``blindreader plan``. For one finding,
case i has a true state ``T_i ~ Bernoulli(prevalence)`` and a latent severity
``S_i = signal * T_i + case_sd * Z_i``. Reader j reads case i on arm a as::

    Y_ija = cut(S_i + u_j + v_j * [a is new] + e_ija),   e_ija ~ N(0, sd_a^2)

with the reader's threshold shift ``u_j ~ N(0, reader_sd^2)`` (reader heterogeneity, the same on
both arms), a reader-by-arm shift ``v_j ~ N(0, reader_arm_sd^2)`` (some readers call more on the
new arm), and the read noise ``sd_ref`` on the reference arm and ``sd_new`` on the new arm (more
noise: more disagreement). ``cut`` maps the latent value to the grades 1..K at ``cuts``; a grade
``>= threshold`` counts as present.

True values come from quadrature, not from simulation:

- *fixed readers* (the J readers at hand, given ``u`` and ``v``): the excess disagreement
  ``gamma = mean_{j != k} A(ref_j, ref_k) - mean_{j != k} A(new_j, ref_k)`` with each pair's
  agreement ``A = E_S[P(agree | S)]`` (reads are independent given S);
- *random readers* (the population of readers): two different readers are independent draws, so
  ``u`` integrates out of each reader's response probabilities, which become probit curves with
  the variance ``sd^2 + reader_sd^2`` (plus ``reader_arm_sd^2`` on the new arm).

:meth:`LatentReadModel.calibrated` sets the reference noise to give a stated
reference-reference agreement and the new arm's noise to give a stated excess disagreement, which
is how the planner turns "six readers who agree on 85% of cases, an expected excess disagreement
of 1%" into a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import optimize, special

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Measure = Literal["binary", "exact", "squared"]
Population = Literal["fixed", "random"]

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(64)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


@dataclass(frozen=True)
class ReaderEffects:
    """The drawn readers of one study: threshold shifts ``u`` and reader-by-arm shifts ``v``."""

    u: FloatArray
    v: FloatArray

    @property
    def n_readers(self) -> int:
        """Number of readers J."""
        return int(self.u.shape[0])


@dataclass(frozen=True)
class LatentReadModel:
    """Parameters of the latent-variable reader-study model (see the module docstring).

    Parameters
    ----------
    n_readers : int
        Readers J, each reading every case on both arms.
    prevalence : float
        Probability that the finding is present.
    signal : float
        Latent shift of a present finding.
    case_sd : float
        Case-to-case spread of the latent severity within a true state.
    sd_ref, sd_new : float
        Read noise on the reference and on the new arm.
    reader_sd : float
        SD of the readers' threshold shifts (reader heterogeneity).
    reader_arm_sd : float
        SD of the readers' shifts on the new arm only (reader-by-arm heterogeneity).
    cuts : tuple of float
        The K - 1 cut points of the K-point grade scale, increasing.
    threshold : int
        Grades at or above it count as present.
    """

    n_readers: int = 6
    prevalence: float = 0.3
    signal: float = 2.0
    case_sd: float = 0.6
    sd_ref: float = 0.5
    sd_new: float = 0.5
    reader_sd: float = 0.25
    reader_arm_sd: float = 0.0
    cuts: tuple[float, ...] = (0.35, 1.0, 1.65)
    threshold: int = 3

    def __post_init__(self) -> None:
        if self.n_readers < 2:
            raise ValueError(f"n_readers: need at least 2 readers, got {self.n_readers}")
        if not 0.0 < self.prevalence < 1.0:
            raise ValueError(f"prevalence: expected a value in (0, 1), got {self.prevalence}")
        for name in ("case_sd", "sd_ref", "sd_new"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected a positive number, got {getattr(self, name)}")
        for name in ("reader_sd", "reader_arm_sd"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}: expected a number >= 0, got {getattr(self, name)}")
        if list(self.cuts) != sorted(self.cuts) or len(self.cuts) < 1:
            raise ValueError(f"cuts: expected increasing cut points, got {self.cuts}")
        if not 2 <= self.threshold <= self.points:
            raise ValueError(f"threshold: expected 2..{self.points}, got {self.threshold}")

    @property
    def points(self) -> int:
        """Number of grades K."""
        return len(self.cuts) + 1

    # ---- readers and reads -------------------------------------------------------------------

    def draw_readers(self, rng: np.random.Generator, n_readers: int | None = None) -> ReaderEffects:
        """Draw the threshold and reader-by-arm shifts of ``n_readers`` (default J) readers."""
        j = self.n_readers if n_readers is None else n_readers
        return ReaderEffects(
            u=rng.normal(0.0, self.reader_sd, j), v=rng.normal(0.0, self.reader_arm_sd, j)
        )

    def simulate(
        self,
        rng: np.random.Generator,
        n_cases: int,
        readers: ReaderEffects,
        *,
        n_studies: int = 1,
    ) -> tuple[IntArray, IntArray, IntArray]:
        """Grades of ``n_studies`` studies of ``n_cases`` cases read by ``readers``.

        Returns
        -------
        ref, new : numpy.ndarray
            Integer grades 1..K of shape (n_studies, n_cases, J).
        truth : numpy.ndarray
            The true states, shape (n_studies, n_cases).
        """
        shape = (n_studies, n_cases)
        truth = (rng.random(shape) < self.prevalence).astype(np.int64)
        severity = self.signal * truth + rng.normal(0.0, self.case_sd, shape)
        base = severity[:, :, None] + readers.u[None, None, :]
        j = readers.n_readers
        ref_latent = base + rng.normal(0.0, self.sd_ref, (*shape, j))
        new_latent = base + readers.v[None, None, :] + rng.normal(0.0, self.sd_new, (*shape, j))
        cuts = np.asarray(self.cuts)
        ref = np.searchsorted(cuts, ref_latent).astype(np.int64) + 1
        new = np.searchsorted(cuts, new_latent).astype(np.int64) + 1
        return ref, new, truth

    # ---- true values -------------------------------------------------------------------------

    def _severity_nodes(self) -> tuple[FloatArray, FloatArray]:
        """Quadrature nodes and weights of the latent severity (a two-component mixture)."""
        nodes = np.concatenate([self.case_sd * _NODES, self.signal + self.case_sd * _NODES])
        weights = np.concatenate([(1.0 - self.prevalence) * _WEIGHTS, self.prevalence * _WEIGHTS])
        return nodes, weights

    def _category_probabilities(self, shift: FloatArray, sd: float) -> FloatArray:
        """P(grade = k | S) for each severity node and shift: shape (nodes, len(shift), K)."""
        nodes, _ = self._severity_nodes()
        cuts = np.asarray(self.cuts)
        z = (cuts[None, None, :] - nodes[:, None, None] - shift[None, :, None]) / sd
        below = special.ndtr(z)  # P(latent < cut)
        ones = np.ones((*below.shape[:2], 1))
        cumulative = np.concatenate([np.zeros_like(ones), below, ones], axis=2)
        result: FloatArray = np.diff(cumulative, axis=2)
        return result

    def _pair_agreement(
        self, first: FloatArray, second: FloatArray, measure: Measure
    ) -> FloatArray:
        """E_S of the pair score of every (reader of ``first``, reader of ``second``) pair."""
        _, weights = self._severity_nodes()
        k = self.points
        if measure == "binary":
            present = np.arange(1, k + 1) >= self.threshold
            a = first[:, :, present].sum(axis=2)
            b = second[:, :, present].sum(axis=2)
            score = a[:, :, None] * b[:, None, :] + (1 - a)[:, :, None] * (1 - b)[:, None, :]
        elif measure == "exact":
            score = np.einsum("njk,nlk->njl", first, second)
        else:
            grades = np.arange(1, k + 1, dtype=float)
            sq = (grades[:, None] - grades[None, :]) ** 2
            score = -np.einsum("njk,kl,nml->njm", first, sq, second)
        result: FloatArray = np.einsum("n,njl->jl", weights, score)
        return result

    def agreement(
        self,
        readers: ReaderEffects | None = None,
        *,
        measure: Measure = "binary",
    ) -> tuple[float, float, float]:
        """True mean reference-reference, new-reference and new-new pair scores.

        With ``readers`` the values of those readers (fixed readers); without, the values over
        the reader population (random readers). For ``"squared"`` the scores are negative
        squared differences (so ``gamma = a_cc - a_dc`` for every measure).
        """
        if readers is None:
            ref_sd = math.hypot(self.sd_ref, self.reader_sd)
            new_sd = math.sqrt(self.sd_new**2 + self.reader_sd**2 + self.reader_arm_sd**2)
            zero = np.zeros(1)
            p_ref = self._category_probabilities(zero, ref_sd)
            p_new = self._category_probabilities(zero, new_sd)
            return (
                float(self._pair_agreement(p_ref, p_ref, measure)[0, 0]),
                float(self._pair_agreement(p_new, p_ref, measure)[0, 0]),
                float(self._pair_agreement(p_new, p_new, measure)[0, 0]),
            )
        p_ref = self._category_probabilities(readers.u, self.sd_ref)
        p_new = self._category_probabilities(readers.u + readers.v, self.sd_new)
        off = ~np.eye(readers.n_readers, dtype=bool)
        return (
            float(self._pair_agreement(p_ref, p_ref, measure)[off].mean()),
            float(self._pair_agreement(p_new, p_ref, measure)[off].mean()),
            float(self._pair_agreement(p_new, p_new, measure)[off].mean()),
        )

    def gamma(self, readers: ReaderEffects | None = None, *, measure: Measure = "binary") -> float:
        """True excess disagreement (fixed readers with ``readers``, else random readers)."""
        a_cc, a_dc, _ = self.agreement(readers, measure=measure)
        return a_cc - a_dc

    def reader_rate_sd(self) -> float:
        """SD over the reader population of a reader's rate of 'present' calls (reference arm)."""
        nodes, weights = self._severity_nodes()
        c = self.cuts[self.threshold - 2]
        shifts = self.reader_sd * _NODES
        rate = special.ndtr((nodes[:, None] + shifts[None, :] - c) / self.sd_ref)
        per_reader = weights @ rate
        mean = float(_WEIGHTS @ per_reader)
        return float(math.sqrt(max(float(_WEIGHTS @ (per_reader - mean) ** 2), 0.0)))

    def positive_rate(self) -> float:
        """Share of 'present' calls on the reference arm over cases and the reader population."""
        nodes, weights = self._severity_nodes()
        c = self.cuts[self.threshold - 2]
        sd = math.hypot(self.sd_ref, self.reader_sd)
        return float(weights @ special.ndtr((nodes - c) / sd))

    # ---- calibration -------------------------------------------------------------------------

    def with_positive_rate(self, target: float) -> LatentReadModel:
        """The same model with the prevalence set for a rate of 'present' calls of ``target``."""

        def gap(prevalence: float) -> float:
            return replace(self, prevalence=prevalence).positive_rate() - target

        low, high = 1e-4, 1 - 1e-4
        if gap(low) > 0 or gap(high) < 0:
            raise ValueError(f"no prevalence gives a rate of 'present' calls of {target:g}")
        return replace(self, prevalence=optimize.brentq(gap, low, high, xtol=1e-12))

    def with_gamma(
        self,
        target: float,
        *,
        readers: ReaderEffects | None = None,
        measure: Measure = "binary",
    ) -> LatentReadModel:
        """The same model with ``sd_new`` set so that the true gamma equals ``target``.

        Fixed readers when ``readers`` is given, else random readers. Raises ValueError when no
        new-arm noise in (0.02, 50) x ``sd_ref`` gives that gamma.
        """

        def excess(log_sd: float) -> float:
            return replace(self, sd_new=math.exp(log_sd)).gamma(readers, measure=measure) - target

        low, high = math.log(0.02 * self.sd_ref), math.log(50.0 * self.sd_ref)
        if excess(low) > 0 or excess(high) < 0:
            raise ValueError(
                f"no new-arm read noise gives an excess disagreement of {target:g} "
                f"(reachable: {excess(low) + target:.4f} to {excess(high) + target:.4f})"
            )
        root = optimize.brentq(excess, low, high, xtol=1e-12)
        return replace(self, sd_new=math.exp(root))

    def with_agreement(self, target: float) -> LatentReadModel:
        """The same model with ``sd_ref`` (and ``sd_new`` alike) set for a reference-reference
        agreement (random readers, dichotomised) of ``target``."""

        def gap(log_sd: float) -> float:
            sd = math.exp(log_sd)
            return replace(self, sd_ref=sd, sd_new=sd).agreement()[0] - target

        low, high = math.log(1e-3), math.log(20.0)
        if gap(low) < 0 or gap(high) > 0:
            raise ValueError(
                f"no read noise gives a reference-reference agreement of {target:g} "
                f"(reachable: {gap(high) + target:.4f} to {gap(low) + target:.4f})"
            )
        sd = math.exp(optimize.brentq(gap, low, high, xtol=1e-12))
        return replace(self, sd_ref=sd, sd_new=sd)

    def with_reader_rate_sd(self, target: float) -> LatentReadModel:
        """The same model with ``reader_sd`` set so that readers' 'present' rates have SD
        ``target`` (0 gives identical readers)."""
        if target <= 0:
            return replace(self, reader_sd=0.0)

        def gap(sd: float) -> float:
            return replace(self, reader_sd=sd).reader_rate_sd() - target

        if gap(10.0) < 0:
            raise ValueError(f"no reader heterogeneity gives a rate SD of {target:g}")
        return replace(self, reader_sd=optimize.brentq(gap, 0.0, 10.0, xtol=1e-12))

    def calibrated(
        self,
        *,
        gamma: float,
        agreement: float | None = None,
        reader_rate_sd: float | None = None,
        readers: ReaderEffects | None = None,
        measure: Measure = "binary",
    ) -> LatentReadModel:
        """Set reference noise (agreement), reader heterogeneity and new-arm noise (gamma)."""
        model = self
        if reader_rate_sd is not None:
            model = model.with_reader_rate_sd(reader_rate_sd)
        if agreement is not None:
            model = model.with_agreement(agreement)
            if reader_rate_sd is not None:  # the rate SD depends on the noise: refine once more
                model = model.with_reader_rate_sd(reader_rate_sd).with_agreement(agreement)
        return model.with_gamma(gamma, readers=readers, measure=measure)


def simulate_roe_metz(
    rng: np.random.Generator,
    *,
    n_readers: int,
    n_normal: int,
    n_abnormal: int,
    separation: tuple[float, float] = (1.5, 1.5),
    var_r: float = 0.011,
    var_c: float = 0.1,
    var_tr: float = 0.011,
    var_tc: float = 0.1,
    var_rc: float = 0.2,
    var_error: float = 0.6,
) -> tuple[IntArray, FloatArray]:
    """Continuous ratings of two treatments by the Roe-Metz model (Roe & Metz 1997).

    ``X = mu_t * truth + R_j + C_k + (TR)_tj + (TC)_tk + (RC)_jk + e`` with normal terms of the
    given variances (the same for both truth states) and ``mu_t = separation[t]``. The default
    variances are Roe and Metz's "low reader variability" structure scaled to a total of 1.

    Returns
    -------
    truth : numpy.ndarray
        (N,) 0/1, the normal cases first.
    ratings : numpy.ndarray
        (2, J, N).
    """
    n_cases = n_normal + n_abnormal
    truth = np.concatenate([np.zeros(n_normal), np.ones(n_abnormal)]).astype(np.int64)
    mu = np.asarray(separation, dtype=float)[:, None, None] * truth[None, None, :]
    reader = rng.normal(0, math.sqrt(var_r), (1, n_readers, 1))
    case = rng.normal(0, math.sqrt(var_c), (1, 1, n_cases))
    tr = rng.normal(0, math.sqrt(var_tr), (2, n_readers, 1))
    tc = rng.normal(0, math.sqrt(var_tc), (2, 1, n_cases))
    rc = rng.normal(0, math.sqrt(var_rc), (1, n_readers, n_cases))
    error = rng.normal(0, math.sqrt(var_error), (2, n_readers, n_cases))
    ratings: FloatArray = mu + reader + case + tr + tc + rc + error
    return truth, ratings
