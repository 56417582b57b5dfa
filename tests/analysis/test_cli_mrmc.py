"""``blindreader analyze mrmc`` on list-mode CSV files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analysis.errors import AnalysisError
from blindreader.cli import app

DATA = Path(__file__).resolve().parent.parent / "data" / "mrmc"
runner = CliRunner()


def test_json_output_holds_every_analysis() -> None:
    result = runner.invoke(app, ["analyze", "mrmc", str(DATA / "vandyke.csv"), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert round(out["rrrc"]["F"], 2) == 4.46
    assert round(out["rrrc"]["df"][1], 2) == 15.26
    assert round(out["rrrc"]["p"], 4) == 0.0517
    assert round(out["rrrc"]["differences"][0]["difference"], 4) == -0.0438
    assert set(out) >= {"frrc", "rrfc", "reader_foms", "treatment_means"}


def test_text_output_and_specificity() -> None:
    result = runner.invoke(
        app,
        ["analyze", "mrmc", str(DATA / "franken.csv"), "--fom", "specificity", "--threshold", "3"],
    )
    assert result.exit_code == 0, result.output
    assert "SPECIFICITY: 2 treatments x 4 readers x 100 cases" in result.output
    assert "random readers, random cases: F =" in result.output


def test_bad_csv_raises_analysis_error(tmp_path: Path) -> None:
    bad = tmp_path / "one_treatment.csv"
    lines = (DATA / "vandyke.csv").read_text().splitlines()
    bad.write_text("\n".join([lines[0], *[row for row in lines[1:] if row.split(",")[1] == "1"]]))
    result = runner.invoke(app, ["analyze", "mrmc", str(bad)])
    assert isinstance(result.exception, AnalysisError)
    assert "one_treatment.csv" in str(result.exception)
    assert "at least two treatments" in str(result.exception)


@pytest.mark.parametrize("args", [["missing.csv"], [str(DATA / "vandyke.csv"), "--fom", "ppv"]])
def test_user_errors_are_one_line_on_stderr(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "blindreader.cli", "analyze", "mrmc", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("blindreader: error: ")
    assert len(proc.stderr.strip().splitlines()) == 1
