"""Image quality: Wilcoxon (Pratt), proportional odds, VGC, preferences; hand-checked examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import resampling
from analysis.errors import AnalysisError
from analysis.image_quality import (
    _case_histograms,
    _vgc_bootstrap_loop,
    preference_by_reader,
    preference_proportions,
    proportional_odds,
    vgc,
    vgc_bootstrap,
    wilcoxon_by_reader,
)


def _reads(ref, new, readers=None, finding="quality"):
    """ref/new: (N, J) score arrays -> reads table."""
    ref, new = np.atleast_2d(ref), np.atleast_2d(new)
    readers = readers or [f"r{j}" for j in range(ref.shape[1])]
    rows = []
    for i in range(ref.shape[0]):
        for j, reader in enumerate(readers):
            rows.append((f"c{i}", reader, "conv", finding, float(ref[i, j])))
            rows.append((f"c{i}", reader, "dl", finding, float(new[i, j])))
    return pd.DataFrame(rows, columns=["case", "reader", "arm", "finding", "value"])


def test_wilcoxon_pratt_hand_example():
    # Differences 2, 1, 0, 1, -1, 3. Pratt ranks |d| with the zero (rank 1), then drops it:
    # the three 1s share rank 3, the 2 has rank 5, the 3 rank 6: R+ = 5 + 3 + 3 + 6 = 17, R- = 3.
    ref = np.array([[1, 2, 3, 2, 4, 1]]).T
    new = ref + np.array([[2, 1, 0, 1, -1, 3]]).T
    (result,) = wilcoxon_by_reader(_reads(ref, new), "conv", "dl")
    assert result.statistic == pytest.approx(3.0)
    assert (result.n_better, result.n_worse, result.n_tied) == (4, 1, 1)
    assert result.median_difference == 1.0 and 0 < result.p_value < 1


def test_wilcoxon_all_ties_gives_p_one():
    ref = np.array([[1, 2], [3, 3], [2, 4]])
    results = wilcoxon_by_reader(_reads(ref, ref), "conv", "dl")
    assert [r.reader for r in results] == ["r0", "r1"]
    assert all(r.p_value == 1.0 and r.n_tied == 3 for r in results)


def _ordinal_study(rng, effect, n_cases=80, n_readers=3):
    quality = rng.normal(0, 1, size=(n_cases, 1))
    bias = np.linspace(-0.3, 0.3, n_readers)[None, :]
    cuts = [-1.5, -0.5, 0.5, 1.5]
    ref = np.digitize(quality + bias + rng.logistic(size=(n_cases, n_readers)) * 0.5, cuts) + 1
    new = (
        np.digitize(quality + bias + effect + rng.logistic(size=(n_cases, n_readers)) * 0.5, cuts)
        + 1
    )
    return ref, new


def test_proportional_odds_finds_the_direction_and_is_antisymmetric():
    rng = np.random.default_rng(0)
    ref, new = _ordinal_study(rng, effect=0.8)
    reads = _reads(ref, new)
    result = proportional_odds(reads, "conv", "dl")
    assert result.log_odds_ratio > 0 and result.ci_low > 0 and result.p_value < 0.01
    assert result.odds_ratio == pytest.approx(np.exp(result.log_odds_ratio))
    assert result.n_cases == 80 and result.n_reads == 480 and result.converged
    swapped = proportional_odds(reads, "dl", "conv")
    assert swapped.log_odds_ratio == pytest.approx(-result.log_odds_ratio, abs=1e-3)
    assert swapped.se == pytest.approx(result.se, rel=1e-2)


def test_proportional_odds_fast_logistic_equals_statsmodels_logit():
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    rng = np.random.default_rng(2)
    ref, new = _ordinal_study(rng, effect=0.5, n_cases=50, n_readers=2)
    reads = _reads(ref, new)
    ours = proportional_odds(reads, "conv", "dl", reader_effects=False)
    endog = np.searchsorted(np.unique(reads["value"]), reads["value"])
    exog = pd.DataFrame({"new": (reads["arm"] == "dl").astype(float)})
    fit = OrderedModel(endog, exog, distr="logit").fit(
        method="bfgs", disp=False, maxiter=500, cov_type="cluster",
        cov_kwds={"groups": pd.factorize(reads["case"])[0]},
    )  # fmt: skip
    assert ours.log_odds_ratio == pytest.approx(float(fit.params["new"]), abs=1e-8)
    assert ours.se == pytest.approx(float(fit.bse["new"]), rel=1e-6)


def test_proportional_odds_cluster_errors_differ_from_naive():
    # Ten copies of each case's reads: the case-clustered SE must not shrink like sqrt(10).
    rng = np.random.default_rng(1)
    ref, new = _ordinal_study(rng, effect=0.5, n_cases=40, n_readers=2)
    reads = _reads(ref, new)
    base = proportional_odds(reads, "conv", "dl", reader_effects=False)
    copies = pd.concat([reads.assign(reader=reads["reader"] + f"_{k}") for k in range(10)])
    repeated = proportional_odds(copies, "conv", "dl", reader_effects=False)
    assert repeated.log_odds_ratio == pytest.approx(base.log_odds_ratio, abs=1e-3)
    assert repeated.se == pytest.approx(base.se, rel=0.05)


def test_vgc_hand_example_and_curve():
    # One reader, three cases: reference 1, 2, 3; new 2, 3, 4.
    # P(new > ref) + P(tie) / 2 over the 9 pairs: (1 + .5 + 0) + (1 + 1 + .5) + 3 = 7 / 9.
    result = vgc(_reads([[1], [2], [3]], [[2], [3], [4]]), "conv", "dl", n_boot=50, rng=rng0())
    assert result.auc == pytest.approx(7 / 9)
    assert result.curve_x[0] == 0 and result.curve_x[-1] == 1 and result.curve_y[-1] == 1
    area = np.trapezoid(result.curve_y, result.curve_x)
    assert area == pytest.approx(result.auc)
    assert result.thresholds == [4.0, 3.0, 2.0, 1.0]


def rng0():
    return np.random.default_rng(0)


@given(st.integers(0, 10_000), st.integers(3, 20), st.integers(1, 3))
@settings(max_examples=30, deadline=None)
def test_vgc_identical_arms_give_half_and_area_equals_auc(seed, n_cases, n_readers):
    rng = np.random.default_rng(seed)
    ref = rng.integers(1, 6, size=(n_cases, n_readers))
    same = vgc(_reads(ref, ref), "conv", "dl", n_boot=20, rng=rng)
    assert same.auc == pytest.approx(0.5)
    new = rng.integers(1, 6, size=(n_cases, n_readers))
    result = vgc(_reads(ref, new), "conv", "dl", n_boot=20, rng=rng)
    assert 0 <= result.auc <= 1
    assert np.trapezoid(result.curve_y, result.curve_x) == pytest.approx(result.auc)


def test_vgc_bootstrap_vectorised_equals_loop():
    rng = np.random.default_rng(4)
    ref, new = _ordinal_study(rng, effect=0.4, n_cases=20, n_readers=3)
    reads = _reads(ref, new)
    scores = np.unique(reads["value"])
    h_ref, h_new, _ = _case_histograms(reads, "conv", "dl", scores)
    indices = resampling.case_indices(rng, 20, 30)
    vectorised = vgc_bootstrap(h_ref, h_new, scores, resampling.index_counts(indices, 20))
    np.testing.assert_allclose(
        vectorised, _vgc_bootstrap_loop(reads, "conv", "dl", indices), atol=1e-12
    )


def test_vgc_per_reader_and_ci():
    rng = np.random.default_rng(5)
    ref, new = _ordinal_study(rng, effect=1.0, n_cases=60)
    result = vgc(_reads(ref, new), "conv", "dl", reader="r1", n_boot=300, rng=rng)
    assert result.reader == "r1"
    assert result.ci_low < result.auc < result.ci_high and result.auc > 0.5


def test_preference_wilson_hand_example():
    # 7 of 10: Wilson 95% interval 0.3968 to 0.8922 (z = 1.96).
    values = ["dl"] * 7 + ["conv"] * 2 + ["equal"]
    results = preference_proportions(values, ["dl", "conv", "equal"])
    dl = results[0]
    assert (dl.count, dl.n, dl.proportion) == (7, 10, 0.7)
    assert dl.ci_low == pytest.approx(0.3968, abs=1e-4)
    assert dl.ci_high == pytest.approx(0.8922, abs=1e-4)
    assert sum(r.count for r in results) == 10


def test_preference_by_reader():
    answers = pd.DataFrame({"reader": ["a", "a", "b", "b"], "value": ["dl", "equal", "conv", "dl"]})
    results = preference_by_reader(answers, ["dl", "conv", "equal"])
    assert len(results) == 9
    assert [r.reader for r in results[3:6]] == ["a"] * 3
    assert results[0].count == 2 and results[0].reader is None


def test_bad_inputs():
    reads = _reads([[1], [2]], [[2], [3]])
    with pytest.raises(AnalysisError, match="unknown preference"):
        preference_proportions(["dl", "left"], ["dl", "conv", "equal"])
    with pytest.raises(AnalysisError, match="unknown arm"):
        wilcoxon_by_reader(reads, "conv", "ai")
    with pytest.raises(AnalysisError, match="one score only"):
        proportional_odds(_reads([[2], [2]], [[2], [2]]), "conv", "dl")
    with pytest.raises(AnalysisError, match="not a number"):
        vgc(
            reads.assign(value=reads["value"].astype(object).where(reads.index != 0, "good")),
            "conv",
            "dl",
            rng=rng0(),
        )
    with pytest.raises(AnalysisError, match="unknown reader"):
        vgc(reads, "conv", "dl", reader="zz", rng=rng0())
    with pytest.raises(AnalysisError, match="name one"):
        vgc(pd.concat([reads, reads.assign(finding="noise")]), "conv", "dl", rng=rng0())


# ---- effect sizes and the two-way proportional-odds bootstrap (issue 13) ------------------------


def test_rank_biserial_pratt_hand_example():
    from analysis.image_quality import rank_biserial

    # The Pratt example above: R+ = 17, R- = 3, so r = (17 - 3) / (17 + 3) = 0.7.
    diff = np.array([[2.0, 1.0, 0.0, 1.0, -1.0, 3.0]])
    assert rank_biserial(diff)[0] == pytest.approx(0.7)
    assert np.isnan(rank_biserial(np.zeros((1, 4)))[0])
    ref = np.array([[1, 2, 3, 2, 4, 1]]).T
    new = np.array([[3, 3, 3, 3, 3, 4]]).T
    result = wilcoxon_by_reader(_reads(ref, new), "conv", "dl", n_boot=200,
                                rng=np.random.default_rng(0))[0]  # fmt: skip
    assert result.rank_biserial == pytest.approx(0.7)
    assert result.rank_biserial_ci_low <= 0.7 <= result.rank_biserial_ci_high


def test_rank_biserial_bootstrap_equals_ranking_each_resample():
    from analysis.image_quality import rank_biserial, rank_biserial_bootstrap

    rng = np.random.default_rng(1)
    diff = rng.integers(-3, 4, 60).astype(float)
    indices = resampling.case_indices(rng, 60, 200)
    np.testing.assert_allclose(
        rank_biserial_bootstrap(diff, resampling.index_counts(indices, 60)),
        rank_biserial(diff[indices]),
        atol=1e-12,
    )


def test_two_way_score_bootstrap_matches_refitting_resamples():
    # The one-step (score) bootstrap against refitting the model on each two-way resample
    # (readers drawn twice become two readers): the SDs agree within resampling noise.
    from analysis.image_quality import proportional_odds_two_way

    rng = np.random.default_rng(2)
    ref, new = _ordinal_study(rng, effect=0.6, n_cases=40, n_readers=4)
    reads = _reads(ref, new)
    _, fast = proportional_odds_two_way(reads, "conv", "dl", n_boot=2000, rng=rng)
    refits = []
    cases = sorted(set(reads["case"]))
    readers = sorted(set(reads["reader"]))
    by_case = {c: part for c, part in reads.groupby("case")}
    for _ in range(25):  # a refit costs a BFGS fit: few, with a tolerance to match
        picked = rng.choice(readers, size=len(readers))
        chosen = rng.choice(cases, size=len(cases))
        parts = []
        for k, case in enumerate(chosen):
            part = by_case[case]
            for m, reader in enumerate(picked):
                rows = part[part["reader"] == reader]
                parts.append(rows.assign(case=f"{case}_{k}", reader=f"{reader}_{m}"))
        refits.append(proportional_odds(pd.concat(parts), "conv", "dl").log_odds_ratio)
    assert fast.se == pytest.approx(np.std(refits, ddof=1), rel=0.35)
    assert fast.ci_low < fast.log_odds_ratio < fast.ci_high
    assert (fast.p_value < 0.05) == (fast.ci_low > 0 or fast.ci_high < 0)


def test_two_way_bootstrap_warns_when_clusters_are_few():
    from analysis.image_quality import proportional_odds_two_way

    rng = np.random.default_rng(3)
    ref, new = _ordinal_study(rng, effect=0.5, n_cases=20, n_readers=3)
    _, result = proportional_odds_two_way(_reads(ref, new), "conv", "dl", n_boot=200, rng=rng)
    assert any("only 3 readers" in w for w in result.warnings)
    assert any("only 20 cases" in w for w in result.warnings)
