"""CASES.csv: good files load; every bad input is a StudyError naming file, line and column."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from studies.cases import CaseRow, cases_by_id, load_cases
from studies.errors import StudyError
from studies.protocol import Protocol, parse_protocol
from tests.studies.conftest import KNEE_PROTOCOL, write_cases_csv


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    """Series folders c1/conventional, c1/dl, c2/... (empty: load_cases only checks folders)."""
    for case in ("c1", "c2", "c3"):
        for arm in ("conventional", "dl"):
            (tmp_path / "series" / case / arm).mkdir(parents=True)
    return tmp_path


def good_rows() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for case, subject, truth in (("c1", "s1", 1), ("c2", "s1", 0), ("c3", "s2", None)):
        for arm in ("conventional", "dl"):
            rows.append(
                {
                    "case_id": case,
                    "subject_id": subject,
                    "arm": arm,
                    "series_dir": f"series/{case}/{arm}",
                    "sequence": "PD",
                    "truth_acl": truth,
                }
            )
    return rows


def error_of(path: Path, protocol: Protocol) -> str:
    with pytest.raises(StudyError) as info:
        load_cases(path, protocol)
    message = str(info.value)
    assert message.startswith(str(path)), message
    return message


def test_good_file_loads(folders: Path, knee_protocol: Protocol):
    path = write_cases_csv(folders / "CASES.csv", good_rows())
    rows = load_cases(path, knee_protocol)
    assert len(rows) == 6
    first = rows[0]
    assert first == CaseRow(
        "c1", "s1", "conventional", folders / "series/c1/conventional", "PD", {"acl": 1}
    )
    assert first.line == 2
    assert rows[4].truth == {"acl": None}
    assert set(cases_by_id(rows)) == {"c1", "c2", "c3"}
    assert set(cases_by_id(rows)["c2"]) == {"conventional", "dl"}


def test_absolute_series_dir_and_no_optional_columns(folders: Path, knee_protocol: Protocol):
    rows = [
        {k: v for k, v in row.items() if k in ("case_id", "subject_id", "arm", "series_dir")}
        for row in good_rows()
    ]
    for row in rows:
        row["series_dir"] = str(folders / str(row["series_dir"]))
    path = write_cases_csv(folders / "elsewhere.csv", rows)
    loaded = load_cases(path, knee_protocol)
    assert loaded[0].sequence == "" and loaded[0].truth == {}
    assert loaded[0].series_dir == folders / "series/c1/conventional"


def test_blank_lines_and_bom_are_tolerated(folders: Path, knee_protocol: Protocol):
    path = write_cases_csv(folders / "CASES.csv", good_rows())
    text = path.read_text(encoding="utf-8")
    path.write_text("\ufeff" + text.replace("\n", "\n\n", 1), encoding="utf-8")
    assert len(load_cases(path, knee_protocol)) == 6


def test_missing_file(tmp_path: Path, knee_protocol: Protocol):
    assert "cases file not found" in error_of(tmp_path / "CASES.csv", knee_protocol)


def test_empty_file_and_header_only(tmp_path: Path, knee_protocol: Protocol):
    path = tmp_path / "CASES.csv"
    path.write_text("", encoding="utf-8")
    assert "empty" in error_of(path, knee_protocol)
    path.write_text("case_id,subject_id,arm,series_dir\n", encoding="utf-8")
    assert "no cases" in error_of(path, knee_protocol)


def test_missing_columns(folders: Path, knee_protocol: Protocol):
    rows = [{k: v for k, v in r.items() if k not in ("arm", "subject_id")} for r in good_rows()]
    path = write_cases_csv(folders / "CASES.csv", rows)
    message = error_of(path, knee_protocol)
    assert re.search(r"line 1: missing column\(s\) subject_id, arm", message)


def test_unknown_column(folders: Path, knee_protocol: Protocol):
    rows = [dict(r, notes="x") for r in good_rows()]
    path = write_cases_csv(folders / "CASES.csv", rows)
    assert "line 1, column 'notes': unknown column" in error_of(path, knee_protocol)


def test_duplicate_column(folders: Path, knee_protocol: Protocol):
    path = folders / "CASES.csv"
    path.write_text("case_id,subject_id,arm,series_dir,arm\n", encoding="utf-8")
    assert "line 1, column 'arm': duplicate column" in error_of(path, knee_protocol)


@pytest.mark.parametrize("column", ["case_id", "subject_id", "arm", "series_dir"])
def test_empty_value(folders: Path, knee_protocol: Protocol, column: str):
    rows = good_rows()
    rows[2][column] = "  "
    path = write_cases_csv(folders / "CASES.csv", rows)
    assert f"line 4, column {column}: empty value" in error_of(path, knee_protocol)


def test_wrong_number_of_values(folders: Path, knee_protocol: Protocol):
    path = write_cases_csv(folders / "CASES.csv", good_rows())
    with path.open("a", encoding="utf-8") as handle:
        handle.write("c9,s9,dl\n")
    assert "line 8: 3 values, the header has 6 columns" in error_of(path, knee_protocol)


def test_unknown_arm(folders: Path, knee_protocol: Protocol):
    rows = good_rows()
    rows[1]["arm"] = "DL"
    path = write_cases_csv(folders / "CASES.csv", rows)
    message = error_of(path, knee_protocol)
    assert "line 3, column arm: unknown arm 'DL' (protocol arms: conventional, dl)" in message


def test_duplicate_case_and_arm(folders: Path, knee_protocol: Protocol):
    rows = good_rows()
    rows.append(dict(rows[3]))
    path = write_cases_csv(folders / "CASES.csv", rows)
    message = error_of(path, knee_protocol)
    assert "line 8, column case_id: duplicate case 'c2' for arm 'dl' (already on line 5)" in (
        message
    )


def test_case_missing_an_arm(folders: Path, knee_protocol: Protocol):
    rows = [r for r in good_rows() if not (r["case_id"] == "c3" and r["arm"] == "dl")]
    path = write_cases_csv(folders / "CASES.csv", rows)
    message = error_of(path, knee_protocol)
    assert "line 6, column arm: case 'c3' has no row for arm 'dl'" in message


def test_subject_differs_between_arms(folders: Path, knee_protocol: Protocol):
    rows = good_rows()
    rows[1]["subject_id"] = "s9"
    path = write_cases_csv(folders / "CASES.csv", rows)
    message = error_of(path, knee_protocol)
    assert "line 3, column subject_id: case 'c1' has subject_id 's9' here but 's1' on line 2" in (
        message
    )


def test_sequence_differs_between_arms(folders: Path, knee_protocol: Protocol):
    rows = good_rows()
    rows[5]["sequence"] = "T2"
    path = write_cases_csv(folders / "CASES.csv", rows)
    assert "line 7, column sequence: case 'c3'" in error_of(path, knee_protocol)


def test_truth_for_unknown_finding(folders: Path, knee_protocol: Protocol):
    rows = [dict(r, truth_meniscus=1) for r in good_rows()]
    path = write_cases_csv(folders / "CASES.csv", rows)
    message = error_of(path, knee_protocol)
    assert "line 1, column 'truth_meniscus': unknown finding 'meniscus'" in message


@pytest.mark.parametrize("value", ["2", "yes", "0.5", "-1"])
def test_truth_values_are_0_1_or_empty(folders: Path, knee_protocol: Protocol, value: str):
    rows = good_rows()
    rows[4]["truth_acl"] = value
    rows[5]["truth_acl"] = value
    path = write_cases_csv(folders / "CASES.csv", rows)
    message = error_of(path, knee_protocol)
    assert f"line 6, column truth_acl: expected 0, 1 or empty, got {value!r}" in message


def test_truth_differs_between_arms(folders: Path, knee_protocol: Protocol):
    rows = good_rows()
    rows[1]["truth_acl"] = 0
    path = write_cases_csv(folders / "CASES.csv", rows)
    assert "line 3, column truth_acl: case 'c1' has truth 0 here but 1" in error_of(
        path, knee_protocol
    )


def test_series_dir_missing(folders: Path, knee_protocol: Protocol):
    rows = good_rows()
    rows[2]["series_dir"] = "series/nope"
    path = write_cases_csv(folders / "CASES.csv", rows)
    message = error_of(path, knee_protocol)
    assert f"line 4, column series_dir: folder not found: {folders / 'series/nope'}" in message


def test_series_dir_is_a_file(folders: Path, knee_protocol: Protocol):
    (folders / "file.dcm").write_bytes(b"x")
    rows = good_rows()
    rows[0]["series_dir"] = "file.dcm"
    path = write_cases_csv(folders / "CASES.csv", rows)
    assert "line 2, column series_dir: not a folder" in error_of(path, knee_protocol)


def test_training_case_not_in_file(folders: Path):
    text = KNEE_PROTOCOL.read_text(encoding="utf-8").replace(
        "training_cases = []", 'training_cases = ["c1", "t9"]'
    )
    protocol = parse_protocol(text)
    path = write_cases_csv(folders / "CASES.csv", good_rows())
    message = error_of(path, protocol)
    assert "column case_id: training case 't9' of the protocol is not in the cases file" in (
        message
    )


def test_not_utf8(tmp_path: Path, knee_protocol: Protocol):
    path = tmp_path / "CASES.csv"
    path.write_bytes(b"case_id,subject_id,arm,series_dir\n\xff\xfe,\x80,x,y\n")
    assert "not a UTF-8 text file" in error_of(path, knee_protocol)


@pytest.mark.parametrize(
    ("line", "value", "first"),
    [
        (3, "series/c1/conventional", "case 'c1', arm 'conventional' on line 2"),  # two arms
        (4, "series/c1/conventional", "case 'c1', arm 'conventional' on line 2"),  # two cases
        (7, "series/c3/../c2/dl", "case 'c2', arm 'dl' on line 5"),  # the same folder, spelt anew
    ],
)
def test_one_series_folder_on_two_rows(
    folders: Path, knee_protocol: Protocol, line: int, value: str, first: str
):
    rows = good_rows()
    rows[line - 2]["series_dir"] = value
    message = error_of(write_cases_csv(folders / "CASES.csv", rows), knee_protocol)
    assert f"line {line}, column series_dir" in message and first in message
    assert "own series folder" in message


def test_a_symlinked_series_folder_is_the_same_folder(folders: Path, knee_protocol: Protocol):
    (folders / "alias").symlink_to(folders / "series" / "c2" / "conventional")
    rows = good_rows()
    rows[5]["series_dir"] = "alias"
    message = error_of(write_cases_csv(folders / "CASES.csv", rows), knee_protocol)
    assert "line 7, column series_dir" in message and "on line 4" in message
