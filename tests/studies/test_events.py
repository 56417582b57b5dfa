"""The hash-chained event log: an intact chain verifies, any edit, insertion or deletion shows."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import pytest

from studies.api import AnswerKey
from studies.events import GENESIS_HASH, canonical_json, chain_hash
from studies.store import Store
from tests.studies.study_factory import FakeClock, build_study


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A study with a few answers and viewer events."""
    db = build_study(tmp_path, n_cases=2)
    clock = FakeClock()
    with Store.open(db, clock=clock) as store:
        a = store.next_assignment("R1")
        assert a is not None
        store.record_event("R1", "case_opened", assignment_id=a.assignment_id)
        clock.advance(seconds=3)
        store.record_answer(a.assignment_id, AnswerKey("quality"), 2)
        store.record_answer(a.assignment_id, AnswerKey("quality"), 3)
        store.record_event(
            "R1",
            "window_level_changed",
            assignment_id=a.assignment_id,
            payload={"center": 300, "width": 800},
        )
        store.record_event("R1", "case_closed", assignment_id=a.assignment_id)
        assert store.verify_events() == []
    return db


def problems(db: Path) -> list[str]:
    with Store.open(db) as store:
        return store.verify_events()


def execute(db: Path, sql: str, *args: object) -> None:
    con = sqlite3.connect(db)
    with con:
        con.execute(sql, args)
    con.close()


def test_canonical_json_and_chain_hash_are_deterministic() -> None:
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'
    h1 = chain_hash(GENESIS_HASH, {"x": 1, "y": 2})
    assert h1 == chain_hash(GENESIS_HASH, {"y": 2, "x": 1})
    assert h1 != chain_hash("1" * 64, {"x": 1, "y": 2})
    assert len(h1) == 64


def test_chain_links_every_event(db: Path) -> None:
    con = sqlite3.connect(db)
    rows = con.execute("select seq, prev_hash, hash from event order by seq").fetchall()
    con.close()
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0][1] == GENESIS_HASH
    for before, after in itertools.pairwise(rows):
        assert after[1] == before[2]


def test_edited_payload_is_detected(db: Path) -> None:
    execute(
        db,
        "update event set payload_json = ? where kind = 'window_level_changed'",
        '{"center":1,"width":1}',
    )
    found = problems(db)
    assert len(found) == 1 and "window_level_changed" in found[0] and "changed after" in found[0]


def test_edited_time_is_detected(db: Path) -> None:
    execute(db, "update event set created_at = '2020-01-01 00:00:00.000000' where seq = 2")
    assert "event 2 " in problems(db)[0]


def test_deleted_event_is_detected(db: Path) -> None:
    execute(db, "delete from event where kind = 'window_level_changed'")
    found = problems(db)
    assert any("an event is missing" in p for p in found)
    assert any("does not link" in p for p in found)


def test_rehashed_edit_still_breaks_the_next_link(db: Path) -> None:
    """An editor who recomputes the edited event's hash still breaks the link after it."""
    con = sqlite3.connect(db)
    (seq,) = con.execute("select seq from event where kind = 'window_level_changed'").fetchone()
    con.close()
    with Store.open(db) as store, store.writing() as s:
        from sqlalchemy import select

        from studies.db.models import Event
        from studies.events import event_content

        ev = s.execute(select(Event).where(Event.seq == seq)).scalar_one()
        ev.payload_json = '{"center":1}'
        ev.hash = chain_hash(
            ev.prev_hash,
            event_content(
                event_id=ev.id,
                seq=ev.seq,
                reader_id=ev.reader_id,
                assignment_id=ev.assignment_id,
                kind=ev.kind,
                payload_json=ev.payload_json,
                created_at=ev.created_at,
            ),
        )
    found = problems(db)
    assert found and f"event {seq + 1} " in found[0] and "does not link" in found[0]


def test_edited_answer_is_detected(db: Path) -> None:
    execute(db, "update answer set value_json = '4'")
    assert any("differs from its last revision" in p for p in problems(db))


def test_edited_revision_is_detected(db: Path) -> None:
    execute(db, "update answer_revision set value_json = '1' where revision = 1")
    assert any("differs from its answer_set event" in p for p in problems(db))
