"""The latent-variable study model: quadrature truths against simulation, calibration."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.interchangeability import pair_scores_from_arrays
from analysis.simulation import LatentReadModel


@pytest.mark.parametrize("measure", ["binary", "exact", "squared"])
def test_fixed_reader_truth_matches_a_large_simulation(measure):
    model = LatentReadModel(n_readers=4, reader_sd=0.4, reader_arm_sd=0.2, sd_new=0.8)
    rng = np.random.default_rng(1)
    readers = model.draw_readers(rng)
    ref, new, _ = model.simulate(rng, 20_000, readers)
    scores = pair_scores_from_arrays(
        ref[0].astype(float), new[0].astype(float), threshold=3, measure=measure
    )
    a_cc, a_dc, _ = scores.per_case()
    d = a_cc - a_dc
    se = d.std(ddof=1) / np.sqrt(d.size)
    assert d.mean() == pytest.approx(model.gamma(readers, measure=measure), abs=4 * se)


def test_random_reader_truth_is_the_mean_over_reader_draws():
    model = LatentReadModel(n_readers=2, reader_sd=0.5, reader_arm_sd=0.3, sd_new=0.7)
    rng = np.random.default_rng(2)
    values = [model.gamma(model.draw_readers(rng)) for _ in range(800)]
    # two readers: the fixed-reader truth of a random pair averages to the population value
    assert np.mean(values) == pytest.approx(model.gamma(), abs=4 * np.std(values) / np.sqrt(800))


def test_calibration_round_trips():
    model = LatentReadModel(n_readers=6).calibrated(gamma=0.02, agreement=0.87, reader_rate_sd=0.06)
    a_cc, a_dc, _ = model.agreement()
    assert a_cc == pytest.approx(0.87, abs=1e-6)
    assert a_cc - a_dc == pytest.approx(0.02, abs=1e-9)
    assert model.reader_rate_sd() == pytest.approx(0.06, abs=2e-3)
    readers = model.draw_readers(np.random.default_rng(0))
    fixed = model.with_gamma(0.05, readers=readers)
    assert fixed.gamma(readers) == pytest.approx(0.05, abs=1e-9)


def test_identical_arms_have_zero_gamma_and_impossible_targets_fail():
    model = LatentReadModel()
    assert model.gamma() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="excess disagreement"):
        model.with_gamma(0.9)
    with pytest.raises(ValueError, match="prevalence"):
        LatentReadModel(prevalence=1.0)
