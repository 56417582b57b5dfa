"""Obuchowski-Rockette MRMC analysis against published values (Van Dyke, Franken)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.errors import AnalysisError
from analysis.mrmc import MRMCResult, mrmc_from_list, read_list_csv

DATA = Path(__file__).resolve().parent.parent / "data" / "mrmc"


@pytest.fixture(scope="module")
def vandyke() -> pd.DataFrame:
    return read_list_csv(DATA / "vandyke.csv")


@pytest.fixture(scope="module")
def vandyke_auc(vandyke: pd.DataFrame) -> MRMCResult:
    return mrmc_from_list(vandyke)


@pytest.fixture(scope="module")
def franken_auc() -> MRMCResult:
    return mrmc_from_list(read_list_csv(DATA / "franken.csv"))


def test_vandyke_rrrc_matches_the_published_values(vandyke_auc: MRMCResult) -> None:
    # ../shared/reference-data/README.md (OR-DBM MRMC, MRMCaov, RJafroc): F = 4.46,
    # ddf = 15.26, p = 0.0517, difference of mean AUCs (1 - 2) = -0.0438.
    rrrc = vandyke_auc.rrrc
    assert round(rrrc.statistic, 2) == 4.46
    assert (rrrc.ndf, round(rrrc.ddf, 2)) == (1, 15.26)
    assert round(rrrc.p, 4) == 0.0517
    diff = rrrc.differences[0]
    assert (diff.first, diff.second) == ("1", "2")
    assert round(diff.estimate, 4) == -0.0438
    # RJafrocBook, chapter "Obuchowski Rockette Applications", dataset02 (= Van Dyke), RRRC:
    # StdErr 0.0207, CI (-0.0880, 0.000359); per treatment SE 0.03317 / 0.02157, df 12.74 / 12.71
    assert diff.se == pytest.approx(0.0207, abs=5e-5)
    assert (round(diff.ci_low, 4), round(diff.ci_high, 6)) == (-0.0880, 0.000359)
    est = rrrc.treatment_estimates
    assert [round(e.se, 5) for e in est] == [0.03317, 0.02157]
    assert [round(e.df, 2) for e in est] == [12.74, 12.71]
    assert [round(e.ci_low, 4) for e in est] == [0.8252, 0.8941]


def test_vandyke_reader_aucs_and_components(vandyke_auc: MRMCResult) -> None:
    # RJafrocBook dataset02: reader AUCs and OR variance components (jackknife)
    published = [
        [0.9196, 0.8588, 0.9039, 0.9731, 0.8298],
        [0.9478, 0.9053, 0.9217, 0.9994, 0.9300],
    ]
    np.testing.assert_allclose(vandyke_auc.foms, published, atol=5e-5)
    assert vandyke_auc.treatment_means == pytest.approx({"1": 0.8970, "2": 0.9408}, abs=5e-5)
    vc = vandyke_auc.components
    assert vc.var == pytest.approx(8.0228827e-4, rel=1e-6)
    assert vc.cov1 == pytest.approx(3.4661371e-4, rel=1e-6)
    assert vc.cov2 == pytest.approx(3.4407483e-4, rel=1e-6)
    assert vc.cov3 == pytest.approx(2.3902837e-4, rel=1e-6)
    assert vc.ms_t == pytest.approx(0.00479617, rel=1e-5)
    assert vc.ms_tr == pytest.approx(5.5103062e-4, rel=1e-6)
    assert vc.var_r == pytest.approx(0.0015350, abs=5e-8)
    assert vc.var_tr == pytest.approx(0.0002004, abs=5e-8)


def test_vandyke_fixed_readers_and_fixed_cases(vandyke_auc: MRMCResult) -> None:
    # RJafrocBook dataset02, FRRC: chi2 5.476, df 1, p 0.01928, SE 0.01872,
    # CI (-0.08049, -0.007115); reader 5 difference -0.1002, SE 0.0441, p 0.0230
    frrc = vandyke_auc.frrc
    assert round(frrc.statistic, 3) == 5.476
    assert frrc.ndf == 1
    assert round(frrc.p, 5) == 0.01928
    diff = frrc.differences[0]
    assert round(diff.se, 5) == 0.01872
    assert (round(diff.ci_low, 5), round(diff.ci_high, 6)) == (-0.08049, -0.007115)
    last = frrc.reader_differences[-1]
    assert (round(last.estimate, 4), round(last.se, 4)) == (-0.1002, 0.0441)
    # RRFC: F 8.704 on (1, 4), p 0.04196, SE 0.01485, CI (-0.08502, -0.00258)
    rrfc = vandyke_auc.rrfc
    assert (round(rrfc.statistic, 3), rrfc.ndf, rrfc.ddf) == (8.704, 1, 4)
    assert round(rrfc.p, 5) == 0.04196
    diff = rrfc.differences[0]
    assert (round(diff.se, 5), round(diff.ci_low, 5), round(diff.ci_high, 5)) == (
        0.01485,
        -0.08502,
        -0.00258,
    )


def test_franken_matches_rjafroc(franken_auc: MRMCResult) -> None:
    # RJafrocBook, "OR analysis text output", dataset03 (= Franken): reader AUCs, and Cov2 < Cov3
    # so the RRRC test reduces to MS(T)/MS(TR) on (1, 3): F 4.6940577, p 0.11883786;
    # FRRC chi2 0.32101347, p 0.57099922; difference 0.010854817.
    np.testing.assert_allclose(
        franken_auc.foms,
        [
            [0.8534600, 0.8649932, 0.8573044, 0.8152420],
            [0.8496156, 0.8435097, 0.8401176, 0.8143374],
        ],
        atol=5e-7,
    )
    rrrc = franken_auc.rrrc
    assert rrrc.statistic == pytest.approx(4.6940577, rel=1e-6)
    assert rrrc.ddf == pytest.approx(3.0)
    assert rrrc.p == pytest.approx(0.11883786, rel=1e-6)
    assert rrrc.differences[0].estimate == pytest.approx(0.010854817, rel=1e-6)
    assert franken_auc.frrc.statistic == pytest.approx(0.32101347, rel=1e-6)
    assert franken_auc.frrc.p == pytest.approx(0.57099922, rel=1e-6)
    vc = franken_auc.components
    assert vc.var_tr == pytest.approx(-6.8389146e-04, rel=1e-6)
    assert vc.var_r == pytest.approx(2.3319942e-05, rel=1e-5)
    assert [e.df for e in rrrc.treatment_estimates] == pytest.approx([70.121788, 253.644028])


def test_to_dict_is_json_with_every_analysis(vandyke_auc: MRMCResult) -> None:
    d = json.loads(json.dumps(vandyke_auc.to_dict()))
    assert d["rrrc"]["F"] == pytest.approx(4.4563, abs=1e-4)
    assert d["rrrc"]["df"][1] == pytest.approx(15.26, abs=0.005)
    assert "chi2" in d["frrc"] and d["frrc"]["df"] == 1
    assert d["rrfc"]["df"] == [1, 4.0]
    for name in ("rrrc", "frrc", "rrfc"):
        first = d[name]["differences"][0]
        assert {"difference", "se", "ci_low", "ci_high", "p"} <= set(first)
    assert len(d["reader_foms"]) == 10
    assert d["n_cases"] == 114 and d["n_diseased"] == 45


def test_treatment_order_flips_the_difference(vandyke: pd.DataFrame) -> None:
    res = mrmc_from_list(vandyke, treatments=["2", "1"])
    assert res.rrrc.differences[0].estimate == pytest.approx(0.0438, abs=5e-5)
    assert res.rrrc.p == pytest.approx(0.0517, abs=5e-5)


@pytest.mark.parametrize("fom", ["sensitivity", "specificity"])
def test_sensitivity_and_specificity_foms(vandyke: pd.DataFrame, fom: str) -> None:
    res = mrmc_from_list(vandyke, fom=fom, threshold=3)
    truth = vandyke.groupby("case")["truth"].first()
    sub = vandyke[vandyke["case"].isin(truth[truth == (1 if fom == "sensitivity" else 0)].index)]
    hit = (sub["rating"] >= 3) if fom == "sensitivity" else (sub["rating"] < 3)
    direct = hit.groupby([sub["treatment"], sub["reader"]]).mean().unstack()
    np.testing.assert_allclose(res.foms, direct.to_numpy())
    # the jackknife runs over one class only; for a proportion it gives p(1 - p)/(n - 1)
    n = res.n_diseased if fom == "sensitivity" else res.n_non_diseased
    assert res.components.var == pytest.approx(np.mean(res.foms * (1 - res.foms) / (n - 1)))
    assert 0 <= res.rrrc.p <= 1 and 0 <= res.frrc.p <= 1 and 0 <= res.rrfc.p <= 1


def _simulated(rng: np.random.Generator, effect: float) -> pd.DataFrame:
    n_cases, readers = 80, 4
    truth = (np.arange(n_cases) < 40).astype(int)
    case_effect = rng.normal(0, 1, n_cases)
    rows = []
    for trt, shift in (("A", 0.0), ("B", effect)):
        for r in range(readers):
            latent = (1.2 + shift) * truth + 0.6 * case_effect + rng.normal(0, 1, n_cases)
            ratings = np.digitize(latent, [-0.5, 0.3, 1.0, 1.8]) + 1
            rows += [(f"R{r}", trt, f"c{k}", truth[k], ratings[k]) for k in range(n_cases)]
    return pd.DataFrame(rows, columns=["reader", "treatment", "case", "truth", "rating"])


def test_variants_are_ordered_sanely_on_a_simulated_study() -> None:
    res = mrmc_from_list(_simulated(np.random.default_rng(3), effect=1.0))
    diff = res.rrrc.differences[0].estimate
    assert diff < 0  # B is better, difference is A - B
    # fixed readers drop reader variability: never a wider interval than random readers
    assert res.frrc.differences[0].se <= res.rrrc.differences[0].se + 1e-12
    # every interval is centred on the same difference
    for test in (res.rrrc, res.frrc, res.rrfc):
        d = test.differences[0]
        assert (d.ci_low + d.ci_high) / 2 == pytest.approx(diff)
        assert d.ci_low < diff < d.ci_high
    assert res.rrrc.ddf >= (len(res.treatments) - 1) * (len(res.readers) - 1)


def test_identical_treatments_give_zero_difference() -> None:
    frame = _simulated(np.random.default_rng(4), effect=0.0)
    a = frame[frame["treatment"] == "A"]
    frame = pd.concat([a, a.assign(treatment="B")])
    res = mrmc_from_list(frame)
    assert res.rrrc.differences[0].estimate == 0.0
    # 0/0: the test is undefined, reported as null rather than a made-up number
    assert np.isnan(res.frrc.statistic)
    assert res.to_dict()["frrc"]["p"] is None
    assert json.dumps(res.to_dict())  # nan statistics become null, still valid JSON


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda f: f[f["treatment"] == "1"], "at least two treatments"),
        (lambda f: f[f["reader"] == "1"], "at least two readers"),
        (lambda f: f.drop(columns=["truth"]), "missing column\\(s\\) truth"),
        (lambda f: f.assign(rating=f["rating"].astype(str).replace("3", "high")), "row .*number"),
        (lambda f: f.drop(index=f.index[5]), "has no rating from reader"),
        (lambda f: pd.concat([f, f.iloc[[0]]]), "more than once"),
        (
            lambda f: f[~((f["case"] == "7") & (f["treatment"] == "2"))],
            "case '7' has no rating from reader '1' on treatment '2'",
        ),
        (lambda f: f.assign(truth=f["truth"].where(f.index != 3)), "truth' row 4: expected 0 or 1"),
        (lambda f: f.assign(truth=f["truth"].replace(1, 2)), "expected 0 or 1"),
        (lambda f: f.assign(truth=np.where(f.index == 0, 1 - f["truth"], f["truth"])), "both 0"),
    ],
    ids=[
        "one-treatment",
        "one-reader",
        "no-truth",
        "text-rating",
        "missing-read",
        "duplicate",
        "case-missing-a-treatment",
        "truth-missing",
        "truth-2",
        "truth-varies",
    ],
)
def test_bad_input_is_a_clear_error(vandyke: pd.DataFrame, mutate, match: str) -> None:
    with pytest.raises(AnalysisError, match=match):
        mrmc_from_list(mutate(vandyke.copy()), source="vandyke.csv")


def test_sensitivity_needs_a_threshold(vandyke: pd.DataFrame) -> None:
    with pytest.raises(AnalysisError, match="threshold"):
        mrmc_from_list(vandyke, fom="sensitivity")
    with pytest.raises(AnalysisError, match="expected one of auc"):
        mrmc_from_list(vandyke, fom="youden")


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(-3, 3), st.floats(0.5, 4))
def test_invariances(seed: int, shift: float, scale: float) -> None:
    """Rank invariance of the empirical AUC, and swapping treatments only flips the sign."""
    frame = _simulated(np.random.default_rng(seed), effect=0.5)
    base = mrmc_from_list(frame)
    # a monotone re-scaling of one reader's ratings changes no AUC and no test
    moved = frame.assign(
        rating=np.where(frame["reader"] == "R1", frame["rating"] * scale + shift, frame["rating"])
    )
    again = mrmc_from_list(moved)
    np.testing.assert_allclose(again.foms, base.foms)
    assert again.rrrc.p == pytest.approx(base.rrrc.p, nan_ok=True)
    flipped = mrmc_from_list(frame, treatments=["B", "A"])
    for a, b in zip(
        (base.rrrc, base.frrc, base.rrfc), (flipped.rrrc, flipped.frrc, flipped.rrfc), strict=True
    ):
        assert b.differences[0].estimate == pytest.approx(-a.differences[0].estimate)
        assert b.statistic == pytest.approx(a.statistic, nan_ok=True)
        assert b.differences[0].ci_low == pytest.approx(-a.differences[0].ci_high)


def test_three_treatments_give_every_pairwise_difference(vandyke: pd.DataFrame) -> None:
    third = vandyke[vandyke["treatment"] == "1"].assign(treatment="3")
    res = mrmc_from_list(pd.concat([vandyke, third]))
    assert res.rrrc.ndf == 2 and res.frrc.ndf == 2
    pairs = [(d.first, d.second) for d in res.rrrc.differences]
    assert pairs == [("1", "2"), ("1", "3"), ("2", "3")]
    one_three = res.rrrc.differences[1]
    assert one_three.estimate == 0.0
    assert res.rrrc.differences[0].estimate == pytest.approx(-0.0438, abs=5e-5)
    assert 0 <= res.rrrc.p <= 1


def test_rrrc_keeps_its_size_under_the_null() -> None:
    """Simulated null studies (reader and case random effects, no treatment effect): the
    random-reader test rejects at about the nominal 5% (OR-Hillis is slightly conservative)."""
    from analysis.mrmc import or_analysis

    rng = np.random.default_rng(11)
    n_cases, n_readers, n_sims = 60, 5, 300
    truth = (np.arange(n_cases) < 30).astype(np.int64)
    rejected = 0
    for _ in range(n_sims):
        case = rng.normal(0, 0.7, n_cases)
        reader = rng.normal(0, 0.3, n_readers)
        latent = (
            1.0 * truth
            + case
            + reader[None, :, None] * truth
            + rng.normal(0, 0.3, (2, n_readers, n_cases))  # treatment x case
            + rng.normal(0, 0.8, (2, n_readers, n_cases))
        )
        ratings = np.digitize(latent, [-0.5, 0.2, 0.8, 1.5]).astype(float)
        res = or_analysis(
            truth, ratings, treatments=["A", "B"], readers=[str(j) for j in range(n_readers)]
        )
        rejected += res.rrrc.p < 0.05
    assert 0.01 <= rejected / n_sims <= 0.09
