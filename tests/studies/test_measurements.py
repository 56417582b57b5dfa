"""Measurement questions: the protocol refuses bad roi / distance / [[measurements]] tables, the
store measures what a reader draws on the blinded image (checked against numpy on the same
pixels), keeps every edit and deletion as a revision and counts required ROIs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from studies.api import AnswerKey
from studies.errors import StudyError
from studies.protocol import parse_protocol
from studies.roi_stats import measure, roi_mask
from studies.store import Store
from tests.studies.measurement_study import (
    PAIRED_MEASUREMENTS,
    SEQUENTIAL_MEASUREMENTS,
    blinded_pixels,
    build,
    reference_ellipse,
)

# ---- protocol --------------------------------------------------------------------------------


def test_the_measurement_protocols_load():
    protocol = parse_protocol(SEQUENTIAL_MEASUREMENTS)
    assert [m.id for m in protocol.measurements] == ["snr_muscle", "cnr_muscle_fluid", "thickness"]
    assert protocol.question("roi_muscle").roi_shapes == ["ellipse", "freehand"]
    assert protocol.question("ruler").roi_shapes == ["line"]
    assert protocol.measurements[2].unit == "mm"
    assert parse_protocol(PAIRED_MEASUREMENTS).question("roi_muscle").mirror


BAD = [
    (
        'kind = "snr"\nroi = "roi_muscle"\nbackground = "roi_background"\n',
        'kind = "snr"\nroi = "roi_nerve"\nbackground = "roi_background"\n',
        r"measurements\[0\]\.roi: unknown question 'roi_nerve' \(roi questions: roi_muscle, "
        "roi_fluid, roi_background\\)",
    ),
    (
        'id = "cnr_muscle_fluid"\nlabel = "CNR muscle / fluid"\nkind = "cnr"\nroi = "roi_muscle"\n'
        'roi_b = "roi_fluid"\n',
        'id = "cnr_muscle_fluid"\nlabel = "CNR muscle / fluid"\nkind = "cnr"\nroi = "roi_muscle"\n',
        r"measurements\[1\]\.roi_b: cnr needs 'roi_b'",
    ),
    (
        'kind = "snr"\nroi = "roi_muscle"\nbackground = "roi_background"\n',
        'kind = "snr"\nroi = "roi_muscle"\n',
        r"measurements\[0\]\.background: snr needs 'background'",
    ),
    ("margin = 2.0", "margin = 0", r"measurements\[0\]\.margin: margin must be a positive"),
    ("margin = 2.0", "margin = -1.5", r"measurements\[0\]\.margin: margin must be a positive"),
    (
        'kind = "distance"\nroi = "ruler"',
        'kind = "distance"\nroi = "roi_muscle"',
        r"measurements\[2\]\.roi: question 'roi_muscle' is of type roi; distance needs a "
        r"distance question",
    ),
    (
        'roi = "background"\nshapes = ["ellipse"]',
        'roi = "background"\nshapes = ["ellipse"]\nmirror = true',
        r"questions\[3\]\.mirror: mirror applies to the paired design",
    ),
    (
        'roi = "background"\nshapes = ["ellipse"]',
        'roi = "background"\nshapes = ["square"]',
        r"questions\[3\]\.shapes\[0\]",
    ),
    ('type = "roi"\nroi = "fluid"', 'type = "roi"', r"questions\[2\]\.roi: an roi question needs"),
    (
        'type = "distance"',
        'type = "distance"\nroi = "x"',
        r"questions\[4\]\.roi: 'roi' applies to roi questions",
    ),
    (
        'roi = "fluid"\nrequired = false',
        'roi = "fluid"\nrequired = false\nper = "exam"',
        r"questions\[2\]\.per",
    ),
    (
        'points = 4\nlabels = ["Non-diagnostic"',
        'points = 4\nroi = "x"\nlabels = ["Non-diagnostic"',
        r"questions\[0\]\.roi: 'roi' applies only to roi/distance, not likert",
    ),
    (
        'id = "thickness"',
        'id = "snr_muscle"',
        r"measurements\[2\]\.id: duplicate measurement id 'snr_muscle'",
    ),
    (
        'roi_b = "roi_fluid"',
        'roi_b = "roi_background"',
        r"measurements\[1\]: cnr reads the same ROI twice",
    ),
    (  # the ROI's name is drawn beside it on the image
        'type = "roi"\nroi = "fluid"',
        'type = "roi"\nroi = "varnet_fluid"',
        r"questions\[2\]\.roi: names the arm 'varnet'",
    ),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD)
def test_bad_measurement_protocols_name_the_field(old, new, message):
    assert old in SEQUENTIAL_MEASUREMENTS
    text = SEQUENTIAL_MEASUREMENTS.replace(old, new, 1)
    with pytest.raises(StudyError, match=message) as info:
        parse_protocol(text, "m.toml")
    assert str(info.value).startswith("m.toml, line ")


def test_a_paired_roi_question_is_asked_per_side():
    text = PAIRED_MEASUREMENTS.replace('roi = "muscle"\nscope = "side"', 'roi = "muscle"', 1)
    with pytest.raises(StudyError, match=r"questions\[1\]\.scope: in the paired design"):
        parse_protocol(text)


# ---- what a shape measures ---------------------------------------------------------------------


def test_roi_mask_counts_pixel_centres():
    # an ellipse in a 6 x 4 pixel box leaves out the 4 corner pixels; a polygon keeps the box
    box = [[1.0, 1.0], [7.0, 5.0]]
    mask = roi_mask("ellipse", box, (6, 8))
    assert mask.sum() == 20 and mask[1:5, 1:7].sum() == 20
    assert not mask[1, 1] and not mask[4, 6] and mask[1, 2]
    values = np.arange(48.0).reshape(6, 8)
    assert np.array_equal(np.sort(values[mask]), np.sort(reference_ellipse(values, box)))
    square = roi_mask("freehand", [[1, 1], [5, 1], [5, 3], [1, 3]], (6, 8))  # 4 x 2 pixels
    assert square.sum() == 8 and square[1:3, 1:5].all()
    triangle = roi_mask("freehand", [[0, 0], [8, 0], [0, 6]], (6, 8))
    rows, cols = np.mgrid[0:6, 0:8]
    assert np.array_equal(triangle, (cols + 0.5) / 8 + (rows + 0.5) / 6 < 1)


def test_measure_refuses_outside_and_empty_shapes():
    pixels = np.arange(48.0).reshape(6, 8)
    with pytest.raises(StudyError, match="outside the image"):
        measure(pixels, "ellipse", [[1, 1], [9, 3]], (1.0, 1.0))
    with pytest.raises(StudyError, match="holds 0 pixel"):
        measure(pixels, "ellipse", [[1.1, 1.1], [1.2, 1.2]], (1.0, 1.0))
    ruler = measure(pixels, "line", [[0, 0], [3, 4]], (2.0, 1.0))
    assert ruler.length_mm == pytest.approx(np.hypot(3 * 1.0, 4 * 2.0))


# ---- the store -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("measurement-template"))


@pytest.fixture
def db(template: Path, tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(template.parent, tmp_path / "study")
    return tmp_path / "study" / template.name


def _first(store: Store):
    view = store.next_assignment("R1")
    assert view is not None
    return view


def test_an_ellipse_is_measured_on_the_blinded_image(db, clock):
    with Store.open(db, clock=clock) as store:
        view = _first(store)
        series = view.sides[0].series[0]
        points = [[10.3, 12.0], [30.0, 25.5]]
        drawn = {"series": series.label, "slice": 2, "shape": "ellipse", "points": points}
        record = store.record_answer(view.assignment_id, AnswerKey("roi_muscle"), drawn)
    pixels, spacing = blinded_pixels(series.files[2])
    inside = reference_ellipse(pixels, points)
    value = record.value
    assert isinstance(value, dict)
    assert value["series_id"] == series.series_id
    assert value["n_pixels"] == inside.size
    assert value["mean"] == pytest.approx(inside.mean(), abs=1e-6)
    assert value["sd"] == pytest.approx(inside.std(ddof=1), abs=1e-6)
    analytic = np.pi * (19.7 / 2) * (13.5 / 2) * spacing[0] * spacing[1]
    assert abs(value["area_mm2"] - analytic) <= spacing[0] * spacing[1] * 0.05 * inside.size
    assert value["area_mm2"] == pytest.approx(inside.size * spacing[0] * spacing[1])


def test_freehand_and_ruler_values_match_numpy(db, clock):
    with Store.open(db, clock=clock) as store:
        view = _first(store)
        series = view.sides[0].series[0]
        polygon = [[5.2, 5.1], [20.3, 6.2], [22.1, 18.4], [8.3, 15.7]]  # no centre on an edge
        roi = store.record_answer(
            view.assignment_id,
            AnswerKey("roi_muscle"),
            {"series": series.label, "slice": 1, "shape": "freehand", "points": polygon},
        ).value
        line = store.record_answer(
            view.assignment_id,
            AnswerKey("ruler"),
            {"series": series.label, "slice": 1, "shape": "line", "points": [[4, 4], [16, 20]]},
        ).value
    pixels, (dy, dx) = blinded_pixels(series.files[1])
    from matplotlib.path import Path as MplPath

    rows, cols = np.mgrid[0 : pixels.shape[0], 0 : pixels.shape[1]]
    centres = np.column_stack([cols.ravel() + 0.5, rows.ravel() + 0.5])
    inside = MplPath(polygon).contains_points(centres).reshape(pixels.shape)
    assert isinstance(roi, dict) and isinstance(line, dict)
    assert roi["n_pixels"] == inside.sum()
    assert roi["mean"] == pytest.approx(pixels[inside].mean(), abs=1e-6)
    assert roi["sd"] == pytest.approx(pixels[inside].std(ddof=1), abs=1e-6)
    assert line["length_mm"] == pytest.approx(np.hypot(12 * dx, 16 * dy), abs=1e-9)
    assert line["mean"] is None


def test_edits_and_deletion_are_revisions_and_required_rois_block_completion(db, clock):
    with Store.open(db, clock=clock) as store:
        view = _first(store)
        aid = view.assignment_id
        label = view.sides[0].series[0].label
        store.record_answer(aid, AnswerKey("quality"), 3)
        missing = store.missing_required(aid)
        assert AnswerKey("roi_muscle") in missing and AnswerKey("roi_background") in missing
        assert AnswerKey("ruler") not in missing and AnswerKey("roi_fluid") not in missing
        with pytest.raises(StudyError, match="roi_muscle"):
            store.complete_assignment(aid)
        key = AnswerKey("roi_muscle")
        first = {"series": label, "slice": 0, "shape": "ellipse", "points": [[5, 5], [15, 15]]}
        moved = {**first, "points": [[8, 5], [18, 15]]}
        assert store.record_answer(aid, key, first).revision == 1
        assert store.record_answer(aid, key, moved).revision == 2
        assert store.record_answer(aid, key, None).revision == 3
        assert key in store.missing_required(aid)
        store.record_answer(aid, key, moved)
        store.record_answer(
            aid,
            AnswerKey("roi_background"),
            {"series": label, "slice": 0, "shape": "ellipse", "points": [[0, 0], [6, 6]]},
        )
        assert store.missing_required(aid) == []
        store.complete_assignment(aid)
        assert store.verify().ok
    con = sqlite3.connect(db)
    values = [
        json.loads(v) if v != "null" else None
        for (v,) in con.execute(
            "SELECT r.value_json FROM answer_revision r JOIN answer a ON a.id = r.answer_pk "
            "WHERE a.question_id = 'roi_muscle' ORDER BY r.revision"
        )
    ]
    con.close()
    assert [v and v["points"] for v in values] == [
        [[5.0, 5.0], [15.0, 15.0]],
        [[8.0, 5.0], [18.0, 15.0]],
        None,
        [[8.0, 5.0], [18.0, 15.0]],
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"series": "nope"}, "the case has no series 'nope'"),
        ({"slice": 99}, "slice 99 is outside series"),
        ({"points": [[5, 5], [500, 15]]}, "outside the image"),
        ({"shape": "line"}, "shape must be one of ellipse, freehand"),
        ({"points": [[5, 5]]}, "an ellipse has 2 points"),
        ({"points": [[5, "x"], [1, 1]]}, "finite numbers"),
        ({"mean": 5.0, "colour": "red"}, "unknown key"),
    ],
)
def test_bad_shapes_are_refused_and_nothing_is_stored(db, clock, change, message):
    with Store.open(db, clock=clock) as store:
        view = _first(store)
        label = view.sides[0].series[0].label
        good = {"series": label, "slice": 0, "shape": "ellipse", "points": [[5, 5], [15, 15]]}
        with pytest.raises(StudyError, match=message):
            store.record_answer(view.assignment_id, AnswerKey("roi_muscle"), {**good, **change})
        assert AnswerKey("roi_muscle") not in store.assignment(view.assignment_id).answers


def test_values_given_by_the_caller_are_replaced_by_what_the_store_measures(db, clock):
    with Store.open(db, clock=clock) as store:
        view = _first(store)
        label = view.sides[0].series[0].label
        drawn = {"series": label, "slice": 0, "shape": "ellipse", "points": [[5, 5], [15, 15]]}
        honest = store.record_answer(view.assignment_id, AnswerKey("roi_muscle"), drawn).value
        forged = store.record_answer(
            view.assignment_id, AnswerKey("roi_muscle"), {**drawn, "mean": 1e6, "sd": 0.001}
        )
    assert isinstance(honest, dict)
    assert forged.value == honest and forged.revision == 1


def test_rois_drawn_in_a_package_are_measured_there_and_merge(db, clock, tmp_path):
    from studies.export import roi_frame
    from studies.package import merge_packages, pack_reader

    pkg = tmp_path / "pkg"
    pack_reader(db, "R1", pkg, clock=clock)
    with Store.open(pkg / "study.sqlite", clock=clock) as store:
        view = _first(store)
        label = view.sides[0].series[0].label
        drawn = {"series": label, "slice": 1, "shape": "ellipse", "points": [[8, 8], [20, 18]]}
        in_package = store.record_answer(view.assignment_id, AnswerKey("roi_muscle"), drawn)
        assert isinstance(in_package.value, dict) and in_package.value["n_pixels"] > 10
        files = view.sides[0].series[0].files
    pixels, _ = blinded_pixels(files[1])
    inside = reference_ellipse(pixels, drawn["points"])
    assert in_package.value["mean"] == pytest.approx(inside.mean(), abs=1e-6)
    report = merge_packages(db, [pkg], clock=clock)
    assert report.packages[0].conflicts == [] and report.packages[0].n_answers == 1
    with Store.open(db, clock=clock) as main:
        rois = roi_frame(main, unblinded=True)
        assert main.verify_events() == []
    (row,) = rois.itertuples()
    assert row.mean == pytest.approx(in_package.value["mean"]) and row.arm in ("conv", "varnet")


def test_a_package_whose_roi_values_were_edited_is_refused(db, clock, tmp_path):
    from studies.package import MergeRefusedError, merge_packages, pack_reader

    pkg = tmp_path / "pkg"
    pack_reader(db, "R1", pkg, clock=clock)
    with Store.open(pkg / "study.sqlite", clock=clock) as store:
        view = _first(store)
        label = view.sides[0].series[0].label
        drawn = {"series": label, "slice": 1, "shape": "ellipse", "points": [[8, 8], [20, 18]]}
        honest = store.record_answer(view.assignment_id, AnswerKey("roi_muscle"), drawn).value
    assert isinstance(honest, dict)
    forged = json.dumps(
        {**honest, "mean": honest["mean"] * 2}, sort_keys=True, separators=(",", ":")
    )
    con = sqlite3.connect(pkg / "study.sqlite")
    with con:
        con.execute("UPDATE answer SET value_json = ?", (forged,))
        con.execute("UPDATE answer_revision SET value_json = ?", (forged,))
    con.close()
    before = db.read_bytes()
    with pytest.raises(MergeRefusedError) as info:
        merge_packages(db, [pkg], clock=clock)
    problems = [text for _, text in info.value.problems]
    assert any("not what the study measures on its images" in text for text in problems), problems
    assert db.read_bytes() == before


def test_a_per_series_roi_is_asked_once_per_series(tmp_path, clock):
    from studies.export import measurements_frame
    from tests.studies.measurement_study import EXAM_SERIES, PER_SERIES_MEASUREMENTS

    db = build(tmp_path, PER_SERIES_MEASUREMENTS, series=EXAM_SERIES)
    with Store.open(db, clock=clock) as store:
        view = _first(store)
        aid = view.assignment_id
        assert store.series_labels(aid) == list(EXAM_SERIES)
        assert set(store.missing_required(aid)) == {
            AnswerKey("roi_muscle", "ax_t1"),
            AnswerKey("roi_muscle", "ax_t2"),
            AnswerKey("roi_background"),
        }

        def drawn(label: str, points: list[list[float]]) -> dict[str, object]:
            return {"series": label, "slice": 1, "shape": "ellipse", "points": points}

        with pytest.raises(StudyError, match="measured per series"):
            store.record_answer(aid, AnswerKey("roi_muscle"), drawn("ax_t1", [[5, 5], [15, 15]]))
        with pytest.raises(StudyError, match="asked for series 'ax_t1', drawn on 'ax_t2'"):
            store.record_answer(
                aid, AnswerKey("roi_muscle", "ax_t1"), drawn("ax_t2", [[5, 5], [15, 15]])
            )
        store.record_answer(
            aid, AnswerKey("roi_muscle", "ax_t1"), drawn("ax_t1", [[14, 20], [24, 30]])
        )
        store.record_answer(aid, AnswerKey("roi_background"), drawn("ax_t2", [[0.5, 0.5], [6, 6]]))
        assert store.missing_required(aid) == [AnswerKey("roi_muscle", "ax_t2")]
        with pytest.raises(StudyError, match="roi_muscle"):
            store.complete_assignment(aid)
        store.record_answer(
            aid, AnswerKey("roi_muscle", "ax_t2"), drawn("ax_t2", [[14, 20], [24, 30]])
        )
        store.complete_assignment(aid)
        frame = measurements_frame(store)
    assert sorted(frame["measurement"]) == ["snr_muscle@ax_t1", "snr_muscle@ax_t2"]
    assert frame["value"].nunique() == 2  # each series' own muscle over the shared background
