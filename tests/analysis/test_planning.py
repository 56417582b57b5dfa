"""Planning: power by simulation of the analysis's own rule, checked against the full analysis
run on simulated data; MRMC power against simulated OR analyses; the plan command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from analysis import planning
from analysis.errors import AnalysisError
from analysis.interchangeability import excess_disagreement
from analysis.mrmc import or_analysis
from analysis.simulation import simulate_roe_metz
from blindreader.cli import app

runner = CliRunner()


def _tidy(ref: np.ndarray, new: np.ndarray) -> pd.DataFrame:
    n_cases, n_readers = ref.shape
    case = np.repeat([f"c{i}" for i in range(n_cases)], n_readers)
    reader = np.tile([f"r{j}" for j in range(n_readers)], n_cases)
    frames = [
        pd.DataFrame({"case": case, "reader": reader, "arm": arm, "finding": "f",
                      "value": values.ravel().astype(float)})
        for arm, values in (("conv", ref), ("dl", new))
    ]  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def test_plan_power_agrees_with_the_full_analysis_on_simulated_studies():
    model = planning.model_from_assumptions(
        n_readers=4, gamma=0.0, agreement=0.85, reader_rate_sd=0.05, prevalence=0.3
    )
    settings = planning.PlanSettings(readers="random", margin=0.06, n_boot=300)
    studies = 100
    planned = planning.power_at(
        model, 50, settings, n_studies=studies, rng=np.random.default_rng(1)
    )
    rng = np.random.default_rng(2)
    declared = 0
    for _ in range(studies):
        ref, new, _ = model.simulate(rng, 50, model.draw_readers(rng))
        result = excess_disagreement(
            _tidy(ref[0], new[0]), "conv", "dl", threshold=3, margin=0.06, readers="random",
            n_boot=300, rng=rng,
        )  # fmt: skip
        declared += result.interchangeable
    brute = declared / studies
    se = math.sqrt(planned.power * (1 - planned.power) / studies * 2) + 1e-9
    assert abs(planned.power - brute) <= 3.5 * se, (planned.power, brute)


def test_power_grows_with_cases_and_levels_follow_the_family():
    model = planning.model_from_assumptions(n_readers=5, gamma=0.0, agreement=0.88)
    settings = planning.PlanSettings(readers="fixed", margin=0.05, n_boot=200)
    small = planning.power_at(model, 30, settings, n_studies=40, rng=np.random.default_rng(3))
    large = planning.power_at(model, 200, settings, n_studies=40, rng=np.random.default_rng(3))
    assert large.power > small.power
    holm = planning.PlanSettings(n_findings=10)
    iut = planning.PlanSettings(n_findings=10, multiplicity="intersection-union")
    assert holm.level == pytest.approx(0.0025) and iut.level == pytest.approx(0.025)


def test_cases_needed_brackets_the_target():
    model = planning.model_from_assumptions(n_readers=6, gamma=-0.01, agreement=0.9)
    settings = planning.PlanSettings(readers="fixed", margin=0.05, n_boot=200)
    needed, points = planning.cases_needed(
        model, 0.8, settings, n_studies=30, rng=np.random.default_rng(4), start=20
    )
    assert needed is not None
    reached = {p.n_cases: p.power for p in points}
    assert reached[needed] >= 0.8
    assert all(power < 0.8 for n, power in reached.items() if n < needed)


def test_pilot_summary_reproduces_the_pilots_statistics():
    model = planning.model_from_assumptions(
        n_readers=6, gamma=0.02, agreement=0.86, reader_rate_sd=0.06, prevalence=0.25
    )
    rng = np.random.default_rng(5)
    ref, new, _ = model.simulate(rng, 3000, model.draw_readers(rng))
    reads = _tidy(ref[0], new[0])
    pilot = planning.pilot_summary(reads, "conv", "dl", threshold=3)
    assert pilot.gamma == pytest.approx(0.02, abs=0.01)
    assert pilot.agreement == pytest.approx(0.86, abs=0.02)
    refit = planning.model_from_pilot(pilot, n_readers=6)
    check = planning.model_check(refit)
    assert check["gamma"] == pytest.approx(pilot.gamma, abs=1e-6)
    assert check["agreement"] == pytest.approx(pilot.agreement, abs=1e-4)
    # without a reference standard the prevalence comes from the rate of 'present' calls
    assert refit.prevalence == pytest.approx(0.25, abs=0.03)
    assert refit.positive_rate() == pytest.approx(pilot.positive_rate, abs=1e-4)


def test_mrmc_power_agrees_with_simulated_or_analyses():
    rng = np.random.default_rng(6)
    pilot_truth, pilot_ratings = simulate_roe_metz(
        rng, n_readers=5, n_normal=400, n_abnormal=400, separation=(1.2, 1.55)
    )
    pilot = or_analysis(pilot_truth, pilot_ratings, treatments=["a", "b"],
                        readers=[f"r{j}" for j in range(5)])  # fmt: skip
    components = planning.mrmc_components_from_result(pilot)
    # the population difference (binormal AUC = Phi(mu / sqrt(2 * 1.0))); the pilot's own
    # difference carries its readers' effects
    delta = float(stats.norm.cdf(1.55 / math.sqrt(2)) - stats.norm.cdf(1.2 / math.sqrt(2)))
    predicted = planning.mrmc_power(components, delta=delta, n_readers=5, n_cases=120)
    rejected, studies = 0, 150
    for _ in range(studies):
        truth, ratings = simulate_roe_metz(
            rng, n_readers=5, n_normal=60, n_abnormal=60, separation=(1.2, 1.55)
        )
        result = or_analysis(truth, ratings, treatments=["a", "b"],
                             readers=[f"r{j}" for j in range(5)])  # fmt: skip
        rejected += result.rrrc.p < 0.05
    brute = rejected / studies
    # the pilot's components carry their own estimation error: a generous tolerance
    assert abs(predicted - brute) <= 0.15, (predicted, brute)


def test_mrmc_power_formula_edges():
    components = planning.MrmcComponents(var=0.0008, cov1=0.0004, cov2=0.0003, cov3=0.0002,
                                         var_tr=0.0002, n_cases=100)  # fmt: skip
    assert planning.mrmc_power(components, delta=0.0, n_readers=5, n_cases=100) == (
        pytest.approx(0.05, abs=1e-6)
    )
    weak = planning.mrmc_power(components, delta=0.03, n_readers=5, n_cases=100)
    strong = planning.mrmc_power(components, delta=0.03, n_readers=10, n_cases=400)
    assert weak < strong
    needed = planning.mrmc_cases_needed(components, delta=0.05, n_readers=8, target=0.8)
    assert needed is not None
    assert planning.mrmc_power(components, delta=0.05, n_readers=8, n_cases=needed) >= 0.8
    with pytest.raises(AnalysisError):
        planning.mrmc_power(components, delta=0.05, n_readers=1, n_cases=10)


def test_plan_command_writes_the_curve_and_a_planning_record(tmp_path: Path):
    result = runner.invoke(
        app,
        ["plan", "interchangeability", "--readers", "4", "--gamma", "0", "--cases", "30,60",
         "--studies", "20", "--out", str(tmp_path), "--seed", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert [p["n_cases"] for p in plan["points"]] == [30, 60]
    assert plan["settings"]["readers"] == "random"
    assert (tmp_path / "power_curve.png").read_bytes()[:4] == b"\x89PNG"
    record = (tmp_path / "planning.toml").read_text()
    assert record.startswith("[analysis.planning]") and "text = " in record


def test_plan_command_from_a_protocol_and_a_pilot_csv(tmp_path: Path):
    model = planning.model_from_assumptions(n_readers=4, gamma=0.01)
    rng = np.random.default_rng(7)
    ref, new, _ = model.simulate(rng, 60, model.draw_readers(rng))
    _tidy(ref[0], new[0]).to_csv(tmp_path / "pilot.csv", index=False)
    result = runner.invoke(
        app,
        ["plan", "interchangeability", "--pilot-reads", str(tmp_path / "pilot.csv"),
         "--reference", "conv", "--cases", "40", "--studies", "10", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["pilot"]["n_cases"] == 60 and plan["pilot"]["n_readers"] == 4


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--cases", "x"], "--cases"),
        (["--cases", "2"], "at least 3"),
        (["--readers-model", "mixed", "--cases", "30"], "--readers-model"),
        (["--pilot-reads", "nowhere.csv", "--reference", "a"], "nowhere.csv"),
        (["--power", "1.5"], "--power"),
    ],
)
def test_plan_command_bad_input(args, match):
    result = runner.invoke(app, ["plan", "interchangeability", "--studies", "5", *args])
    assert isinstance(result.exception, AnalysisError), result.output
    assert match in str(result.exception)


def test_plan_mrmc_command_on_the_van_dyke_data():
    path = Path(__file__).resolve().parent.parent / "data" / "mrmc" / "vandyke.csv"
    result = runner.invoke(app, ["plan", "mrmc", str(path), "--readers", "5", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["cases_needed"] > 114  # the pilot's own difference is not significant at 114
    powers = [p["power"] for p in plan["points"]]
    assert powers == sorted(powers)
