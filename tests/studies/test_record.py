"""The study record as an attacker meets it: ``sqlite3`` on a finished, exported study.

Every case of issue 10's list of edits that ``verify`` used to miss is made here with plain
``sqlite3`` (and, where the attacker would, the public hash chains recomputed with the
project's own published algorithm), and ``verify`` must report it naming the table, the row and
the field. A property test changes one random cell or deletes one random row of the study and
expects ``verify`` to fail.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studies.api import AnswerKey
from studies.errors import StudyError
from studies.export import export
from studies.image_digests import sha256_of
from studies.record import entry_hash
from studies.store import Store
from studies.study_key import KEY_DIR_VARIABLE, key_path
from tests.studies.attacker import rechain_events, rewrite_record
from tests.studies.study_factory import (
    START,
    FakeClock,
    answer_all,
    build_study,
    finish_session,
    iso_time,
    sql_time,
)

# ---- the finished studies --------------------------------------------------------------------


def _read_through(db: Path, clock: FakeClock) -> None:
    """Both readers read both sessions (a washout apart), with a few changed answers, and the
    coordinator exports the answers (an anchor)."""
    with Store.open(db, clock=clock) as store:
        for reader in ("R1", "R2"):
            finish_session(store, reader, 1, step=lambda: clock.advance(minutes=2))
        first = store.assignments("R1", 2)[0].assignment_id
        clock.advance(days=29)
        for reader in ("R1", "R2"):
            for view in store.assignments(reader, 2):
                answer_all(store, view.assignment_id)
                if view.assignment_id == first:  # three revisions of one answer
                    for grade in (1, 4):
                        clock.advance(seconds=30)
                        store.record_answer(view.assignment_id, AnswerKey("quality"), grade)
                store.complete_assignment(view.assignment_id)
                clock.advance(minutes=2)
        export(store, "answers", db.parent / "answers.csv")


def _read_paired(db: Path, clock: FakeClock) -> None:
    with Store.open(db, clock=clock) as store:
        for view in store.assignments("R1", 1):
            for side in ("left", "right"):
                store.record_answer(view.assignment_id, AnswerKey("quality", None, side), 3)
            store.record_answer(view.assignment_id, AnswerKey("preference"), "left")
            store.complete_assignment(view.assignment_id)
            clock.advance(minutes=1)
        export(store, "answers", db.parent / "answers.csv")


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished sequential study and a finished paired one (built once)."""
    out = {}
    for design, reader in (("sequential", _read_through), ("paired", _read_paired)):
        folder = tmp_path_factory.mktemp(design)
        db = build_study(folder, design=design, n_cases=3, n_slices=1)
        reader(db, FakeClock())
        out[design] = db
    return out


@pytest.fixture
def copy_of(
    finished: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    _study_key_folder: Path,
) -> Iterator[Callable[[str], Path]]:
    """``copy_of(design)``: a private copy of a finished study, with its own key folder."""
    keys = tmp_path / "keys"
    keys.mkdir()
    made = [0]

    def make(design: str) -> Path:
        source = finished[design]
        made[0] += 1
        target = tmp_path / f"{design}-{made[0]}"
        shutil.copytree(source.parent, target, ignore=shutil.ignore_patterns("*-wal", "*-shm"))
        con = sqlite3.connect(target / source.name)
        study_id = con.execute("select id from study").fetchone()[0]
        con.close()
        for suffix in (".key", ".anchors"):
            original = key_path(study_id, _study_key_folder).with_suffix(suffix)
            if original.exists():
                shutil.copy(original, keys / original.name)
        monkeypatch.setenv(KEY_DIR_VARIABLE, str(keys))
        return target / source.name

    yield make


def problems_of(db: Path, clock: FakeClock | None = None, **kwargs: object) -> list[str]:
    with Store.open(db, clock=clock or FakeClock(), **kwargs) as store:  # type: ignore[arg-type]
        return store.verify().problems


def sql(db: Path, *statements: str, params: tuple[object, ...] = ()) -> None:
    con = sqlite3.connect(db)
    with con:
        for statement in statements:
            con.execute(statement, params if "?" in statement else ())
    con.close()


def query(db: Path, statement: str, params: tuple[object, ...] = ()) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute(statement, params).fetchall()
    finally:
        con.close()


def assert_found(problems: list[str], *needles: str) -> None:
    assert problems, "verify found nothing"
    text = "\n".join(problems)
    for needle in needles:
        assert needle in text, (needle, problems[:8])


# ---- the intact studies -------------------------------------------------------------------------


def test_finished_studies_verify(copy_of) -> None:
    for design in ("sequential", "paired"):
        db = copy_of(design)
        with Store.open(db, clock=FakeClock()) as store:
            report = store.verify()
            assert report.ok, report.problems
            assert report.keyed and report.record.n_keyed == report.record.n_entries
            assert report.record.n_anchors >= 2  # creation (key file) and the export


def test_without_the_key_verify_says_what_it_cannot_prove(copy_of, tmp_path: Path) -> None:
    db = copy_of("sequential")
    shutil.rmtree(tmp_path / "keys")
    with Store.open(db, clock=FakeClock()) as store:
        assert store.key is None
        report = store.verify()
    assert report.ok and not report.keyed
    assert any("without the study key" in note for note in report.notes)
    # a naive edit is still found without the key (the record disagrees with the row) ...
    sql(db, "update arm set code = 'dl2' where code = 'dl'")
    assert_found(problems_of(db), "arm: arm dl: code is 'dl2', the record says 'dl'")


# ---- the corpus -------------------------------------------------------------------------------


def _answer_row(db: Path, question: str = "quality") -> tuple[str, str]:
    """(answer id, assignment id) of reader R1's first session-1 answer to ``question``."""
    (row,) = query(
        db,
        "select a.id, a.assignment_pk from answer a join assignment s on s.id = a.assignment_pk "
        "join reading_session r on r.id = s.session_pk join reader d on d.id = r.reader_pk "
        "where d.reader_id = 'R1' and r.\"index\" = 1 and a.question_id = ? "
        "order by s.position limit 1",
        (question,),
    )
    return row[0], row[1]


def test_an_answer_changed_with_its_revision_and_event_and_the_chain_recomputed(copy_of) -> None:
    db = copy_of("sequential")
    answer, _ = _answer_row(db)
    (rev,) = query(db, "select id from answer_revision where answer_pk = ?", (answer,))
    sql(
        db,
        f"update answer set value_json = '1' where id = '{answer}'",
        f"update answer_revision set value_json = '1' where id = '{rev[0]}'",
        "update event set payload_json = replace(payload_json, '\"value\":3', '\"value\":1') "
        f"where payload_json like '%{rev[0]}%'",
    )
    rechain_events(db)
    with Store.open(db, clock=FakeClock()) as store:
        assert store.verify_events() == []  # the old check is fooled ...
    problems = problems_of(db)  # ... the record is not
    assert_found(
        problems,
        "answer: answer quality of the assignment at position",
        "of session 1 of reader R1",
        "value_json is '1', the record says '3'",
        "answer_revision: revision 1 of the answer quality",
        "event: event",
    )


def test_the_last_events_deleted(copy_of) -> None:
    db = copy_of("sequential")
    last = query(db, "select seq, kind from event order by seq desc limit 3")
    sql(db, "delete from event where seq > (select max(seq) - 3 from event)")
    assert_found(problems_of(db), *[f"event: event {seq} ({kind}" for seq, kind in last])
    assert_found(problems_of(db), "deleted (the record holds it)")


def test_the_last_events_deleted_with_the_end_of_the_record(copy_of) -> None:
    """Rows and the record cut back together: the chain that is left is consistent, the export's
    anchor (in the key's anchor log) says how far it reached."""
    db = copy_of("sequential")
    (cut,) = query(
        db,
        "select min(seq) from record where table_name = 'event' and row_id in "
        "(select id from event where seq > (select max(seq) - 3 from event))",
    )
    sql(
        db,
        "delete from event where seq > (select max(seq) - 3 from event)",
        f"delete from record where seq >= {cut[0]}",
        "delete from export_run",
    )
    problems = problems_of(db)
    assert_found(problems, f"the record ends at entry {cut[0] - 1}, but the anchor of export")
    assert_found(problems, "were deleted")


def test_the_whole_log_deleted(copy_of) -> None:
    db = copy_of("sequential")
    (n,) = query(db, "select count(*) from event")
    sql(db, "delete from event")
    problems = problems_of(db)
    assert sum("event: event" in p and "deleted" in p for p in problems) == n[0]
    sql(db, "delete from record")  # and the record with it
    problems = problems_of(db)
    assert_found(problems, "the study record is empty", "the anchor of study create (key file)")


def test_the_protocol_text(copy_of) -> None:
    db = copy_of("sequential")
    sql(
        db,
        "update study set protocol_toml = replace(protocol_toml, 'washout_days = 28', "
        "'washout_days = 0')",
    )
    assert_found(
        problems_of(db),
        "study: study 'Test sequential study': protocol_toml differs from the record",
        "'washout_days = 0', the record says 'washout_days = 28'",
    )


def _case_rows(db: Path, table: str, reader: str | None = None) -> list[tuple[str, str]]:
    if table == "series":
        return query(
            db,
            'select s.id, s.arm_pk from series s join "case" c on c.id = s.case_pk '
            "where c.case_id = 'C01'",
        )
    return query(
        db,
        "select a.id, a.arm_pk from assignment a join reading_session r on r.id = a.session_pk "
        'join reader d on d.id = r.reader_pk join "case" c on c.id = a.case_pk '
        "where c.case_id = 'C01' and d.reader_id = ?",
        (reader,),
    )


def test_assignment_arms_swapped(copy_of) -> None:
    db = copy_of("sequential")
    (a, arm_a), (b, arm_b) = _case_rows(db, "assignment", "R1")
    sql(
        db,
        f"update assignment set arm_pk = '{arm_b}' where id = '{a}'",
        f"update assignment set arm_pk = '{arm_a}' where id = '{b}'",
    )
    problems = problems_of(db)
    assert_found(problems, "assignment: assignment at position", "(case C01): arm_pk is arm")
    assert sum("arm_pk is arm" in p for p in problems) == 2


def test_the_series_to_arm_key_swapped(copy_of) -> None:
    db = copy_of("sequential")
    (a, arm_a), (b, arm_b) = _case_rows(db, "series")
    sql(
        db,
        f"update series set arm_pk = 'swapping' where id = '{a}'",
        f"update series set arm_pk = '{arm_a}' where id = '{b}'",
        f"update series set arm_pk = '{arm_b}' where id = '{a}'",
    )
    assert_found(
        problems_of(db),
        "series: series s-",
        "(case C01, arm conv): arm_pk is arm dl, the record says arm conv",
    )


def test_arm_codes_relabelled(copy_of) -> None:
    db = copy_of("sequential")
    sql(
        db,
        "update arm set code = 'tmp' where code = 'conv'",
        "update arm set code = 'conv' where code = 'dl'",
        "update arm set code = 'dl' where code = 'tmp'",
    )
    assert_found(
        problems_of(db),
        "arm: arm conv: code is 'dl', the record says 'conv'",
        "arm: arm dl: code is 'conv', the record says 'dl'",
    )


def test_answer_and_completion_times(copy_of) -> None:
    db = copy_of("sequential")
    answer, assignment = _answer_row(db)
    later = START + timedelta(days=29)
    sql(
        db,
        f"update answer set last_answered_at = '{sql_time(later)}' where id = '{answer}'",
        f"update assignment set completed_at = '{sql_time(later)}' where id = '{assignment}'",
    )
    assert_found(
        problems_of(db),
        "answer: answer quality of the assignment",
        f"last_answered_at is '{iso_time(later)}'",
        f"completed_at is '{iso_time(later)}'",
    )


def test_washout_dates(copy_of) -> None:
    db = copy_of("sequential")
    opened = START.date().isoformat()
    sql(db, f"update reading_session set not_before = '{opened}' where \"index\" = 2")
    assert_found(
        problems_of(db),
        f"reading_session: session 2 of reader R1: not_before is '{opened}'",
        "reading_session: session 2 of reader R2: not_before",
    )


def test_an_answer_moved_to_another_reader(copy_of) -> None:
    db = copy_of("sequential")
    answer, _ = _answer_row(db)
    ((other,),) = query(
        db,
        "select a.id from assignment a join reading_session r on r.id = a.session_pk "
        "join reader d on d.id = r.reader_pk where d.reader_id = 'R2' and r.\"index\" = 1 "
        "and a.id not in (select assignment_pk from answer where question_id = 'comment') "
        "order by a.position limit 1",
    )
    sql(db, f"delete from answer where assignment_pk = '{other}' and question_id = 'quality'")
    sql(db, f"update answer set assignment_pk = '{other}' where id = '{answer}'")
    assert_found(
        problems_of(db),
        "assignment_pk is assignment at position",
        "of session 1 of reader R2",
        "the record says assignment at position",
    )


def test_the_truth_flipped(copy_of) -> None:
    db = copy_of("sequential")
    sql(
        db,
        "update case_truth set truth = 1 - truth where finding_id = 'acl' and case_pk = "
        "(select id from \"case\" where case_id = 'C01')",
    )
    assert_found(
        problems_of(db), "case_truth: truth of case C01 for acl: truth is 1, the record says 0"
    )


def test_the_export_log_deleted(copy_of) -> None:
    db = copy_of("sequential")
    sql(db, "delete from export_run")
    assert_found(problems_of(db), "export_run: export run 'answers' of 2026-", "deleted")


def test_a_preference_arm_flipped(copy_of) -> None:
    db = copy_of("paired")
    ((answer, arm),) = query(
        db, "select id, arm_value from answer where question_id = 'preference' limit 1"
    )
    other = "dl" if arm == "conv" else "conv"
    sql(db, f"update answer set arm_value = '{other}' where id = '{answer}'")
    assert_found(
        problems_of(db),
        "answer: answer preference of the assignment",
        f"arm_value is '{other}', the record says '{arm}'",
    )


def test_left_and_right_swapped(copy_of) -> None:
    db = copy_of("paired")
    ((aid,),) = query(db, "select id from assignment order by position limit 1")
    sql(
        db,
        "update assignment set left_arm_pk = right_arm_pk, right_arm_pk = left_arm_pk "
        f"where id = '{aid}'",
    )
    assert_found(
        problems_of(db),
        "assignment: assignment at position 1 of session 1 of reader R1",
        "left_arm_pk is arm",
        "right_arm_pk is arm",
    )


def test_a_middle_revision_deleted(copy_of) -> None:
    db = copy_of("sequential")
    ((answer,),) = query(db, "select answer_pk from answer_revision where revision = 3")
    sql(
        db,
        f"delete from answer_revision where answer_pk = '{answer}' and revision = 2",
        f"update answer_revision set revision = 2 where answer_pk = '{answer}' and revision = 3",
        f"update answer set revision = 2 where id = '{answer}'",
    )
    assert_found(
        problems_of(db),
        "answer_revision: revision 2 of the answer quality",
        "deleted (the record holds it)",
        "answer_revision: revision 3 of the answer quality",
        "revision is 2, the record says 3",
    )


def test_events_reordered(copy_of) -> None:
    db = copy_of("sequential")
    sql(
        db,
        "update event set seq = -1 where seq = 5",
        "update event set seq = 5 where seq = 6",
        "update event set seq = 6 where seq = -1",
    )
    rechain_events(db)
    assert_found(problems_of(db), "event: event 5", "seq is 6, the record says 5")


def test_a_reader_passphrase_replaced(copy_of) -> None:
    db = copy_of("sequential")
    with Store.open(db, clock=FakeClock()) as store:
        store.set_passphrase("R1", "correct horse battery")
    (stored,) = query(db, "select passphrase from reader where reader_id = 'R1'")
    assert stored[0].startswith("scrypt$16384$8$1$") and "correct" not in stored[0]
    with Store.open(db, clock=FakeClock()) as store:
        assert store.verify().ok
    sql(db, "update reader set passphrase = NULL where reader_id = 'R1'")
    assert_found(problems_of(db), "reader: reader R1: passphrase is None, the record says 'scrypt$")


# ---- the record itself attacked ---------------------------------------------------------------


def test_the_record_rewritten_without_the_key(copy_of) -> None:
    db = copy_of("sequential")
    (a, arm_a), (b, _) = _case_rows(db, "assignment", "R1")
    sql(db, f"update assignment set position = 99 where id = '{a}'")

    def edit(table: str, row: str, image: dict) -> dict:
        return {**image, "position": 99} if table == "assignment" and row == a else image

    rewrite_record(db, edit, macs="keep")
    assert_found(problems_of(db), "its MAC is not the study key's", "differs from the anchor of")
    rewrite_record(db, edit, macs="strip")
    assert_found(
        problems_of(db),
        "were written without the study key and nobody vouched for them",
        "differs from the anchor of",
    )
    assert arm_a and b


def test_rows_added_with_record_entries_of_their_own(copy_of) -> None:
    """An attacker adds an answer revision and records it (without the key) at the end."""
    db = copy_of("sequential")
    answer, _ = _answer_row(db, "likelihood")
    forged_at = START + timedelta(days=59, hours=1)
    sql(
        db,
        "insert into answer_revision values ('forged-rev', ?, 9, '1', NULL, ?, NULL)",
        params=(answer, sql_time(forged_at)),
    )
    assert_found(problems_of(db), "not in the record (added outside blindreader)")
    ((seq, prev),) = query(db, "select seq, hash from record order by seq desc limit 1")
    image = {
        "id": "forged-rev",
        "answer_pk": answer,
        "revision": 9,
        "value_json": "1",
        "arm_value": None,
        "recorded_at": iso_time(forged_at),
    }
    text = json.dumps(image, sort_keys=True, separators=(",", ":"))
    digest = entry_hash(prev, seq + 1, "answer_revision", "forged-rev", text)
    sql(
        db,
        "insert into record values (?, 'answer_revision', 'forged-rev', ?, ?, ?, NULL)",
        params=(seq + 1, text, prev, digest),
    )
    assert_found(
        problems_of(db),
        f"record entries {seq + 1} (1 entries: answer_revision 1) were written without the study "
        "key and nobody vouched for them",
    )


def test_a_live_database_read_without_the_key_is_sealed_by_the_coordinator(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = build_study(tmp_path, n_cases=2)
    with Store.open(db, clock=clock) as store:
        key_file = store.key.path if store.key else None
    assert key_file is not None
    elsewhere = tmp_path / "reader-workstation-keys"
    elsewhere.mkdir()
    monkeypatch.setenv(KEY_DIR_VARIABLE, str(elsewhere))  # the reader's account: no key
    with Store.open(db, clock=clock) as store:
        assert store.key is None
        finish_session(store, "R1", 1)
        with pytest.raises(StudyError, match="sealing needs the study key"):
            store.seal()
    with Store.open(db, clock=clock, key_file=key_file) as store:
        report = store.verify()
        assert_found(report.problems, "written without the study key and nobody vouched")
        assert len(report.problems) == 1
        assert store.seal() > 0
        assert store.verify().ok
        assert store.seal() == 0
    sql(db, "update answer set value_json = '1' where value_json = '3'")  # after the seal
    assert_found(problems_of(db, key_file=key_file), "value_json is '1', the record says '3'")


# ---- the property ---------------------------------------------------------------------------

BOOKKEEPING = ("alembic_version", "schema_release")  # schema bookkeeping: decides nothing


@pytest.fixture(scope="module")
def cells(finished: dict[str, Path]) -> list[tuple[str, int, str]]:
    """Every (table, rowid, column) of the finished sequential study."""
    con = sqlite3.connect(finished["sequential"])
    tables = [
        r[0]
        for r in con.execute("select name from sqlite_master where type = 'table'")
        if r[0] not in BOOKKEEPING
    ]
    out = []
    for table in tables:
        columns = [r[1] for r in con.execute(f'pragma table_info("{table}")')]
        for (rowid,) in con.execute(f'select rowid from "{table}"'):
            out += [(table, rowid, c) for c in columns]
    con.close()
    return out


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data(), delete=st.booleans())
def test_any_changed_cell_or_deleted_row_fails_verify(copy_of, cells, data, delete) -> None:
    table, rowid, column = data.draw(st.sampled_from(cells))
    db = copy_of("sequential")
    if delete:
        sql(db, f'delete from "{table}" where rowid = {rowid}')
    else:
        # (a unique column is moved far away, so the change never collides with another row)
        sql(
            db,
            f'update "{table}" set "{column}" = case '
            f'when typeof("{column}") = \'integer\' and "{column}" in (0, 1) then 1 - "{column}" '
            f'when typeof("{column}") = \'integer\' then "{column}" + 1000003 '
            f'when typeof("{column}") = \'real\' then "{column}" + 0.5 '
            f'when "{column}" is null then 1 '
            f"else \"{column}\" || 'x' end where rowid = {rowid}",
        )
    try:
        problems = problems_of(db)
    except StudyError:
        return  # refused to open (the study row, its protocol or schema): fails loudly too
    assert problems, (table, rowid, column, "deleted" if delete else "changed")


def test_the_washout_after_a_tampered_finish_is_recomputed_not_trusted(copy_of) -> None:
    """Moving session 1's finish does not move session 2's lock: it is a change verify reports."""
    db = copy_of("sequential")
    sql(
        db,
        f"update reading_session set finished_at = '{sql_time(START - timedelta(days=31))}' "
        'where "index" = 1',
    )
    assert_found(problems_of(db), f"finished_at is '{iso_time(START - timedelta(days=31))}'")


# ---- the image files beside the database ------------------------------------------------------


def _series_folders(db: Path) -> list[Path]:
    rows = query(db, "select folder from series order by opaque_id")
    (images,) = query(db, "select images_dir from study")[0]
    return [db.parent / images / folder for (folder,) in rows]


def test_intact_images_verify_without_a_note(copy_of) -> None:
    db = copy_of("sequential")
    with Store.open(db, clock=FakeClock()) as store:
        report = store.verify()
    assert report.ok, report.problems
    assert not any("image checksums" in note for note in report.notes)


def test_two_series_swapped_on_disk(copy_of) -> None:
    """The attacker's cheapest unblinding-free edit: swap the images of two series."""
    db = copy_of("sequential")
    a, b = _series_folders(db)[:2]
    parked = a.with_name("parked")
    a.rename(parked)
    b.rename(a)
    parked.rename(b)
    assert_found(problems_of(db), f"series {a.name}: image file 0001.dcm was changed")


def test_an_image_file_edited_deleted_or_added(copy_of) -> None:
    db = copy_of("sequential")
    first, second, third = _series_folders(db)[:3]
    (first / "0001.dcm").write_bytes(b"a different image")
    (second / "0001.dcm").unlink()
    (third / "0002.dcm").write_bytes(b"one more image")
    assert_found(
        problems_of(db),
        f"series {first.name}: image file 0001.dcm was changed",
        f"series {second.name}: image file 0001.dcm is missing",
        f"series {third.name}: image file 0002.dcm was added",
    )
    with Store.open(db, clock=FakeClock()) as store:
        assert store.verify(images=False).ok  # rows alone are intact


def test_a_series_folder_removed(copy_of) -> None:
    db = copy_of("sequential")
    folder = _series_folders(db)[0]
    shutil.rmtree(folder)
    assert_found(problems_of(db), f"series {folder.name}: image folder", "is missing")


def test_an_image_replaced_with_its_checksum_updated_in_the_row(copy_of) -> None:
    """Whoever swaps a file and updates the checksum column meets the record."""
    db = copy_of("sequential")
    folder = _series_folders(db)[0]
    (folder / "0001.dcm").write_bytes(b"a different image")
    (stored,) = query(db, "select files_sha256 from series where folder = ?", (folder.name,))[0]
    digests = json.loads(stored)
    digests["0001.dcm"] = sha256_of(folder / "0001.dcm")
    sql(
        db,
        "update series set files_sha256 = ? where folder = ?",
        params=(json.dumps(digests, sort_keys=True, separators=(",", ":")), folder.name),
    )
    assert_found(problems_of(db), "series", "files_sha256")


def test_a_checksum_column_that_is_not_json(copy_of) -> None:
    db = copy_of("sequential")
    folder = _series_folders(db)[0]
    sql(db, "update series set files_sha256 = 'garbage' where folder = ?", params=(folder.name,))
    assert_found(problems_of(db), f"series {folder.name}: files_sha256 is not a JSON object")
