"""A writer killed with SIGKILL at random moments loses no committed answer and no integrity.

Each writer is forked from a forkserver that has the store already imported, so a start costs
milliseconds and 50+ kills fit in a few seconds. (Forking the test process itself is not safe:
it may hold threads and locks of earlier tests, Qt's and torch's among them, and a child that
inherits a held lock hangs.) The child opens the store and
records answers and events in a loop; after each ``record_answer`` returns it appends a line to
its own log file (a plain ``write``, which survives the process being killed). Once the child
says it is ready, the parent kills it after a random delay (50-350 ms: mid-transaction, mid-fsync,
between transactions).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from studies.api import AnswerKey
from studies.store import Store
from tests.studies.study_factory import build_study

N_KILLS = 60


def _writer(db: str, log: str, targets: list[tuple[str, str]], start: int) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        with Store.open(db) as store:
            os.write(fd, b"READY\n")
            i = start
            while True:
                reader_id, assignment_id = targets[i % len(targets)]
                value = i % 4 + 1
                store.record_event(reader_id, "case_opened", assignment_id=assignment_id)
                record = store.record_answer(assignment_id, AnswerKey("quality"), value)
                os.write(fd, f"{assignment_id}\t{record.revision}\t{value}\n".encode())
                i += 1
    except BaseException as exc:  # pragma: no cover - reported to the test through the log
        os.write(fd, f"ERROR\t{type(exc).__name__}: {exc}\n".encode())
    finally:
        os.close(fd)


# The writers are separate processes running the store as shipped, on the system clock; the
# test process reads the same time so that every timestamp in the study comes from one clock.
@pytest.mark.system_clock
def test_sigkill_never_loses_a_committed_answer(tmp_path: Path) -> None:
    db = build_study(tmp_path, n_cases=6)
    with Store.open(db) as store:
        # Warm up in the parent (mapper configuration, lazy imports) so every child starts
        # writing within milliseconds of the fork.
        views = store.assignments("R1", 1) + store.assignments("R2", 1)
        store.record_event("R1", "case_opened", assignment_id=views[0].assignment_id)
    targets = [(v.reader_id, v.assignment_id) for v in views]
    rng = np.random.default_rng(20261121)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["studies.store", "tests.studies.test_crash_safety"])
    logs: list[Path] = []
    killed_while_writing = 0
    for k in range(N_KILLS):
        log = tmp_path / f"writer-{k:03d}.log"
        logs.append(log)
        process = ctx.Process(target=_writer, args=(str(db), str(log), targets, 7 * k))
        process.start()
        deadline = time.monotonic() + 10
        while not (log.exists() and log.read_bytes().startswith(b"READY")):
            assert time.monotonic() < deadline, "the writer did not start"
            time.sleep(0.002)
        time.sleep(float(rng.uniform(0.05, 0.35)))
        assert process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
        process.join()
        assert process.exitcode == -signal.SIGKILL, "the writer stopped before it was killed"
        if len(log.read_text().splitlines()) > 1:
            killed_while_writing += 1

    printed = [
        line.split("\t") for log in logs for line in log.read_text().splitlines() if line != "READY"
    ]
    assert not [p for p in printed if p[0] == "ERROR"], "a writer failed (database locked?)"
    assert killed_while_writing >= N_KILLS // 2 and len(printed) >= 100
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {
            (aid, rev, value)
            for aid, rev, value in con.execute(
                "select answer.assignment_pk, answer_revision.revision, answer_revision.value_json "
                "from answer_revision join answer on answer.id = answer_revision.answer_pk"
            )
        }
    finally:
        con.close()
    missing = [p for p in printed if (p[0], int(p[1]), p[2]) not in stored]
    assert missing == []
    with Store.open(db) as store:
        assert store.verify_events() == []
