"""The multiplicity families: Holm (as statsmodels computes it) and intersection-union."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from analysis.errors import AnalysisError
from analysis.multiplicity import decide, holm


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=15))
@settings(max_examples=40, deadline=None)
def test_holm_is_monotone_and_bounded(p_values):
    adjusted = holm(p_values)
    order = np.argsort(p_values, kind="stable")
    assert all(a >= p for a, p in zip(adjusted, p_values, strict=True))
    assert all(0 <= a <= 1 for a in adjusted)
    assert np.all(np.diff(np.array(adjusted)[order]) >= -1e-15)


def test_holm_equals_statsmodels():
    # statsmodels runs a garbage collection per call: a few cases, ties and ones included
    rng = np.random.default_rng(0)
    cases = [[0.01], [0.04, 0.01, 0.03], [0.02, 0.02, 0.02, 0.5], [1.0, 0.0, 0.3]]
    cases += [list(rng.random(n) ** 3) for n in (5, 12)]
    for p_values in cases:
        expected = multipletests(np.array(p_values), method="holm")[1]
        np.testing.assert_allclose(holm(p_values), expected, atol=1e-12)


def test_holm_family_decisions_use_adjusted_p():
    outcome = decide([0.001, 0.02, 0.03, 0.5], "holm", 0.025)
    assert outcome.adjusted == pytest.approx([0.004, 0.06, 0.06, 0.5])
    assert outcome.rejected == [True, False, False, False]
    assert outcome.claims == outcome.rejected and outcome.joint is None


def test_intersection_union_is_joint_and_unadjusted():
    passing = decide([0.001, 0.02, 0.024], "intersection-union", 0.025)
    assert passing.adjusted == [0.001, 0.02, 0.024] and passing.joint is True
    assert passing.claims == [True, True, True]
    failing = decide([0.001, 0.02, 0.03], "intersection-union", 0.025)
    assert failing.rejected == [True, True, False] and failing.joint is False
    assert failing.claims == [False, False, False]  # no finding is claimed on its own


def test_missing_p_values_count_as_not_rejected_and_bad_family():
    assert decide([None, 0.001], "holm", 0.025).rejected == [False, True]
    assert decide([], "holm", 0.025).joint is None
    with pytest.raises(AnalysisError, match="multiplicity"):
        decide([0.1], "bonferroni", 0.05)
