"""Several series per case (a hanging protocol): CASES.csv's ``series`` column, the protocol's
hanging table, blinding and the leak scan per series, the store's views in hanging order, and
the 0003 migration of a study made before (one series per case and arm)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory

from studies.api import DEFAULT_SERIES_LABEL
from studies.cases import load_cases
from studies.create import create_study
from studies.db.engine import make_engine
from studies.db.migrate import alembic_config
from studies.errors import StudyError
from studies.protocol import parse_protocol
from studies.store import Store
from tests.studies.conftest import make_series, write_cases_csv
from tests.studies.study_factory import SEQUENTIAL_TOML, FakeClock, build_study

ARMS = ("conv", "dl")
LABELS = ("sag_t2fs", "cor_pd", "ax_pdfs")  # CASES.csv order; the protocol hangs cor_pd first
HANGING = '[hanging]\nlayout = "1x2"\nseries = ["cor_pd", "ax_pdfs", "sag_t2fs"]\n'


def protocol_text(extra: str = HANGING) -> str:
    """The test protocol with ``extra`` tables appended (top-level keys must come first)."""
    return SEQUENTIAL_TOML + "\n" + extra


def exam_inputs(
    folder: Path,
    *,
    labels: tuple[str, ...] = LABELS,
    extra: str = HANGING,
    leak: tuple[str, str] | None = None,
    matrix: tuple[str, str] | None = None,
) -> tuple[Path, Path]:
    """Protocol + CASES.csv of two cases and T1, each an exam of ``labels`` on both arms."""
    protocol = folder / "study.toml"
    protocol.write_text(protocol_text(extra), encoding="utf-8")
    rows = []
    for i, case_id in enumerate(("C1", "C2", "T1")):
        for arm in ARMS:
            for j, label in enumerate(labels):
                tags: dict[str, object] = {}
                if leak == (case_id, label) and arm == "dl":
                    tags["ImageType"] = ["ORIGINAL", "PRIMARY", "M", "DL"]
                size = 10 if matrix == (case_id, label) and arm == "dl" else 8
                make_series(
                    folder / "dicom" / case_id / arm / label,
                    n_slices=2 + j,
                    rows=size,
                    cols=size,
                    seed=10 * i + j,
                    **tags,
                )
                rows.append(
                    {
                        "case_id": case_id,
                        "subject_id": f"P{i}",
                        "arm": arm,
                        "series": label,
                        "series_dir": f"dicom/{case_id}/{arm}/{label}",
                    }
                )
    return protocol, write_cases_csv(folder / "CASES.csv", rows)


def test_a_case_is_an_exam_hung_in_the_protocols_order(tmp_path, clock):
    protocol, cases = exam_inputs(tmp_path)
    summary = create_study(protocol, cases, tmp_path / "study.sqlite", clock=clock)
    assert summary.n_cases == 3 and summary.n_series == 3 * 2 * 3
    with Store.open(summary.db_path, clock=clock) as store:
        assert store.protocol.hanging.layout == "1x2"
        view = store.next_assignment("R1", 1)
        assert view is not None and len(view.sides) == 1
        side = view.sides[0]
        assert side.labels == ("cor_pd", "ax_pdfs", "sag_t2fs")
        assert [len(side.get(label).files) for label in side.labels] == [3, 4, 2]
        assert len({s.series_id for s in side.series}) == 3
        assert side.series_id == side.series[0].series_id  # the first hung series
        for series in side.series:
            assert series.files and all(f.parent.name == series.series_id for f in series.files)
        with sqlite3.connect(summary.db_path) as con:
            labels = sorted(r[0] for r in con.execute("select distinct label from series"))
        assert labels == sorted(LABELS)


def test_paired_sides_carry_the_same_series(tmp_path, clock):
    from tests.studies.study_factory import PAIRED_TOML

    protocol, cases = exam_inputs(tmp_path, extra="")
    protocol.write_text(PAIRED_TOML, encoding="utf-8")
    rows = [r for r in cases.read_text().splitlines() if not r.startswith("T1,")]
    cases.write_text("\n".join(rows) + "\n")
    summary = create_study(protocol, cases, tmp_path / "study.sqlite", clock=clock)
    with Store.open(summary.db_path, clock=clock) as store:
        view = store.next_assignment("R1", 1)
        left, right = view.sides
        assert left.labels == right.labels == tuple(sorted(LABELS))  # no hanging order given
        assert {s.series_id for s in left.series}.isdisjoint(s.series_id for s in right.series)


def test_the_leak_scan_compares_each_series_across_the_arms(tmp_path, clock):
    protocol, cases = exam_inputs(tmp_path, leak=("C2", "ax_pdfs"), matrix=("C1", "sag_t2fs"))
    with pytest.raises(StudyError) as caught:
        create_study(protocol, cases, tmp_path / "study.sqlite", clock=clock)
    message = str(caught.value)
    assert "case C2/ax_pdfs" in message and "'DL'" in message
    assert "case C1/sag_t2fs" in message and "matrix" in message
    assert "C1/cor_pd" not in message and "C2/sag_t2fs" not in message
    assert not (tmp_path / "study.sqlite").exists()


def test_old_cases_files_without_a_series_column_still_work(tmp_path):
    protocol = parse_protocol(SEQUENTIAL_TOML)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    rows = [
        {"case_id": "T1", "subject_id": "P1", "arm": arm, "series_dir": d}
        for arm, d in zip(ARMS, ("a", "b"), strict=True)
    ]
    loaded = load_cases(write_cases_csv(tmp_path / "CASES.csv", rows), protocol)
    assert [r.series for r in loaded] == [DEFAULT_SERIES_LABEL] * 2
    assert loaded[0].key == ("T1", "conv", DEFAULT_SERIES_LABEL)
    # a protocol's hanging order is for exams: a file of single series still loads under it
    hanging = parse_protocol(protocol_text())
    assert [r.series for r in load_cases(tmp_path / "CASES.csv", hanging)] == ["series"] * 2


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda rows: rows.append(dict(rows[0])),
         "duplicate case 'T1' for arm 'conv', series 'cor'"),
        (lambda rows: rows.pop(3), "case 'T1' on arm 'dl' lacks sag"),
        (lambda rows: rows[3].update(series="ax"),
         "case 'T1' on arm 'dl' lacks sag and has ax that arm 'conv' lacks"),
        (lambda rows: rows[0].update(series=""), "column series: empty value"),
        (lambda rows: rows[0].update(series="cor pd"), "'cor pd' is not a valid series name"),
        (lambda rows: [r.update(series="dl_cor") for r in rows if r["series"] == "cor"],
         "'dl_cor' names the arm 'dl'"),
    ],
)  # fmt: skip
def test_bad_series_rows_are_refused_naming_the_line_and_column(tmp_path, change, expected):
    protocol = parse_protocol(SEQUENTIAL_TOML)
    rows = []
    for arm in ARMS:
        for label in ("cor", "sag"):
            (tmp_path / arm / label).mkdir(parents=True)
            rows.append(
                {"case_id": "T1", "subject_id": "P1", "arm": arm, "series": label,
                 "series_dir": f"{arm}/{label}"}
            )  # fmt: skip
    change(rows)
    path = write_cases_csv(tmp_path / "CASES.csv", rows)
    with pytest.raises(StudyError, match=r"CASES\.csv, line [0-9]+, column") as caught:
        load_cases(path, protocol)
    assert expected in str(caught.value)


def test_a_series_outside_the_hanging_order_is_refused(tmp_path):
    protocol = parse_protocol(protocol_text())
    rows = []
    for arm in ARMS:
        (tmp_path / arm).mkdir()
        rows.append({"case_id": "T1", "subject_id": "P", "arm": arm, "series": "sag_pd",
                     "series_dir": arm})  # fmt: skip
    with pytest.raises(StudyError, match="'sag_pd' is not in the protocol's hanging order"):
        load_cases(write_cases_csv(tmp_path / "CASES.csv", rows), protocol)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('[hanging]\nlayout = "3x3"\n', "hanging.layout"),
        ('[hanging]\nseries = ["cor", "cor"]\n', "duplicate series 'cor'"),
        ('[hanging]\nseries = ["dl-cor"]\n', "names the arm 'dl'"),
        ('[[window_presets]]\nname = "Bone"\nlow = 50\nhigh = 20\n', "0 <= low < high <= 100"),
        ('[[window_presets]]\nname = "Deep-learning reconstruction"\nlow = 1\nhigh = 2\n',
         "needs a name of 1 to 24 characters"),
        ('[[training_reference]]\ncase = "C9"\n', "'C9' is not one of training_cases"),
        ('[[training_reference]]\ncase = "T1"\nanswers = {quality = 7}\n', "expected one of"),
        ('[[training_reference]]\ncase = "T1"\nanswers = {likelihood = 3}\n',
         "needs a table of values by finding id"),
        ('[[training_reference]]\ncase = "T1"\nanswers = {likelihood = {pcl = 3}}\n',
         "not asked for finding 'pcl'"),
        ('[[training_reference]]\ncase = "T1"\nanswers = {nope = 1}\n', "unknown question"),
        ('[[training_reference]]\ncase = "T1"\nexplanation = "The conv image shows it."\n',
         "training_reference[0].explanation: names the arm 'conv'"),
    ],
)  # fmt: skip
def test_bad_viewer_tables_in_the_protocol_are_refused(extra, expected):
    with pytest.raises(StudyError) as caught:
        parse_protocol(protocol_text(extra), "p.toml")
    assert expected in str(caught.value)


def test_instructions_naming_an_arm_are_refused():
    text = 'instructions = "Some images are Deep-learning reconstruction."\n' + SEQUENTIAL_TOML
    with pytest.raises(StudyError, match="instructions: names the arm"):
        parse_protocol(text, "p.toml")


def test_the_viewer_tables_are_read():
    extra = (
        HANGING + '[[window_presets]]\nname = "Cartilage"\nlow = 2\nhigh = 80\n'
        '[[training_reference]]\ncase = "T1"\nexplanation = "A **complete** ACL tear."\n'
        "answers = {quality = 3, artifact = false, likelihood = {acl = 4, mcl = 1}}\n"
    )
    protocol = parse_protocol('instructions = "# Welcome"\n' + protocol_text(extra))
    assert protocol.instructions == "# Welcome"
    assert protocol.hanging.grid == (1, 2) and protocol.hanging.n_cells == 2
    assert protocol.hanging.order(["sag_t2fs", "zz", "extra", "cor_pd"]) == [
        "cor_pd", "sag_t2fs", "extra", "zz"
    ]  # fmt: skip
    assert [p.name for p in protocol.window_presets] == ["Cartilage"]
    reference = protocol.training_answers("T1")
    assert reference is not None
    assert reference.answers == {
        "quality": 3, "artifact": False, "likelihood": {"acl": 4, "mcl": 1}
    }  # fmt: skip
    assert isinstance(reference.answers["artifact"], bool)
    assert protocol.training_answers("C1") is None
    default = parse_protocol(SEQUENTIAL_TOML)
    assert [p.name for p in default.window_presets] == ["Auto", "Contrast", "Wide"]
    assert default.hanging.layout == "1x1"


def test_a_study_made_before_multi_series_is_migrated(tmp_path, clock):
    """Version 0001 (one series per case and arm) upgrades in place: every series is labelled
    ``series``, revisions get an empty reason, and the study reads as before."""
    reference = build_study(tmp_path / "new")
    db = tmp_path / "old.sqlite"
    engine = make_engine(db)
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    engine.dispose()
    with sqlite3.connect(reference) as src, sqlite3.connect(db) as dst:
        for table in ("study", "arm", "subject", "case", "finding", "question", "reader",
                      "reading_session", "assignment", "case_truth", "event"):  # fmt: skip
            # the columns version 0001 has (later versions added some)
            names = [c[1] for c in dst.execute(f'pragma table_info("{table}")')]
            columns = ", ".join(f'"{n}"' for n in names)
            rows = src.execute(f'select {columns} from "{table}"').fetchall()
            if rows:
                marks = ",".join("?" * len(names))
                dst.executemany(f'insert into "{table}" ({columns}) values ({marks})', rows)
        dst.executemany(
            "insert into series values (?, ?, ?, ?, ?, ?)",
            src.execute("select id, opaque_id, case_pk, arm_pk, folder, n_slices from series"),
        )
        dst.execute("update study set images_dir = ?", (str(reference.parent / "study_images"),))
    with Store.open(db, clock=FakeClock()) as store:
        view = store.next_assignment("R1", 1)
        assert view is not None and view.sides[0].labels == (DEFAULT_SERIES_LABEL,)
        assert len(view.sides[0].files) == 3
    with sqlite3.connect(db) as con:
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert con.execute("select version_num from alembic_version").fetchone() == (head,)
        series_columns = [r[1] for r in con.execute("pragma table_info(series)")]
        assert "files_sha256" in series_columns  # 0004: empty for series made before it
        columns = [r[1] for r in con.execute("pragma table_info(answer_revision)")]
        assert "reason" in columns
        assert {r[0] for r in con.execute("select label from series")} == {DEFAULT_SERIES_LABEL}
