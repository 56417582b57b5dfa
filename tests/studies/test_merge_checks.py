"""Forged packages: each is refused whole by ``study merge``, and the main study is unchanged.

A real package is packed, read in the package's own store (session 1, a washout, part of
session 2) and then forged as a reader with ``sqlite3`` would, the chains recomputed with the
project's own code (``tests.studies.attacker``) so that the package is internally consistent.
``merge`` must refuse each one naming the problem, and a dump of the main study must be the same
before and after.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from studies.api import AnswerKey
from studies.errors import StudyError
from studies.package import MergeRefusedError, merge_packages, pack_reader
from studies.store import Store
from studies.study_key import KEY_DIR_VARIABLE
from tests.studies.attacker import dump, private_copy, reseal, rewrite_record
from tests.studies.study_factory import START, FakeClock, answer_all, build_study, sql_time

MERGE_AT = timedelta(days=31)  # after the start of the package reading


def _setup(folder: Path, *, second_session: bool) -> None:
    clock = FakeClock()
    db = build_study(folder, n_cases=3, n_slices=1)
    with Store.open(db, clock=clock) as main:  # something the reader is given with the package
        first = main.assignments("R1", 1)[0].assignment_id
        main.record_answer(first, AnswerKey("comment"), "seen at the hub")
    pack_reader(db, "R1", folder / "pkg", clock=clock)
    clock.advance(minutes=5)
    with Store.open(folder / "pkg" / "study.sqlite", clock=clock) as pkg:
        pkg.sign_in("R1")
        for view in pkg.assignments("R1", 1):
            pkg.record_event("R1", "case_opened", assignment_id=view.assignment_id)
            clock.advance(seconds=20)
            answer_all(pkg, view.assignment_id)
            clock.advance(seconds=20)
            pkg.record_answer(view.assignment_id, AnswerKey("quality"), 4)  # a second revision
            clock.advance(seconds=20)
            pkg.complete_assignment(view.assignment_id)
            clock.advance(minutes=1)
        if second_session:
            clock.advance(days=29)
            for view in pkg.assignments("R1", 2)[:2]:
                answer_all(pkg, view.assignment_id)
                pkg.complete_assignment(view.assignment_id)
                clock.advance(minutes=1)


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for name, second in (("both-sessions", True), ("first-session", False)):
        folder = tmp_path_factory.mktemp(name)
        _setup(folder, second_session=second)
        out[name] = folder
    return out


class Site:
    """A private copy of the coordinator's folder: the study, its key, the returned package."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.db = folder / "study.sqlite"
        self.pkg = folder / "pkg"
        self.pkg_db = self.pkg / "study.sqlite"
        self.clock = FakeClock()
        self.clock.advance(days=MERGE_AT.days)

    def sql(self, *statements: str, params: tuple[object, ...] = ()) -> None:
        con = sqlite3.connect(self.pkg_db)
        with con:
            for statement in statements:
                con.execute(statement, params if "?" in statement else ())
        con.close()

    def one(self, statement: str, params: tuple[object, ...] = ()) -> tuple:
        con = sqlite3.connect(self.pkg_db)
        try:
            row = con.execute(statement, params).fetchone()
        finally:
            con.close()
        assert row is not None, statement
        return tuple(row)

    def manifest(self, **changes: object) -> None:
        path = self.pkg / "manifest.json"
        data = json.loads(path.read_text())
        data.update(changes)
        path.write_text(json.dumps(data))

    def merge(self) -> None:
        merge_packages(self.db, [self.pkg], clock=self.clock)


@pytest.fixture
def site(
    originals: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    _study_key_folder: Path,
) -> Callable[[str], Site]:
    def make(name: str = "both-sessions") -> Site:
        keys = tmp_path / "keys"
        target = private_copy(originals[name], tmp_path / name, _study_key_folder, keys)
        monkeypatch.setenv(KEY_DIR_VARIABLE, str(keys))
        return Site(target)

    return make


# ---- the honest package ---------------------------------------------------------------------


def test_the_honest_package_merges_once(site) -> None:
    s = site()
    merge_packages(s.db, [s.pkg], clock=s.clock)
    once = dump(s.db)
    report = merge_packages(s.db, [s.pkg], clock=s.clock)
    assert not report.packages[0].changed and dump(s.db) == once
    with Store.open(s.db, clock=s.clock) as main:
        assert main.verify().ok
        sessions = main.sessions("R1")
        assert sessions[0].finished and sessions[1].n_done == 2


# ---- the forgeries --------------------------------------------------------------------------


def _answer(s: Site, question: str = "quality", session: int = 1) -> tuple[str, str]:
    """(answer id, assignment id) of the first answer to ``question`` in ``session``."""
    return s.one(
        "select a.id, a.assignment_pk from answer a join assignment x on x.id = a.assignment_pk "
        "join reading_session r on r.id = x.session_pk where a.question_id = ? and "
        'r."index" = ? order by x.position limit 1',
        (question, session),
    )


def _set_value(s: Site, answer: str, value: str) -> None:
    (rev,) = s.one(
        "select id from answer_revision where answer_pk = ? order by revision desc limit 1",
        (answer,),
    )
    s.sql(
        "update answer set value_json = ? where id = ?",
        "update answer_revision set value_json = ? where id = ?",
        params=(value, answer),
    )
    s.sql("update answer_revision set value_json = ? where id = ?", params=(value, rev))
    s.sql(
        "update event set payload_json = json_set(payload_json, '$.value', json(?)) "
        "where payload_json like ?",
        params=(value, f"%{rev}%"),
    )


def _likert_99(s: Site) -> None:
    answer, _ = _answer(s)
    _set_value(s, answer, "99")
    reseal(s.pkg_db)


def _unknown_question(s: Site) -> None:
    _, assignment = _answer(s)
    (at,) = s.one("select max(created_at) from event")
    s.sql(
        "insert into answer values ('forged-a', ?, 'made_up', '', '', '2', NULL, 1, ?, ?)",
        params=(assignment, at, at),
    )
    s.sql(
        "insert into answer_revision values ('forged-r', 'forged-a', 1, '2', NULL, ?, NULL)",
        params=(at,),
    )
    (seq,) = s.one("select max(seq) from event")
    payload = json.dumps(
        {
            "question": "made_up",
            "finding": None,
            "side": None,
            "value": 2,
            "revision": 1,
            "revision_id": "forged-r",
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    s.sql(
        "insert into event values ('forged-e', ?, 'R1', ?, 'answer_set', ?, ?, '', '')",
        params=(seq + 1, assignment, payload, at),
    )
    reseal(s.pkg_db)


def _event_of_another_reader(s: Site) -> None:
    s.sql("update event set reader_id = 'R2' where kind = 'case_opened'")
    reseal(s.pkg_db)


def _not_written_by_pack(s: Site) -> None:
    s.manifest(package_id="0" * 32)


def _positions_swapped(s: Site) -> None:
    (a,) = s.one("select id from assignment where position = 1 limit 1")
    (b, session) = s.one("select id, session_pk from assignment where id = ?", (a,))
    (c,) = s.one("select id from assignment where session_pk = ? and position = 2", (session,))
    s.sql(
        "update assignment set position = 99 where id = ?",
        params=(b,),
    )
    s.sql("update assignment set position = 1 where id = ?", params=(c,))
    s.sql("update assignment set position = 2 where id = ?", params=(b,))
    reseal(s.pkg_db)


def _revision_times_backwards(s: Site) -> None:
    answer, _ = _answer(s)
    (first,) = s.one(
        "select recorded_at from answer_revision where answer_pk = ? and revision = 1", (answer,)
    )
    (rev2,) = s.one(
        "select id from answer_revision where answer_pk = ? and revision = 2", (answer,)
    )
    earlier = sql_time(START + timedelta(minutes=4))
    s.sql("update answer_revision set recorded_at = ? where id = ?", params=(earlier, rev2))
    s.sql("update answer set last_answered_at = ? where id = ?", params=(earlier, answer))
    s.sql(
        "update event set created_at = ? where payload_json like ?", params=(earlier, f"%{rev2}%")
    )
    assert first > earlier
    reseal(s.pkg_db)


def _retime_last_revision(s: Site, when: str) -> None:
    answer, _ = _answer(s, session=2)
    (rev,) = s.one(
        "select id from answer_revision where answer_pk = ? order by revision desc limit 1",
        (answer,),
    )
    s.sql("update answer_revision set recorded_at = ? where id = ?", params=(when, rev))
    s.sql(
        "update answer set first_answered_at = ?, last_answered_at = ? where id = ?",
        params=(when, when, answer),
    )
    s.sql("update event set created_at = ? where payload_json like ?", params=(when, f"%{rev}%"))
    reseal(s.pkg_db)


def _in_the_future(s: Site) -> None:
    _retime_last_revision(s, sql_time(START + timedelta(days=3 * 365)))


def _before_the_package(s: Site) -> None:
    (rev,) = s.one("select id from answer_revision order by recorded_at limit 1 offset 1")
    when = sql_time(START - timedelta(days=12))
    s.sql("update answer_revision set recorded_at = ? where id = ?", params=(when, rev))
    (answer,) = s.one("select answer_pk from answer_revision where id = ?", (rev,))
    s.sql(
        "update answer set first_answered_at = ? where id = ? and revision = 1",
        params=(when, answer),
    )
    s.sql("update event set created_at = ? where payload_json like ?", params=(when, f"%{rev}%"))
    reseal(s.pkg_db)


def _completed_without_required(s: Site) -> None:
    answer, _ = _answer(s, "artifact")
    revs = [
        r
        for (r,) in [
            s.one("select group_concat(id) from answer_revision where answer_pk = ?", (answer,))
        ]
    ]
    for rev in revs[0].split(","):
        s.sql("delete from event where payload_json like ?", params=(f"%{rev}%",))
    s.sql("delete from answer_revision where answer_pk = ?", params=(answer,))
    s.sql("delete from answer where id = ?", params=(answer,))
    s.sql("update event set seq = (select count(*) from event e2 where e2.seq <= event.seq)")
    reseal(s.pkg_db)


def _arm_named(s: Site) -> None:
    answer, _ = _answer(s)
    s.sql("update answer set arm_value = 'dl' where id = ?", params=(answer,))
    reseal(s.pkg_db)


def _protocol_edited(s: Site) -> None:
    import hashlib

    (text,) = s.one("select protocol_toml from study")
    changed = text.replace("Overall image quality", "Is the image sharp?")
    digest = hashlib.sha256(changed.encode()).hexdigest()
    s.sql("update study set protocol_toml = ?, protocol_sha256 = ?", params=(changed, digest))
    s.manifest(protocol_sha256=digest)
    reseal(s.pkg_db)


def _reader_added(s: Site) -> None:
    (study,) = s.one("select id from study")
    s.sql(
        "insert into reader values ('forged-reader', ?, 'R3', 'Dr Third', 3, NULL)",
        params=(study,),
    )
    reseal(s.pkg_db)


def _image_changed(s: Site) -> None:
    image = next((s.pkg / "study_images").rglob("*.dcm"))
    image.write_bytes(b"another image")


def _chain_broken(s: Site) -> None:
    s.sql("update event set payload_json = '{\"x\":1}' where kind = 'case_opened'")


def _finished_session_answered(s: Site) -> None:
    answer, _ = _answer(s, "quality", session=1)
    (n, value) = s.one("select revision, value_json from answer where id = ?", (answer,))
    when = sql_time(START + timedelta(days=19))  # after session 1 finished, before session 2
    s.sql(
        "insert into answer_revision values ('late-rev', ?, ?, '2', NULL, ?, NULL)",
        params=(answer, n + 1, when),
    )
    s.sql(
        "update answer set value_json = '2', revision = ?, last_answered_at = ? where id = ?",
        params=(n + 1, when, answer),
    )
    (seq, assignment) = s.one(
        "select max(seq), (select assignment_pk from answer where id = ?) from event", (answer,)
    )
    payload = json.dumps(
        {
            "question": "quality",
            "finding": None,
            "side": None,
            "value": 2,
            "revision": n + 1,
            "revision_id": "late-rev",
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    s.sql(
        "insert into event values ('late-e', ?, 'R1', ?, 'answer_set', ?, ?, '', '')",
        params=(seq + 1, assignment, payload, when),
    )
    assert value
    reseal(s.pkg_db)


def _given_rows_changed(s: Site) -> None:
    (answer,) = s.one("select id from answer where question_id = 'comment'")
    s.sql("delete from event where kind = 'answer_set' and payload_json like '%seen at the hub%'")
    _set_value(s, answer, '"nothing seen"')
    reseal(s.pkg_db)


def _answer_moved_out(s: Site) -> None:
    answer, _ = _answer(s)
    s.sql(
        "update answer set assignment_pk = 'not-an-assignment-of-R1' where id = ?", params=(answer,)
    )
    reseal(s.pkg_db)


def _pack_time_rows_rewritten(s: Site) -> None:
    s.sql("update series set folder = 'elsewhere' where rowid = 1")

    def edit(table: str, row: str, image: dict) -> dict:
        return {**image, "folder": "elsewhere"} if table == "series" else image

    rewrite_record(s.pkg_db, edit, macs="strip")


FORGERIES: list[tuple[str, Callable[[Site], None], list[str]]] = [
    ("a likert value of 99", _likert_99, ["expected an integer 1..4, got 99"]),
    (
        "an answer to a question that does not exist",
        _unknown_question,
        ["unknown question 'made_up'"],
    ),
    (
        "an event attributed to another reader",
        _event_of_another_reader,
        ["attributed to reader 'R2'"],
    ),
    (
        "a package this study did not write",
        _not_written_by_pack,
        ["was not written by `study pack`"],
    ),
    (
        "the reading order changed",
        _positions_swapped,
        ["position is 1, the study packed 2", "position is 2, the study packed 1"],
    ),
    ("revision times run backwards", _revision_times_backwards, ["times run backwards"]),
    ("an answer from the future", _in_the_future, ["after this merge"]),
    (
        "an answer before the package was written",
        _before_the_package,
        ["before the package was written"],
    ),
    (
        "a completion without required answers",
        _completed_without_required,
        ["completed without required answers artifact"],
    ),
    ("an arm named in a package", _arm_named, ["names arm 'dl' (a package stores no arm)"]),
    ("the protocol edited", _protocol_edited, ["its protocol differs from the study's protocol"]),
    ("a reader added", _reader_added, ["package reader R3: not packed (added)"]),
    ("an image changed", _image_changed, ["image study_images/", ": changed"]),
    ("the event chain broken", _chain_broken, ["event log: event", "does not match its hash"]),
    ("a finished session answered", _finished_session_answered, ["after it finished"]),
    (
        "what the reader was given, changed",
        _given_rows_changed,
        ["given to the reader, now missing", "(changed)"],
    ),
    (
        "an answer moved to an assignment not the reader's",
        _answer_moved_out,
        ["of an assignment that is not reader R1's"],
    ),
    (
        "pack-time rows rewritten with the record",
        _pack_time_rows_rewritten,
        ["package record:", "folder is 'elsewhere', the study packed"],
    ),
]


@pytest.mark.parametrize(
    ("forge", "expected"), [f[1:] for f in FORGERIES], ids=[f[0] for f in FORGERIES]
)
def test_a_forged_package_is_refused_whole(site, forge, expected) -> None:
    s = site()
    before = dump(s.db)
    forge(s)
    with pytest.raises(MergeRefusedError) as refused:
        s.merge()
    text = "\n".join(refused.value.lines())
    for needle in expected:
        assert needle in text, (needle, refused.value.lines()[:10])
    assert dump(s.db) == before


def test_a_washout_walked_around_in_the_package_is_refused(site) -> None:
    """The reader moves session 2's not_before into the past and reads it 0.1 s after session 1."""
    s = site("first-session")
    before = dump(s.db)
    opened = START.date().isoformat()
    s.sql(f"update reading_session set not_before = '{opened}' where \"index\" = 2")
    (finished,) = s.one('select finished_at from reading_session where "index" = 1')
    clock = FakeClock()
    from datetime import UTC, datetime

    clock.now = datetime.fromisoformat(finished).replace(tzinfo=UTC) + timedelta(seconds=0.1)
    with Store.open(s.pkg_db, clock=clock) as pkg:
        view = pkg.assignments("R1", 2)[0]
        assert not view.read_only  # the package's store was fooled ...
        answer_all(pkg, view.assignment_id)
    with pytest.raises(MergeRefusedError) as refused:  # ... the merge is not
        s.merge()
    text = "\n".join(refused.value.lines())
    assert (
        f"session 2 of reader R1: not_before is {opened} in the package, the study's washout"
        in text
    )
    assert "before it opened" in text and "the washout of 28 days" in text
    assert dump(s.db) == before


def test_one_bad_package_refuses_the_good_ones_too(site) -> None:
    s = site()
    good_pkg = s.folder / "pkg"
    bad = s.folder / "pkg-copy"
    import shutil

    shutil.copytree(good_pkg, bad)
    (bad / "manifest.json").write_text("{}")
    before = dump(s.db)
    with pytest.raises(MergeRefusedError) as refused:
        merge_packages(s.db, [good_pkg, bad], clock=s.clock)
    assert "1 package(s) refused, nothing merged" in str(refused.value)
    assert dump(s.db) == before
    assert isinstance(refused.value, StudyError)
