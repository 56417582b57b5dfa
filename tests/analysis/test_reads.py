"""The reads table: from the answers export and from CSV; validation and reported exclusions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.errors import AnalysisError
from analysis.reads import load_reads_csv, reads_from_answers, validate_reads
from studies.protocol import parse_protocol

PROTOCOL_PATH = Path(__file__).parents[2] / "studies" / "protocols" / "knee-interchangeability.toml"


def knee_protocol(training: list[str] | None = None):
    text = PROTOCOL_PATH.read_text()
    if training:
        text = text.replace(
            "training_cases = []", f"training_cases = {training!r}".replace("'", '"')
        )
    return parse_protocol(text, str(PROTOCOL_PATH))


def answers(cases=("c1", "c2", "c3"), readers=("R1", "R2", "R3"), findings=("acl",)):
    """A tidy unblinded export: sequential design, two sessions, likelihood + quality answers."""
    rows = []
    rng = np.random.default_rng(0)
    for reader in readers:
        for session, arm in ((1, "conventional"), (2, "dl")):
            for position, case in enumerate(cases, start=1):
                for finding in findings:
                    rows.append(
                        {
                            "study": "knee",
                            "reader": reader,
                            "session": session,
                            "position": position,
                            "case": case,
                            "subject": case,
                            "arm": arm,
                            "side": None,
                            "question": "likelihood",
                            "finding": finding,
                            "value": int(rng.integers(1, 5)),
                        }
                    )
                rows.append(
                    {
                        "study": "knee",
                        "reader": reader,
                        "session": session,
                        "position": position,
                        "case": case,
                        "subject": case,
                        "arm": arm,
                        "side": None,
                        "question": "quality_overall",
                        "finding": None,
                        "value": int(rng.integers(1, 5)),
                    }
                )
    return pd.DataFrame(rows)


def test_reads_from_answers_uses_the_interchangeability_question():
    table = reads_from_answers(answers(findings=("acl", "bone_marrow")), knee_protocol())
    reads = table.reads
    assert list(reads.columns) == ["case", "reader", "arm", "finding", "value", "read"]
    assert len(reads) == 3 * 3 * 2 * 2
    assert table.findings == ["acl", "bone_marrow"]
    assert table.arms == ["conventional", "dl"]
    assert reads["value"].dtype == float and (reads["read"] == 1).all()
    assert table.exclusions == []


def test_case_scope_question_becomes_its_own_finding():
    table = reads_from_answers(answers(), knee_protocol(), question="quality_overall")
    assert table.findings == ["quality_overall"]
    assert len(table.reads) == 3 * 3 * 2


def test_training_cases_are_left_out():
    table = reads_from_answers(answers(cases=("t1", "c1", "c2")), knee_protocol(["t1"]))
    assert "t1" not in set(table.reads["case"])


def test_repeat_reads_are_numbered_in_session_order():
    frame = answers()
    again = frame[(frame["arm"] == "conventional")].assign(session=3)
    table = reads_from_answers(pd.concat([frame, again]), knee_protocol())
    conventional = table.reads[table.reads["arm"] == "conventional"]
    assert sorted(conventional["read"].unique()) == [1, 2]


def test_case_read_on_one_arm_only_is_an_explicit_exclusion():
    frame = answers()
    frame = frame[~((frame["case"] == "c2") & (frame["arm"] == "dl"))]
    table = reads_from_answers(frame, knee_protocol())
    assert "c2" not in set(table.reads["case"])
    assert [(e.case, e.finding) for e in table.exclusions] == [("c2", "acl")]
    assert "not read on arm(s) dl" in table.exclusions[0].reason
    assert table.exclusions[0].to_dict()["case"] == "c2"


def test_missing_reader_read_is_an_explicit_exclusion():
    frame = answers()
    frame = frame[~((frame["case"] == "c3") & (frame["reader"] == "R2") & (frame["arm"] == "dl"))]
    table = reads_from_answers(frame, knee_protocol())
    (exclusion,) = table.exclusions
    assert exclusion.case == "c3" and "R2 on dl" in exclusion.reason


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.assign(arm=f["arm"].replace("dl", "ai")), "'arm' has unknown value 'ai'"),
        (lambda f: f.assign(reader=f["reader"].replace("R3", "R9")), "unknown value 'R9'"),
        (lambda f: f[f["reader"] == "R1"], "at least two"),
        (lambda f: f.assign(value=f["value"].astype(object).where(f.index != 2, "maybe")),
         "column 'value' must be a number, got 'maybe'"),
        (lambda f: f.drop(columns=["arm"]), "missing column"),
        (lambda f: f[f["arm"] == "dl"], "at least two"),
    ],
)  # fmt: skip
def test_bad_answers(change, message):
    with pytest.raises(AnalysisError, match=message):
        reads_from_answers(change(answers()), knee_protocol())


def test_unknown_question():
    with pytest.raises(AnalysisError, match="unknown question 'colour'"):
        reads_from_answers(answers(), knee_protocol(), question="colour")


def test_unknown_finding_in_answers():
    with pytest.raises(AnalysisError, match="column 'finding' has unknown value 'hip'"):
        reads_from_answers(answers(findings=("hip",)), knee_protocol())


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_load_reads_csv(tmp_path):
    path = write_csv(
        tmp_path / "reads.csv",
        "case,reader,arm,finding,value\n"
        "c1,a,ref,f,1\nc1,b,ref,f,0\nc1,a,new,f,1\nc1,b,new,f,true\n"
        "c2,a,ref,f,0\nc2,b,ref,f,0\nc2,a,new,f,1\n",
    )
    table = load_reads_csv(path)
    assert len(table.reads) == 4
    assert table.reads["value"].tolist() == [1.0, 0.0, 1.0, 1.0]
    assert [e.case for e in table.exclusions] == ["c2"]
    assert "b on new" in table.exclusions[0].reason


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("case,reader,arm,value\nc1,a,ref,1\n", "missing column.*finding"),
        ("case,reader,arm,finding,value\nc1,a,ref,f,x\nc1,b,new,f,1\n", "got 'x'"),
        ("case,reader,arm,finding,value\nc1,a,ref,f,1\nc1,a,new,f,1\n", "1 reader"),
        ("case,reader,arm,finding,value\nc1,a,ref,f,1\nc1,b,ref,f,1\n", "1 arm"),
        ("case,reader,arm,finding,value\n,a,ref,f,1\nc1,b,new,f,1\n", "column 'case' is empty"),
        ("case,reader,arm,finding,value,read\nc1,a,ref,f,1,0\nc1,b,new,f,1,1\n", "'read'"),
        ("case,reader,arm,finding,value\nc1,a,ref,f,1\nc1,a,ref,f,0\nc1,b,new,f,1\n",
         "more than one value"),
        ("case,reader,arm,finding,value\nc1,a,ref,f,1\nc2,b,new,f,1\n", "no case was read"),
        ("", "not a readable CSV"),
    ],
)  # fmt: skip
def test_bad_csv(tmp_path, text, message):
    path = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(AnalysisError, match=message) as info:
        load_reads_csv(path)
    assert str(path) in str(info.value)


def test_missing_csv_file(tmp_path):
    with pytest.raises(AnalysisError, match="no such reads CSV"):
        load_reads_csv(tmp_path / "nope.csv")


def test_validate_reads_keeps_finding_order_after_exclusions():
    rows = [
        ("c1", "a", "ref", "first", 1), ("c1", "a", "new", "first", 1),
        ("c2", "a", "ref", "first", 1), ("c2", "a", "new", "first", 1),
        ("c2", "b", "ref", "first", 1), ("c2", "b", "new", "first", 1),
        ("c1", "a", "ref", "second", 1), ("c1", "b", "ref", "second", 1),
        ("c1", "a", "new", "second", 1), ("c1", "b", "new", "second", 1),
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["case", "reader", "arm", "finding", "value"])
    table = validate_reads(frame, source="test")
    assert table.findings == ["first", "second"]
    assert [(e.case, e.finding) for e in table.exclusions] == [("c1", "first")]
