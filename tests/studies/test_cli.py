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
from studies.errors import StudyError
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


def test_verify_reads_the_image_files_unless_told_not_to(cli, tmp_path: Path) -> None:
    db = build_study(tmp_path, n_cases=2, n_slices=2)
    code, out, _ = cli("study", "verify", "--db", str(db))
    assert code == 0 and "12 image files" in out  # (2 cases + a training case) x 2 arms x 2
    victim = next((tmp_path / "study_images").iterdir()) / "0001.dcm"
    victim.write_bytes(b"swapped")
    code, _, err = cli("study", "verify", "--db", str(db))
    assert code == 1 and f"series {victim.parent.name}: image file 0001.dcm was changed" in err
    code, out, _ = cli("study", "verify", "--db", str(db), "--skip-images")
    assert code == 0 and "image files not read (--skip-images)" in out


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


def test_create_says_where_the_key_is_and_verify_and_status_use_it(
    cli, tmp_path: Path, clock: FakeClock
) -> None:
    protocol, cases = make_inputs(tmp_path, n_cases=1)
    db = tmp_path / "study.sqlite"
    code, out, err = cli("study", "create", str(protocol), "--cases", str(cases), "--db", str(db))
    assert code == 0, err
    (line,) = [x for x in out.splitlines() if "study key:" in x]
    key = Path(line.split("study key:")[1].strip())
    assert key.is_file() and key.parent != tmp_path and (key.stat().st_mode & 0o077) == 0
    assert "Back the key up now" in out and "out of the study folder" in out
    code, out, _ = cli("study", "status", "--db", str(db))
    assert "Sign-in: no reader has a passphrase" in out and f"Study key: {key}" in out
    code, out, _ = cli("study", "verify", "--db", str(db))
    assert code == 0 and "checked with the study key" in out
    moved = tmp_path / "usb-stick.key"
    key.rename(moved)  # the key kept elsewhere
    code, out, err = cli("study", "verify", "--db", str(db))
    assert code == 0 and "WITHOUT the study key" in out and "checked without the study key" in err
    code, out, _ = cli("study", "verify", "--db", str(db), "--key", str(moved))
    assert code == 0 and "checked with the study key" in out
    bad_key = tmp_path / "bad.key"
    bad_key.write_text("{}")
    code, _, err = cli("study", "verify", "--db", str(db), "--key", str(bad_key))
    assert_one_line_error(code, err, "bad.key", "not a study key file")


def test_verify_names_what_changed_and_checks_anchors(
    cli, tmp_path: Path, clock: FakeClock
) -> None:
    db = build_study(tmp_path, n_cases=2)
    pkg = tmp_path / "pkg"
    code, _, err = cli("study", "pack", "--db", str(db), "--reader", "R1", "--out", str(pkg))
    assert code == 0, err
    code, out, _ = cli("study", "verify", "--db", str(db), "--anchor", str(pkg))
    assert code == 0 and "intact" in out
    con = sqlite3.connect(db)
    with con:
        con.execute("update case_truth set truth = 1 - truth where truth is not null")
    con.close()
    code, _, err = cli("study", "verify", "--db", str(db))
    lines = err.strip().splitlines()
    assert code == 1 and lines[-1].startswith("blindreader: error: ")
    assert "does not verify" in lines[-1]
    assert any(
        "case_truth: truth of case C01 for acl: truth is 1, the record says 0" in x for x in lines
    )
    code, _, err = cli("study", "verify", "--db", str(db), "--anchor", str(tmp_path / "nope.json"))
    assert_one_line_error(code, err, "nope.json", "anchor file not found")


def test_readers_set_passphrase(cli, tmp_path: Path, clock: FakeClock, monkeypatch) -> None:
    import io

    db = build_study(tmp_path, n_cases=1)
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    code, _, err = cli("study", "readers", "set-passphrase", "--db", str(db), "--reader", "R1")
    assert_one_line_error(code, err, "too short: at least 8 characters")
    monkeypatch.setattr(sys, "stdin", io.StringIO("a long passphrase\n"))
    code, out, err = cli("study", "readers", "set-passphrase", "--db", str(db), "--reader", "R1")
    assert code == 0, err
    assert "signs in with a passphrase now" in out
    code, out, _ = cli("study", "readers", "list", "--db", str(db))
    assert "R1\tReader One\tpassphrase" in out and "R2\tReader Two\tno passphrase" in out
    code, out, _ = cli("study", "status", "--db", str(db))
    assert "readers without a passphrase: R2" in out
    with Store.open(db, clock=clock) as store:
        assert store.requires_passphrase("R1") and not store.requires_passphrase("R2")
        store.sign_in("R2")
        with pytest.raises(StudyError, match="wrong passphrase for reader 'R1'"):
            store.sign_in("R1", "not it at all")
        with pytest.raises(StudyError, match="signs in with a passphrase"):
            store.sign_in("R1")
        store.sign_in("R1", "a long passphrase")
        assert store.verify().ok
        with store.reading() as s:
            from sqlalchemy import select

            from studies.db.models import Event

            kinds = [
                (k, r, p)
                for k, r, p in s.execute(select(Event.kind, Event.reader_id, Event.payload_json))
                if k in ("passphrase_set", "signed_in", "sign_in_refused")
            ]
    assert [k for k, _, _ in kinds] == [
        "passphrase_set",
        "signed_in",
        "sign_in_refused",
        "sign_in_refused",
        "signed_in",
    ]
    assert '"os_user":' in kinds[0][2]  # a coordinator action names who did it
    pkg = tmp_path / "pkg"
    code, _, err = cli("study", "pack", "--db", str(db), "--reader", "R1", "--out", str(pkg))
    assert code == 0, err
    with Store.open(pkg / "study.sqlite", clock=clock) as store:  # the package asks for it too
        assert store.requires_passphrase("R1")
        with pytest.raises(StudyError, match="wrong passphrase"):
            store.sign_in("R1", "guessing wrongly")
    code, out, _ = cli(
        "study", "readers", "set-passphrase", "--db", str(db), "--reader", "R1", "--remove"
    )
    assert code == 0 and "no passphrase now" in out
