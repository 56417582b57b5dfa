"""The store on a real PostgreSQL server (started here from Debian's package; skipped without).

The server is a throwaway: ``initdb`` into a temporary folder, ``pg_ctl start`` on a free local
port (as the ``postgres`` or ``nobody`` user when the tests run as root, since PostgreSQL refuses
to run as root), stopped and removed at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from studies.api import AnswerKey
from studies.db.copy import copy_study
from studies.db.engine import make_engine
from studies.errors import StudyError
from studies.export import answers_frame
from studies.package import merge_packages, pack_reader
from studies.store import Store
from tests.studies.pg_server import PostgresUnavailableError, throwaway_postgres
from tests.studies.study_factory import FakeClock, build_study, finish_session

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    try:
        with throwaway_postgres() as url:
            yield url
    except PostgresUnavailableError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def pg_study(postgres_url: str, tmp_path: Path) -> Iterator[str]:
    """A fresh study on the server: a SQLite study copied over, emptied afterwards."""
    engine = make_engine(postgres_url)
    with engine.begin() as con:
        con.execute(text("DROP SCHEMA public CASCADE"))
        con.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    copy_study(build_study(tmp_path), postgres_url)
    yield postgres_url


def test_store_api_on_postgres(pg_study: str, tmp_path: Path) -> None:
    clock = FakeClock()
    with Store.open(pg_study, clock=clock) as store:
        assert store.engine.dialect.name == "postgresql"
        assert [r.reader_id for r in store.readers()] == ["R1", "R2"]
        view = store.next_assignment("R1")
        assert view is not None and all(f.is_file() for f in view.sides[0].files)
        store.record_event("R1", "case_opened", assignment_id=view.assignment_id)
        clock.advance(seconds=20)
        assert store.record_answer(view.assignment_id, AnswerKey("quality"), 2).revision == 1
        assert store.record_answer(view.assignment_id, AnswerKey("quality"), 3).revision == 2
        with pytest.raises(StudyError, match=r"expected an integer 1\.\.4"):
            store.record_answer(view.assignment_id, AnswerKey("quality"), 9)
        store.record_event("R1", "case_closed", assignment_id=view.assignment_id)
        assert store.active_ms(view.assignment_id) == 20_000
        finish_session(store, "R1", 1, step=lambda: clock.advance(minutes=1))
        s1, s2 = store.sessions("R1")
        assert (
            s1.finished and s2.locked and s2.not_before == (clock.now + timedelta(days=28)).date()
        )
        assert store.verify_events() == []
        report = store.verify()  # the record came over with the copy, and was extended here
        assert report.ok and report.keyed, report.problems
        frame = answers_frame(store, unblinded=True)
        assert set(frame["reader"]) == {"R1"} and len(frame) == 4 * 4
    engine = make_engine(pg_study)
    with engine.begin() as con:
        con.execute(text("UPDATE event SET payload_json = '{}' WHERE seq = 3"))
    engine.dispose()
    with Store.open(pg_study) as store:
        assert "event 3 " in store.verify_events()[0]
        problems = store.verify().problems
        assert any(
            p.startswith("event: event 3 (answer_set") and "payload_json differs" in p
            for p in problems
        ), problems


def test_packages_merge_into_postgres(pg_study: str, tmp_path: Path, clock) -> None:
    pack_reader(pg_study, "R2", tmp_path / "pkg", clock=clock)
    with Store.open(tmp_path / "pkg" / "study.sqlite", clock=clock) as store:
        finish_session(store, "R2", 1)
    first = merge_packages(pg_study, [tmp_path / "pkg"], clock=clock)
    again = merge_packages(pg_study, [tmp_path / "pkg"], clock=clock)
    assert first.packages[0].n_completed == 5 and not again.packages[0].changed
    with Store.open(pg_study, clock=clock) as store:
        assert store.sessions("R2")[0].finished and store.verify_events() == []


def test_copy_refuses_a_target_with_a_study(pg_study: str, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(StudyError, match="already holds a study"):
        copy_study(build_study(other), pg_study)
