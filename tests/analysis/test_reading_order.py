"""Reading order and fatigue: the GEE against statsmodels, an injected drift is detected."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from analysis.reading_order import (
    available_covariates,
    drift_table,
    gee_independence,
    order_effects,
    read_table,
)
from analysis.simulated_study import simulate_answers
from studies.protocol import parse_protocol
from tests.analysis.test_report import SMALL


@pytest.mark.parametrize("binary", [True, False])
def test_gee_independence_equals_statsmodels(binary):
    rng = np.random.default_rng(0)
    n, groups = 2000, rng.integers(0, 150, 2000)
    design = np.column_stack([np.ones(n), rng.normal(size=n), rng.integers(0, 2, n)])
    effect = rng.normal(size=150)[groups]
    if binary:
        y = (rng.random(n) < 1 / (1 + np.exp(-(0.4 * design[:, 1] + effect)))).astype(float)
        family = sm.families.Binomial()
    else:
        y = design @ [1.0, 0.5, -0.3] + effect + rng.normal(size=n)
        family = sm.families.Gaussian()
    ours, se = gee_independence(y, design, groups, binary=binary)
    fit = sm.GEE(y, design, groups=groups, family=family,
                 cov_struct=sm.cov_struct.Independence()).fit()  # fmt: skip
    np.testing.assert_allclose(ours, fit.params, atol=1e-8)
    np.testing.assert_allclose(se, fit.bse, rtol=1e-6)


def _order_effects(fatigue: float, seed: int):
    protocol = parse_protocol(SMALL, "small.toml")
    study = simulate_answers(protocol, 120, np.random.default_rng(seed), fatigue=fatigue)
    frame = read_table(
        study.answers, questions=["likelihood", "quality_overall"], truth=study.truth,
        threshold=3, interchangeability_question="likelihood",
    )  # fmt: skip
    outcomes = {
        "correct": frame["correct"].notna(),
        "grade": frame["question"] == "likelihood",
    }
    return frame, order_effects(frame, outcomes, covariates=available_covariates(frame))


def test_injected_fatigue_is_detected_and_none_is_not():
    frame, effects = _order_effects(fatigue=2.0, seed=3)
    assert set(available_covariates(frame)) == {"position", "session", "elapsed", "active"}
    by = {(e.outcome, e.covariate): e for e in effects}
    assert by[("correct", "position")].detected
    assert by[("correct", "position")].estimate < 0  # later reads are less often correct
    _, calm = _order_effects(fatigue=0.0, seed=3)
    assert not any(e.detected for e in calm)
    assert all(0 <= e.p_value <= e.p_adjusted <= 1 for e in calm)


def test_drift_table_bins_positions_per_reader_and_session():
    frame, _ = _order_effects(fatigue=0.0, seed=1)
    table = drift_table(frame[frame["correct"].notna()], "correct", bins=4)
    assert set(table.columns) == {"reader", "session", "position_bin", "correct", "n"}
    assert table.groupby(["reader", "session"]).size().max() <= 4
    assert table["correct"].between(0, 1).all()


def test_answers_without_times_leave_those_covariates_out():
    protocol = parse_protocol(SMALL, "small.toml")
    answers = simulate_answers(protocol, 20, np.random.default_rng(0)).answers
    frame = read_table(
        answers.drop(columns=["first_answered_at", "active_ms"]), questions=["likelihood"]
    )
    assert available_covariates(frame) == ["position", "session"]
    assert isinstance(frame, pd.DataFrame)


def test_sessions_of_a_few_minutes_leave_time_into_the_session_out():
    """Scripted reads take seconds: a slope per hour would be an extrapolation."""
    protocol = parse_protocol(SMALL, "small.toml")
    answers = simulate_answers(protocol, 20, np.random.default_rng(0)).answers
    times = pd.to_datetime(answers["first_answered_at"], utc=True)
    first = times.min()
    squeezed = answers.assign(first_answered_at=(first + (times - first) / 10_000).astype(str))
    assert "elapsed" in available_covariates(read_table(answers, questions=["likelihood"]))
    frame = read_table(squeezed, questions=["likelihood"])
    assert "elapsed" not in available_covariates(frame)
    assert "position" in available_covariates(frame)
