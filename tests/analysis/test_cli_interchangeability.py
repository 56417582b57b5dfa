"""``blindreader analyze interchangeability`` on reads CSV files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from analysis.errors import AnalysisError
from blindreader.cli import app

runner = CliRunner()


def tavr_csv(path: Path) -> Path:
    """The TAVR worked example of Obuchowski 2014 (see test_interchangeability.tavr_reads)."""
    rows = []
    for i in range(109):
        reads = {
            ("m1", "manual"): 1,
            ("m2", "manual"): 0 if i < 6 else 1,
            ("s1", "semi"): 0 if 6 <= i < 17 else 1,
            ("s2", "semi"): 0 if 17 <= i < 27 else 1,
        }
        for (reader, arm), value in reads.items():
            rows.append((f"p{i}", reader, arm, "valve_size", value))
    pd.DataFrame(rows, columns=["case", "reader", "arm", "finding", "value"]).to_csv(
        path, index=False
    )
    return path


def ordinal_csv(path: Path, *, drop_one: bool = False) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):
        for finding in ("acl", "meniscus"):
            truth = rng.integers(1, 5)
            for reader in ("a", "b", "c", "d"):
                for arm in ("conv", "dl"):
                    value = int(np.clip(truth + rng.integers(-1, 2), 1, 4))
                    rows.append((f"c{i}", reader, arm, finding, value))
    frame = pd.DataFrame(rows, columns=["case", "reader", "arm", "finding", "value"])
    if drop_one:
        frame = frame.drop(index=[3])
    frame.to_csv(path, index=False)
    return path


def test_json_reproduces_the_tavr_example(tmp_path):
    path = tavr_csv(tmp_path / "tavr.csv")
    result = runner.invoke(
        app, ["analyze", "interchangeability", str(path), "--reference", "manual", "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    (finding,) = out["findings"]
    assert round(finding["excess_disagreement"], 4) == 0.0688
    assert finding["a_rr"] == pytest.approx(103 / 109)
    assert finding["a_tr"] == pytest.approx(382 / 436)
    for key in ("ci_low", "ci_high", "n_cases", "n_readers", "interchangeable", "p_value"):
        assert key in finding
    assert finding["interchangeable"] is False and out["new"] == "semi"


def test_gee_cross_check(tmp_path):
    path = tavr_csv(tmp_path / "tavr.csv")
    args = ["analyze", "interchangeability", str(path), "--reference", "manual", "--gee"]
    result = runner.invoke(app, [*args, "--json", "--n-boot", "50"])
    assert result.exit_code == 0, result.output
    (finding,) = json.loads(result.output)["findings"]
    assert finding["gee"]["estimate"] == pytest.approx(finding["excess_disagreement"], abs=1e-3)
    text = runner.invoke(app, [*args, "--n-boot", "50"])
    assert "GEE cross-check valve_size: +0.0688" in text.output


def test_table_output_with_threshold_holm_and_exclusions(tmp_path):
    path = ordinal_csv(tmp_path / "reads.csv", drop_one=True)
    result = runner.invoke(
        app,
        [
            "analyze",
            "interchangeability",
            str(path),
            "--reference",
            "conv",
            "--threshold",
            "3",
            "--holm",
            "--n-boot",
            "200",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].split()[:2] == ["finding", "gamma"] and "p_holm" in lines[1]
    assert lines[2].startswith("acl") and lines[3].startswith("meniscus")
    assert "excluded: case c0, finding acl: missing read(s): b on dl" in result.output


def test_random_readers_and_seed_reproducibility(tmp_path):
    path = ordinal_csv(tmp_path / "reads.csv")
    args = ["analyze", "interchangeability", str(path), "--reference", "conv", "--threshold", "3"]
    args += ["--readers", "random", "--n-boot", "200", "--seed", "7", "--json"]
    first = json.loads(runner.invoke(app, args).output)
    second = json.loads(runner.invoke(app, args).output)
    assert first == second
    assert all(f["readers"] == "random" for f in first["findings"])
    assert first["findings"][0]["boot_ci_low"] is not None


def test_measure_squared(tmp_path):
    path = ordinal_csv(tmp_path / "reads.csv")
    result = runner.invoke(
        app,
        ["analyze", "interchangeability", str(path), "--reference", "conv", "--measure",
         "squared", "--n-boot", "50", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    finding = json.loads(result.output)["findings"][0]
    assert finding["measure"] == "squared"
    assert finding["excess_disagreement"] == pytest.approx(finding["a_tr"] - finding["a_rr"])


def test_bad_input_is_one_line_error(tmp_path):
    path = ordinal_csv(tmp_path / "reads.csv")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "blindreader.cli",
            "analyze",
            "interchangeability",
            str(path),
            "--reference",
            "nope",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 1
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("blindreader: error:")
    assert "the reference arm 'nope' is not in the reads" in lines[0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--reference", "conv", "--readers", "mixed"], "--readers must be one of"),
        (["--reference", "conv", "--n-boot", "0"], "--n-boot must be at least 1"),
        (["--reference", "conv", "--new", "ai"], "new arm 'ai'"),
        (["--reference", "conv", "--same-reader"], "at least two reads"),
    ],
)
def test_bad_options_raise_analysis_error(tmp_path, extra, message):
    path = ordinal_csv(tmp_path / "reads.csv")
    result = runner.invoke(app, ["analyze", "interchangeability", str(path), *extra])
    assert result.exit_code != 0
    assert isinstance(result.exception, AnalysisError)
    assert message in str(result.exception)


def test_non_numeric_score_names_the_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("case,reader,arm,finding,value\nc1,a,ref,f,high\nc1,b,new,f,1\n")
    result = runner.invoke(app, ["analyze", "interchangeability", str(path), "--reference", "ref"])
    assert isinstance(result.exception, AnalysisError)
    assert "column 'value' must be a number, got 'high'" in str(result.exception)
