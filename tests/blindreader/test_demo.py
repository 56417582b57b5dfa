"""The demo end to end on a small study: k-space, two arms, a blinded study, scripted reads and
the report, through the real parts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blindreader.demo import SIMULATED_NOTE
from blindreader.demo.run import DemoSettings, prepare_out_dir, run_demo
from studies.errors import StudyError
from tests.studies.study_factory import FakeClock

#: The demo module's one clock (its study is built once, in a module fixture).
DEMO_CLOCK = FakeClock()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, list[str]]:
    out = tmp_path_factory.mktemp("demo") / "out"
    lines: list[str] = []
    result = run_demo(
        out,
        headless=True,
        report=lines.append,
        settings=DemoSettings(n_cases=4, n_slices=4),
        clock=DEMO_CLOCK,
    )
    return out, result, lines


def test_demo_builds_reads_and_reports(demo_run: tuple[Path, object, list[str]]) -> None:
    clock = DEMO_CLOCK
    out, result, lines = demo_run
    assert lines[0] == SIMULATED_NOTE
    assert len(list((out / "kspace").glob("*.h5"))) == 4
    manifest = json.loads((out / "recon" / "manifest.json").read_text())
    assert {e["method"] for e in manifest} >= {"rss"}
    assert len(manifest) == 8
    from studies.store import Store

    with Store.open(out / "study.sqlite", clock=clock) as store:
        for reader in store.readers():
            assert all(s.finished for s in store.sessions(reader.reader_id))
    assert result.n_reads == 3 * 2 * 4  # three readers, two arms, four cases
    shots = sorted((out / "screenshots").glob("*.png"))
    assert shots and all(p.stat().st_size > 10_000 for p in shots)
    html = (out / "report" / "report.html").read_text()
    assert SIMULATED_NOTE in html[:2000]
    results = json.loads((out / "report" / "results.json").read_text())
    assert results["simulated_note"] == SIMULATED_NOTE


def test_demo_readers_measure_snr_on_the_pixels(demo_run: tuple[Path, object, list[str]]) -> None:
    """Every read has a white-matter and a background ROI where the phantom has them; the SNR
    comes from the reconstructed pixels, and each reader's hand differs a little."""
    from studies.export import measurements_frame, roi_frame
    from studies.store import Store

    out, _, _ = demo_run
    with Store.open(out / "study.sqlite", clock=DEMO_CLOCK) as store:
        rois = roi_frame(store, unblinded=True)
        snr = measurements_frame(store)
    assert len(rois) == 2 * 3 * 2 * 4  # two ROIs per read
    tissue = rois[rois["question"] == "roi_tissue"].set_index(["reader", "case", "arm"])
    air = rois[rois["question"] == "roi_background"].set_index(["reader", "case", "arm"])
    assert (tissue["mean"] > 10 * air["mean"]).all()  # tissue is bright, air is dark
    assert tissue["points"].nunique() > len(tissue) // 2  # reader-specific jitter
    rows = snr[snr["measurement"] == "snr_white_matter"]
    assert set(rows["arm"]) == {"conventional", "dl"}
    assert len(rows) >= 20 and (rows["value"] > 5).all()


def test_demo_ai_arm_is_better_than_nothing(demo_run: tuple[Path, object, list[str]]) -> None:
    out, _, _ = demo_run
    manifest = json.loads((out / "recon" / "manifest.json").read_text())
    ai = [e for e in manifest if e["method"] != "rss"]
    assert all(0.5 < e["metrics"]["ssim"] < 1.0 for e in ai)


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(StudyError, match="not made by the demo"):
        prepare_out_dir(tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"
