"""``blindreader study ...`` end to end through the real entry point (in-process)."""

from __future__ import annotations

import sqlite3
import sys
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from blindreader.cli import main
from studies.clock import washout_opens_at
from studies.store import Store
from tests.studies.study_factory import FakeClock, build_study, finish_session
from tests.studies.test_create import make_inputs


def run(
    args: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    clock: FakeClock,
) -> tuple[int, str, str]:
    """Run ``blindreader ARGS`` on ``clock``; return (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["blindreader", *args])
    code = 0
    try:
        main(clock=clock)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def file_state(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], clock: FakeClock):
    """``cli(*args)`` runs the command line in-process on the test's clock."""
    return lambda *args: run(list(args), monkeypatch, capsys, clock)


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("blindreader: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_validate(cli, tmp_path: Path) -> None:
    code, out, _ = cli("study", "validate", "studies/protocols/paired-image-quality.toml")
    assert code == 0 and "valid" in out and "design:    paired" in out
    bad = tmp_path / "bad.toml"
    bad.write_text('title = "x"\ndesign = "crossover"\n')
    code, _, err = cli("study", "validate", str(bad))
    assert_one_line_error(code, err, str(bad), "design")


def test_create_status_export_verify(cli, tmp_path: Path, clock: FakeClock) -> None:
    protocol, cases = make_inputs(tmp_path, n_cases=2)
    db = tmp_path / "study.sqlite"
    code, out, err = cli("study", "create", str(protocol), "--cases", str(cases), "--db", str(db))
    assert code == 0, err
    assert "created" in out and "4 cases" not in out and "3 cases" in out
    code, out, _ = cli("study", "status", "--db", str(db))
    assert code == 0 and "R1" in out and "0 / 3" in out and "locked (session 1 unfinished)" in out
    with Store.open(db, clock=clock) as store:
        finish_session(store, "R1", 1)
        not_before = store.sessions("R1")[1].not_before
    assert not_before == clock.now.date() + timedelta(days=28)
    code, out, _ = cli("study", "status", "--db", str(db))
    assert "finished" in out and f"locked until {not_before.isoformat()}" in out
    clock.now = washout_opens_at(not_before)
    code, out, _ = cli("study", "status", "--db", str(db))
    assert "locked until" not in out and "open" in out
    for what in ("answers", "assignments", "key", "events"):
        target = tmp_path / f"{what}.csv"
        code, out, err = cli(
            "study", "export", "--db", str(db), "--what", what, "--out", str(target)
        )
        assert code == 0, err
        assert len(pd.read_csv(target)) > 0
    code, _, _ = cli(
        "study",
        "export",
        "--db",
        str(db),
        "--what",
        "answers",
        "--unblinded",
        "--out",
        str(tmp_path / "unblinded.csv"),
    )
    assert "arm" in pd.read_csv(tmp_path / "unblinded.csv").columns
    assert "arm" not in pd.read_csv(tmp_path / "answers.csv").columns
    code, _, err = cli(
        "study",
        "export",
        "--db",
        str(db),
        "--what",
        "mrmc",
        "--finding",
        "acl",
        "--out",
        str(tmp_path / "mrmc.csv"),
    )
    assert code == 0, err
    assert list(pd.read_csv(tmp_path / "mrmc.csv").columns) == [
        "reader",
        "treatment",
        "case",
        "truth",
        "rating",
    ]
    code, out, _ = cli("study", "verify", "--db", str(db))
    assert code == 0 and "intact" in out


def test_bad_input_is_one_line_and_changes_nothing(cli, tmp_path: Path) -> None:
    db = build_study(tmp_path)
    before = file_state(tmp_path)
    cases = [
        (["study", "status", "--db", str(tmp_path / "nope.sqlite")], ["nope.sqlite", "not found"]),
        (
            ["study", "pack", "--db", str(db), "--reader", "R9", "--out", str(tmp_path / "p")],
            ["unknown reader 'R9'", "R1, R2"],
        ),
        (
            [
                "study",
                "export",
                "--db",
                str(db),
                "--what",
                "mrmc",
                "--out",
                str(tmp_path / "m.csv"),
            ],
            ["needs --finding"],
        ),
        (
            [
                "study",
                "export",
                "--db",
                str(db),
                "--what",
                "mrmc",
                "--finding",
                "pcl",
                "--out",
                str(tmp_path / "m.csv"),
            ],
            ["unknown finding 'pcl'"],
        ),
        (
            [
                "study",
                "export",
                "--db",
                str(db),
                "--what",
                "key",
                "--unblinded",
                "--out",
                str(tmp_path / "k.csv"),
            ],
            ["--unblinded applies only"],
        ),
        (
            [
                "study",
                "export",
                "--db",
                str(db),
                "--what",
                "answers",
                "--out",
                str(tmp_path / "no" / "a.csv"),
            ],
            ["folder not found"],
        ),
        (
            ["study", "merge", "--db", str(db), str(tmp_path / "study_images")],
            ["not a reading package"],
        ),
        (
            [
                "study",
                "create",
                "studies/protocols/knee-interchangeability.toml",
                "--cases",
                str(tmp_path / "CASES.csv"),
                "--db",
                str(db),
            ],
            ["already exists"],
        ),
    ]
    for args, needles in cases:
        code, _, err = cli(*args)
        assert_one_line_error(code, err, *needles)
    assert file_state(tmp_path) == before
    code, _, err = cli("study", "export", "--db", str(db), "--what", "everything", "--out", "x")
    assert code == 2 and "everything" in err  # usage error from the option's choices


def test_verify_names_the_first_bad_event(cli, tmp_path: Path, clock: FakeClock) -> None:
    db = build_study(tmp_path, n_cases=2)
    with Store.open(db, clock=clock) as store:
        finish_session(store, "R1", 1)
    con = sqlite3.connect(db)
    with con:
        con.execute("update event set kind = 'case_opened' where seq = 5")
    con.close()
    code, _, err = cli("study", "verify", "--db", str(db))
    assert code == 1 and "blindreader: error:" in err and "event 5 (case_opened" in err


def test_pack_and_merge(cli, tmp_path: Path, clock: FakeClock) -> None:
    db = build_study(tmp_path, n_cases=2)
    pkg = tmp_path / "pkg-R2"
    code, out, err = cli("study", "pack", "--db", str(db), "--reader", "R2", "--out", str(pkg))
    assert code == 0, err
    assert "package for reader R2" in out
    with Store.open(pkg / "study.sqlite", clock=clock) as store:
        finish_session(store, "R2", 1)
    code, out, err = cli("study", "merge", "--db", str(db), str(pkg))
    assert code == 0, err
    assert "3 completed" in out
    code, out, _ = cli("study", "merge", "--db", str(db), str(pkg))
    assert code == 0 and "(nothing new)" in out


def test_copy(cli, tmp_path: Path, clock: FakeClock) -> None:
    db = build_study(tmp_path, n_cases=2)
    target = tmp_path / "copy.sqlite"
    code, out, err = cli("study", "copy", "--db", str(db), "--to", f"sqlite:///{target}")
    assert code == 0, err
    assert "rows copied" in out
    with Store.open(f"sqlite:///{target}", clock=clock) as store:
        assert store.verify_events() == [] and [r.reader_id for r in store.readers()] == [
            "R1",
            "R2",
        ]
        view = store.next_assignment("R1")
        assert view is not None and all(f.is_file() for f in view.sides[0].files)
    code, _, err = cli("study", "copy", "--db", str(db), "--to", f"sqlite:///{target}")
    assert_one_line_error(code, err, "already holds a study")
