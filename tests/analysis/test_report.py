"""The study report: files, results.json keys, HTML with embedded figures and the simulated note."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.errors import AnalysisError
from analysis.report import build_report
from analysis.simulated_study import SIMULATED_NOTE, simulate_answers
from studies.protocol import Protocol, load_protocol, parse_protocol

REPO = Path(__file__).resolve().parents[2]
PROTOCOLS = REPO / "studies" / "protocols"


SMALL = """
title = "Small study"
design = "sequential"
seed = 1
[[arms]]
code = "conventional"
description = "Conventional"
reference = true
[[arms]]
code = "dl"
description = "Deep learning"
[[readers]]
id = "R1"
name = "One"
[[readers]]
id = "R2"
name = "Two"
[[readers]]
id = "R3"
name = "Three"
[[findings]]
id = "acl"
label = "ACL tear"
[[findings]]
id = "mcl"
label = "MCL tear"
[[questions]]
id = "likelihood"
text = "Present?"
type = "likert"
scope = "finding"
points = 4
labels = ["absent", "probably absent", "probably present", "present"]
[[questions]]
id = "quality_overall"
text = "Quality"
type = "likert"
points = 4
labels = ["poor", "fair", "good", "excellent"]
[interchangeability]
question = "likelihood"
margin = 0.05
threshold = 3
"""


@pytest.fixture(scope="module")
def small() -> Protocol:
    return parse_protocol(SMALL, "small.toml")


@pytest.fixture(scope="module")
def knee() -> Protocol:
    return load_protocol(PROTOCOLS / "knee-interchangeability.toml")


@pytest.fixture(scope="module")
def knee_report(knee: Protocol, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    study = simulate_answers(knee, 30, np.random.default_rng(5))
    out = tmp_path_factory.mktemp("report")
    calls: list[tuple[int, int, str]] = []
    results = build_report(
        study.answers,
        knee,
        study.truth,
        out,
        n_boot=100,
        seed=1,
        simulated_note=SIMULATED_NOTE,
        progress=lambda d, t, m: calls.append((d, t, m)),
    )
    assert calls[-1][0] == calls[-1][1]
    return out, results


def test_every_file_is_written(knee_report: tuple[Path, dict]) -> None:
    out, results = knee_report
    for name in (
        "results.json",
        "report.html",
        "interchangeability.csv",
        "accuracy.csv",
        "mrmc.csv",
        "agreement_reader_pairs.csv",
        "image_quality_summary.csv",
    ):
        assert (out / name).is_file(), name
    for name in (
        "forest_dl_vs_conventional.png",
        "agreement_heatmaps.png",
        "image_quality_scores.png",
        "vgc_curves.png",
    ):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    for name in results["files"]["tables"] + results["files"]["figures"]:
        assert (out / name).is_file(), name
    assert not list(out.glob("*.part"))


def test_results_json_keys_and_simulated_note_first(knee_report: tuple[Path, dict]) -> None:
    out, results = knee_report
    text = (out / "results.json").read_text()
    on_disk = json.loads(text)
    assert on_disk == results
    assert next(iter(on_disk)) == "simulated_note"
    assert text.splitlines()[1].strip().startswith('"simulated_note": "SIMULATED DATA')
    assert {
        "study",
        "methods",
        "interchangeability",
        "image_quality",
        "agreement",
        "accuracy",
        "decisions",
    } <= set(on_disk)
    study = on_disk["study"]
    assert (study["reference_arm"], study["new_arms"]) == ("conventional", ["dl"])
    assert (study["n_cases"], study["n_readers"]) == (30, 6)
    rows = on_disk["interchangeability"]["fixed_readers"]
    assert len(rows) == 10
    assert {
        "finding",
        "excess_disagreement",
        "ci_low",
        "ci_high",
        "a_rr",
        "a_tr",
        "interchangeable",
    } <= set(rows[0])
    assert len(on_disk["decisions"]) == 10
    mrmc = on_disk["accuracy"]["mrmc"]
    assert {m["fom"] for m in mrmc} == {"auc", "sensitivity", "specificity"}
    first = next(m for m in mrmc if "rrrc" in m)
    assert first["treatments"] == ["dl", "conventional"]


def test_html_is_self_contained_with_figures_and_note_first(knee_report: tuple[Path, dict]) -> None:
    out, results = knee_report
    page = (out / "report.html").read_text()
    assert page.splitlines()[0] == f"<!-- {SIMULATED_NOTE} -->"
    body = page.split("<body>", 1)[1]
    assert body.lstrip().startswith(f'<p class="simulated">{SIMULATED_NOTE}</p>')
    assert len(re.findall(r'src="data:image/png;base64,', page)) >= 3
    assert 'src="http' not in page and "<link" not in page
    assert "Obuchowski" in page and "Hillis" in page
    assert results["decisions"][0].split(":")[0] in page
    for sentence in results["decisions"]:
        assert ("is interchangeable with" in sentence) or ("is not shown" in sentence)


def test_interchangeable_arms_are_declared_so(small: Protocol, tmp_path: Path) -> None:
    study = simulate_answers(small, 30, np.random.default_rng(2), extra_noise=0.0)
    answers = study.answers
    # the new arm repeats the reference reads exactly: zero excess disagreement everywhere
    ref = answers[answers["arm"] == "conventional"]
    answers = pd.concat([ref, ref.assign(arm="dl")], ignore_index=True)
    results = build_report(answers, small, None, tmp_path, n_boot=50)
    rows = results["interchangeability"]["fixed_readers"]
    assert all(r["excess_disagreement"] == 0 for r in rows)
    assert all(r["interchangeable"] for r in rows)
    assert "accuracy" not in results
    assert "simulated_note" not in results
    assert not (tmp_path / "report.html").read_text().startswith("<!--")


def test_exclusions_are_reported(small: Protocol, tmp_path: Path) -> None:
    study = simulate_answers(small, 20, np.random.default_rng(3))
    answers = study.answers
    drop = (answers["case"] == "case0003") & (answers["arm"] == "dl")
    results = build_report(answers[~drop], small, study.truth, tmp_path, n_boot=50)
    excluded = results["study"]["exclusions"]
    assert {e["case"] for e in excluded} >= {"case0003"}
    assert (tmp_path / "exclusions.csv").is_file()
    assert results["study"]["n_cases"] == 20
    assert all(r["n_cases"] == 19 for r in results["interchangeability"]["fixed_readers"])


def test_paired_protocol_reports_image_quality_and_preference(tmp_path: Path) -> None:
    protocol = load_protocol(PROTOCOLS / "paired-image-quality.toml")
    study = simulate_answers(protocol, 30, np.random.default_rng(4))
    results = build_report(study.answers, protocol, None, tmp_path, n_boot=50)
    assert "interchangeability" not in results
    prefs = [p for p in results["image_quality"]["preferences"] if p["reader"] is None]
    assert {p["choice"] for p in prefs} == {"conventional", "dl", "equal"}
    assert sum(p["count"] for p in prefs) == 3 * 30
    assert {"image_quality_vgc.csv", "image_quality_ordinal.csv", "preferences.csv"} <= set(
        results["files"]["tables"]
    )
    assert "vgc_curves.png" in results["files"]["figures"]
    assert (tmp_path / "report.html").is_file()


def test_blinded_answers_are_refused(knee: Protocol, tmp_path: Path) -> None:
    study = simulate_answers(knee, 10, np.random.default_rng(0))
    with pytest.raises(AnalysisError, match="unblinded"):
        build_report(study.answers.drop(columns=["arm"]), knee, None, tmp_path)
    assert not (tmp_path / "results.json").exists()
