"""``blindreader demo --arms 3``: CG-SENSE at 4x joins as a third arm, end to end through the
real parts; the report compares every new arm with the reference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blindreader.demo.run import DemoSettings, demo_protocol, run_demo
from studies.errors import StudyError
from studies.protocol import parse_protocol
from tests.studies.study_factory import FakeClock


def test_the_three_arm_protocol_adds_cg_sense_to_the_demo_protocol() -> None:
    two = parse_protocol(demo_protocol(2), "demo.toml")
    three = parse_protocol(demo_protocol(3), "demo3.toml")
    assert three.arm_codes == [*two.arm_codes, "cgsense"]
    assert three.reference_arm.code == "conventional"
    assert "CG-SENSE" in three.title
    # everything else is the two-arm protocol's
    assert three.questions == two.questions and three.readers == two.readers
    with pytest.raises(StudyError, match="2 or 3 arms"):
        demo_protocol(4)


def test_three_arm_demo_reports_every_arm_against_the_reference(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_demo(
        out,
        headless=True,
        report=lambda line: None,
        settings=DemoSettings(n_cases=3, n_slices=2, n_arms=3),
        clock=FakeClock(),
    )
    manifest = json.loads((out / "recon" / "manifest.json").read_text())
    assert {e["method"] for e in manifest} >= {"rss", "cg-sense"}
    assert len(manifest) == 3 * 3
    assert result.n_reads == 3 * 3 * 3  # three readers, three arms, three cases
    results = json.loads((out / "report" / "results.json").read_text())
    assert results["study"]["new_arms"] == ["dl", "cgsense"]
    pairs = {(r["new"], r["reference"]) for r in results["image_quality"]["two_way"]}
    assert pairs == {("dl", "conventional"), ("cgsense", "conventional")}
    page = (out / "report" / "report.html").read_text()
    for arm in ("dl", "cgsense"):
        assert f"Decisions per question, {arm} vs conventional" in page
    ic = results.get("interchangeability")
    if ic is not None:  # three cases may be too few for some intervals; then it says so
        assert {r["new"] for r in ic["fixed_readers"]} <= {"dl", "cgsense"}
