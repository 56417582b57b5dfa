"""The measurement exports: ``roi_frame`` (geometry and values), ``measurements_frame`` (SNR, CNR,
distance per read, from the stored ROIs) and ``study export --what measurements|rois``; blinded
exports carry no arm and no series id."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from studies.api import AnswerKey
from studies.export import MEASUREMENT_COLUMNS, measurements_frame, roi_frame
from studies.store import Store
from tests.studies.measurement_study import SEQUENTIAL_MEASUREMENTS, build
from tests.studies.test_cli import run


def draw_all(
    store: Store, reader: str, session: int, *, shift: float = 0.0, complete: bool = True
) -> None:
    """Muscle, fluid and background ROIs and a ruler on every case of a session; complete it."""
    for view in store.assignments(reader, session):
        aid = view.assignment_id
        label = view.sides[0].series[0].label

        def roi(
            points: list[list[float]], shape: str = "ellipse", label: str = label
        ) -> dict[str, object]:
            return {"series": label, "slice": 1, "shape": shape, "points": points}

        store.record_answer(aid, AnswerKey("quality"), 3)
        store.record_answer(aid, AnswerKey("roi_muscle"), roi([[14 + shift, 20], [24 + shift, 30]]))
        store.record_answer(aid, AnswerKey("roi_fluid"), roi([[29, 15], [35, 21]]))
        store.record_answer(aid, AnswerKey("roi_background"), roi([[0.5, 0.5], [6, 6]]))
        store.record_answer(aid, AnswerKey("ruler"), roi([[10, 10], [20, 30]], "line"))
        if complete:
            store.complete_assignment(aid)


@pytest.fixture(scope="module")
def read_study(tmp_path_factory) -> Path:
    from studies.clock import washout_opens_at
    from tests.studies.study_factory import START, FakeClock

    db = build(tmp_path_factory.mktemp("measured"), SEQUENTIAL_MEASUREMENTS)
    clock = FakeClock(START)
    with Store.open(db, clock=clock) as store:
        for reader, shift in (("R1", 0.0), ("R2", 1.5)):
            draw_all(store, reader, 1, shift=shift)
            not_before = store.sessions(reader)[1].not_before
            if not_before is not None:
                clock.now = max(clock.now, washout_opens_at(not_before))
            draw_all(store, reader, 2, shift=shift)
    return db


@pytest.fixture
def db(read_study: Path, tmp_path: Path) -> Path:
    shutil.copytree(read_study.parent, tmp_path / "study")
    return tmp_path / "study" / read_study.name


def test_roi_frame_carries_geometry_and_values(db, clock):
    with Store.open(db, clock=clock) as store:
        unblinded = roi_frame(store, unblinded=True)
        blinded = roi_frame(store)
    # 2 readers x 2 cases x 2 arms x 4 drawn answers
    assert len(unblinded) == 32
    assert set(unblinded["arm"]) == {"conv", "varnet"}
    assert set(unblinded["case"]) == {"case01", "case02"}
    muscle = unblinded[unblinded["question"] == "roi_muscle"].iloc[0]
    assert json.loads(muscle["points"]) == [[14.0, 20.0], [24.0, 30.0]]
    assert muscle["shape"] == "ellipse" and muscle["slice"] == 1 and muscle["n_pixels"] > 50
    assert muscle["area_mm2"] == pytest.approx(muscle["n_pixels"] * 0.5 * 0.8)
    ruler = unblinded[unblinded["question"] == "ruler"].iloc[0]
    assert ruler["length_mm"] == pytest.approx(((10 * 0.8) ** 2 + (20 * 0.5) ** 2) ** 0.5)
    assert "arm" not in blinded.columns and "series_id" not in blinded.columns
    assert not set(blinded["case"]) & {"case01", "case02"}
    text = blinded.to_csv()
    assert "conv" not in text and "varnet" not in text


def test_measurements_are_derived_per_read_from_the_rois(db, clock):
    with Store.open(db, clock=clock) as store:
        rois = roi_frame(store, unblinded=True)
        frame = measurements_frame(store)
        blinded = measurements_frame(store, unblinded=False)
    assert tuple(frame.columns) == MEASUREMENT_COLUMNS
    # 2 readers x 2 cases x 2 arms x 3 measurements
    assert len(frame) == 24
    one = rois[(rois["reader"] == "R2") & (rois["case"] == "case02") & (rois["arm"] == "varnet")]
    by_q = one.set_index("question")
    snr = by_q.loc["roi_muscle", "mean"] / by_q.loc["roi_background", "sd"]
    cnr = (
        abs(by_q.loc["roi_muscle", "mean"] - by_q.loc["roi_fluid", "mean"])
        / by_q.loc["roi_background", "sd"]
    )
    got = frame[
        (frame["reader"] == "R2") & (frame["case"] == "case02") & (frame["arm"] == "varnet")
    ]
    values = got.set_index("measurement")["value"]
    assert values["snr_muscle"] == pytest.approx(snr, rel=1e-12)
    assert values["cnr_muscle_fluid"] == pytest.approx(cnr, rel=1e-12)
    assert values["thickness"] == pytest.approx(by_q.loc["ruler", "length_mm"])
    assert set(got["unit"]) == {"", "mm"}
    assert snr > 5  # tissue well above the noise of the air
    assert "arm" not in blinded.columns and set(blinded["side"].dropna()) == set()


def test_a_deleted_roi_drops_its_measurements(tmp_path, clock):
    db = build(tmp_path, SEQUENTIAL_MEASUREMENTS)
    with Store.open(db, clock=clock) as store:
        draw_all(store, "R1", 1, complete=False)
        view = store.assignments("R1", 1)[0]
        store.record_answer(view.assignment_id, AnswerKey("roi_fluid"), None)
        frame = measurements_frame(store)
    read = frame[(frame["reader"] == "R1") & (frame["session"] == 1)]
    assert sorted(read["measurement"]).count("cnr_muscle_fluid") == 1  # the other case only
    assert sorted(read["measurement"]).count("snr_muscle") == 2


def test_study_export_what_measurements_and_rois(db, clock, monkeypatch, capsys, tmp_path):
    for what, unblinded in (("measurements", True), ("rois", False)):
        out = tmp_path / f"{what}.csv"
        args = ["study", "export", "--db", str(db), "--what", what, "--out", str(out)]
        code, _, err = run(
            args + (["--unblinded"] if unblinded else []), monkeypatch, capsys, clock
        )
        assert code == 0, err
        frame = pd.read_csv(out)
        assert len(frame) in (24, 32)
        assert ("arm" in frame.columns) == unblinded
    code, stdout, err = run(
        ["study", "export", "--db", str(db), "--what", "sr", "--out", str(tmp_path / "sr")],
        monkeypatch,
        capsys,
        clock,
    )
    assert code == 0, err
    assert "8 SR files" in stdout and "unblinded" in stdout
    assert len(list((tmp_path / "sr").glob("SR_*.dcm"))) == 8
    code, _, err = run(
        ["study", "export", "--db", str(db), "--what", "events", "--unblinded", "--out", "x.csv"],
        monkeypatch,
        capsys,
        clock,
    )
    assert code == 1 and "--unblinded applies only to" in err


def test_study_validate_lists_the_measurements(tmp_path, monkeypatch, capsys, clock):
    protocol = tmp_path / "m.toml"
    protocol.write_text(SEQUENTIAL_MEASUREMENTS, encoding="utf-8")
    code, stdout, err = run(["study", "validate", str(protocol)], monkeypatch, capsys, clock)
    assert code == 0, err
    assert "measured:  snr_muscle (snr), cnr_muscle_fluid (cnr), thickness (distance)" in stdout
