"""A throwaway PostgreSQL server for tests and benchmarks (Debian's package; none -> an error
that says why, which the tests turn into a skip).

``initdb`` into a temporary folder, ``pg_ctl start`` on a free local port (as the ``postgres`` or
``nobody`` user when run as root, since PostgreSQL refuses to run as root), stopped and removed
at the end.
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
from contextlib import contextmanager
from pathlib import Path


class PostgresUnavailableError(RuntimeError):
    """PostgreSQL cannot be started here (the message says why)."""


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


@contextmanager
def throwaway_postgres(*, fsync: bool = False) -> Iterator[str]:
    """Start a PostgreSQL server in a temporary folder; yield its URL; stop and remove it.

    Parameters
    ----------
    fsync
        Sync to disk as a production server does (off for the tests' speed; on for benchmarks).

    Raises
    ------
    PostgresUnavailableError
        PostgreSQL is not installed here or would not start (the reason is the message).
    """
    initdb, pg_ctl = _tool("initdb"), _tool("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise PostgresUnavailableError(
            "PostgreSQL is not installed (no initdb/pg_ctl; apt-get install postgresql)"
        )
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
            raise PostgresUnavailableError(
                "running as root and no unprivileged user/runuser to start PostgreSQL"
            )
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
            raise PostgresUnavailableError(f"initdb failed: {done.stderr.strip()[-300:]}")
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
        options += "" if fsync else " -c fsync=off"
        done = run(
            pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start"
        )
        if done.returncode != 0:
            tail = log.read_text()[-300:] if log.exists() else done.stderr[-300:]
            raise PostgresUnavailableError(f"PostgreSQL did not start: {tail.strip()}")
        try:
            yield f"postgresql+psycopg://study@127.0.0.1:{port}/postgres"
        finally:
            run(pg_ctl, "-D", str(data), "-m", "immediate", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
