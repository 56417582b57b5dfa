"""The append-only event log and its hash chain.

Each event stores ``hash = sha256(prev_hash + canonical JSON of its content)``, where
``prev_hash`` is the hash of the event before it (:data:`GENESIS_HASH` for the first). Changing,
inserting or deleting an event in the middle breaks every later link, which
:func:`verify_chain` reports. Answers are covered too: every stored revision has an ``answer_set``
event carrying its value, so an edited answer no longer matches its event.

The chain's hash is public (anyone can recompute it); what makes an edit detectable by someone
without the study key is the study record (:mod:`studies.record`), which holds every event row
too: :func:`append_event` records the row it writes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from studies.canonical import canonical_json
from studies.db.models import Answer, AnswerRevision, Event, new_id
from studies.record import record_rows

#: ``prev_hash`` of the first event.
GENESIS_HASH = "0" * 64

#: Events the store itself writes (the viewer's kinds are ``studies.api.EVENT_KINDS``).
STORE_EVENT_KINDS = (
    "study_created",
    "leak_allowed",
    "answer_set",
    "assignment_completed",
    "session_finished",
    "package_created",
    "package_merged",
    "export_written",
    "passphrase_set",
    "signed_in",
    "sign_in_refused",
    "record_sealed",
)


def event_content(
    *,
    event_id: str,
    seq: int,
    reader_id: str | None,
    assignment_id: str | None,
    kind: str,
    payload_json: str,
    created_at: datetime,
) -> dict[str, Any]:
    """The part of an event that its hash covers."""
    return {
        "id": event_id,
        "seq": seq,
        "reader": reader_id,
        "assignment": assignment_id,
        "kind": kind,
        "payload": json.loads(payload_json),
        "at": created_at.isoformat(timespec="microseconds"),
    }


def chain_hash(prev_hash: str, content: Mapping[str, Any]) -> str:
    """``sha256(prev_hash + canonical_json(content))`` as hex."""
    return hashlib.sha256((prev_hash + canonical_json(content)).encode("utf-8")).hexdigest()


def _content_of(event: Event) -> dict[str, Any]:
    return event_content(
        event_id=event.id,
        seq=event.seq,
        reader_id=event.reader_id,
        assignment_id=event.assignment_id,
        kind=event.kind,
        payload_json=event.payload_json,
        created_at=event.created_at,
    )


def append_event(
    session: Session,
    *,
    kind: str,
    created_at: datetime,
    reader_id: str | None = None,
    assignment_id: str | None = None,
    payload: Mapping[str, Any] | None = None,
    event_id: str | None = None,
) -> str:
    """Add one event at the end of the chain (the caller's transaction holds the write lock).

    Parameters
    ----------
    session
        An ORM session inside a write transaction.
    kind, created_at, reader_id, assignment_id, payload
        The event; ``payload`` must be JSON-serialisable.
    event_id
        Keep an existing id (events imported from a package); a new UUID otherwise.

    Returns
    -------
    str
        The new event's hash.
    """
    last = session.execute(
        select(Event.seq, Event.hash).order_by(Event.seq.desc()).limit(1)
    ).first()
    seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
    payload_json = canonical_json(dict(payload or {}))
    event_id = event_id or new_id()
    created_at = created_at.astimezone(UTC)  # hashed as stored: UTC
    content = event_content(
        event_id=event_id,
        seq=seq,
        reader_id=reader_id,
        assignment_id=assignment_id,
        kind=kind,
        payload_json=payload_json,
        created_at=created_at,
    )
    digest = chain_hash(prev_hash, content)
    session.execute(
        insert(Event).values(
            id=event_id,
            seq=seq,
            reader_id=reader_id,
            assignment_id=assignment_id,
            kind=kind,
            payload_json=payload_json,
            created_at=created_at,
            prev_hash=prev_hash,
            hash=digest,
        )
    )
    record_rows(session, Event, [event_id])
    return digest


def verify_chain(events: Iterable[Event]) -> list[str]:
    """Check the hash chain of events given in ``seq`` order.

    Returns
    -------
    list of str
        One line per problem, first problem first; ``[]`` when the chain is intact.
    """
    problems: list[str] = []
    prev_hash = GENESIS_HASH
    expected_seq = 1
    for event in events:
        name = f"event {event.seq} ({event.kind}, id {event.id})"
        if event.seq != expected_seq:
            problems.append(
                f"{name}: expected sequence number {expected_seq} (an event is missing)"
            )
        if event.prev_hash != prev_hash:
            problems.append(f"{name}: does not link to the event before it (chain broken)")
        if chain_hash(event.prev_hash, _content_of(event)) != event.hash:
            problems.append(f"{name}: its content does not match its hash (changed after writing)")
        prev_hash = event.hash
        expected_seq = event.seq + 1
    return problems


def verify_answers(session: Session) -> list[str]:
    """Check that every answer revision matches its ``answer_set`` event and answers their last
    revision (an answer edited in the database without an event is reported)."""
    problems: list[str] = []
    logged: dict[str, str] = {}
    for (payload_json,) in session.execute(
        select(Event.payload_json).where(Event.kind == "answer_set")
    ):
        payload = json.loads(payload_json)
        if "revision_id" in payload:
            logged[str(payload["revision_id"])] = canonical_json(payload.get("value"))
    latest: dict[str, AnswerRevision] = {}
    for rev in session.execute(
        select(AnswerRevision).order_by(AnswerRevision.answer_pk, AnswerRevision.revision)
    ).scalars():
        value = canonical_json(json.loads(rev.value_json))
        if rev.id not in logged:
            problems.append(f"answer revision {rev.id}: no answer_set event records it")
        elif logged[rev.id] != value:
            problems.append(f"answer revision {rev.id}: value differs from its answer_set event")
        latest[rev.answer_pk] = rev
    for answer in session.execute(select(Answer)).scalars():
        last = latest.get(answer.id)
        if last is None or last.value_json != answer.value_json or last.revision != answer.revision:
            problems.append(
                f"answer {answer.id} ({answer.question_id}): value differs from its last revision"
            )
    return problems
