"""Malformed input, as a careless user or a damaged disk gives it: each case is one clear line on
stderr (exit 1) naming the file, the field and what was expected, and nothing stored changes.

Issue 10's examples: protocol numbers out of range (seed 2**63 or 10**30, washout 10**8 days, NaN
and infinite bounds, ...), databases of a newer schema or missing a table or column, foreign
SQLite files (never switched to WAL), a full disk during an answer and during an export, and the
temporary folder a killed ``pack`` leaves behind.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import event

from studies.api import AnswerKey
from studies.errors import StudyError
from studies.export import export
from studies.store import Store
from tests.studies.attacker import dump
from tests.studies.study_factory import SEQUENTIAL_TOML, FakeClock, build_study
from tests.studies.test_cli import assert_one_line_error, file_state, run
from tests.studies.test_create import make_inputs


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], clock: FakeClock):
    """``cli(*args)`` runs the command line in-process on the test's clock."""
    return lambda *args: run(list(args), monkeypatch, capsys, clock)


# ---- protocols ----------------------------------------------------------------------------------

PROTOCOL_CASES = [
    ("seed = 7", "seed = 9223372036854775808", ["line 4, seed", "within 0..2**63-1"]),
    ("seed = 7", "seed = 1000000000000000000000000000000", ["seed", "within 0..2**63-1"]),
    ("seed = 7", "seed = -1", ["seed", "within 0..2**63-1 (a 64-bit integer; got -1)"]),
    ("washout_days = 28", "washout_days = 100000000", ["washout_days", "within 0..365"]),
    ("washout_days = 28", "washout_days = 366", ["washout_days", "(got 366)"]),
    ("minimum = 0", "minimum = nan", ["questions[5].minimum", "finite number", "(got nan)"]),
    ("maximum = 100", "maximum = inf", ["questions[5].maximum", "finite number", "(got inf)"]),
    ("maximum = 100", "maximum = 1e300", ["questions[5].maximum", "within +-1e+12"]),
    ("max_length = 20", "max_length = 1000000000", ["questions[6].max_length", "1..100000"]),
    ("margin = 0.05", "margin = nan", ["interchangeability.margin", "between 0 and 1"]),
    (
        'points = 4\nlabels = ["Non-diagnostic"',
        'points = 1000\nlabels = ["Non-diagnostic"',
        ["questions[1].points", "points <= 100"],
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "needles"), PROTOCOL_CASES, ids=[c[1].split("\n")[0] for c in PROTOCOL_CASES]
)
def test_protocol_numbers_out_of_range(cli, tmp_path: Path, old, new, needles) -> None:
    assert old in SEQUENTIAL_TOML
    protocol = tmp_path / "bad.toml"
    protocol.write_text(SEQUENTIAL_TOML.replace(old, new, 1), encoding="utf-8")
    code, _, err = cli("study", "validate", str(protocol))
    assert_one_line_error(code, err, "bad.toml", *needles)
    # create refuses it too, before anything is written
    _, cases = make_inputs(tmp_path, n_cases=1)
    before = file_state(tmp_path)
    keys = set(Path(os.environ["BLINDREADER_KEY_DIR"]).iterdir())
    code, _, err = cli(
        "study", "create", str(protocol), "--cases", str(cases), "--db", str(tmp_path / "s.sqlite")
    )
    assert_one_line_error(code, err, "bad.toml", *needles)
    assert file_state(tmp_path) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert set(Path(os.environ["BLINDREADER_KEY_DIR"]).iterdir()) == keys  # no key file


# ---- databases ----------------------------------------------------------------------------------


def _newer_schema(db: Path) -> None:
    con = sqlite3.connect(db)
    with con:
        con.execute("update alembic_version set version_num = '0099'")
        con.execute("insert into schema_release values ('0099', '9.9.0')")
    con.close()


def _newer_schema_unknown_release(db: Path) -> None:
    con = sqlite3.connect(db)
    with con:
        con.execute("update alembic_version set version_num = 'ffff1234'")
    con.close()


def _missing_table(db: Path) -> None:
    con = sqlite3.connect(db)
    with con:
        con.execute("drop table merge_log")
    con.close()


def _missing_column(db: Path) -> None:
    con = sqlite3.connect(db)
    with con:
        con.execute("alter table answer_revision drop column arm_value")
    con.close()


def _foreign_with_a_study_table(db: Path) -> None:
    db.unlink()
    con = sqlite3.connect(db)
    with con:
        con.execute("create table study (id text, title text)")
        con.execute("insert into study values ('x', 'someone else''s')")
    con.close()


def _foreign_without(db: Path) -> None:
    db.unlink()
    con = sqlite3.connect(db)
    with con:
        con.execute("create table notes (body text)")
    con.close()


def _empty_file(db: Path) -> None:
    db.write_bytes(b"")


def _not_sqlite(db: Path) -> None:
    db.write_text("study,reader\n1,R1\n")


DATABASE_CASES = [
    (
        _newer_schema,
        ["schema version '0099'", "does not know", "written by blindreader 9.9.0", "nothing was"],
    ),
    (
        _newer_schema_unknown_release,
        ["schema version 'ffff1234'", "newer than 0.1.0"],
    ),
    (_missing_table, ["lacks table 'merge_log'", "nothing was changed"]),
    (_missing_column, ["table 'answer_revision'", "lacks column(s) arm_value"]),
    (_foreign_with_a_study_table, ["not a study database (no schema version"]),
    (_foreign_without, ["not a study database (no study table)"]),
    (_empty_file, ["not a study database (not a SQLite file)"]),
    (_not_sqlite, ["not a study database (not a SQLite file)"]),
]


@pytest.mark.parametrize(
    ("damage", "needles"), DATABASE_CASES, ids=[c[0].__name__.strip("_") for c in DATABASE_CASES]
)
@pytest.mark.parametrize("command", ["status", "verify", "export", "pack", "merge"])
def test_a_damaged_or_foreign_database_is_refused_unchanged(
    cli, tmp_path: Path, damage, needles, command
) -> None:
    db = build_study(tmp_path, n_cases=1, n_slices=1)
    con = sqlite3.connect(db)
    con.execute("pragma journal_mode = delete")  # as `study create` leaves it: one file
    con.close()
    damage(db)
    before = file_state(tmp_path)
    args = {
        "status": ["study", "status", "--db", str(db)],
        "verify": ["study", "verify", "--db", str(db)],
        "export": ["study", "export", "--db", str(db), "--what", "answers", "--out", "a.csv"],
        "pack": ["study", "pack", "--db", str(db), "--reader", "R1", "--out", str(tmp_path / "p")],
        "merge": ["study", "merge", "--db", str(db), str(tmp_path / "p")],
    }[command]
    code, _, err = cli(*args)
    assert_one_line_error(code, err, str(db), *needles)
    assert file_state(tmp_path) == before  # not a byte changed, no -wal beside it
    if db.read_bytes().startswith(b"SQLite format 3"):
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            assert con.execute("pragma journal_mode").fetchone()[0] != "wal"
        finally:
            con.close()


def test_a_package_whose_database_is_damaged_is_refused(cli, tmp_path: Path, clock) -> None:
    from studies.package import pack_reader

    db = build_study(tmp_path, n_cases=1, n_slices=1)
    pack_reader(db, "R1", tmp_path / "pkg", clock=clock)
    _missing_table(tmp_path / "pkg" / "study.sqlite")
    before = dump(db)
    code, _, err = cli("study", "merge", "--db", str(db), str(tmp_path / "pkg"))
    assert_one_line_error(code, err, "1 package(s) refused, nothing merged", "lacks table")
    assert dump(db) == before


# ---- a full disk --------------------------------------------------------------------------------


def _fill_the_disk(store: Store) -> None:
    """Let the store's connections grow the file by no page: SQLite then fails every write that
    needs one with SQLITE_FULL, the error a full disk gives ("database or disk is full")."""
    with store.engine.connect() as con:
        pages = con.exec_driver_sql("pragma page_count").scalar()

    @event.listens_for(store.engine, "connect")
    def _limit(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.execute(f"pragma max_page_count = {pages}")

    store.engine.dispose()


def test_a_full_disk_during_an_answer_is_a_study_error_and_stores_nothing(
    tmp_path: Path, clock: FakeClock
) -> None:
    db = build_study(tmp_path, n_cases=2, n_slices=1)
    with Store.open(db, clock=clock) as store:
        _fill_the_disk(store)
        aid = store.assignments("R1", 1)[0].assignment_id
        for i in range(2000):  # until the free pages run out
            before = dump(db)
            try:
                store.record_answer(aid, AnswerKey("comment"), f"{i:04d}" + "x" * 16)
            except StudyError as exc:
                message = str(exc)
                break
            clock.advance(seconds=1)
        else:
            pytest.fail("the disk never filled")
        assert "database or disk is full" in message and "nothing of it was stored" in message
        assert "\n" not in message and str(db) in message
        assert dump(db) == before  # the failed answer left nothing, not even half
    with Store.open(db, clock=clock) as store:
        assert store.verify().ok


def test_a_full_disk_during_an_export_writes_neither_the_file_nor_its_log(
    tmp_path: Path, clock: FakeClock
) -> None:
    db = build_study(tmp_path, n_cases=2, n_slices=1)
    out = tmp_path / "events.csv"
    out.write_text("the previous export\n")
    with Store.open(db, clock=clock) as store:
        _fill_the_disk(store)
        for _ in range(500):
            before, previous = dump(db), out.read_bytes()
            try:
                export(store, "events", out)
            except StudyError as exc:
                message = str(exc)
                break
        else:
            pytest.fail("the disk never filled")
    assert "database or disk is full" in message
    assert dump(db) == before and out.read_bytes() == previous  # neither the row nor the file
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".events.csv")]
    with Store.open(db, clock=clock) as store:
        assert store.verify().ok


# ---- a killed pack ------------------------------------------------------------------------------

PACK_AND_BLOCK = textwrap.dedent(
    """
    import sys, time
    from studies.package import pack_reader
    from tests.studies.study_factory import FakeClock

    def progress(done, total, message):
        print("copying", flush=True)
        time.sleep(120)

    pack_reader(sys.argv[1], "R1", sys.argv[2], progress=progress,
                clock=FakeClock())
    """
)


def test_the_temporary_folder_of_a_killed_pack_is_removed_by_the_next(cli, tmp_path: Path) -> None:
    db = build_study(tmp_path, n_cases=1, n_slices=1)
    out = tmp_path / "pkg"
    child = subprocess.Popen(
        [sys.executable, "-c", PACK_AND_BLOCK, str(db), str(out)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "copying"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".pkg.tmp-")]
    assert len(left) == 1 and not out.exists()
    alive = tmp_path / f".pkg.tmp-{os.getppid()}-0123abcd"  # a run that still goes on
    alive.mkdir()
    code, _, err = cli("study", "pack", "--db", str(db), "--reader", "R1", "--out", str(out))
    assert code == 0, err
    assert not left[0].exists() and alive.exists() and (out / "manifest.json").is_file()
