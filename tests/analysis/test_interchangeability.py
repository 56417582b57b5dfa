"""Interchangeability (Obuchowski 2014): worked example, simulations, bad inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.multitest import multipletests

from analysis import resampling
from analysis.errors import AnalysisError
from analysis.interchangeability import (
    _Z975,
    _bootstrap_loop,
    case_bootstrap,
    excess_disagreement,
    gee_excess_disagreement,
    interchangeability_by_finding,
    pair_scores,
    pair_scores_from_arrays,
    random_reader_variance,
    two_way_bootstrap,
)


def reads_frame(ref: np.ndarray, new: np.ndarray, finding: str = "f") -> pd.DataFrame:
    """Crossed design: ref/new are (N, J) arrays of the same readers."""
    rows = []
    for i in range(ref.shape[0]):
        for j in range(ref.shape[1]):
            rows.append((f"c{i}", f"r{j}", "ref", finding, float(ref[i, j]), 1))
            rows.append((f"c{i}", f"r{j}", "new", finding, float(new[i, j]), 1))
    return pd.DataFrame(rows, columns=["case", "reader", "arm", "finding", "value", "read"])


def tavr_reads() -> pd.DataFrame:
    """A data set with exactly the TAVR agreement counts of Obuchowski 2014.

    109 patients; two readers with the reference method (manual) agree on 103; two readers with
    the new method (semiautomated) give 4 new-reference pairs per patient, 382 of 436 agreeing.
    Construction: reference readers disagree on 6 patients (each new read agrees with exactly one
    reference read there: 12 agreements), and on 21 of the other 103 patients one new reader
    calls the opposite (2 disagreements each): 412 - 42 + 12 = 382.
    """
    rows = []
    for i in range(109):
        reads = {
            ("m1", "manual"): 1,
            ("m2", "manual"): 0 if i < 6 else 1,
            ("s1", "semi"): 0 if 6 <= i < 17 else 1,
            ("s2", "semi"): 0 if 17 <= i < 27 else 1,
        }
        for (reader, arm), value in reads.items():
            rows.append((f"p{i:03d}", reader, arm, "valve_size", value))
    return pd.DataFrame(rows, columns=["case", "reader", "arm", "finding", "value"])


def test_tavr_worked_example_reproduces_published_gamma():
    result = excess_disagreement(tavr_reads(), "manual", "semi", rng=np.random.default_rng(0))
    assert result.a_rr == pytest.approx(103 / 109, abs=1e-12)
    assert result.a_tr == pytest.approx(382 / 436, abs=1e-12)
    assert round(result.excess_disagreement, 4) == 0.0688
    assert result.n_cases == 109 and result.n_readers == 4
    # gamma = 0.0688 > margin 0.05: not interchangeable, as in the paper.
    assert not result.interchangeable
    assert result.ci_low < 0.0688 < result.ci_high


def test_identical_arms_give_exactly_zero():
    rng = np.random.default_rng(3)
    ref = rng.integers(1, 6, size=(30, 4)).astype(float)
    for readers in ("fixed", "random"):
        result = excess_disagreement(
            reads_frame(ref, ref.copy()),
            "ref",
            "new",
            threshold=3,
            readers=readers,
            n_boot=200,
            rng=np.random.default_rng(0),
        )
        assert result.excess_disagreement == 0.0
        assert result.se == 0.0
        assert result.interchangeable


@given(
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=2, max_value=5),
    st.integers(min_value=2, max_value=12),
)
@settings(max_examples=40, deadline=None)
def test_identical_arms_zero_property(seed, n_readers, n_cases):
    ref = np.random.default_rng(seed).integers(0, 3, size=(n_cases, n_readers)).astype(float)
    scores = pair_scores_from_arrays(ref, ref.copy(), measure="exact")
    a_cc, a_dc, _ = scores.per_case()
    assert np.all(a_cc - a_dc == 0.0)


def test_injected_disagreement_is_recovered():
    # Reference readers agree perfectly; each new read flips with probability q independently,
    # so A_CC = 1 and E[A_DC] = 1 - q: the true excess disagreement is q.
    rng = np.random.default_rng(11)
    q, n_cases, n_readers = 0.08, 3000, 4
    truth = rng.integers(0, 2, size=n_cases).astype(float)
    ref = np.repeat(truth[:, None], n_readers, axis=1)
    flips = rng.random((n_cases, n_readers)) < q
    new = np.where(flips, 1.0 - ref, ref)
    result = excess_disagreement(
        reads_frame(ref, new), "ref", "new", n_boot=200, rng=np.random.default_rng(1)
    )
    assert result.a_rr == 1.0
    assert abs(result.excess_disagreement - q) < 3 * result.se
    assert result.ci_low < q < result.ci_high


# ---- simulation: coverage of the 95% intervals -------------------------------------------------

_CLASS_P = np.array([0.3, 0.2, 0.2, 0.3])  # case classes: clear neg, borderline neg/pos, clear pos
_BASE_REF = np.array([0.05, 0.3, 0.7, 0.95])  # P(read positive | class) on the reference arm
_SHIFT_NEW = np.array([0.05, 0.15, -0.15, -0.05])  # the new arm blurs the borderline cases


def _draw_readers(rng, n_readers):
    """Reader-specific P(positive | class) per arm: logit shift per reader, new arm shifted."""
    logit = np.log(_BASE_REF / (1 - _BASE_REF))
    u = rng.normal(0.0, 0.6, n_readers)
    p_ref = 1 / (1 + np.exp(-(logit[None, :] + u[:, None])))
    p_new = np.clip(p_ref + _SHIFT_NEW + rng.normal(0, 0.05, (n_readers, 4)), 0.01, 0.99)
    return p_ref, p_new


def _agree(p, q):
    return p[:, None, :] * q[None, :, :] + (1 - p[:, None, :]) * (1 - q[None, :, :])


def _true_gamma_fixed(p_ref, p_new):
    off = ~np.eye(p_ref.shape[0], dtype=bool)
    a_cc = _agree(p_ref, p_ref)[off].mean(axis=0)
    a_dc = _agree(p_new, p_ref)[off].mean(axis=0)
    return float(((a_cc - a_dc) * _CLASS_P).sum())


def _simulate_study(rng, p_ref, p_new, n_cases):
    cls = rng.choice(4, size=n_cases, p=_CLASS_P)
    ref = (rng.random((n_cases, p_ref.shape[0])) < p_ref[:, cls].T).astype(float)
    new = (rng.random((n_cases, p_ref.shape[0])) < p_new[:, cls].T).astype(float)
    return ref, new


def test_fixed_reader_intervals_cover_93_to_97_percent():
    rng = np.random.default_rng(2024)
    n_studies, n_cases, n_readers = 1000, 60, 5
    p_ref, p_new = _draw_readers(rng, n_readers)
    truth = _true_gamma_fixed(p_ref, p_new)
    hits = 0
    for _ in range(n_studies):
        scores = pair_scores_from_arrays(*_simulate_study(rng, p_ref, p_new, n_cases))
        a_cc, a_dc, _ = scores.per_case()
        d = a_cc - a_dc
        se = d.std(ddof=1) / np.sqrt(n_cases)
        hits += abs(d.mean() - truth) <= _Z975 * se
    assert 0.93 <= hits / n_studies <= 0.97


def test_random_reader_intervals_cover_at_least_94_percent():
    # The Hillis t interval on the reader pseudovalues is a little conservative with few readers
    # (benchmarks/RESULTS.md: 94.7-97.3% over reader heterogeneity and J = 4, 6, 10).
    # Random readers: the true value is the population value, where two different readers are
    # independent draws, so only the mean P(positive | class) over the reader population matters.
    population_ref, population_new = _draw_readers(np.random.default_rng(99), 200_000)
    m_ref, m_new = population_ref.mean(axis=0), population_new.mean(axis=0)
    a_cc = m_ref**2 + (1 - m_ref) ** 2
    a_dc = m_new * m_ref + (1 - m_new) * (1 - m_ref)
    truth = float(((a_cc - a_dc) * _CLASS_P).sum())
    rng = np.random.default_rng(7)
    n_studies, n_cases, n_readers = 1000, 60, 5
    hits = 0
    for _ in range(n_studies):
        p_ref, p_new = _draw_readers(rng, n_readers)
        scores = pair_scores_from_arrays(*_simulate_study(rng, p_ref, p_new, n_cases))
        a_cc_i, a_dc_i, _ = scores.per_case()
        variance = random_reader_variance(scores)
        crit = stats.t.ppf(0.975, variance.df)
        hits += abs((a_cc_i - a_dc_i).mean() - truth) <= crit * np.sqrt(variance.total)
    assert 0.94 <= hits / n_studies <= 0.985


def test_two_way_bootstrap_is_wider_than_the_variance_components():
    # Documented behaviour: the two-way bootstrap counts the reader-by-case noise more than once.
    rng = np.random.default_rng(5)
    p_ref, p_new = _draw_readers(rng, 5)
    scores = pair_scores_from_arrays(*_simulate_study(rng, p_ref, p_new, 80))
    boot = two_way_bootstrap(
        scores, resampling.case_counts(rng, 80, 1000), resampling.reader_counts(rng, 5, 1000)
    )
    assert np.nanstd(boot) > np.sqrt(random_reader_variance(scores).total)


# ---- estimators and their standard errors ------------------------------------------------------


def test_jackknife_se_equals_sd_over_sqrt_n():
    rng = np.random.default_rng(8)
    ref = rng.integers(0, 2, size=(25, 3)).astype(float)
    new = np.where(rng.random((25, 3)) < 0.2, 1 - ref, ref)
    reads = reads_frame(ref, new)
    result = excess_disagreement(reads, "ref", "new", n_boot=50, rng=np.random.default_rng(0))
    leave_one_out = np.array(
        [
            excess_disagreement(
                reads[reads["case"] != f"c{i}"], "ref", "new", n_boot=1, rng=rng
            ).excess_disagreement
            for i in range(25)
        ]
    )
    assert resampling.jackknife_se(leave_one_out) == pytest.approx(result.se, rel=1e-12)
    scores = pair_scores(reads, "ref", "new")
    a_cc, a_dc, _ = scores.per_case()
    d = a_cc - a_dc
    assert result.se == pytest.approx(d.std(ddof=1) / np.sqrt(25), rel=1e-12)
    assert resampling.jackknife_se(resampling.jackknife_means(d)) == pytest.approx(result.se)


def test_vectorised_bootstraps_equal_the_plain_loop():
    rng = np.random.default_rng(12)
    ref = rng.integers(1, 6, size=(15, 4)).astype(float)
    new = np.clip(ref + rng.integers(-1, 2, size=ref.shape), 1, 5)
    reads = reads_frame(ref, new)
    scores = pair_scores(reads, "ref", "new", threshold=3)
    indices = resampling.case_indices(rng, 15, 40)
    counts = resampling.index_counts(indices, 15)
    readers = resampling.reader_counts(rng, 4, 40)
    loop_case = _bootstrap_loop(reads, "ref", "new", indices, threshold=3)
    np.testing.assert_allclose(case_bootstrap(scores, counts), loop_case, atol=1e-12)
    loop_two_way = _bootstrap_loop(reads, "ref", "new", indices, readers, threshold=3)
    np.testing.assert_allclose(two_way_bootstrap(scores, counts, readers), loop_two_way, atol=1e-12)


def test_case_counts_are_drawn_once_per_size_and_shared():
    draws = resampling.CaseCounts(np.random.default_rng(0), 30)
    first = draws(12)
    assert first is draws(12) and first.shape == (30, 12)
    assert np.all(first.sum(axis=1) == 12)
    assert draws(13).shape == (30, 13)
    rng = np.random.default_rng(1)
    reads = reads_frame(rng.integers(0, 2, (12, 3)), rng.integers(0, 2, (12, 3)))
    with pytest.raises(AnalysisError, match="case_counts holds 30"):
        excess_disagreement(reads, "ref", "new", n_boot=20, rng=rng, case_counts=draws)


def test_two_way_bootstrap_never_pairs_a_reader_with_its_copy():
    # Every resample that holds copies of one reader only has no pair: NaN, not agreement 1.
    scores = pair_scores_from_arrays(np.array([[0.0, 1.0, 1.0]] * 4), np.array([[1.0, 0, 1]] * 4))
    counts = np.full((1, 4), 1.0)
    only_reader_0 = np.array([[3.0, 0.0, 0.0]])
    assert np.isnan(two_way_bootstrap(scores, counts, only_reader_0)[0])
    two_copies = np.array([[2.0, 1.0, 0.0]])
    # pairs (0,1) x2 and (1,0) x2 only: A_CC = 0, A_DC = mean(1{1=1}, 1{0=0}) = 1.
    assert two_way_bootstrap(scores, counts, two_copies)[0] == pytest.approx(-1.0)


def test_gee_form_matches_the_per_case_estimator():
    reads = tavr_reads()
    independence = gee_excess_disagreement(
        reads, "manual", "semi", working_correlation="independence"
    )
    assert independence.estimate == pytest.approx(103 / 109 - 382 / 436, abs=1e-10)
    exchangeable = gee_excess_disagreement(reads, "manual", "semi")
    assert exchangeable.estimate == pytest.approx(independence.estimate, abs=0.01)
    fixed = excess_disagreement(reads, "manual", "semi", n_boot=10, rng=np.random.default_rng(0))
    assert independence.se == pytest.approx(fixed.se, rel=0.1)


def test_hand_computed_three_reader_case():
    # One case, readers r0..r2: reference 1,1,0; new 1,0,0.
    # Ordered pairs j != j': A_CC = (1 + 0 + 1 + 0 + 0 + 0) / 6 = 2/6
    # A_DC = new_j vs ref_k: (0,1):1 (0,2):0 (1,0):0 (1,2):1 (2,0):0 (2,1):0 -> 2/6.
    # A_DD: new 1,0,0 -> pairs (1,2),(2,1) agree: 2/6.
    scores = pair_scores_from_arrays(np.array([[1.0, 1.0, 0.0]]), np.array([[1.0, 0.0, 0.0]]))
    a_cc, a_dc, a_dd = scores.per_case()
    assert (a_cc[0], a_dc[0], a_dd[0]) == pytest.approx((2 / 6, 2 / 6, 2 / 6))
    # Squared-difference index, ordinal 1..5: reference 5,4,1; new 5,3,1.
    sq = pair_scores_from_arrays(
        np.array([[5.0, 4.0, 1.0]]), np.array([[5.0, 3.0, 1.0]]), measure="squared"
    )
    c, d, _ = sq.per_case()
    # mean (ref_j - ref_k)^2 = 2 * (1 + 16 + 9) / 6; mean (new_j - ref_k)^2 over
    # (0,1) (0,2) (1,0) (1,2) (2,0) (2,1) = (1 + 16 + 4 + 4 + 16 + 9) / 6
    assert -c[0] == pytest.approx(52 / 6)
    assert -d[0] == pytest.approx(50 / 6)


def test_squared_and_exact_measures_in_the_result():
    rng = np.random.default_rng(4)
    ref = rng.integers(1, 6, size=(30, 3)).astype(float)
    new = np.clip(ref + rng.integers(-1, 2, size=ref.shape), 1, 5)
    reads = reads_frame(ref, new)
    squared = excess_disagreement(
        reads, "ref", "new", measure="squared", n_boot=50, rng=np.random.default_rng(0)
    )
    assert squared.excess_disagreement == pytest.approx(squared.a_tr - squared.a_rr)
    assert squared.a_rr >= 0 and squared.a_tr >= 0
    exact = excess_disagreement(
        reads, "ref", "new", measure="exact", n_boot=50, rng=np.random.default_rng(0)
    )
    threshold_ignored = excess_disagreement(
        reads, "ref", "new", measure="exact", threshold=3, n_boot=50, rng=np.random.default_rng(0)
    )
    assert exact.excess_disagreement == threshold_ignored.excess_disagreement
    assert exact.excess_disagreement == pytest.approx(exact.a_rr - exact.a_tr)


def test_same_reader_estimator_hand_example():
    # Two readers, two cases; each reads the reference twice and the new arm once.
    rows = [
        # case c0: r0 ref 1,1 new 0; r1 ref 1,0 new 1
        ("c0", "r0", "ref", 1, 1), ("c0", "r0", "ref", 1, 2), ("c0", "r0", "new", 0, 1),
        ("c0", "r1", "ref", 1, 1), ("c0", "r1", "ref", 0, 2), ("c0", "r1", "new", 1, 1),
        # case c1: everything 0
        ("c1", "r0", "ref", 0, 1), ("c1", "r0", "ref", 0, 2), ("c1", "r0", "new", 0, 1),
        ("c1", "r1", "ref", 0, 1), ("c1", "r1", "ref", 0, 2), ("c1", "r1", "new", 0, 1),
    ]  # fmt: skip
    reads = pd.DataFrame(rows, columns=["case", "reader", "arm", "value", "read"])
    reads["finding"] = "f"
    result = excess_disagreement(
        reads, "ref", "new", estimator="same-reader", n_boot=20, rng=np.random.default_rng(0)
    )
    # c0: r0 A_RR = 1, A_TR = 0 -> 1; r1 A_RR = 0, A_TR = 1/2 -> -1/2; d = 1/4. c1: d = 0.
    assert result.excess_disagreement == pytest.approx(1 / 8)
    assert result.a_rr == pytest.approx(3 / 4)
    assert result.a_tr == pytest.approx(5 / 8)
    assert result.a_tt is None
    assert result.estimator == "same-reader"


def test_holm_adjustment_across_findings():
    rng = np.random.default_rng(6)
    frames = []
    for k, q in enumerate((0.0, 0.02, 0.15)):
        ref = np.repeat(rng.integers(0, 2, size=(80, 1)), 3, axis=1).astype(float)
        new = np.where(rng.random(ref.shape) < q, 1 - ref, ref)
        frames.append(reads_frame(ref, new, finding=f"f{k}"))
    reads = pd.concat(frames, ignore_index=True)
    results = interchangeability_by_finding(
        reads, "ref", "new", n_boot=50, rng=np.random.default_rng(0), holm=True
    )
    assert [r.finding for r in results] == ["f0", "f1", "f2"]
    expected = multipletests([r.p_value for r in results], method="holm")[1]
    np.testing.assert_allclose([r.p_holm for r in results], expected)
    assert all(r.p_holm >= r.p_value for r in results)
    assert "p_holm" in results[0].to_dict()
    plain = interchangeability_by_finding(reads, "ref", "new", n_boot=50, rng=rng)
    assert plain[0].p_holm is None


@given(
    st.integers(min_value=0, max_value=100_000),
    st.integers(min_value=2, max_value=5),
    st.integers(min_value=3, max_value=15),
)
@settings(max_examples=30, deadline=None)
def test_gamma_is_invariant_to_relabelling_and_bounded(seed, n_readers, n_cases):
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 2, size=(n_cases, n_readers)).astype(float)
    new = rng.integers(0, 2, size=(n_cases, n_readers)).astype(float)
    scores = pair_scores_from_arrays(ref, new)
    a_cc, a_dc, _ = scores.per_case()
    gamma = (a_cc - a_dc).mean()
    assert -1.0 <= gamma <= 1.0
    case_order, reader_order = rng.permutation(n_cases), rng.permutation(n_readers)
    permuted = pair_scores_from_arrays(
        ref[case_order][:, reader_order], new[case_order][:, reader_order]
    )
    b_cc, b_dc, _ = permuted.per_case()
    assert (b_cc - b_dc).mean() == pytest.approx(gamma, abs=1e-12)
    # Relabelled reader and case ids in a reads table give the same result too.
    reads = reads_frame(ref, new)
    renamed = reads.assign(
        reader=reads["reader"].map(lambda r: f"x{(int(r[1:]) * 7) % 11}"),
        case=reads["case"].map(lambda c: f"z{c}"),
    )
    original = excess_disagreement(reads, "ref", "new", n_boot=5, rng=np.random.default_rng(0))
    relabelled = excess_disagreement(renamed, "ref", "new", n_boot=5, rng=np.random.default_rng(0))
    assert relabelled.excess_disagreement == pytest.approx(original.excess_disagreement)
    assert relabelled.se == pytest.approx(original.se)


def test_result_dict_has_the_documented_keys():
    result = excess_disagreement(tavr_reads(), "manual", "semi", rng=np.random.default_rng(0))
    keys = set(result.to_dict())
    assert {
        "finding", "excess_disagreement", "se", "ci_low", "ci_high", "a_rr", "a_tr", "a_tt",
        "n_cases", "n_readers", "margin", "readers", "method", "interchangeable", "p_value",
    } <= keys  # fmt: skip
    # The p-value comes from the deciding interval: below 0.025 exactly when interchangeable.
    assert (result.p_value < 0.025) == result.interchangeable
    assert result.interval == "calibrated bootstrap-t"


# ---- bad inputs ---------------------------------------------------------------------------------


def _small_reads():
    rng = np.random.default_rng(0)
    return reads_frame(rng.integers(0, 2, (6, 3)), rng.integers(0, 2, (6, 3)))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r[r["reader"] == "r0"], "at least two readers"),
        (lambda r: r.assign(value=r["value"].astype(object).where(r.index != 4, "high")),
         "column 'value'"),
        (lambda r: r[~((r["case"] == "c2") & (r["arm"] == "new"))], "not read on arm 'new'"),
        (lambda r: r[~((r["case"] == "c2") & (r["reader"] == "r1"))], "reader 'r1'"),
        (lambda r: r.drop(columns=["finding"]), "missing column"),
        (lambda r: r.iloc[0:0], "empty"),
    ],
)  # fmt: skip
def test_bad_reads_raise_analysis_error(change, message):
    with pytest.raises(AnalysisError, match=message):
        excess_disagreement(change(_small_reads()), "ref", "new", rng=np.random.default_rng(0))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reference": "conv"}, "reference arm 'conv'"),
        ({"new": "ai"}, "new arm 'ai'"),
        ({"readers": "mixed"}, "--readers"),
        ({"n_boot": 0}, "--n-boot"),
        ({"margin": -0.1}, "--margin"),
        ({"measure": "kappa"}, "measure"),
        ({"finding": "acl"}, "unknown finding"),
        ({"estimator": "same-reader"}, "at least two reads"),
    ],
)
def test_bad_options_raise_analysis_error(kwargs, message):
    arguments = {"reference": "ref", "new": "new", "rng": np.random.default_rng(0)} | kwargs
    reads = arguments.pop("reads", _small_reads())
    with pytest.raises(AnalysisError, match=message):
        excess_disagreement(reads, **arguments)


def test_random_readers_need_three_readers():
    rng = np.random.default_rng(0)
    reads = reads_frame(rng.integers(0, 2, (10, 2)), rng.integers(0, 2, (10, 2)))
    with pytest.raises(AnalysisError, match="three readers"):
        excess_disagreement(reads, "ref", "new", readers="random", rng=rng)


def test_several_findings_need_a_name():
    reads = pd.concat([_small_reads(), _small_reads().assign(finding="g")])
    with pytest.raises(AnalysisError, match="name one"):
        excess_disagreement(reads, "ref", "new", rng=np.random.default_rng(0))
