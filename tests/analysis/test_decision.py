"""The deciding intervals: consistency with their p-values, the OR pieces, small simulations.

The large simulations that chose the rules (type I error at the margin, coverage over reader
heterogeneity) are in benchmarks/test_bench_decision.py; these are small, fast and seeded.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from analysis import decision
from analysis.errors import AnalysisError
from analysis.planning import _crossed_case_values
from analysis.simulation import LatentReadModel


def _skewed(rng: np.random.Generator, n: int) -> np.ndarray:
    """Per-case values like excess disagreements: half zero, a right-skewed rest."""
    return np.where(rng.random(n) < 0.5, 0.0, rng.gamma(0.8, 0.08, n) - 0.03)


@given(st.integers(0, 10_000), st.integers(8, 60), st.floats(-0.05, 0.15))
@settings(max_examples=25, deadline=None)
def test_calibrated_p_and_bound_agree(seed, n, margin):
    rng = np.random.default_rng(seed)
    d = _skewed(rng, n)
    interval = decision.calibrated_bootstrap_t(d, margin, rng=rng, n_boot=300, n_inner=50)
    assert interval.ci_low <= interval.estimate <= interval.ci_high or interval.se == 0
    assert (interval.p_value < decision.ALPHA) == (interval.ci_high < margin)
    assert 0.0 <= interval.p_value <= 1.0


def test_calibrated_interval_is_wider_upwards_for_right_skewed_values():
    # The Wald bound is too low on right-skewed values: the calibrated one lies above it.
    rng = np.random.default_rng(1)
    d = _skewed(rng, 80)
    interval = decision.calibrated_bootstrap_t(d, 0.05, rng=rng)
    wald_high = d.mean() + stats.norm.ppf(0.975) * d.std(ddof=1) / math.sqrt(80)
    assert interval.ci_high > wald_high
    assert interval.interval == "calibrated bootstrap-t"


def test_calibrated_constant_values_give_the_point():
    interval = decision.calibrated_bootstrap_t(np.zeros(20), 0.05, rng=np.random.default_rng(0))
    assert (interval.ci_low, interval.ci_high, interval.p_value) == (0.0, 0.0, 0.0)
    above = decision.calibrated_bootstrap_t(np.full(20, 0.1), 0.05, rng=np.random.default_rng(0))
    assert above.p_value == 1.0


def test_calibrated_is_reproducible_with_the_same_seed():
    d = _skewed(np.random.default_rng(3), 40)
    first = decision.calibrated_bootstrap_t(d, 0.05, rng=np.random.default_rng(9))
    second = decision.calibrated_bootstrap_t(d, 0.05, rng=np.random.default_rng(9))
    assert first == second


def test_small_p_values_have_no_floor():
    # Far below the margin: the smoothed calibration gives p-values small enough for Holm
    # over a dozen findings (the empirical shares had a floor near 1 / n_inner).
    rng = np.random.default_rng(4)
    d = _skewed(rng, 150) - 0.05
    interval = decision.calibrated_bootstrap_t(d, 0.05, rng=rng)
    assert interval.p_value < 0.025 / 12


def test_pseudovalue_variance_by_hand():
    rng = np.random.default_rng(5)
    d = rng.normal(0.02, 0.1, 30)
    leave_out = d[:, None] + rng.normal(0, 0.02, (30, 4))
    got = decision.pseudovalue_variance(d, leave_out)
    psi = 4 * d[:, None] - 3 * leave_out
    ms_r = np.var(psi.mean(axis=0), ddof=1)
    cov = np.cov(psi, rowvar=False) / 30
    cov2 = cov[~np.eye(4, dtype=bool)].mean()
    assert got.ms_r == pytest.approx(ms_r)
    assert got.cov2 == pytest.approx(cov2)
    assert got.total == pytest.approx(ms_r / 4 + max(cov2, 0.0))
    den = ms_r + 4 * max(cov2, 0.0)
    assert got.df == pytest.approx(den**2 / (ms_r**2 / 3))
    assert got.case_var == pytest.approx(np.var(d, ddof=1) / 30)


def test_pseudovalues_of_a_crossed_design_average_to_gamma():
    # For the excess-disagreement U-statistic the reader pseudovalues average to gamma.
    model = LatentReadModel(n_readers=5)
    rng = np.random.default_rng(6)
    ref, new, _ = model.simulate(rng, 40, model.draw_readers(rng))
    d, leave_out = _crossed_case_values(ref, new, 3)
    got = decision.pseudovalue_variance(d[0], leave_out[0])
    assert got.pseudovalues.mean() == pytest.approx(d[0].mean(), abs=1e-12)


def test_random_reader_interval_is_never_inside_the_fixed_one():
    rng = np.random.default_rng(7)
    for _ in range(20):
        d = _skewed(rng, 50)
        leave_out = d[:, None] + rng.normal(0, 0.01, (50, 6))
        fixed = decision.calibrated_bootstrap_t(d, 0.05, rng=rng, n_boot=300, n_inner=50)
        interval, _ = decision.random_reader_interval(d, leave_out, 0.05, fixed)
        assert interval.ci_high >= fixed.ci_high and interval.ci_low <= fixed.ci_low
        assert interval.p_value >= fixed.p_value
        assert (interval.p_value < decision.ALPHA) == (interval.ci_high < 0.05)


def test_random_readers_need_three():
    with pytest.raises(AnalysisError, match="three readers"):
        decision.pseudovalue_variance(np.zeros(5), np.zeros((5, 2)))


def test_fixed_reader_type_one_error_near_the_nominal_level_small():
    # 200 studies at the margin (true gamma = 0.05 for these readers): the calibrated bound
    # declares interchangeability in about 2.5% of them (the benchmark uses 8000 studies).
    rng = np.random.default_rng(2024)
    model = LatentReadModel(n_readers=6)
    readers = model.draw_readers(rng)
    at_margin = model.with_gamma(0.05, readers=readers)
    ref, new, _ = at_margin.simulate(rng, 80, readers, n_studies=200)
    d, _ = _crossed_case_values(ref, new, 3)
    declared = sum(
        decision.calibrated_bootstrap_t(row, 0.05, rng=rng, n_boot=300, n_inner=80).p_value < 0.025
        for row in d
    )
    assert declared / 200 <= 0.06  # 2.5% nominal; 0.06 is about 3 MC SEs above


def test_random_reader_coverage_small():
    # 300 studies with readers drawn anew: the random-reader interval covers the population
    # gamma in about 95-97% of them (benchmarks: 94.7-97.3% over heterogeneity, J = 4-10).
    rng = np.random.default_rng(11)
    model = LatentReadModel(n_readers=5, reader_sd=0.5, reader_arm_sd=0.3).with_gamma(0.03)
    truth = model.gamma()
    hits = 0
    for _ in range(300):
        ref, new, _ = model.simulate(rng, 60, model.draw_readers(rng))
        d, leave_out = _crossed_case_values(ref, new, 3)
        interval, _ = decision.hillis_t_interval(d[0], leave_out[0], 0.05)
        hits += interval.ci_low <= truth <= interval.ci_high
    assert 0.92 <= hits / 300 <= 0.995
