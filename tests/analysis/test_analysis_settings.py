"""The protocol's [analysis] table: defaults, the knee protocol's plan, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from studies.errors import StudyError
from studies.protocol import load_protocol, parse_protocol
from tests.analysis.test_report import SMALL

KNEE = (
    Path(__file__).resolve().parents[2] / "studies" / "protocols" / "knee-interchangeability.toml"
)


def test_defaults_without_the_table():
    settings = parse_protocol(SMALL, "small.toml").analysis
    assert settings.primary == "random-readers" and settings.primary_readers == "random"
    assert settings.multiplicity == "holm"
    assert [s.measure for s in settings.sensitivity] == ["exact"]
    assert settings.squared_margin is None and settings.planning is None


def test_the_knee_protocol_declares_its_analysis():
    settings = load_protocol(KNEE).analysis
    assert settings.squared_margin == pytest.approx(0.30)
    assert [(s.measure, s.threshold) for s in settings.sensitivity] == [
        ("exact", None), ("squared", None), ("binary", 2), ("binary", 4),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[analysis]\nprimary = "fixed"\n', "analysis.primary"),
        ('[analysis]\nmultiplicity = "bonferroni"\n', "analysis.multiplicity"),
        ('[analysis]\n[[analysis.sensitivity]]\nmeasure = "squared"\n', "own margin"),
        ("[analysis]\n[[analysis.sensitivity]]\nthreshold = 5\n", "within 2..4"),
        (
            '[analysis]\n[[analysis.sensitivity]]\nmeasure = "exact"\nthreshold = 2\n',
            "binary measure only",
        ),
        ("[analysis]\nsquared_margin = -1\n", "positive"),
        ('[analysis]\n[analysis.planning]\ntext = " "\n', "empty"),
        ('[analysis]\n[analysis.planning]\ntext = "x"\npower = 80\n', "between 0 and 1"),
        ("[analysis]\nprimary_model = 1\n", "unknown key"),
    ],
)
def test_bad_analysis_tables_name_the_key(extra, message):
    with pytest.raises(StudyError, match=message) as error:
        parse_protocol(SMALL + extra, "small.toml")
    assert "small.toml, line" in str(error.value)
