"""``blindreader analyze report`` from a study database and from the tidy CSV export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from analysis.errors import AnalysisError
from blindreader.cli import app
from studies.export import answers_frame, truth_frame
from studies.store import Store
from tests.studies.study_factory import (
    SEQUENTIAL_TOML,
    FakeClock,
    build_study,
    read_with_random_grades,
)

runner = CliRunner()


@pytest.fixture(scope="module")
def study_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished sequential study (2 readers, 8 cases, 2 findings) with random grades."""
    folder = tmp_path_factory.mktemp("study")
    db = build_study(folder, n_cases=8)
    read_with_random_grades(db, np.random.default_rng(0))
    return db


ARGS = ["--n-boot", "50", "--seed", "3"]


@pytest.fixture(scope="module")
def db_report(study_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("db_report")
    result = runner.invoke(
        app,
        ["analyze", "report", "--db", str(study_db), "--out", str(out), *ARGS],
        obj=FakeClock(),
    )
    assert result.exit_code == 0, result.output
    assert "report.html" in result.output
    return out


def test_report_from_the_database(db_report: Path) -> None:
    results = json.loads((db_report / "results.json").read_text())
    assert results["study"]["n_cases"] == 8  # the training case T1 is left out
    assert results["study"]["n_readers"] == 2
    assert [r["finding"] for r in results["interchangeability"]["fixed_readers"]] == ["acl", "mcl"]
    # two readers: the random-reader analysis is noted as not computable, not an error
    assert any("random-reader" in n for n in results["interchangeability"]["notes"])
    # acl has both truth values; mcl has no non-diseased case: reported, not computed
    mrmc = results["accuracy"]["mrmc"]
    assert any(m["finding"] == "acl" and "rrrc" in m for m in mrmc)
    assert any(m["finding"] == "mcl" and "error" in m for m in mrmc)
    assert (db_report / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_the_report_states_the_study_record_and_is_anchored_in_it(
    study_db: Path, db_report: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    results = json.loads((db_report / "results.json").read_text())
    record = results["study"]["record"]
    assert record["verified"] and record["keyed"] and record["problems"] == 0
    assert record["sign_in"].startswith("no reader has a passphrase")
    anchor = results["study_record"]
    assert {"seq", "hash", "mac", "what"} <= set(anchor) and anchor["what"] == "report"
    page = (db_report / "report.html").read_text()
    assert "Blinding and the study record" in page and "no reader has a passphrase" in page
    from blindreader.cli import main

    monkeypatch.setattr("sys.argv", ["blindreader"])
    args = ["study", "verify", "--db", str(study_db), "--anchor", str(db_report / "results.json")]
    with pytest.raises(SystemExit) as stopped:
        main(args, clock=FakeClock())
    assert stopped.value.code in (0, None), capsys.readouterr().err


def test_report_from_csv_export_matches_the_database(
    study_db: Path, db_report: Path, tmp_path: Path
) -> None:
    with Store.open(study_db) as store:
        answers_frame(store, unblinded=True).to_csv(tmp_path / "answers.csv", index=False)
        truth_frame(store).to_csv(tmp_path / "truth.csv", index=False)
    (tmp_path / "protocol.toml").write_text(SEQUENTIAL_TOML)
    out_csv = tmp_path / "csv"
    result = runner.invoke(
        app,
        ["analyze", "report", "--answers", str(tmp_path / "answers.csv"), "--protocol",
         str(tmp_path / "protocol.toml"), "--truth", str(tmp_path / "truth.csv"),
         "--out", str(out_csv), *ARGS],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    from_csv = json.loads((out_csv / "results.json").read_text())
    from_db = json.loads((db_report / "results.json").read_text())
    assert from_csv["interchangeability"] == from_db["interchangeability"]
    assert from_csv["accuracy"]["per_reader"] == from_db["accuracy"]["per_reader"]
    assert from_csv["image_quality"]["summary"] == from_db["image_quality"]["summary"]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--out", "x"], "either --db"),
        (["--db", "nowhere.sqlite", "--answers", "a.csv", "--out", "x"], "either --db"),
        (["--answers", "a.csv", "--out", "x"], "needs --protocol"),
    ],
)
def test_bad_arguments_are_clear_errors(args: list[str], match: str) -> None:
    result = runner.invoke(app, ["analyze", "report", *args])
    assert isinstance(result.exception, AnalysisError)
    assert match in str(result.exception)


def test_missing_column_in_answers_csv(tmp_path: Path) -> None:
    (tmp_path / "answers.csv").write_text("reader,case,question,value\nR1,C1,quality,3\n")
    (tmp_path / "protocol.toml").write_text(SEQUENTIAL_TOML)
    result = runner.invoke(
        app,
        ["analyze", "report", "--answers", str(tmp_path / "answers.csv"), "--protocol",
         str(tmp_path / "protocol.toml"), "--out", str(tmp_path / "out")],
    )  # fmt: skip
    assert isinstance(result.exception, AnalysisError)
    assert "answers.csv: missing column(s) arm, finding" in str(result.exception)
    assert not (tmp_path / "out" / "results.json").exists()
