"""Four processes write answers to one database at the same moment: no lock errors, no loss."""

from __future__ import annotations

import multiprocessing
import sqlite3
import traceback
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from studies.api import AnswerKey
from studies.store import Store
from tests.studies.study_factory import build_study

N_PROCESSES = 4
N_ROUNDS = 25  # answers per process (each with an event: 2 write transactions)


def _writer(
    k: int, db: str, targets: list[tuple[str, str]], barrier: Barrier, queue: object
) -> None:
    try:
        with Store.open(db) as store:
            barrier.wait(timeout=30)
            done = 0
            for i in range(N_ROUNDS):
                reader_id, assignment_id = targets[i % len(targets)]
                store.record_event(reader_id, "case_opened", assignment_id=assignment_id)
                # A text answer unique to this write: every round must add one revision.
                store.record_answer(assignment_id, AnswerKey("comment"), f"w{k}-{i}")
                done += 1
        queue.put(("ok", done))  # type: ignore[attr-defined]
    except BaseException:
        queue.put(("error", traceback.format_exc()))  # type: ignore[attr-defined]


# The writers are separate processes running the store as shipped, on the system clock; the
# test process reads the same time so that every timestamp in the study comes from one clock.
@pytest.mark.system_clock
def test_four_writers_at_once(tmp_path: Path) -> None:
    db = build_study(tmp_path, n_cases=8)
    with Store.open(db) as store:
        views = [v for r in ("R1", "R2") for s in (1, 2) for v in store.assignments(r, s)]
    # Each process answers its own share of the (open) session-1 assignments; all start at once.
    open_views = [v for v in views if v.session_index == 1]
    shares = [
        [(v.reader_id, v.assignment_id) for v in open_views[k::N_PROCESSES]]
        for k in range(N_PROCESSES)
    ]
    assert all(shares)
    # a forkserver, not a fork of the test process, whose threads' locks a child could inherit
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["studies.store"])
    barrier = ctx.Barrier(N_PROCESSES)
    queue = ctx.Queue()
    processes = [
        ctx.Process(target=_writer, args=(k, str(db), share, barrier, queue))
        for k, share in enumerate(shares)
    ]
    for p in processes:
        p.start()
    results = [queue.get(timeout=120) for _ in processes]
    for p in processes:
        p.join(timeout=30)
    errors = [r[1] for r in results if r[0] == "error"]
    assert errors == [], errors[0] if errors else ""
    assert [r[1] for r in results] == [N_ROUNDS] * N_PROCESSES

    con = sqlite3.connect(db)
    try:
        n_revisions = con.execute("select count(*) from answer_revision").fetchone()[0]
        n_events = con.execute(
            "select count(*) from event where kind in ('case_opened', 'answer_set')"
        ).fetchone()[0]
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()
    assert n_revisions == N_PROCESSES * N_ROUNDS
    assert n_events == 2 * N_PROCESSES * N_ROUNDS
    with Store.open(db) as store:
        assert store.verify_events() == []
