"""The measurement section of the report: shown only with ``[[measurements]]``, one block per new
arm with the table, the Bland-Altman and scatter figures and the noise caveat; decisions under
the protocol's multiplicity family across every arm x measurement; the CSV input path."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from analysis.errors import AnalysisError
from analysis.report import build_report, measurements_from_csv
from analysis.report.context import ReportContext
from analysis.report.sections.measurements import MeasurementSection
from analysis.simulated_study import simulate_answers, simulate_measurements
from studies.protocol import Protocol, QuestionType, parse_protocol
from tests.analysis.test_report import SMALL

#: The ROI questions the measurements refer to, once the protocol knows the roi type (issue 14,
#: the viewer half); until then the measurement block stands on its own.
ROI_QUESTIONS = """
[[questions]]
id = "roi_muscle"
text = "Muscle ROI"
type = "roi"
roi = "muscle"
[[questions]]
id = "roi_background"
text = "Background ROI"
type = "roi"
roi = "background"
[[questions]]
id = "ruler_cartilage"
text = "Cartilage thickness"
type = "distance"
"""
MEASUREMENTS = """
[[measurements]]
id = "snr_muscle"
label = "SNR of muscle"
kind = "snr"
roi = "roi_muscle"
background = "roi_background"
margin = 2.0
[[measurements]]
id = "cartilage"
label = "Cartilage thickness"
kind = "distance"
roi = "ruler_cartilage"
margin = 0.05
relative = true
unit = "mm"
"""
THIRD_ARM = """
[[arms]]
code = "dl8"
description = "Deep learning 8x"
"""


def _protocol(extra: str = "", *, arms: str = "") -> Protocol:
    text = SMALL.replace('[[readers]]\nid = "R1"', arms + '[[readers]]\nid = "R1"', 1)
    if "roi" in get_args(QuestionType):
        text = text.replace("[interchangeability]", ROI_QUESTIONS + "[interchangeability]")
    return parse_protocol(text + extra, "measured.toml")


@pytest.fixture(scope="module")
def three_arm_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Protocol]:
    protocol = _protocol(MEASUREMENTS + '[analysis]\nmultiplicity = "holm"\n', arms=THIRD_ARM)
    study = simulate_answers(protocol, 30, np.random.default_rng(3))
    measured = simulate_measurements(
        protocol, 30, np.random.default_rng(4), bias={"dl": 0.2, "dl8": 3.0}, reader_sd=0.1
    )
    out = tmp_path_factory.mktemp("measured")
    results = build_report(
        study.answers, protocol, study.truth, out, n_boot=50, seed=1, measurements=measured
    )
    return out, results, protocol


def test_every_new_arm_has_its_block_table_and_figures(three_arm_report) -> None:
    out, results, _ = three_arm_report
    section = results["measurements"]
    pairs = {(c["measurement"], c["new"]) for c in section["comparisons"]}
    assert pairs == {(m, a) for m in ("snr_muscle", "cartilage") for a in ("dl", "dl8")}
    for measurement in ("snr_muscle", "cartilage"):
        for arm in ("dl", "dl8"):
            stem = f"measurement_{measurement}_{arm}_vs_conventional"
            assert (out / f"bland_altman_{stem}.png").stat().st_size > 5000
            assert (out / f"scatter_{stem}.png").stat().st_size > 5000
    page = (out / "report.html").read_text()
    assert page.index("dl vs conventional</h") < page.index("dl8 vs conventional</h")
    assert "SNR of muscle: dl vs conventional" in page
    assert "Gudbjartsson" in page and "Dietrich" in page and "Rician" in page
    table = pd.read_csv(out / "measurement_agreement.csv")
    assert set(table["reader"]) == {"R1", "R2", "R3", "all readers"}
    assert len(table) == 2 * 2 * 4


def test_decisions_use_holm_across_arms_and_measurements(three_arm_report) -> None:
    out, results, _ = three_arm_report
    decisions = [d for d in results["all_decisions"] if d["section"] == "measurements"]
    assert len(decisions) == 4
    by_claim = {d["claim"]: d for d in decisions}
    # dl is 0.2 off with a margin of 2: equivalent; dl8 is 3.0 off: not shown
    assert by_claim["dl equivalent to conventional: snr_muscle"]["passed"] is True
    assert by_claim["dl8 equivalent to conventional: snr_muscle"]["passed"] is False
    table = pd.read_csv(out / "measurement_agreement.csv")
    pooled = table[table["reader"] == "all readers"]
    from analysis.multiplicity import holm

    assert list(pooled["p_adjusted"]) == pytest.approx(holm(list(pooled["mm_p_tost"])))
    # the relative margin is 5% of the reference mean (about 20 mm)
    cartilage = next(c for c in results["measurements"]["comparisons"]
                     if c["measurement"] == "cartilage" and c["new"] == "dl")  # fmt: skip
    assert cartilage["margin"] == pytest.approx(0.05 * cartilage["reference_mean"])


def _section(protocol: Protocol, measured: pd.DataFrame | None, out: Path) -> Any:
    """The measurement section alone (the other sections are tested elsewhere)."""
    ctx = ReportContext(protocol=protocol, answers=pd.DataFrame(), truth=None, out_dir=out,
                        n_boot=20, measurements=measured)  # fmt: skip
    section = MeasurementSection()
    assert section.applies(ctx) == bool(protocol.measurements)
    return section.compute(ctx)


def test_intersection_union_makes_one_joint_decision(tmp_path: Path) -> None:
    protocol = _protocol(MEASUREMENTS + '[analysis]\nmultiplicity = "intersection-union"\n')
    measured = simulate_measurements(protocol, 20, np.random.default_rng(4), reader_sd=0.1)
    result = _section(protocol, measured, tmp_path)
    assert len(result.decisions) == 1 and "jointly" in result.decisions[0].sentence
    assert "intersection-union" in result.decisions[0].sentence
    rows = result.tables["measurement_agreement"]
    pooled = rows[rows["reader"] == "all readers"]
    assert list(pooled["p_adjusted"]) == list(pooled["mm_p_tost"])  # no adjustment under IUT


def test_section_is_absent_without_measurements_and_noted_without_a_table(tmp_path: Path) -> None:
    plain = _protocol()
    ctx = ReportContext(protocol=plain, answers=pd.DataFrame(), truth=None, out_dir=tmp_path)
    assert not MeasurementSection().applies(ctx)
    with pytest.raises(AnalysisError, match="no measurement table"):
        _section(_protocol(MEASUREMENTS), None, tmp_path)


def test_missing_and_undeclared_measurements_are_noted(tmp_path: Path) -> None:
    protocol = _protocol(MEASUREMENTS)
    measured = simulate_measurements(protocol, 12, np.random.default_rng(4))
    measured = measured[measured["measurement"] != "cartilage"]
    extra = measured.assign(measurement="adc")
    result = _section(protocol, pd.concat([measured, extra]), tmp_path)
    assert "cartilage: no values in the measurement table" in result.notes
    assert any("not in the protocol, left out: adc" in n for n in result.notes)


def test_per_series_measurements_are_compared_series_by_series(tmp_path: Path) -> None:
    """A per-series question's measurement comes as "<id>@<series>", one per series."""
    protocol = _protocol(MEASUREMENTS)
    measured = simulate_measurements(protocol, 12, np.random.default_rng(4))
    snr = measured[measured["measurement"] == "snr_muscle"]
    per_series = pd.concat(
        [snr.assign(measurement=f"snr_muscle@{label}") for label in ("cor_pd", "sag_t2")]
        + [measured[measured["measurement"] != "snr_muscle"]]
    )
    result = _section(protocol, per_series, tmp_path)
    compared = {c["measurement"] for c in result.data["comparisons"]}
    assert {"snr_muscle@cor_pd", "snr_muscle@sag_t2"} <= compared
    assert not any("not in the protocol" in n for n in result.notes)
    assert all("@" not in f.path.name for f in result.figures)


def test_training_cases_are_left_out(tmp_path: Path) -> None:
    protocol = _protocol(MEASUREMENTS).model_copy(update={"training_cases": ["case0001"]})
    measured = simulate_measurements(protocol, 12, np.random.default_rng(4))
    result = _section(protocol, measured, tmp_path)
    assert result.data["comparisons"][0]["rows"][-1]["ba_n_cases"] == 11


def test_protocol_measurement_rules_name_the_field() -> None:
    from studies.errors import StudyError

    bad_cnr = MEASUREMENTS.replace('kind = "snr"', 'kind = "cnr"')
    with pytest.raises(StudyError, match=r"measurements\[0\]\.roi_b: cnr needs 'roi_b'"):
        _protocol(bad_cnr)
    with pytest.raises(StudyError, match=r"measurements\[0\]\.margin: margin must be a positive"):
        _protocol(MEASUREMENTS.replace("margin = 2.0", "margin = -1"))
    with pytest.raises(StudyError, match="duplicate measurement id 'snr_muscle'"):
        _protocol(MEASUREMENTS.replace('id = "cartilage"', 'id = "snr_muscle"'))


def test_measurements_csv_is_read_and_checked(tmp_path: Path) -> None:
    protocol = _protocol(MEASUREMENTS)
    measured = simulate_measurements(protocol, 6, np.random.default_rng(4))
    path = tmp_path / "measurements.csv"
    measured.to_csv(path, index=False)
    frame = measurements_from_csv(path)
    assert frame["value"].to_numpy() == pytest.approx(measured["value"].to_numpy())
    broken = measured.astype({"value": object})
    broken.loc[4, "value"] = "n/a"
    broken.to_csv(path, index=False)
    with pytest.raises(AnalysisError, match=r"measurements.csv, line 6: column 'value'"):
        measurements_from_csv(path)
    measured.drop(columns="reader").to_csv(path, index=False)
    with pytest.raises(AnalysisError, match="missing column"):
        measurements_from_csv(path)


def test_cli_report_reads_the_measurements_csv(tmp_path: Path) -> None:
    from blindreader.cli import app

    protocol_text = SMALL + MEASUREMENTS
    if "roi" in get_args(QuestionType):
        protocol_text = protocol_text.replace("[interchangeability]",
                                              ROI_QUESTIONS + "[interchangeability]")  # fmt: skip
    protocol = parse_protocol(protocol_text, "p.toml")
    (tmp_path / "p.toml").write_text(protocol_text)
    study = simulate_answers(protocol, 12, np.random.default_rng(3))
    study.answers.to_csv(tmp_path / "answers.csv", index=False)
    simulate_measurements(protocol, 12, np.random.default_rng(4)).to_csv(
        tmp_path / "m.csv", index=False
    )
    done = CliRunner().invoke(app, [
        "analyze", "report", "--answers", str(tmp_path / "answers.csv"), "--protocol",
        str(tmp_path / "p.toml"), "--measurements", str(tmp_path / "m.csv"), "--out",
        str(tmp_path / "out"), "--n-boot", "20",
    ])  # fmt: skip
    assert done.exit_code == 0, done.output
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(results["measurements"]["comparisons"]) == 2
    assert re.search(r"bland_altman_measurement_snr_muscle_dl_vs_conventional\.png",
                     json.dumps(results["files"]))  # fmt: skip


# ---- more than two arms: every analysis compares each new arm with the reference -------------


def test_three_arms_every_analysis_has_every_arm_vs_the_reference(three_arm_report) -> None:
    out, results, _ = three_arm_report
    for model in ("fixed_readers", "random_readers"):
        rows = results["interchangeability"][model]
        assert {(r["new"], r["reference"]) for r in rows} == {
            ("dl", "conventional"),
            ("dl8", "conventional"),
        }
    for name in ("two_way", "ordinal"):
        assert {r["new"] for r in results["image_quality"][name]} == {"dl", "dl8"}
    mrmc = pd.read_csv(out / "mrmc.csv")
    assert set(mrmc["new"]) == {"dl", "dl8"}
    for arm in ("dl", "dl8"):
        assert (out / f"forest_{arm}_vs_conventional.png").is_file()
    page = (out / "report.html").read_text()
    for arm in ("dl", "dl8"):
        assert f"{arm} vs conventional: random readers (primary)" in page
        assert f"Decisions per question, {arm} vs conventional" in page
        assert f"Decisions, {arm} vs conventional (random readers and cases" in page


def test_three_arms_holm_spans_every_arm_x_finding(three_arm_report) -> None:
    from analysis.multiplicity import holm

    _, results, _ = three_arm_report
    rows = results["interchangeability"]["random_readers"]
    assert len(rows) == 2 * 2  # two new arms x two findings
    assert [r["p_adjusted"] for r in rows] == pytest.approx(holm([r["p_value"] for r in rows]))
    claims = [d["claim"] for d in results["all_decisions"]
              if d["section"] == "interchangeability"]  # fmt: skip
    assert sorted(claims) == sorted(
        f"{arm} interchangeable with conventional: {f}" for arm in ("dl", "dl8")
        for f in ("acl", "mcl")
    )  # fmt: skip
    two_way = results["image_quality"]["two_way"]
    assert [r["p_adjusted"] for r in two_way] == pytest.approx(
        holm([r["p_value"] for r in two_way])
    )
    iq = [d["claim"] for d in results["all_decisions"] if d["section"] == "image_quality"]
    assert sorted(iq) == [
        "image quality: quality_overall (dl)",
        "image quality: quality_overall (dl8)",
    ]


def test_three_arms_intersection_union_is_one_joint_claim_over_every_arm(tmp_path: Path) -> None:
    protocol = _protocol('[analysis]\nmultiplicity = "intersection-union"\n', arms=THIRD_ARM)
    study = simulate_answers(protocol, 20, np.random.default_rng(3))
    results = build_report(study.answers, protocol, None, tmp_path, n_boot=20)
    ic = [d for d in results["all_decisions"] if d["section"] == "interchangeability"]
    assert len(ic) == 1
    assert "All 4 arm x finding comparisons jointly" in ic[0]["sentence"]
    assert "every new arm (dl, dl8)" in ic[0]["sentence"]
    rows = results["interchangeability"]["random_readers"]
    assert all(r["p_adjusted"] == r["p_value"] for r in rows)
    iq = [d for d in results["all_decisions"] if d["section"] == "image_quality"]
    assert len(iq) == 1 and "all 2 arm x question comparisons jointly" in iq[0]["sentence"]


def test_a_measurement_without_margin_is_described_not_decided(tmp_path: Path) -> None:
    protocol = _protocol(MEASUREMENTS.replace("margin = 2.0\n", ""))
    measured = simulate_measurements(protocol, 12, np.random.default_rng(4))
    result = _section(protocol, measured, tmp_path)
    assert [d.claim for d in result.decisions] == ["dl equivalent to conventional: cartilage"]
    rows = result.tables["measurement_agreement"]
    snr = rows[rows["measurement"] == "snr_muscle"]
    assert snr["mm_p_tost"].isna().all() and snr["p_adjusted"].isna().all()
    assert snr["ba_bias"].notna().all()


def test_cli_refuses_measurements_with_db(tmp_path: Path) -> None:
    from blindreader.cli import app

    done = CliRunner().invoke(app, ["analyze", "report", "--db", str(tmp_path / "s.sqlite"),
                                    "--measurements", str(tmp_path / "m.csv"), "--out",
                                    str(tmp_path / "out")])  # fmt: skip
    assert isinstance(done.exception, AnalysisError)
    assert "--measurements go with --answers" in str(done.exception)
