"""The store on a real PostgreSQL server (started here from Debian's package; skipped without).

The server is a throwaway: ``initdb`` into a temporary folder, ``pg_ctl start`` on a free local
port (as the ``postgres`` or ``nobody`` user when the tests run as root, since PostgreSQL refuses
to run as root), stopped and removed at the end.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
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
from tests.studies.study_factory import FakeClock, build_study, finish_session

pytestmark = pytest.mark.postgres


def _tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    initdb, pg_ctl = _tool("initdb"), _tool("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL is not installed (no initdb/pg_ctl; apt-get install postgresql)")
    prefix: list[str] = []
    user = None
    if os.geteuid() == 0:
        for name in ("postgres", "nobody"):
            try:
                user = pwd.getpwnam(name)
                break
            except KeyError:
                continue
        runuser = shutil.which("runuser")
        if user is None or runuser is None:
            pytest.skip("running as root and no unprivileged user/runuser to start PostgreSQL")
        prefix = [runuser, "-u", user.pw_name, "--"]
    folder = Path(tempfile.mkdtemp(prefix="blindreader-pg-", dir="/tmp"))
    if user is not None:
        os.chown(folder, user.pw_uid, user.pw_gid)
    data, log = folder / "data", folder / "server.log"
    port = _free_port()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, *args], capture_output=True, text=True, timeout=120, check=False
        )

    try:
        done = run(
            initdb, "-D", str(data), "-U", "study", "--auth=trust", "-E", "UTF8", "--no-sync"
        )
        if done.returncode != 0:
            pytest.skip(f"initdb failed: {done.stderr.strip()[-300:]}")
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        done = run(
            pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start"
        )
        if done.returncode != 0:
            tail = log.read_text()[-300:] if log.exists() else done.stderr[-300:]
            pytest.skip(f"PostgreSQL did not start: {tail.strip()}")
        try:
            yield f"postgresql+psycopg://study@127.0.0.1:{port}/postgres"
        finally:
            run(pg_ctl, "-D", str(data), "-m", "immediate", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
        frame = answers_frame(store, unblinded=True)
        assert set(frame["reader"]) == {"R1"} and len(frame) == 4 * 4
    engine = make_engine(pg_study)
    with engine.begin() as con:
        con.execute(text("UPDATE event SET payload_json = '{}' WHERE seq = 3"))
    engine.dispose()
    with Store.open(pg_study) as store:
        assert "event 3 " in store.verify_events()[0]


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
