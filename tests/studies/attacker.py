"""What an attacker who read blindreader's source does to a study file or a package after
editing it with ``sqlite3``: recompute the public sha256 chains with the project's own code.

(The study record's MACs need the study key, which the attacker does not have; entries they
append carry no MAC.)
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from studies.db.engine import make_engine
from studies.db.models import RecordEntry
from studies.events import GENESIS_HASH, chain_hash, event_content
from studies.record import entry_hash, image_of, record_rows, recorded_tables, row_id_of
from studies.study_key import key_path


def rechain_events(db: Path) -> None:
    """Recompute every link of the event log's public hash chain."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    rows = con.execute("select * from event order by seq").fetchall()
    prev = GENESIS_HASH
    with con:
        for row in rows:
            at = datetime.fromisoformat(row["created_at"]).replace(tzinfo=UTC)
            content = event_content(
                event_id=row["id"],
                seq=row["seq"],
                reader_id=row["reader_id"],
                assignment_id=row["assignment_id"],
                kind=row["kind"],
                payload_json=row["payload_json"],
                created_at=at,
            )
            digest = chain_hash(prev, content)
            con.execute(
                "update event set prev_hash = ?, hash = ? where id = ?", (prev, digest, row["id"])
            )
            prev = digest
    con.close()


def rewrite_record(db: Path, edit: Callable[[str, str, dict], dict | None], *, macs: str) -> None:
    """Rewrite the study record itself: ``edit(table, row, image)`` returns the new image (None
    deletes the entry); the chain is recomputed; ``macs``: 'keep' the old ones or 'strip' them."""
    con = sqlite3.connect(db)
    entries = con.execute(
        "select seq, table_name, row_id, image_json, mac from record order by seq"
    ).fetchall()
    kept = []
    for _, table, row, image_json, mac in entries:
        image = edit(table, row, json.loads(image_json))
        if image is not None:
            kept.append((table, row, json.dumps(image, sort_keys=True, separators=(",", ":")), mac))
    with con:
        con.execute("delete from record")
        prev = "0" * 64
        for seq, (table, row, image_json, mac) in enumerate(kept, start=1):
            digest = entry_hash(prev, seq, table, row, image_json)
            con.execute(
                "insert into record values (?, ?, ?, ?, ?, ?, ?)",
                (seq, table, row, image_json, prev, digest, mac if macs == "keep" else None),
            )
            prev = digest
    con.close()


def reseal(db: Path) -> None:
    """After editing a package's rows: recompute the event chain, cut the record back to its
    last keyed entry (what the coordinator wrote) and record every row that differs since, as
    the package's own store would have, without a key."""
    rechain_events(db)
    engine = make_engine(db, check_filesystem=False)
    try:
        with Session(engine) as s, s.begin():
            keyed = (
                s.execute(
                    select(RecordEntry.seq)
                    .where(RecordEntry.mac.is_not(None))
                    .order_by(RecordEntry.seq.desc())
                )
                .scalars()
                .first()
            )
            s.execute(delete(RecordEntry).where(RecordEntry.seq > (keyed or 0)))
            recorded: dict[tuple[str, str], dict] = {}
            for entry in s.execute(select(RecordEntry).order_by(RecordEntry.seq)).scalars():
                recorded[(entry.table_name, entry.row_id)] = json.loads(entry.image_json)
            for table in recorded_tables():
                changed = []
                for row in s.execute(select(table)):
                    mapping = dict(row._mapping)
                    row_id = row_id_of(table, mapping)
                    if recorded.get((table.name, row_id)) != image_of(table, mapping):
                        changed.append(row_id)
                record_rows(s, table, changed)
    finally:
        engine.dispose()


def private_copy(folder: Path, target: Path, suite_keys: Path, keys: Path) -> Path:
    """Copy a folder of studies and packages to ``target`` and the key files (and anchor logs)
    of the studies in it to the key folder ``keys``."""
    shutil.copytree(folder, target, ignore=shutil.ignore_patterns("*-wal", "*-shm"))
    keys.mkdir(exist_ok=True)
    for db in target.rglob("*.sqlite"):
        con = sqlite3.connect(db)
        try:
            (study_id,) = con.execute("select id from study").fetchone()
        finally:
            con.close()
        for suffix in (".key", ".anchors"):
            original = key_path(study_id, suite_keys).with_suffix(suffix)
            if original.exists() and not (keys / original.name).exists():
                shutil.copy(original, keys / original.name)
    return target


def dump(db: Path) -> list[str]:
    """The whole database as SQL (to compare before and after)."""
    con = sqlite3.connect(db)
    try:
        return list(con.iterdump())
    finally:
        con.close()
